"""Snapshots written with an older state layout are migrated column by column (an upgrade loses
nothing); what cannot be migrated is refused, the constant named.

The real case: a snapshot written by the previous release's code (the tree of commit ``OLD``,
``git archive`` into a temporary directory, run in a subprocess with that tree on
``sys.path``), read by today's code and compared with a state today's code fed the same events.
Skipped when git or the commit is not there (a shallow clone, an unpacked sdist).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import start_sidecar
from tests.support import naive
from tests.unit.state.test_kernels import compare as compare_with_naive
from vigie.classify import views
from vigie.errors import SnapshotError
from vigie.state import _migrate, snapshot
from vigie.state import layout as L
from vigie.state.engine import Capacity, State
from vigie.state.thresholds import Thresholds
from vigie.wire.columns import COLUMNS, StreamDecoder, StreamEncoder

ROOT = Path(__file__).resolve().parents[3]
# the release before the slot bitmaps (S_SW_MASK, S_RW_MASK) and the baselines
OLD = "93106971a6983566684efd8afc5cd443632eea79"
T0 = 1_772_409_600_000_000
SECOND = 1_000_000


def traffic(seed: int, start_us: int, minutes: int) -> dict[str, list[Any]]:
    """Events of a small platform over ``minutes``: steady consumers, a retry storm, an
    error-prone client, a redundant poller and a throttle hitter. String columns as strings,
    the rest as integers."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[Any, ...]] = []
    for minute in range(minutes):
        base = start_us + minute * 60 * SECOND
        for k in range(int(rng.integers(20, 40))):  # steady consumers
            app = f"app-{int(rng.integers(0, 12))}"
            api = f"api-{int(rng.integers(0, 4))}"
            status = int(rng.choice([200] * 18 + [404, 500]))
            rows.append(
                (base + k * SECOND, app, api, "/r", 1, status, 0, int(rng.integers(1, 1 << 60)))
            )
        if minute < minutes // 2:  # a retry storm that stops half way
            for k in range(30):
                rows.append((base + k * 2 * SECOND, "storm", "orders", "/o", 3, 503, 0, 7))
        if minute % 3 != 2:  # an error-prone client
            for k in range(12):
                rows.append((base + k * 4 * SECOND, "clumsy", "api-1", "/x", 1, 404, 0, 0))
        for k in range(10):  # a poller asking the same thing again and again
            rows.append((base + k * 5 * SECOND + 1, "poller", "catalog", "/menu", 1, 200, 0, 42))
        if minute >= minutes // 3:  # a throttle hitter
            for k in range(6):
                rows.append((base + k * 9 * SECOND + 2, "greedy", "api-2", "/g", 1, 429, 900800, 0))
    rows.sort(key=lambda r: r[0])
    n = len(rows)
    t, apps, apis, res, method, statuses, code, uri = (list(c) for c in zip(*rows, strict=True))
    return {
        "event_time_us": t,
        "application_id": apps,
        "application_name": apps,
        "api_name": apis,
        "api_version": ["v1"] * n,
        "resource_template": res,
        "http_method": method,
        "http_status": statuses,
        "error_code": code,
        "latency_us": rng.lognormal(10.5, 0.7, size=n).astype(np.int64).tolist(),
        "backend_latency_us": rng.lognormal(10.3, 0.7, size=n).astype(np.int64).tolist(),
        "request_bytes": [0] * n,
        "response_bytes": rng.integers(100, 5000, size=n).tolist(),
        "key_type": [1] * n,
        "uri_hash": uri,
        "flags": [0] * n,
    }


def episodes_then(seed: int, start_us: int) -> dict[str, list[Any]]:
    """An hour where the classes hold, then the same a day later: the first episodes, quiet
    for longer than ``hold_seconds``, are closed when the rules hold again."""
    busy = traffic(seed, start_us, 60)
    again = traffic(seed + 100, start_us + 26 * 3600 * SECOND, 20)
    return {k: busy[k] + again[k] for k in busy}


def feed(state: Any, doc: dict[str, list[Any]], batch: int) -> Any:
    """Apply ``doc`` (see ``traffic``) to ``state`` in batches, through the stream encoder and
    decoder of the tree that runs it; return the decoded events. Only names both trees have: it
    runs in the old tree too (its source is sent to the subprocess)."""
    strings = ("application_id", "application_name", "api_name", "api_version", "resource_template")
    enc = StreamEncoder()
    cols = {k: ([enc.intern(s) for s in v] if k in strings else v) for k, v in doc.items()}
    arrays = {k: np.asarray(v) for k, v in cols.items()}
    n = len(arrays["event_time_us"])
    dec = StreamDecoder(state.interner, state.channel_index("main"), n, 1 << 20)
    events = dec.decode(enc.batch(arrays))
    for k in range(0, n, batch):
        state.apply(events.take(slice(k, min(k + batch, n))))
    return events


