"""``GatewayScopes`` (vigie.server.hits) on its own: events counted per directive scope and
gateway, reports capped to them, inherited directives counted from the first report, a
gateway's restart, scopes of another channel, API version or application."""

from __future__ import annotations

import random
from typing import Any

from vigie.directives.changes import Change
from vigie.server.hits import LEAD_EVENTS, LEAD_SECONDS, GatewayScopes, group
from vigie.v1 import directives_pb2 as dpb
from vigie.wire.columns import Events, Interner, StreamDecoder, StreamEncoder

T0 = 1_700_000_000_000_000


def _events(interner: Interner, n: int, app: str, api: str = "Orders", ver: str = "v1") -> Events:
    recs = [
        {"event_time_us": T0 + k, "application_id": app, "api_name": api, "api_version": ver,
         "http_status": 200}
        for k in range(n)
    ]  # fmt: skip
    dec = StreamDecoder(interner, 0, 100_000, 100_000, "carbon.super")
    return dec.decode(StreamEncoder().batch_from_records(recs))


def _change(did: str, at_us: int, **scope: str) -> Change:
    d = dpb.Directive(id=did)
    for k, v in scope.items():
        setattr(d, k, v)
    return Change(did, d, 1, "", at_us)


def _hits(did: str, shadow: int = 0, passed: int = 0) -> dpb.DirectiveHits:
    return dpb.DirectiveHits(directive_id=did, shadow_hits=shadow, passed=passed)


def test_counts_per_scope_and_caps_per_gateway() -> None:
    it = Interner()
    clock = [0.0]
    g = GatewayScopes(started_at_us=T0, monotonic=lambda: clock[0])
    g.sync(
        [
            _change("app", T0 + 1, application_id="a1"),
            _change("api-v2", T0 + 1, api_name="Orders", api_version="v2"),
            _change("other-ch", T0 + 1, application_id="a1", channel="east"),
        ],
        version=1,
    )
    g.count("gw-1", "main", _events(it, 30, "a1"), it)
    g.count("gw-1", "main", _events(it, 5, "a2", ver="v2"), it)
    g.count("gw-2", "main", _events(it, 4, "a1"), it)
    assert (g.sent("app", "gw-1"), g.sent("app", "gw-2")) == (30, 4)
    assert g.sent("api-v2", "gw-1") == 5
    assert g.sent("other-ch", "gw-1") == 0  # the stream's channel is not the directive's
    ok = g.cap("gw-1", [_hits("app", 10, 20)])
    assert (ok[0].shadow_hits, ok[0].passed) == (10, 20) and not g.implausible
    (capped,) = g.cap("gw-2", [_hits("app", 0, 1000)])
    (none,) = g.cap("gw-3", [_hits("other-ch", 1)])  # sent nothing in its scope
    assert capped.passed == 4 and none.shadow_hits == 0  # no credit beyond what was sent
    # ahead of their events by less than LEAD_EVENTS: judged LEAD_SECONDS later
    assert not g.implausible
    clock[0] += LEAD_SECONDS
    assert g.named() == [("gw-2", 1), ("gw-3", 1)]
    (far,) = g.cap("gw-2", [_hits("app", 0, LEAD_EVENTS + 5)])  # far ahead: at once
    assert far.passed == 4 and g.implausible["gw-2"] == 2


def test_a_report_ahead_of_its_batch_is_a_race_not_a_forgery() -> None:
    it = Interner()
    clock = [0.0]
    g = GatewayScopes(started_at_us=T0, monotonic=lambda: clock[0])
    g.sync([_change("app", T0 + 1, application_id="a1")], version=1)
    g.count("gw-1", "main", _events(it, 100, "a1"), it)
    # the handler reports 150 matched requests; the batch with the last 50 is still on its way
    (early,) = g.cap("gw-1", [_hits("app", 15, 135)])
    assert (early.shadow_hits, early.passed) == (10, 90)  # capped, every counter alike
    clock[0] += LEAD_SECONDS / 2
    g.count("gw-1", "main", _events(it, 50, "a1"), it)  # ... here it is
    clock[0] += LEAD_SECONDS
    assert g.total_implausible() == 0 and g.race_forgiven == 1
    # the next report, cumulative, is believed whole
    (late,) = g.cap("gw-1", [_hits("app", 15, 135)])
    assert (late.shadow_hits, late.passed) == (15, 135)
    # a claim its events never catch up with is implausible once its time is up
    (ahead,) = g.cap("gw-1", [_hits("app", 16, 200)])
    assert (ahead.shadow_hits + ahead.passed) <= 150
    clock[0] += LEAD_SECONDS - 1
    g.count("gw-1", "main", _events(it, 10, "a1"), it)  # 160 < 216: not yet caught up
    assert g.total_implausible() == 0
    clock[0] += 1
    assert g.total_implausible() == 1 and g.named() == [("gw-1", 1)]
    # a removed directive's open claim is dropped (its evidence counts no more)
    g.cap("gw-2", [_hits("app", 0, 5)])
    g.sync([], version=2)
    clock[0] += LEAD_SECONDS
    assert "gw-2" not in g.implausible and g.total_implausible() == 1


