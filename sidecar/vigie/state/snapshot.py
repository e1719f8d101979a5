"""Snapshots of the state: written atomically, restored on start, set aside when unreadable.

A snapshot is one ``.npz`` file (a zip of ``.npy`` arrays, readable by any numpy) holding every
state array plus ``meta``: a JSON document with the format number, the array layout, the
strings, channels, episodes and window lengths. One writer at a time (a process-wide lock): it
writes a temporary file of its own (a unique name), fsyncs it, moves the current snapshot to
``state.npz.1`` (the older generation), renames the new one to ``state.npz`` and fsyncs the
directory, so a crash at any moment leaves at least one complete generation. On start the
newest usable generation is restored: one written with another state layout (an older vigie)
is migrated column by column (``_migrate``); one that is unreadable, cannot be migrated or
fails the semantic check (row and string ids in range, sizes consistent) is set aside and the
older one is tried.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import numpy.typing as npt

from vigie.errors import SnapshotError
from vigie.state import _migrate
from vigie.state import layout as L
from vigie.state._arrays import API_ARRAYS, ROUTE_ARRAYS, SUB_ARRAYS
from vigie.state.engine import Capacity, Episode, State
from vigie.state.thresholds import Thresholds
from vigie.wire.columns import Interner

log = logging.getLogger(__name__)

FORMAT: Final = 2  # 2: arrays cut to the rows in use, no detector caches
FILE_NAME: Final = "state.npz"
OLDER_NAME: Final = FILE_NAME + ".1"  # the previous generation
_WRITING = threading.Lock()  # one snapshot writer at a time in this process


def layout_signature() -> dict[str, int]:
    """Every integer of the array layout: a snapshot of another layout is migrated
    (``_migrate``) or refused."""
    return _migrate.signature()


def _meta(state: State) -> dict[str, Any]:
    th = state.thresholds
    return {
        "format": FORMAT,
        "layout": layout_signature(),
        "written_at": time.time(),
        "windows": {k: getattr(th, k) for k in sorted(Thresholds.window_fields())},
        "strings": state.interner.strings(),
        "channels": list(state.channels),  # a copy: slots are released in place
        "evicted": state.evicted,
        "evicted_rows": [state.api_rows_evicted, state.route_rows_evicted],
        "observed_since_us": state.observed_since_us,
        "app_info": [[k, *v] for k, v in state.app_info.items()],
        "api_uuid": [[k, v] for k, v in state.api_uuid.items()],
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
    arrays = {**state.used_arrays(), **state.baselines.used_arrays(state)}
    arrays |= state.security.used_arrays()  # auth_failing's table (vigie.state._security)
    return Frozen(_meta(state), {k: v.copy() for k, v in arrays.items()})


def _savez(f: IO[bytes], frozen: Frozen) -> None:
    meta = np.frombuffer(json.dumps(frozen.meta).encode(), dtype=np.uint8)
    np.savez(f, meta=meta, **frozen.arrays)  # type: ignore[arg-type]


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_snapshot(state: State | Frozen, directory: Path) -> Path:
    """Write the state atomically to ``directory/state.npz`` (the previous one becomes
    ``state.npz.1``); return the path. Writers take turns; each has its own temporary file."""
    frozen = state if isinstance(state, Frozen) else freeze(state)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    with _WRITING:
        fd, name = tempfile.mkstemp(prefix=FILE_NAME + ".", suffix=".tmp", dir=directory)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                _savez(f, frozen)
                f.flush()
                os.fsync(f.fileno())
            if path.exists():
                os.replace(path, directory / OLDER_NAME)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(directory)
    return path


def _in_range(path: Path, what: str, ids: npt.NDArray[Any], n: int) -> None:
    if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= n):
        raise SnapshotError(
            f"{path}: damaged: {what} ids {int(ids.min())}..{int(ids.max())} outside 0..{n - 1}"
        )


def check_ids(
    path: Path, arrays: dict[str, npt.NDArray[Any]], n_strings: int, n_channels: int
) -> None:
    """The semantic check: every row and string id a row in use refers to exists."""
    n_sub, n_api, n_route = (int(arrays[m][1]) for m in ("sub_meta", "api_meta", "route_meta"))
    sub = arrays["sub_i64"][:n_sub]
    sub = sub[sub[:, L.S_KEY] != 0]
    api = arrays["api_i64"][:n_api]
    api = api[api[:, L.A_KEY] != 0]
    route = arrays["route_i64"][:n_route]
    route = route[route[:, L.R_KEY] != 0]
    for what, ids, n in (
        ("subscription application", sub[:, L.S_APP], n_strings),
        ("subscription application name", sub[:, L.S_APP_NAME], n_strings),
        ("subscription API row", sub[:, L.S_API], n_api),
        ("API name", api[:, L.A_NAME], n_strings),
        ("API version", api[:, L.A_VERSION], n_strings),
        ("API context", api[:, L.A_CONTEXT], n_strings),
        ("route API row", route[:, L.R_API], n_api),
        ("route resource", route[:, L.R_RESOURCE], n_strings),
        ("route channel", route[:, L.R_CHANNEL], max(n_channels, 1)),
        ("free subscription row", arrays["sub_free"].astype(np.int64), max(n_sub, 1)),
    ):
        _in_range(path, what, ids, n)
    if len(arrays["app_channel"]) > n_strings:
        raise SnapshotError(f"{path}: damaged: app_channel longer than the strings")


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
    old = meta.get("layout")
    if old != layout_signature():
        try:
            added = _migrate.migrate(old, arrays)
        except _migrate.MigrationError as exc:
            raise SnapshotError(
                f"{path}: written with another state layout that cannot be migrated: {exc}"
            ) from exc
        log.warning(
            "%s: snapshot migrated from layout %s: %d columns added",
            path,
            _migrate.layout_id(old),
            added,
        )
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
        check_ids(path, arrays, len(meta["strings"]), len(meta["channels"]))
        state.interner = Interner(meta["strings"])
        state.channels = list(meta["channels"])
        state.evicted = int(meta["evicted"])
        state.api_rows_evicted, state.route_rows_evicted = (
            max(0, int(x)) for x in meta.get("evicted_rows", (0, 0))
        )
        # a snapshot from before observed_since_us: 0, read as its earliest event time
        state.observed_since_us = max(0, int(meta.get("observed_since_us", 0)))
        state.app_info = {int(k): (int(a), int(b)) for k, a, b in meta["app_info"]}
        n_strings = len(meta["strings"])  # older snapshots: no apiId kept
        uuid = {int(k): int(v) for k, v in meta.get("api_uuid", [])}
        state.api_uuid = {k: v for k, v in uuid.items() if 0 <= v < n_strings}
        for *key, eps in meta["episodes"]:
            state.episodes[(int(key[0]), int(key[1]), int(key[2]))] = [Episode(*e) for e in eps]
        for *key, eps in meta["api_episodes"]:
            state.api_episodes[(int(key[0]), int(key[1]))] = [Episode(*e) for e in eps]
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"{path}: damaged metadata ({exc})") from exc
    state.restore_used(arrays)
    if not state.baselines.restore(state, arrays):  # an older snapshot: learnt again
        log.info("%s: no baselines in this snapshot: they are learnt again", path)
    if not state.security.restore(arrays):  # older or damaged: counted again from now
        log.info("%s: no auth_failing table in this snapshot: it starts empty", path)
    return state


def restore_or_fresh(directory: Path, thresholds: Thresholds, capacity: Capacity) -> State:
    """The state of the newest usable snapshot in ``directory``, or a fresh one.

    An unusable generation is renamed ``<name>.unusable-<time>`` (kept for a person to look
    at), a warning says why, and the older generation is tried; with none usable the sidecar
    starts fresh.
    """
    set_aside = False
    for name in (FILE_NAME, OLDER_NAME):
        path = directory / name
        if not path.exists():
            continue
        try:
            state = read_snapshot(path, thresholds, capacity)
        except SnapshotError as exc:
            aside = path.with_name(f"{name}.unusable-{time.strftime('%Y%m%dT%H%M%S')}")
            os.replace(path, aside)
            log.warning("%s; set aside as %s", exc, aside.name)
            set_aside = True
            continue
        log.info(
            "restored %d subscriptions and %d APIs from %s",
            len(state.sub_rows()),
            state.n_api_rows,
            path,
        )
        return state
    if set_aside:
        log.warning("no usable snapshot in %s: starting with a fresh state", directory)
    return State(thresholds, capacity)


def snapshot_bytes(state: State | Frozen) -> bytes:
    """The snapshot as bytes (tests, and the fleet view)."""
    buf = io.BytesIO()
    _savez(buf, state if isinstance(state, Frozen) else freeze(state))
    return buf.getvalue()