_CHILD = """
from __future__ import annotations
import json, sys
from pathlib import Path
from typing import Any
import numpy as np
from vigie.wire.columns import StreamDecoder, StreamEncoder
from vigie.state import snapshot
from vigie.state.engine import State
import vigie.state.snapshot as S
assert Path(S.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve()), S.__file__
{feed}
doc = json.loads(Path(sys.argv[2]).read_text())
state = State()
feed(state, doc, 1000)
snapshot.write_snapshot(state, Path(sys.argv[3]))
print(json.dumps(snapshot.layout_signature()))
"""


def old_tree() -> Path:
    """The ``sidecar`` of commit ``OLD``, extracted once (shared with the kernel benchmark:
    its Numba cache is kept there); the test is skipped when git or the commit is missing."""
    tree = Path(tempfile.gettempdir()) / f"vigie-kernel-baseline-{OLD[:12]}"
    if (tree / "sidecar" / "vigie").is_dir():
        return tree
    if shutil.which("git") is None:
        pytest.skip("no git: the previous release's tree cannot be extracted")
    probe = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{OLD}^{{commit}}"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"commit {OLD[:7]} is not in this clone (a shallow clone?)")
    tmp = Path(tempfile.mkdtemp(prefix=tree.name + ".", dir=tree.parent))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", OLD, "sidecar"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
    try:
        os.replace(tmp, tree)
    except OSError:  # another run extracted it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return tree


def write_with_old_code(tmp: Path, doc: dict[str, list[Any]]) -> tuple[Path, dict[str, int]]:
    """A snapshot of ``doc`` written by the old tree's code; its layout signature."""
    tree = old_tree()
    (tmp / "events.json").write_text(json.dumps(doc))
    source = _CHILD.format(feed=textwrap.dedent(inspect.getsource(feed)))
    env = os.environ | {"PYTHONPATH": str(tree / "sidecar")}
    run = subprocess.run(
        [sys.executable, "-c", source, str(tree), str(tmp / "events.json"), str(tmp / "old")],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return tmp / "old" / snapshot.FILE_NAME, json.loads(run.stdout.strip().splitlines()[-1])


def assert_same(got: State, want: State) -> None:
    """Every array in use, the episodes and the views are equal."""
    now = want.now_us
    for name, arr in want.used_arrays().items():
        assert np.array_equal(got.used_arrays()[name], arr), name
    assert dict(got.episodes) == dict(want.episodes)
    assert dict(got.api_episodes) == dict(want.api_episodes)
    assert got.interner.strings() == want.interner.strings()
    assert [v.to_json() for v in views.subscriptions(got, now)] == [
        v.to_json() for v in views.subscriptions(want, now)
    ]
    assert [v.to_json() for v in views.apis(got, now)] == [
        v.to_json() for v in views.apis(want, now)
    ]
    assert got.counters() == want.counters()


def test_a_snapshot_of_the_previous_release_is_migrated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = episodes_then(1, T0)
    path, old_layout = write_with_old_code(tmp_path, first)
    assert old_layout != snapshot.layout_signature()  # a real layout change
    added = {k for k in snapshot.layout_signature() if k not in old_layout}
    assert {"S_SW_MASK", "S_RW_MASK"} <= added

    want = State()
    events = feed(want, first, 1000)
    assert want.episodes and len(want.sub_rows()) > 10  # the traffic exercises the classes
    nv = naive.NaiveState(Thresholds().params(), bounded_retries=True)  # the twin, by the rules
    nv.apply({c.name: events[c.name].tolist() for c in COLUMNS}, events.channel.tolist())
    with caplog.at_level(logging.WARNING, logger="vigie.state.snapshot"):
        got = snapshot.restore_or_fresh(path.parent, Thresholds(), Capacity())
    assert f"snapshot migrated from layout {_migrate.layout_id(old_layout)}: 2 columns added" in (
        caplog.text
    )
    assert not list(path.parent.glob("*.unusable-*"))
    assert_same(got, want)
    compare_with_naive(got, nv)  # every counter, window, histogram, class and episode

    # and ingest goes on exactly as in a state fed everything from the start
    more = traffic(2, T0 + 27 * 3600 * SECOND, 40)
    feed(got, more, 700)
    feed(want, more, 700)
    assert_same(got, want)


def test_the_older_generation_is_migrated_too(tmp_path: Path) -> None:
    path, _ = write_with_old_code(tmp_path, traffic(3, T0, 20))
    os.replace(path, path.with_name(snapshot.OLDER_NAME))
    path.write_bytes(b"not a zip")  # the newest generation is damaged
    got = snapshot.restore_or_fresh(path.parent, Thresholds(), Capacity())
    want = State()
    feed(want, traffic(3, T0, 20), 1000)
    assert_same(got, want)


# ---------------------------------------------------------------------------------------------
# synthetic layouts
# ---------------------------------------------------------------------------------------------


def _rewrite(path: Path, layout: dict[str, int], arrays: dict[str, Any] | None = None) -> None:
    with np.load(path) as z:
        stored = {k: z[k] for k in z.files}
    meta = json.loads(stored["meta"].tobytes()) | {"layout": layout}
    stored["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    stored |= arrays or {}
    with path.open("wb") as f:
        np.savez(f, **stored)


def _busy() -> State:
    state = State()
    feed(state, traffic(4, T0, 30), 500)
    return state


def test_a_column_moved_is_copied_by_name(tmp_path: Path) -> None:
    """An old layout with S_MAX_RPM and S_FAIL_START swapped places and the last column of
    api_i64 missing: read back by name, the new column zero."""
    state = _busy()
    path = snapshot.write_snapshot(state, tmp_path)
    old = snapshot.layout_signature()
    old["S_MAX_RPM"] = old["S_FAIL_START"]
    for k in ("S_FAIL_START", "S_FAIL_END", "S_FAIL_NORES_START", "S_FAIL_NORES_END"):
        old[k] += 1
    del old["A_NOAPP"]
    old["A_FIELDS"] -= 1
    sub = state.used_arrays()["sub_i64"].copy()
    moved = sub.copy()
    f = L.S_FAIL_START
    moved[:, f] = sub[:, L.S_MAX_RPM]
    moved[:, f + 1 : f + 5] = sub[:, f : f + 4]
    moved[:, [L.S_SW_MASK, L.S_RW_MASK]] = 0  # derived: recomputed
    api = state.used_arrays()["api_i64"][:, : L.A_NOAPP]
    _rewrite(path, old, {"sub_i64": moved, "api_i64": api})
    back = snapshot.read_snapshot(path, Thresholds(), Capacity())
    assert np.array_equal(back.used_arrays()["sub_i64"], sub)
    assert not back.used_arrays()["api_i64"][:, L.A_NOAPP].any()
    want = state.used_arrays()["api_i64"].copy()
    want[:, L.A_NOAPP] = 0
    assert np.array_equal(back.used_arrays()["api_i64"], want)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        # a column this layout no longer has: its figures would be lost
        ({"S_LEGACY": L.S_FIELDS, "S_FIELDS": L.S_FIELDS + 1}, "column S_LEGACY"),
        ({"S_MAX_RPM": None, "S_PEAK_RPM": L.S_MAX_RPM}, "column S_PEAK_RPM"),  # renamed
        ({"SHORT_SLOTS": 30}, "SHORT_SLOTS changed (30 -> 60)"),
        ({"LAT_BUCKETS": 200}, "LAT_BUCKETS changed (200 -> 232)"),
        ({"G_FIELDS": None}, "no G_FIELDS"),
    ],
)
def test_what_cannot_be_migrated_is_set_aside_with_the_constant_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, change: dict[str, int | None], named: str
) -> None:
    path = snapshot.write_snapshot(_busy(), tmp_path)
    old: dict[str, int] = snapshot.layout_signature()
    for k, v in change.items():
        if v is None:
            del old[k]
        else:
            old[k] = v
    _rewrite(path, old)
    with pytest.raises(SnapshotError, match="cannot be migrated") as err:
        snapshot.read_snapshot(path, Thresholds(), Capacity())
    assert named in str(err.value) and "\n" not in str(err.value)
    with caplog.at_level(logging.WARNING):
        fresh = snapshot.restore_or_fresh(tmp_path, Thresholds(), Capacity())
    assert len(fresh.sub_rows()) == 0
    assert named in caplog.text
    assert len(list(tmp_path.glob("state.npz.unusable-*"))) == 1