def test_an_inherited_directive_counts_from_the_first_report() -> None:
    it = Interner()
    clock = [0.0]
    g = GatewayScopes(started_at_us=T0, monotonic=lambda: clock[0])
    g.sync([_change("old", T0 - 1, application_id="a1")], version=3)
    # hits from before this process: taken as the base, not as implausible
    (first,) = g.cap("gw-1", [_hits("old", 500, 500)])
    assert (first.shadow_hits, first.passed) == (0, 0) and not g.implausible
    g.count("gw-1", "main", _events(it, 10, "a1"), it)
    (later,) = g.cap("gw-1", [_hits("old", 502, 508)])
    assert (later.shadow_hits, later.passed) == (2, 8) and not g.implausible
    # the gateway restarted (counters back down): from zero, still capped to what it sent
    (again,) = g.cap("gw-1", [_hits("old", 3, 30)])
    clock[0] += LEAD_SECONDS
    assert again.shadow_hits + again.passed <= 10 and g.total_implausible() == 1


def test_removed_directives_are_forgotten_and_a_new_scope_starts_again() -> None:
    it = Interner()
    g = GatewayScopes(started_at_us=T0)
    g.sync([_change("d", T0 + 1, application_id="a1")], version=1)
    g.count("gw-1", "main", _events(it, 10, "a1"), it)
    g.sync([_change("d", T0 + 2, application_id="a2")], version=2)
    assert g.sent("d", "gw-1") == 0
    g.sync([], version=3)
    (h,) = g.cap("gw-1", [_hits("d", 5)])
    assert h.shadow_hits == 5 and g.unwatched == 1  # not watched: the table refuses it


def _each_directive(
    scopes: dict[str, tuple[str, str, str, str]], channel: str, recs: list[dict[str, Any]]
) -> dict[str, int]:
    """The reference: per directive, the events of ``recs`` whose fields equal its scope's
    (empty: any; a version only with an API; the API name in any tenant)."""
    out = {}
    for did, (app, api, ver, ch) in scopes.items():
        n = 0
        if not ch or ch == channel:
            for r in recs:
                n += (
                    (not app or r["application_id"] == app)
                    and (not api or r["api_name"] == api)
                    and (not api or not ver or r["api_version"] == ver)
                )
        out[did] = n
    return out


def test_counts_by_group_equal_the_counts_one_directive_at_a_time() -> None:
    """``group`` + ``add`` (by scope, any number of directives) count what a pass over the
    batch per directive counts: scopes of an application, an API (any tenant), a version, a
    channel, their combinations, several directives of one scope, empty versions."""
    rng = random.Random(16)
    apps, apis, vers = (
        ["a1", "a2", "a3", ""],
        ["Orders", "Stock", "Orders@t1.com"],
        ["v1", "v2", ""],
    )
    scopes: dict[str, tuple[str, str, str, str]] = {}
    for k in range(60):
        app = rng.choice(["", "a1", "a2", "a9"])
        api = rng.choice(["", "Orders", "Stock", "Nope"])
        ver = rng.choice(["", "v1", "v2"]) if api or rng.random() < 0.3 else ""
        ch = rng.choice(["", "", "main", "east"])
        if not (app or api or ch):
            ch = "main"
        scopes[f"d{k}"] = (app, api, ver, ch)
    g = GatewayScopes(started_at_us=T0)
    changes = []
    for did, (app, api, ver, ch) in scopes.items():
        changes.append(
            _change(did, T0 + 1, application_id=app, api_name=api, api_version=ver, channel=ch)
        )
    g.sync(changes, version=1)
    it = Interner()
    dec = StreamDecoder(it, 0, 100_000, 100_000, "carbon.super")
    enc = StreamEncoder()
    want = dict.fromkeys(scopes, 0)
    for batch in range(5):
        recs = [
            {"event_time_us": T0 + batch * 1000 + k, "application_id": rng.choice(apps),
             "api_name": rng.choice(apis), "api_version": rng.choice(vers), "http_status": 200,
             "tenant": rng.choice(["", "t1.com", "t2.com"])}
            for k in range(rng.randint(1, 400))
        ]  # fmt: skip
        ev = dec.decode(enc.batch_from_records(recs))
        g.add("gw-1", "main", group(ev, it))
        for did, n in _each_directive(scopes, "main", recs).items():
            want[did] += n
    got = {did: g.sent(did, "gw-1") for did in scopes}
    assert got == want
    assert sum(want.values()) > 0 and min(want.values()) == 0  # both kinds present
