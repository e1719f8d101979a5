"""The policy engine inside a real (in-process) sidecar: lifecycle, directives, auto-approval,
thresholds, persistence. Time is an injected clock; nothing sleeps."""

from __future__ import annotations

import json
import queue
from pathlib import Path

import pytest

from tests.support.policy_traffic import DAY, END, HOUR, MINUTE, feed, rec, retry_storm, steady
from vigie.errors import ConfigError
from vigie.policy.book import LifecycleError, SuggestionNotFound
from vigie.server.core import Sidecar
from vigie.settings import load_settings
from vigie.v1 import directives_pb2 as dpb

SHADOW = dpb.DIRECTIVE_MODE_SHADOW
ENFORCE = dpb.DIRECTIVE_MODE_ENFORCE


class Clock:
    """A ``vigie.clock.Clock`` the test moves: wall time is ``t``; monotonic time stands
    still, so nothing is recomputed on a timer behind the test's back."""

    def __init__(self, t: float = END / 1e6) -> None:
        self.t = t

    def wall(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return 0.0


def make(tmp_path: Path, clock: Clock, **settings: str) -> Sidecar:
    env = {f"VIGIE_{k.upper()}": v for k, v in settings.items()}
    s = load_settings(env=env, overrides={"state_dir": str(tmp_path / "state")})
    sc = Sidecar(s, clock)
    return sc


def populate(sc: Sidecar) -> None:
    st = sc.state
    # observed for 31 days: dormant and retired can be judged
    feed(st, [rec(END - 31 * DAY, "app-idle", "Legacy", "v0", name="Idle", owner="team-i")])
    st.register_application("app-idle", "Idle", "team-i")
    st.ensure_api("Legacy", "v0", "/legacy/v0")
    st.ensure_subscription("app-idle", "Legacy", "v0", "Gold")
    feed(st, steady("app-busy", END - HOUR, 30, 5))
    feed(st, retry_storm("app-retry", END - 10 * MINUTE))


def by_class(sc: Sidecar, cname: str, app: str = "") -> str:
    ids = [r.id for r in sc.policy.book if r.suggestion.class_name == cname
           and (not app or r.suggestion.application_id == app)]  # fmt: skip
    assert len(ids) == 1, ids
    return ids[0]


def drain(q: queue.Queue[dpb.DirectiveUpdate]) -> list[dpb.DirectiveUpdate]:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sc(tmp_path: Path, clock: Clock) -> Sidecar:
    sc = make(tmp_path, clock)
    populate(sc)
    assert sc.policy.refresh(force=True) >= 3
    return sc


def test_approve_pushes_the_directive_to_every_gateway(sc: Sidecar, clock: Clock) -> None:
    gw1, gw2 = sc.directives.subscribe(), sc.directives.subscribe()
    assert [u.full for u in drain(gw1)] == [True]
    drain(gw2)
    sid = by_class(sc, "retry_storm")
    rec = sc.policy.approve(sid, "alice", "storm since 9:00", ENFORCE, 0)
    assert rec.state == "pushed"
    for q in (gw1, gw2):
        (upd,) = drain(q)
        assert not upd.full
        (d,) = upd.upserts
        assert (d.id, d.suggestion_id, d.mode) == (sid, sid, ENFORCE)
        assert d.action == dpb.DIRECTIVE_ACTION_LIMIT
        assert (d.application_id, d.api_name, d.api_version) == ("app-retry", "Stock", "v1")
        assert d.expires_at_us == int(clock.t * 1e6) + 3600 * 1_000_000
        assert d.error_code == 900806
    trail = sc.policy.book.trail(sid)
    assert [(e.actor, e.action, e.from_state, e.to_state) for e in trail] == [
        ("vigie", "proposed", "", "proposed"),
        ("alice", "approved", "proposed", "pushed"),
    ]
    assert trail[1].reason == "storm since 9:00"
    assert trail[1].details["directive"]["mode"] == "DIRECTIVE_MODE_ENFORCE"


def test_transitions_are_checked(sc: Sidecar) -> None:
    sid = by_class(sc, "retry_storm")
    sc.policy.reject(sid, "bob", "expected: load test")
    with pytest.raises(LifecycleError, match="is rejected: only a proposed suggestion can be"):
        sc.policy.approve(sid, "alice", "", SHADOW, 0)
    with pytest.raises(LifecycleError, match="nothing to withdraw"):
        sc.policy.withdraw(sid, "alice", "")
    with pytest.raises(SuggestionNotFound, match="no suggestion 'sg-nope'"):
        sc.policy.approve("sg-nope", "alice", "", SHADOW, 0)
    assert len(sc.directives) == 0


def test_shadow_then_enforce_by_an_operator(sc: Sidecar) -> None:
    sid = by_class(sc, "retry_storm")
    sc.policy.approve(sid, "alice", "", SHADOW, 600)
    with pytest.raises(LifecycleError, match="already pushed in SHADOW mode"):
        sc.policy.approve(sid, "alice", "", SHADOW, 0)
    sc.policy.approve(sid, "carol", "shadow looked right", ENFORCE, 0)
    (d,) = sc.directives.snapshot()[1]
    assert d.mode == ENFORCE
    assert [e.action for e in sc.policy.book.trail(sid)][-1] == "mode ENFORCE"


def test_withdraw_removes_the_directive(sc: Sidecar) -> None:
    gw = sc.directives.subscribe()
    sid = by_class(sc, "retry_storm")
    sc.policy.approve(sid, "alice", "", SHADOW, 0)
    sc.policy.withdraw(sid, "alice", "client fixed")
    upds = drain(gw)
    assert list(upds[-1].removals) == [sid]
    assert sc.policy.book.get(sid).state == "withdrawn"


def test_ttl_expiry_and_removal_are_noticed(sc: Sidecar, clock: Clock) -> None:
    a = by_class(sc, "retry_storm")
    b = by_class(sc, "dormant")
    sc.policy.approve(a, "alice", "", SHADOW, 60)
    sc.policy.approve(b, "alice", "", SHADOW, 0)
    clock.t += 61
    assert sc.directives.expire() == [a]
    sc.directives.remove(b)  # an operator removed it by hand (vigie tune unblock)
    sc.policy.tick()
    assert sc.policy.book.get(a).state == "expired"
    assert sc.policy.book.get(b).state == "withdrawn"
    assert sc.policy.book.trail(a)[-1].reason == "the directive's TTL passed"


def test_export_records_and_apictl_skips_deny_policies(sc: Sidecar) -> None:
    sid = by_class(sc, "retired")
    with pytest.raises(LifecycleError, match="format must be"):
        sc.policy.export([], "yaml", "alice")
    items, skipped = sc.policy.export([sid], "wso2-admin", "alice")
    assert items == [] and "approve it first" in skipped[0]
    sc.policy.approve(sid, "alice", "", SHADOW, 0)
    items, skipped = sc.policy.export([], "apictl", "alice")
    assert items == [] and "has no apictl form" in skipped[0]
    items, skipped = sc.policy.export([], "wso2-admin", "alice")
    assert [i.request.payload["conditionValue"] for i in items] == ["/legacy/v0"]
    rec = sc.policy.book.get(sid)
    assert rec.exported and rec.state == "pushed"
    assert sc.policy.book.trail(sid)[-1].action == "exported"


def test_a_proposal_whose_class_goes_quiet_is_withdrawn(sc: Sidecar) -> None:
    sid = by_class(sc, "dormant")
    feed(sc.state, steady("app-idle", END - MINUTE, 1, 1, api="Legacy", ver="v0"))
    sc.policy.refresh(force=True)
    # nobody decided on it: it leaves the book, its audit trail says why
    assert sid not in sc.policy.book.records
    (last,) = sc.policy.book.trail(sid)[-1:]
    assert (last.to_state, last.reason) == ("withdrawn", "dormant no longer holds")
    with pytest.raises(SuggestionNotFound, match="withdrawn: dormant no longer holds"):
        sc.policy.book.get(sid)


def test_lifecycle_and_audit_survive_a_restart(tmp_path: Path, sc: Sidecar, clock: Clock) -> None:
    a = by_class(sc, "retry_storm")
    b = by_class(sc, "dormant")
    sc.policy.approve(a, "alice", "why a", ENFORCE, 0)
    sc.policy.reject(b, "bob", "why b")
    again = make(tmp_path, clock)
    assert again.policy.book.get(a).state == "pushed"
    assert again.policy.book.get(a).mode == ENFORCE
    assert again.policy.book.get(b).state == "rejected"
    assert [(e.actor, e.reason) for e in again.policy.book.trail(b)][-1] == ("bob", "why b")
    assert [d.id for d in again.directives.snapshot()[1]] == [a]


def test_auto_approval_shadow_first_then_enforce(tmp_path: Path, clock: Clock) -> None:
    sc = make(tmp_path, clock, auto_approve="dormant", auto_approve_shadow_seconds="900",
              auto_approve_ttl_seconds="7200")  # fmt: skip
    populate(sc)
    sc.policy.refresh(force=True)
    sid = by_class(sc, "dormant")
    rec = sc.policy.book.get(sid)
    assert (rec.state, rec.mode, rec.auto) == ("pushed", SHADOW, True)
    assert rec.expires_at_us == int(clock.t * 1e6) + 7200 * 1_000_000  # never beyond the TTL
    assert sc.policy.book.trail(sid)[-1].actor == "vigie-auto"
    # the retry storm would refuse most of its traffic: not auto-approved
    assert sc.policy.book.get(by_class(sc, "retry_storm")).state == "proposed"
    clock.t += 899
    sc.policy.tick()
    assert sc.policy.book.get(sid).mode == SHADOW  # still in shadow
    clock.t += 2
    # real evidence: the state counted 200 requests in its scope, the gateway matched them
    feed(sc.state, steady("app-idle", END, 40, 5, api="Legacy", ver="v0"))
    sc.directives.record_hits(
        "gw-1", [dpb.DirectiveHits(directive_id=sid, shadow_hits=4, passed=196)]
    )
    sc.policy.tick()
    rec = sc.policy.book.get(sid)
    assert rec.mode == ENFORCE
    assert "(4 of 200)" in sc.policy.book.trail(sid)[-1].reason
    (d,) = sc.directives.snapshot()[1]
    assert d.mode == ENFORCE
    # enforcing, it refuses more than the share: back to shadow
    sc.directives.record_hits(
        "gw-1", [dpb.DirectiveHits(directive_id=sid, enforced_hits=20, passed=196 + 100)]
    )
    sc.policy.tick()
    assert sc.policy.book.get(sid).mode == SHADOW
    assert "back to shadow" in sc.policy.book.trail(sid)[-1].reason


def test_auto_approval_stays_in_shadow_when_it_would_refuse_too_much(
    tmp_path: Path, clock: Clock
) -> None:
    sc = make(tmp_path, clock, auto_approve="dormant")
    populate(sc)
    sc.policy.refresh(force=True)
    sid = by_class(sc, "dormant")
    clock.t += 901
    sc.directives.record_hits(
        "gw-1", [dpb.DirectiveHits(directive_id=sid, shadow_hits=30, passed=70)]
    )
    sc.policy.tick()
    assert sc.policy.book.get(sid).mode == SHADOW
    assert sc.policy.book.trail(sid)[-1].action == "kept in shadow"


def test_allow_list_is_never_auto_approved(tmp_path: Path, clock: Clock) -> None:
    sc = make(tmp_path, clock, auto_approve="dormant", allow_list="Idle")
    populate(sc)
    sc.policy.refresh(force=True)
    rec = sc.policy.book.get(by_class(sc, "dormant"))
    assert rec.state == "proposed"
    assert "allow-list" in rec.suggestion.auto_approval


def test_thresholds_change_at_run_time_and_persist(tmp_path: Path, sc: Sidecar,
                                                   clock: Clock) -> None:  # fmt: skip
    sc.policy.set_thresholds({"retry_min_retries": 50}, "alice", "too noisy")
    assert sc.state.thresholds.retry_min_retries == 50
    saved = json.loads((tmp_path / "state" / "thresholds.json").read_text())
    assert saved["values"] == {"retry_min_retries": 50}
    info = {t.name: t for t in sc.policy.thresholds()}
    assert info["retry_min_retries"].tuned and info["retry_min_retries"].default == 30
    assert info["retry_window_seconds"].start_up_only
    again = make(tmp_path, clock)
    assert again.state.thresholds.retry_min_retries == 50
    (e,) = again.policy.book.trail("thresholds")
    assert (e.actor, e.reason) == ("alice", "too noisy")
    assert e.details["changes"] == {"retry_min_retries": {"from": 30.0, "to": 50}}
    again.policy.set_thresholds({}, "alice", "", reset=True)
    assert again.state.thresholds.retry_min_retries == 30
    assert not (tmp_path / "state" / "thresholds.json").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"retry_min_share": 2.0}, "retry_min_share: must be at most 1, got 2"),
        ({"error_min_share": -0.1}, "error_min_share: must be at least 0, got -0.1"),
        ({"retry_window_seconds": 600.0}, "retry_window_seconds: window lengths shape the state"),
        ({"retry_minimum": 5.0}, "unknown threshold(s): retry_minimum"),
        ({"hold_seconds": float("nan")}, "hold_seconds: expected a finite number"),
        ({}, "no threshold to change"),
    ],
)
def test_bad_thresholds_are_refused_with_the_reason(
    sc: Sidecar, changes: dict[str, float], message: str
) -> None:
    before = sc.state.thresholds
    with pytest.raises(ConfigError) as exc:
        sc.policy.set_thresholds(changes, "alice", "")
    assert str(exc.value).startswith(message)
    assert sc.state.thresholds == before


