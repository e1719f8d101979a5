"""``ChangeTracker.poll_classes`` looks only at the subscription rows whose identity or
classes moved since its last poll: the records it makes are those of a full pass over every
row (the tracker made to forget what it saw first), poll after poll, through classes raised
and cleared, rows evicted and reused, and strings released."""

from __future__ import annotations

from typing import Any

from tests.support.policy_traffic import (
    DAY,
    HOUR,
    MINUTE,
    T0,
    error_prone,
    feed,
    rec,
    retry_storm,
    throttle_hitter,
)
from vigie.state.engine import State
from vigie.store.changes import ChangeTracker


def _key(r: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, str(v)) for k, v in r.items()))


def _poll_both(state: State, seen: ChangeTracker, full: ChangeTracker) -> list[dict[str, Any]]:
    full._released = -2  # forget every row: the full pass over every row, as before
    got = seen.poll_classes(state)
    want = full.poll_classes(state)
    assert sorted(map(_key, got)) == sorted(map(_key, want))
    assert seen._subs == full._subs
    return got


def test_polls_of_moved_rows_only_make_the_full_pass_records() -> None:
    state = State()
    seen, full = ChangeTracker(), ChangeTracker()
    t = T0 + DAY
    feed(state, [rec(T0 + k * HOUR, f"app-{k}", "Orders") for k in range(20)])
    records = _poll_both(state, seen, full)
    assert not _poll_both(state, seen, full)  # nothing moved: nothing looked at, nothing said
    feed(state, retry_storm("app-r", t) + throttle_hitter("app-t", t, minutes=60))
    feed(state, error_prone("app-e", t))
    raised = _poll_both(state, seen, full)
    assert {(r["event"], r["name"]) for r in raised} >= {
        ("raised", "retry_storm"),
        ("raised", "throttle_hitter"),
        ("raised", "error_prone"),
    }
    # the 20 rows seen once, then app-r's and app-e's, which hold classes, evicted
    assert state.evict(22) == 22
    gone = _poll_both(state, seen, full)
    assert {(r["event"], r["application_id"]) for r in gone} >= {
        ("cleared", "app-r"),
        ("cleared", "app-e"),
    }
    # two days later: the windowed classes have cleared
    feed(state, [rec(t + 2 * DAY + k * MINUTE, "app-q", "Quiet") for k in range(5)])
    _poll_both(state, seen, full)
    # the freed rows reused by other subscriptions
    feed(state, retry_storm("app-new", t + 3 * DAY, api="Fresh"))
    feed(state, [rec(t + 3 * DAY + k, f"app-n{k}", "Orders") for k in range(6)])
    _poll_both(state, seen, full)
    # strings released (a compaction): the ids may name others, every row is looked at again
    state.interner.released += 1
    _poll_both(state, seen, full)
    _poll_both(state, seen, full)
    assert records or raised  # the polls said something