def test_every_range_column_is_declared() -> None:
    """A column wider than one index must be in ``_migrate.SPANS`` (else a migration would
    copy only its first index): the gap to the next column is its declared width."""
    sig = _migrate.signature()
    for fam in _migrate.FAMILIES:
        cols = sorted(_migrate._columns(sig, fam).items(), key=lambda kv: kv[1])
        ends = [v for _, v in cols[1:]] + [sig[fam.width]]
        for (name, index), end in zip(cols, ends, strict=True):
            if fam.prefix == "G_" and end == sig[fam.width]:
                continue  # the globals keep spare room at the end
            assert end - index == _migrate._span(sig, name), name


def test_vigie_serve_restores_a_snapshot_of_the_previous_release(tmp_path: Path) -> None:
    """The upgrade itself: today's ``vigie serve`` started on the previous release's state
    directory migrates the snapshot, and its own snapshot at SIGTERM holds the same state."""
    doc = episodes_then(5, T0)
    path, _ = write_with_old_code(tmp_path, doc)
    sp = start_sidecar(path.parent)
    try:
        assert sp.stop() == 0
    finally:
        sp.stop()
    assert "snapshot migrated from layout" in sp.log() and "unusable" not in sp.log()
    got = snapshot.read_snapshot(path, Thresholds(), Capacity())  # written by today's serve
    assert snapshot.layout_signature() == json.loads(_meta_of(path))["layout"]
    want = State()
    feed(want, doc, 1000)
    assert_same(got, want)


def _meta_of(path: Path) -> str:
    with np.load(path) as z:
        return bytes(z["meta"].tobytes()).decode()
