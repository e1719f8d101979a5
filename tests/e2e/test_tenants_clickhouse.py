"""A real ClickHouse store made before tenants gets the tenant column when vigie opens it: its
rows read as the super tenant's, new rows keep theirs, and --tenant queries tell them apart."""

from __future__ import annotations

from tests.support.clickhouse_server import ClickHouse, clickhouse  # noqa: F401 - the fixture
from vigie.state.engine import State
from vigie.store.clickhouse import CH_TABLES, ClickHouseStore, _ddl
from vigie.store.query import AggQuery
from vigie.store.rollup import MEASURES, Accumulator, Rows
from vigie.wire.columns import StreamDecoder, StreamEncoder

T0 = 1_772_446_800_000_000  # 2026-03-02T10:20Z
DAY = 86_400_000_000


def _rows(tenant: str, n: int, state: State) -> tuple[Rows, ...]:
    recs = [
        {
            "event_time_us": T0 + k,
            "application_id": f"app-{tenant or 'super'}",
            "api_name": "Orders",
            "api_version": "1.0.0",
            "http_status": 200,
        }
        | ({"tenant": tenant} if tenant else {})
        for k in range(n)
    ]
    dec = StreamDecoder(state.interner, 0, 1000, 1000)
    acc = Accumulator()
    acc.add(dec.decode(StreamEncoder().batch_from_records(recs)))
    out = acc.drain(state.interner.string, ["main"])  # minute and daily: what ClickHouse holds
    assert out is not None
    return out


def test_an_old_clickhouse_store_gets_the_tenant_column(clickhouse: ClickHouse) -> None:  # noqa: F811
    old = ClickHouseStore(clickhouse.url, "vigie_tenants")
    old.drop_all()
    old._post("CREATE DATABASE IF NOT EXISTS vigie_tenants")
    state = State()
    for table in CH_TABLES:  # the tables as vigie made them before tenants
        ddl = _ddl("vigie_tenants", table).replace(", tenant String", "")
        assert ", tenant String" not in ddl
        old._post(ddl)
    for rows in _rows("", 5, state):
        cols = [c for c in rows.keys if c != "tenant"]
        names = ", ".join([cols[0], *cols[1:]])
        day = "2026-03-02"
        body = "".join(
            "\t".join(
                [str(rows.keys[cols[0]][i]), day]
                + [str(rows.keys[c][i]) for c in cols[1:]]
                + [str(v) for v in rows.measures[i].tolist()]
                + ["[]", "[]"]
            )
            + "\n"
            for i in range(len(rows))
        ).encode()
        table = rows.table
        measures = ", ".join(MEASURES)
        old._post(
            f"INSERT INTO vigie_tenants.{table} ({names.split(', ')[0]}, day, "
            f"{', '.join(cols[1:])}, {measures}, lat_idx, lat_cnt) FORMAT TabSeparated",
            body,
        )
    store = ClickHouseStore(clickhouse.url, "vigie_tenants")  # this vigie opens it
    for rows in _rows("acme.com", 3, state):
        store.write_rows(rows)
    day0 = T0 - T0 % DAY
    q = AggQuery("daily", day0, day0 + DAY, ("tenant", "api"), histogram=False)
    got = {r.key: r.get("requests") for r in store.aggregate(q)}
    assert got == {("carbon.super", "Orders"): 5, ("acme.com", "Orders"): 3}
    one = AggQuery("daily", day0, day0 + DAY, ("application_id",), tenant="acme.com",
                   histogram=False)  # fmt: skip
    assert [(r.key, r.get("requests")) for r in store.aggregate(one)] == [(("app-acme.com",), 3)]
    store.drop_all()