def _pushed_in_shadow(tmp_path: Path, clock: Clock, **settings: str) -> tuple[Sidecar, str]:
    sc = make(tmp_path, clock, auto_approve="dormant", **settings)
    populate(sc)
    sc.policy.refresh(force=True)
    sid = by_class(sc, "dormant")
    assert sc.policy.book.get(sid).mode == SHADOW
    clock.t += 901
    return sc, sid


def test_no_hit_report_is_no_evidence(tmp_path: Path, clock: Clock) -> None:
    """ "0 of 0" never promotes: a gateway that reported nothing (or a skewed clock) proves
    nothing."""
    sc, sid = _pushed_in_shadow(tmp_path, clock)
    sc.directives.record_hits("gw-1", [dpb.DirectiveHits(directive_id=sid)])
    sc.policy.tick()
    assert sc.policy.book.get(sid).mode == SHADOW
    assert [d.mode for d in sc.directives.snapshot()[1]] == [SHADOW]
    last = sc.policy.book.trail(sid)[-1]
    assert last.action == "kept in shadow"
    assert "0 matching request(s) reported, fewer than auto_approve_min_matched" in last.reason


def test_forged_hits_are_not_plausible(tmp_path: Path, clock: Clock) -> None:
    """A stream claiming a billion matching requests the state never counted promotes
    nothing."""
    sc, sid = _pushed_in_shadow(tmp_path, clock)
    feed(sc.state, steady("app-idle", END, 2, 5, api="Legacy", ver="v0"))  # 10 real requests
    sc.directives.record_hits(
        "gw-evil", [dpb.DirectiveHits(directive_id=sid, passed=1_000_000_000)]
    )
    sc.policy.tick()
    assert sc.policy.book.get(sid).mode == SHADOW
    assert "vigie counted 10 in its scope" in sc.policy.book.trail(sid)[-1].reason


def test_unauthenticated_hits_count_only_when_the_operator_allows(
    tmp_path: Path, clock: Clock
) -> None:
    sc, sid = _pushed_in_shadow(tmp_path, clock, trust_unauthenticated_gateways="false")
    feed(sc.state, steady("app-idle", END, 40, 5, api="Legacy", ver="v0"))
    sc.directives.record_hits("gw-1", [dpb.DirectiveHits(directive_id=sid, passed=200)])
    sc.policy.tick()
    assert sc.policy.book.get(sid).mode == SHADOW
    assert "not authenticated" in sc.policy.book.trail(sid)[-1].reason


def test_an_approval_ttl_beyond_the_maximum_is_refused(sc: Sidecar) -> None:
    sid = by_class(sc, "dormant")
    with pytest.raises(LifecycleError, match="at most 30 days"):
        sc.policy.approve(sid, "alice", "long", ENFORCE, 10**12)
    assert sc.policy.book.get(sid).state == "proposed"
