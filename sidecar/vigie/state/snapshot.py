"""Snapshots of the state: written atomically, restored on start, set aside when unreadable.

A snapshot is one ``.npz`` file (a zip of ``.npy`` arrays, readable by any numpy) holding every
state array plus ``meta``: a JSON document with the format number, the array layout, the
strings, channels, episodes and window lengths. It is written to a temporary file, flushed
and renamed over the previous one, so a crash leaves either the old or the new snapshot.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import numpy.typing as npt

from vigie.errors import SnapshotError
from vigie.state import layout as L
from vigie.state._arrays import API_ARRAYS, ROUTE_ARRAYS, SUB_ARRAYS
from vigie.state.engine import Capacity, Episode, State
from vigie.state.thresholds import Thresholds
from vigie.wire.columns import Interner

log = logging.getLogger(__name__)

FORMAT: Final = 2  # 2: arrays cut to the rows in use, no detector caches
FILE_NAME: Final = "state.npz"


def layout_signature() -> dict[str, int]:
    """Every integer of the array layout: a snapshot is only read by the same layout."""
    return {k: v for k, v in vars(L).items() if k.isupper() and isinstance(v, int)}


def _meta(state: State) -> dict[str, Any]:
    th = state.thresholds
    return {
        "format": FORMAT,
        "layout": layout_signature(),
        "written_at": time.time(),
        "windows": {k: getattr(th, k) for k in sorted(Thresholds.window_fields())},
        "strings": state.interner.strings(),
        "channels": state.channels,
        "evicted": state.evicted,
        "app_info": [[k, *v] for k, v in state.app_info.items()],
        "episodes": [
            [*key, [[e.class_name, e.first_us, e.last_us] for e in eps]]
            for key, eps in state.episodes.items()
        ],
        "api_episodes": [
            [*key, [[e.class_name, e.first_us, e.last_us] for e in eps]]
            for key, eps in state.api_episodes.items()
        ],
    }


@dataclass(frozen=True, slots=True)
class Frozen:
    """What a snapshot holds, copied out of a state (under the caller's lock, quickly)."""

    meta: dict[str, Any]
    arrays: dict[str, npt.NDArray[Any]]


def freeze(state: State) -> Frozen:
    return Frozen(_meta(state), {k: v.copy() for k, v in state.used_arrays().items()})


def _savez(f: IO[bytes], frozen: Frozen) -> None:
    meta = np.frombuffer(json.dumps(frozen.meta).encode(), dtype=np.uint8)
    np.savez(f, meta=meta, **frozen.arrays)  # type: ignore[arg-type]


def write_snapshot(state: State | Frozen, directory: Path) -> Path:
    """Write the state atomically to ``directory/state.npz``; return the path."""
    frozen = state if isinstance(state, Frozen) else freeze(state)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    tmp = directory / (FILE_NAME + ".tmp")
    with tmp.open("wb") as f:
        _savez(f, frozen)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def read_snapshot(path: Path, thresholds: Thresholds, capacity: Capacity) -> State:
    """Read a snapshot; raise ``SnapshotError`` saying why it cannot be used."""
    try:
        with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
            if "meta" not in z.files:
                raise SnapshotError(f"{path}: not a vigie snapshot (no meta)")
            meta = json.loads(z["meta"].tobytes())
            arrays = {name: z[name] for name in z.files if name != "meta"}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise SnapshotError(f"{path}: unreadable ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise SnapshotError(
            f"{path}: written in snapshot format {meta.get('format')!r}, this vigie reads "
            f"format {FORMAT}"
        )
    if meta.get("layout") != layout_signature():
        raise SnapshotError(f"{path}: written with another state layout")
    windows = {k: getattr(thresholds, k) for k in sorted(Thresholds.window_fields())}
    if meta.get("windows") != windows:
        raise SnapshotError(
            f"{path}: written with windows {meta.get('windows')}, the settings say {windows}"
        )
    state = State(thresholds, capacity)
    expected = state.used_arrays()
    for name, current in expected.items():
        if name not in arrays:
            raise SnapshotError(f"{path}: array {name} is missing")
        got = arrays[name]
        if got.dtype != current.dtype or got.shape[1:] != current.shape[1:]:
            raise SnapshotError(f"{path}: array {name} has shape {got.shape} {got.dtype}")
    rows = {"sub_meta": SUB_ARRAYS, "api_meta": API_ARRAYS, "route_meta": ROUTE_ARRAYS}
    for meta_name, spec in rows.items():
        n = int(arrays[meta_name][1]) if len(arrays[meta_name]) == 2 else -1
        if any(len(arrays[name]) != n for name in spec):
            raise SnapshotError(f"{path}: inconsistent {meta_name.split('_')[0]} arrays")
    if len(arrays["sub_free"]) != int(arrays["sub_meta"][0]):
        raise SnapshotError(f"{path}: inconsistent subscription arrays")
    try:
        state.interner = Interner(meta["strings"])
        state.channels = list(meta["channels"])
        state.evicted = int(meta["evicted"])
        state.app_info = {int(k): (int(a), int(b)) for k, a, b in meta["app_info"]}
        for *key, eps in meta["episodes"]:
            state.episodes[(int(key[0]), int(key[1]), int(key[2]))] = [Episode(*e) for e in eps]
        for *key, eps in meta["api_episodes"]:
            state.api_episodes[(int(key[0]), int(key[1]))] = [Episode(*e) for e in eps]
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"{path}: damaged metadata ({exc})") from exc
    state.restore_used(arrays)
    return state


def restore_or_fresh(directory: Path, thresholds: Thresholds, capacity: Capacity) -> State:
    """The state of the last snapshot in ``directory``, or a fresh one.

    An unusable snapshot is renamed ``state.npz.unusable-<time>`` (kept for a person to look
    at), a warning says why, and the sidecar starts fresh.
    """
    path = directory / FILE_NAME
    if not path.exists():
        return State(thresholds, capacity)
    try:
        state = read_snapshot(path, thresholds, capacity)
    except SnapshotError as exc:
        aside = path.with_name(f"{FILE_NAME}.unusable-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(path, aside)
        log.warning("%s; set aside as %s, starting with a fresh state", exc, aside.name)
        return State(thresholds, capacity)
    log.info(
        "restored %d subscriptions and %d APIs from %s",
        len(state.sub_rows()),
        state.n_api_rows,
        path,
    )
    return state


def snapshot_bytes(state: State | Frozen) -> bytes:
    """The snapshot as bytes (tests, and the fleet view)."""
    buf = io.BytesIO()
    _savez(buf, state if isinstance(state, Frozen) else freeze(state))
    return buf.getvalue()
