"""The report's sections on their own: whose names win, which suggestions belong to a period
and how their decision reads, the per-owner sums, and the tenant split with and without a
``tenant`` field in the store (a stub store stands in for one that has it)."""

from __future__ import annotations

from typing import Any

import pytest

from vigie.reports import sections
from vigie.sources.inventory import Application, Inventory
from vigie.store import query as Q
from vigie.store.query import AggQuery, AggRow
from vigie.store.rollup import MEASURES

DAY = 86_400_000_000
T = 1_790_000_000_000_000


def _row(key: tuple[Any, ...], requests: int, throttled: int = 0) -> AggRow:
    m = [0] * len(MEASURES)
    m[MEASURES.index("requests")] = requests
    m[MEASURES.index("throttled")] = throttled
    return AggRow(key, m)


def test_the_inventory_names_win_over_the_suggestions() -> None:
    inv = Inventory(applications=[Application("a1", "Billing", "Retail team")], tenant="t.com")
    d = sections.Directory.of(
        inv, [{"application_id": "a1", "application": "old", "owner": "x"},
              {"application_id": "a2", "application": "Maps app", "owner": "geo"}]
    )  # fmt: skip
    assert (d.name("a1"), d.owner("a1"), d.tenant) == ("Billing", "Retail team", "t.com")
    assert (d.name("a2"), d.owner("a2")) == ("Maps app", "geo")
    assert d.name("a3", "logged name") == "logged name" and d.name("a4") == "a4"


def test_the_suggestions_of_a_period_and_their_decisions() -> None:
    base = {"concerns": "subscription", "application_id": "a1", "api": "Orders",
            "api_version": "v1", "class": "retry_storm", "action": "temporary_limit"}  # fmt: skip
    rows = [
        base | {"id": "before", "state": "rejected", "created_us": T - 9 * DAY,
                "updated_us": T - 8 * DAY, "decided_by": "bob"},
        base | {"id": "live", "state": "pushed", "created_us": T - 9 * DAY,
                "updated_us": T - 8 * DAY, "auto": True},
        base | {"id": "made", "state": "proposed", "created_us": T + DAY, "updated_us": T + DAY},
        base | {"id": "decided", "state": "approved", "created_us": T - DAY,
                "updated_us": T + 2 * DAY, "decided_by": "alice"},
        base | {"id": "after", "state": "proposed", "created_us": T + 20 * DAY,
                "updated_us": T + 20 * DAY},
    ]  # fmt: skip
    got = sections.suggestions(rows, T, T + 7 * DAY, sections.Directory())
    assert {s["id"]: s["decision"] for s in got} == {
        "live": "pushed (auto-approved)",
        "made": "awaiting review",
        "decided": "approved by alice",
    }
    assert got[0]["id"] == "made"  # what awaits review first
    assert sections.suggestions(rows, T, T + 7 * DAY, sections.Directory(), "other") == []


def test_per_owner_sums_every_consumer_of_an_owner() -> None:
    d = sections.Directory(owners={"a1": "Retail", "a2": "Retail", "a3": "Geo"})
    consumers = [
        {"application_id": a, "application": a.upper(), "requests": n, "client_errors": 1,
         "server_errors": 2, "throttled": 3}
        for a, n in (("a1", 10), ("a2", 30), ("a3", 5), ("a4", 7))
    ]  # fmt: skip
    eps = [{"kind": "class", "application_id": "a2"}, {"kind": "directive", "application_id": "a2"}]
    got = {o["owner"]: o for o in sections.owners(consumers, d, eps, [])}
    assert got["Retail"]["requests"] == 40 and got["Retail"]["applications"] == 2
    assert got["Retail"]["busiest_application"] == "A2" and got["Retail"]["classes"] == 1
    assert got["Retail"]["throttle_rate"] == round(6 / 40, 5)
    assert got[sections.UNKNOWN_OWNER]["requests"] == 7
    assert list(got)[-1] == sections.UNKNOWN_OWNER


class _TenantStore:
    def __init__(self) -> None:
        self.asked: list[AggQuery] = []

    def aggregate(self, q: AggQuery) -> list[AggRow]:
        self.asked.append(q)
        return [_row(("t1.com",), 30, 2), _row(("",), 5)]

    def changes(self, from_us: int, to_us: int) -> list[dict[str, Any]]:
        return []

    def extent(self) -> tuple[int, int]:
        return (0, 0)


def test_tenants_from_the_store_when_it_has_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    q = AggQuery("daily", T, T + DAY)
    total = {"requests": 35, "throttled": 2, "client_errors": 0, "server_errors": 0}
    store = _TenantStore()
    # without the field (a store from before tenants): the inventory's tenant for the whole
    # period, or nothing
    without = tuple(g for g in Q.GROUPABLE if g != "tenant")
    monkeypatch.setattr(sections, "GROUPABLE", without)
    monkeypatch.setattr(Q, "GROUPABLE", without)
    rows, source = sections.tenants(store, q, sections.Directory(tenant="carbon.super"), total)
    assert rows == [{"tenant": "carbon.super", "requests": 35, "throttled": 2, "errors": 0}]
    assert "inventory" in source and not store.asked
    assert sections.tenants(store, q, sections.Directory(), total) == ([], "")
    # with it: grouped by the store
    with_tenant = (*without, "tenant")
    monkeypatch.setattr(sections, "GROUPABLE", with_tenant)
    monkeypatch.setattr(Q, "GROUPABLE", with_tenant)
    rows, source = sections.tenants(store, q, sections.Directory(tenant="x"), total)
    assert [(r["tenant"], r["requests"]) for r in rows] == [("t1.com", 30), ("(no tenant)", 5)]
    assert source == "the store's tenant field" and store.asked[0].group_by == ("tenant",)
