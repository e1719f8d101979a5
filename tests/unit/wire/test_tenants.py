"""Tenants on the wire, in the state, in the store and in the inventory: an API is tenant x name
x version. The stream's ``Hello.tenant`` stands for events that name none; the super tenant's
keys are those of before tenants (a single-tenant store or snapshot reads the same); a name
cannot be made to look like another tenant's; a store written before tenants reads as the
super tenant's, and compacting it writes the column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from vigie.classify import views
from vigie.errors import BatchRefused
from vigie.sources import simulator
from vigie.sources.inventory import Inventory, load_inventory, write_inventory
from vigie.state import snapshot
from vigie.state.engine import State
from vigie.store.parquet import ParquetStore
from vigie.store.query import AggQuery
from vigie.store.rollup import Accumulator
from vigie.wire import tenants
from vigie.wire.columns import Events, Interner, StreamDecoder, StreamEncoder

T0 = 1_772_446_800_000_000  # 2026-03-02T10:20Z
DAY = 86_400_000_000


def _rec(k: int, **over: Any) -> dict[str, Any]:
    return {
        "event_time_us": T0 + k * 1000,
        "application_id": "app",
        "api_name": "Orders",
        "api_version": "1.0.0",
        "http_status": 200,
    } | over


def _decode(records: list[dict[str, Any]], hello_tenant: str = "") -> tuple[Events, Interner]:
    interner = Interner()
    dec = StreamDecoder(interner, 0, 1000, 1000, hello_tenant)
    return dec.decode(StreamEncoder().batch_from_records(records)), interner


def _strings(ev: Events, interner: Interner, column: str) -> list[str]:
    return [interner.string(int(i)) for i in ev[column]]


def test_an_event_without_a_tenant_is_the_streams_and_keyed_by_it() -> None:
    ev, interner = _decode([_rec(0), _rec(1, tenant="acme.com")], hello_tenant="globex.com")
    assert _strings(ev, interner, "tenant") == ["globex.com", "acme.com"]
    assert [tenants.split(s) for s in _strings(ev, interner, "api_name")] == [
        ("globex.com", "Orders"),
        ("acme.com", "Orders"),
    ]


def test_the_super_tenant_keeps_the_plain_name_however_it_is_written() -> None:
    for hello, rec in (("", {}), ("carbon.super", {}), ("", {"tenant": "CARBON.SUPER"})):
        ev, interner = _decode([_rec(0, **rec)], hello_tenant=hello)
        assert _strings(ev, interner, "api_name") == ["Orders"]
    ev, interner = _decode([_rec(0)])  # no tenant anywhere: 0, the super tenant
    assert int(ev["tenant"][0]) == 0


def test_the_new_columns_decode_and_default_to_zero() -> None:
    recs = [_rec(0, api_id="uuid-1", client_ip="h:0123456789abcdef", target_status=503), _rec(1)]
    ev, interner = _decode(recs)
    assert _strings(ev, interner, "api_id") == ["uuid-1", ""]
    assert _strings(ev, interner, "client_ip") == ["h:0123456789abcdef", ""]
    assert ev["target_status"].tolist() == [503, 0]


def test_a_name_holding_the_key_separator_is_refused() -> None:
    with pytest.raises(BatchRefused) as err:
        _decode([_rec(0, api_name="acme.com\x1fOrders")])
    assert err.value.cause == "bad_string" and "U+001F" in str(err.value)


def test_keyed_and_bare_names_are_inverse() -> None:
    interner = Interner()
    t = interner.intern_many(["", "acme.com", "carbon.super", "acme.com"])
    n = interner.intern_many(["Orders", "Orders", "Orders", "Stock"])
    keyed = tenants.keyed_names(interner, t, n)
    assert [tenants.split(interner.string(int(g))) for g in keyed] == [
        ("carbon.super", "Orders"),
        ("acme.com", "Orders"),
        ("carbon.super", "Orders"),
        ("acme.com", "Stock"),
    ]
    assert tenants.keyed_names(interner, t, keyed).tolist() == keyed.tolist()  # idempotent
    assert tenants.bare_names(interner, keyed).tolist() == n.tolist()
    assert tenants.keyed_names(interner, np.zeros(4, np.int32), n) is n  # no copy
    assert tenants.clean("a\x1fb") == "a\ufffdb"


def _two_tenant_state() -> State:
    state = State()
    recs = [_rec(k) for k in range(5)]
    recs += [_rec(5 + k, tenant="acme.com", api_id="acme-orders", application_id="app2")
             for k in range(3)]  # fmt: skip
    ev, _ = _decode(recs)
    # the state has its own interner: decode into it
    dec = StreamDecoder(state.interner, 0, 1000, 1000)
    ev = dec.decode(StreamEncoder().batch_from_records(recs))
    state.apply(ev)
    return state


def test_two_tenants_api_of_one_name_are_two_apis_and_the_inventory_finds_its_own() -> None:
    state = _two_tenant_state()
    apis = {(a.tenant, a.api, a.api_version): a for a in views.apis(state)}
    assert {k: a.requests for k, a in apis.items()} == {
        ("carbon.super", "Orders", "1.0.0"): 5,
        ("acme.com", "Orders", "1.0.0"): 3,
    }
    assert apis[("acme.com", "Orders", "1.0.0")].api_id == "acme-orders"
    subs = {(s.tenant, s.application_id): s.requests for s in views.subscriptions(state)}
    assert subs == {("carbon.super", "app"): 5, ("acme.com", "app2"): 3}
    # an inventory row of the acme.com API is the row the events made
    rows = state.n_api_rows
    row = state.ensure_api("Orders", "1.0.0", tenant="acme.com", api_id="acme-orders")
    assert state.n_api_rows == rows and state.api_identity(row)[:2] == ("acme.com", "Orders")
    state.ensure_api("Orders", "1.0.0", tenant="globex.com")
    assert state.n_api_rows == rows + 1
    # directives name no tenant: both tenants' Orders are in the scope of one on Orders
    assert views.scope_requests(state, "", "Orders", "1.0.0") == 8


def test_the_api_id_survives_a_snapshot_and_a_copy(tmp_path: Path) -> None:
    state = _two_tenant_state()
    snapshot.write_snapshot(snapshot.freeze(state), tmp_path)
    back = snapshot.restore_or_fresh(tmp_path, state.thresholds, state.capacity)
    want = [(a.tenant, a.api, a.api_id) for a in views.apis(state)]
    assert [(a.tenant, a.api, a.api_id) for a in views.apis(back)] == want
    assert [(a.tenant, a.api, a.api_id) for a in views.apis(state.copy())] == want


def test_rollups_keep_the_tenant_and_an_old_store_reads_as_the_super_tenants(
    tmp_path: Path,
) -> None:
    state = _two_tenant_state()
    recs = [_rec(k) for k in range(5)]
    recs += [_rec(5 + k, tenant="acme.com", application_id="app2") for k in range(3)]
    dec = StreamDecoder(state.interner, 0, 1000, 1000)
    acc = Accumulator()
    acc.add(dec.decode(StreamEncoder().batch_from_records(recs)))
    drained = acc.drain(state.interner.string, ["main"])
    assert drained is not None
    store = ParquetStore(tmp_path / "store")
    for rows in drained:
        store.write_rows(rows)
    q = AggQuery("daily", T0 - T0 % DAY, T0 - T0 % DAY + DAY, ("tenant", "api"), histogram=False)
    got = {r.key: r.get("requests") for r in store.aggregate(q)}
    assert got == {("carbon.super", "Orders"): 5, ("acme.com", "Orders"): 3}
    one = AggQuery("daily", q.from_us, q.to_us, ("api",), tenant="ACME.com", histogram=False)
    assert [(r.key, r.get("requests")) for r in store.aggregate(one)] == [(("Orders",), 3)]
    # a file written before tenants: the column dropped; its rows read as the super tenant's
    for f in (tmp_path / "store").rglob("*.parquet"):
        t = pq.read_table(f)
        if "tenant" in t.column_names and "api" in t.column_names:
            pq.write_table(t.drop_columns(["tenant"]), f)
    store = ParquetStore(tmp_path / "store")  # an old store, opened by this vigie
    assert {r.key: r.get("requests") for r in store.aggregate(q)} == {("carbon.super", "Orders"): 8}
    # new rows beside the old file, then compaction: one file, with the column, both kept
    for rows in drained:
        store.write_rows(rows)
    assert store.compact("daily", T0 - T0 % DAY)
    daily = list((tmp_path / "store" / "daily").rglob("*.parquet"))
    assert len(daily) == 1 and "tenant" in pq.read_schema(daily[0]).names
    assert {r.key: r.get("requests") for r in store.aggregate(q)} == {
        ("carbon.super", "Orders"): 8 + 5,
        ("acme.com", "Orders"): 3,
    }


def test_an_inventory_of_several_tenants(tmp_path: Path) -> None:
    acme = Inventory(apis=[tenants_api("Orders")], tenant="acme.com")
    sup = Inventory(apis=[tenants_api("Orders")], tenant="carbon.super")
    merged = Inventory.merged([sup, acme])
    write_inventory(merged, tmp_path / "inv.json")
    back = load_inventory(tmp_path / "inv.json")
    assert [(a.tenant, a.name) for a in back.apis] == [
        ("carbon.super", "Orders"),
        ("acme.com", "Orders"),
    ]
    state = State()
    back.apply_to(state)
    assert sorted((a.tenant, a.api) for a in views.apis(state)) == [
        ("acme.com", "Orders"),
        ("carbon.super", "Orders"),
    ]


def tenants_api(name: str) -> Any:
    from vigie.sources.inventory import Api  # noqa: PLC0415

    return Api(name, "1.0.0", f"/{name.lower()}/1.0.0")


def test_the_simulator_makes_two_tenants_with_the_same_apis() -> None:
    p = simulator.build_platform(20, 6, seed=3, tenants=2)
    keys = {(p.tenant_of(k), p.api_names[k], p.api_versions[k]) for k in range(6)}
    assert len(keys) == 6
    assert {(n, v) for _, n, v in keys if _ == "acme.com"} == {
        (n, v) for t, n, v in keys if t == ""
    }
    assert p.context_of(1).startswith("/t/acme.com/")
    inv = p.inventory()
    assert {a.get("tenant", "") for a in inv["apis"]} == {"", "acme.com"}


def test_a_directive_on_an_api_name_applies_to_every_tenants_api(tmp_path: Path) -> None:
    """Directives name no tenant: a simulated BLOCK on Orders refuses both tenants' calls."""
    from tests.support.tenants import write_two_tenants  # noqa: PLC0415
    from vigie.policy.model import DirectiveSpec  # noqa: PLC0415
    from vigie.policy.simulate import simulate  # noqa: PLC0415

    exp = write_two_tenants(tmp_path / "apim_metrics.log")
    res = simulate(DirectiveSpec("BLOCK", api_name="Orders"), [str(tmp_path / "apim_metrics.log")])
    assert res.refused == res.events == sum(exp.requests.values())
    assert {(a.application, a.api): a.refused for a in res.affected} == {
        (app, "Orders"): n for (_, app), n in exp.requests.items()
    }
    only = simulate(
        DirectiveSpec("BLOCK", application_id=exp.apps["Acme-App"].id, api_name="Orders"),
        [str(tmp_path / "apim_metrics.log")],
    )
    assert only.refused == exp.per_tenant()["acme.com"]
