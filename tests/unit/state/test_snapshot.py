"""Snapshots: a restored state answers exactly as the one written; unusable ones are set aside."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.support.wso2log import App, LogWriter, at
from vigie.classify import views
from vigie.errors import SnapshotError
from vigie.replay import replay_into
from vigie.sources.wso2_log import ReplayStats
from vigie.state import layout as L
from vigie.state import snapshot
from vigie.state.engine import Capacity, State
from vigie.state.thresholds import Thresholds


def busy_state(tmp: Path) -> State:
    w = LogWriter()
    storm, poller = App("storm"), App("poller")
    for k in range(300):
        w.response(at(hours=9, seconds=k * 0.3), storm, "Orders", status=503)
        w.response(at(hours=9, seconds=k * 2), poller, "Catalog", resource="/menu")
    state = State()
    replay_into(state, [f"main={w.write(tmp / 'a.log')}"], ReplayStats())
    return state


def test_restored_state_answers_the_same(tmp_path: Path) -> None:
    state = busy_state(tmp_path)
    snapshot.write_snapshot(state, tmp_path / "s")
    back = snapshot.read_snapshot(tmp_path / "s" / snapshot.FILE_NAME, Thresholds(), Capacity())
    now = state.now_us
    assert [v.to_json() for v in views.subscriptions(back, now)] == [
        v.to_json() for v in views.subscriptions(state, now)
    ]
    for name, arr in state.used_arrays().items():  # detector caches are not kept
        assert np.array_equal(back.used_arrays()[name], arr), name
    # and it goes on where it stopped: the tables were rebuilt
    more = LogWriter(seed=3)
    more.response(at(hours=9, minutes=30), App("storm"), "Orders")
    replay_into(back, [f"main={more.write(tmp_path / 'b.log')}"], ReplayStats())
    assert len(back.sub_rows()) == len(state.sub_rows()) + 1  # a new application id


class CountingLock:
    """A lock that counts its holds (the chunked copy must take it once per range)."""

    def __init__(self) -> None:
        self.inner = threading.Lock()
        self.holds = 0

    def __enter__(self) -> None:
        self.inner.acquire()
        self.holds += 1

    def __exit__(self, *exc: object) -> None:
        self.inner.release()


@pytest.mark.parametrize("chunk_bytes", [1, 4096, 1 << 20])
def test_chunked_copy_equals_the_whole_copy(tmp_path: Path, chunk_bytes: int) -> None:
    state = busy_state(tmp_path)
    lock = CountingLock()
    whole = state.copy()
    parts = state.copy_chunked(lock, chunk_bytes=chunk_bytes)
    for name, arr in whole.used_arrays().items():
        assert np.array_equal(parts.used_arrays()[name], arr), name
    now = state.now_us
    assert [v.to_json() for v in views.subscriptions(parts, now)] == [
        v.to_json() for v in views.subscriptions(state, now)
    ]
    rows = state.n_sub_rows + state.n_api_rows + state.n_route_rows
    # the head, the row ranges (one row each at 1 byte, one per group at 1 MiB), the tables
    expected = {1: rows + 2, 4096: None, 1 << 20: 5}[chunk_bytes]
    assert lock.holds == expected if expected is not None else 5 <= lock.holds <= rows + 2
    # without the routes (what the suggestions read): the same subscriptions and APIs
    lean = state.copy_chunked(lock, routes=False)
    assert lean.n_route_rows == 0
    assert [v.to_json() for v in views.apis(lean, now)] == [
        v.to_json() for v in views.apis(state, now)
    ]


class IngestingLock(CountingLock):
    """A lock that, at its ``at``-th hold, lets a batch bringing new applications in: what
    the gateways' streams do between two ranges of a chunked copy."""

    def __init__(self, state: State, log: Path, at: int) -> None:
        super().__init__()
        self.state, self.log, self.at = state, log, at

    def __enter__(self) -> None:
        super().__enter__()
        if self.holds == self.at:
            replay_into(self.state, [f"main={self.log}"], ReplayStats())


@pytest.mark.parametrize("hold", [2, 3])
def test_a_chunked_copy_names_rows_whose_strings_arrived_while_it_was_taken(
    tmp_path: Path, hold: int
) -> None:
    w = LogWriter()
    apps = [App(f"app-{k}") for k in range(6)]
    for k, app in enumerate(apps):
        w.response(at(hours=9, seconds=k), app, "Orders")
    state = State()
    replay_into(state, [f"main={w.write(tmp_path / 'a.log')}"], ReplayStats())
    late = LogWriter(seed=5)  # the same applications renamed: strings interned mid-copy
    for k, app in enumerate(apps):
        late.response(
            at(hours=9, minutes=5, seconds=k), App(f"renamed-{k}", app.id, "bob"), "Orders"
        )
    log = late.write(tmp_path / "late.log")
    parts = state.copy_chunked(IngestingLock(state, log, hold), chunk_bytes=1)
    rows = parts.sub_rows()
    assert len(rows) == len(apps)
    for row in rows:  # every string a copied row refers to resolves, to the live state's
        for col in (L.S_APP, L.S_APP_NAME, L.S_APP_OWNER):
            gid = int(parts.sub_i64[row, col])
            assert parts.string(gid) == state.string(gid), (row, col)
    views.subscriptions(parts, state.now_us)  # and the views read it whole


def _rewrite_meta(path: Path, change: dict[str, object]) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["meta"].tobytes()) | change
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with path.open("wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": 0}, "written in snapshot format 0, this vigie reads format 2"),
        ({"layout": {"S_FIELDS": 3}}, "written with another state layout"),
        (
            {"windows": {"retry_window_seconds": 600.0, "short_window_seconds": 3600.0}},
            "written with windows",
        ),
    ],
)
def test_unusable_snapshots_are_refused_with_the_reason(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    state = State()
    path = snapshot.write_snapshot(state, tmp_path)
    _rewrite_meta(path, change)
    with pytest.raises(SnapshotError, match=message):
        snapshot.read_snapshot(path, Thresholds(), Capacity())
    fresh = snapshot.restore_or_fresh(tmp_path, Thresholds(), Capacity())
    assert len(fresh.sub_rows()) == 0
    assert not path.exists() and len(list(tmp_path.glob("state.npz.unusable-*"))) == 1


def test_truncated_snapshot_is_refused(tmp_path: Path) -> None:
    path = snapshot.write_snapshot(busy_state(tmp_path), tmp_path / "s")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SnapshotError, match="unreadable"):
        snapshot.read_snapshot(path, Thresholds(), Capacity())


def test_a_write_that_dies_leaves_the_previous_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = busy_state(tmp_path)
    path = snapshot.write_snapshot(state, tmp_path / "s")
    before = path.read_bytes()

    def dies(f: object, **arrays: object) -> None:
        f.write(b"half a snapshot")  # type: ignore[attr-defined]
        raise OSError("disk gone")

    monkeypatch.setattr(np, "savez", dies)
    with pytest.raises(OSError, match="disk gone"):
        snapshot.write_snapshot(state, tmp_path / "s")
    assert path.read_bytes() == before
    back = snapshot.read_snapshot(path, Thresholds(), Capacity())
    assert len(back.sub_rows()) == len(state.sub_rows())
