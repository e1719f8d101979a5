"""The store for scale: the same tables in ClickHouse, over its HTTP interface.

Several sidecars (pods, data centres) write into one ClickHouse; a query there is already the
fleet's answer. Tables are MergeTree partitioned by day (retention drops whole partitions);
rows are deltas like in the Parquet store, and every query sums them, so background merges
never change an answer. Only the standard library is used (``urllib``): the HTTP interface
and the TabSeparated / JSONCompact formats exist in every ClickHouse since 2016 (Debian ships
18.16).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from vigie.state import layout as L
from vigie.store.query import AggQuery, AggRow, StoreUnavailable, finish
from vigie.store.rollup import MEASURES, STRING_KEYS, TABLE_KEYS, TIME_COLUMN, Rows
from vigie.store.sql import CHANGE_FIELDS, day_name, group_exprs, where_clause
from vigie.wire.tenants import SUPER_TENANT

TIMEOUT: Final = 60.0
# the tables of rollups kept in ClickHouse: the fine-grained ones (ClickHouse sums them fast;
# the Parquet store's subscription tables are a shortcut for DuckDB over years of files)
CH_TABLES: Final = ("minute", "daily", "changes")


def ch_str(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _tsv(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _ddl(db: str, table: str) -> str:
    if table == "changes":
        cols = "at_us Int64, day Date, " + ", ".join(f"{f} String" for f in CHANGE_FIELDS[1:])
        order = "(at_us)"
    else:
        keys = TABLE_KEYS[table]
        parts = [f"{keys[0]} Int64", "day Date"]
        parts += [f"{k} String" if k in STRING_KEYS else f"{k} Int32" for k in keys[1:]]
        parts += [f"{m} Int64" for m in MEASURES]
        parts += ["lat_idx Array(Int16)", "lat_cnt Array(Int64)"]
        cols = ", ".join(parts)
        order = f"(api, application_id, {keys[0]})"
    return (
        f"CREATE TABLE IF NOT EXISTS {db}.{table} ({cols}) "
        f"ENGINE = MergeTree PARTITION BY day ORDER BY {order}"
    )


class ClickHouseStore:
    """Rollups in ClickHouse (``url``: its HTTP interface, e.g. http://127.0.0.1:8123)."""

    tables: tuple[str, ...] = CH_TABLES  # what the writer hands over

    def __init__(self, url: str, database: str = "vigie", timeout: float = TIMEOUT) -> None:
        if not database.replace("_", "").isalnum():
            raise StoreUnavailable(f"clickhouse_database {database!r}: letters, digits and _")
        self.url = url.rstrip("/")
        self.db = database
        self.timeout = timeout
        self._ready = False

    # ---- HTTP ----
    def _post(self, query: str, body: bytes | None = None) -> str:
        if body is None:
            req = urllib.request.Request(self.url + "/", data=query.encode())
        else:
            qs = urllib.parse.urlencode({"query": query})
            req = urllib.request.Request(f"{self.url}/?{qs}", data=body)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return str(resp.read().decode())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip().splitlines()
            raise StoreUnavailable(
                f"ClickHouse at {self.url}: {detail[0] if detail else exc}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StoreUnavailable(f"ClickHouse at {self.url}: {reason}") from None

    def _json(self, sql: str) -> list[list[Any]]:
        doc = json.loads(self._post(sql + " FORMAT JSONCompact"))
        return list(doc["data"])

    def ensure(self) -> None:
        if self._ready:
            return
        self._post(f"CREATE DATABASE IF NOT EXISTS {self.db}")
        for table in CH_TABLES:
            self._post(_ddl(self.db, table))
        # a store made before tenants: its rows are the super tenant's (no ADD COLUMN IF NOT
        # EXISTS: older ClickHouse releases do not know it)
        have = {
            str(r[0])
            for r in self._json(
                f"SELECT table FROM system.columns WHERE database = {ch_str(self.db)} "
                "AND name = 'tenant'"
            )
        }
        for table in CH_TABLES:
            if table not in have:
                default = ch_str("" if table == "changes" else SUPER_TENANT)
                self._post(
                    f"ALTER TABLE {self.db}.{table} ADD COLUMN tenant String DEFAULT {default}"
                )
        self._ready = True

    def drop_all(self) -> None:
        """Remove the database (tests)."""
        self._post(f"DROP DATABASE IF EXISTS {self.db}")
        self._ready = False

    # ---- writing ----
    def write_rows(self, rows: Rows) -> int:
        self.ensure()
        keys = TABLE_KEYS[rows.table]
        columns = rows.keys
        t = columns[TIME_COLUMN[rows.table]]
        day_of = {d: day_name(d) for d in np.unique(t - t % L.DAY_US).tolist()}
        cols: list[list[str]] = [[str(x) for x in t.tolist()]]
        cols.append([day_of[x] for x in (t - t % L.DAY_US).tolist()])
        for k in keys[1:]:
            v = columns[k]
            cols.append(
                [_tsv(str(x)) for x in v] if k in STRING_KEYS else list(map(str, v.tolist()))
            )
        for i in range(len(MEASURES)):
            cols.append(list(map(str, rows.measures[:, i].tolist())))
        off = rows.hist_off.tolist()
        for flat in (rows.hist_idx.tolist(), rows.hist_cnt.tolist()):
            text = list(map(str, flat))
            cols.append(["[" + ",".join(text[off[i] : off[i + 1]]) + "]" for i in range(len(rows))])
        body = "".join("\t".join(r) + "\n" for r in zip(*cols, strict=True)).encode()
        names = ", ".join([keys[0], "day", *keys[1:], *MEASURES, "lat_idx", "lat_cnt"])
        self._post(f"INSERT INTO {self.db}.{rows.table} ({names}) FORMAT TabSeparated", body)
        return len(body)

    def write_changes(self, records: Sequence[dict[str, Any]]) -> int:
        self.ensure()
        lines = []
        for r in records:
            at = int(r["at_us"])
            vals = [str(at), day_name(at - at % L.DAY_US)]
            vals += [_tsv(str(r.get(f, ""))) for f in CHANGE_FIELDS[1:]]
            lines.append("\t".join(vals) + "\n")
        body = "".join(lines).encode()
        names = ", ".join(["at_us", "day", *CHANGE_FIELDS[1:]])
        self._post(f"INSERT INTO {self.db}.changes ({names}) FORMAT TabSeparated", body)
        return len(body)

    # ---- upkeep ----
    def compact_due(self, newest_day_us: int) -> int:
        return 0  # MergeTree merges parts itself; queries sum, so merges change nothing

    def enforce_retention(self, newest_day_us: int, short_days: int, long_days: int) -> list[str]:
        self.ensure()
        gone = []
        for table in CH_TABLES:
            keep = short_days if table == "minute" else long_days
            if keep <= 0:
                continue
            limit = day_name(newest_day_us - keep * L.DAY_US)
            rows = self._json(
                f"SELECT DISTINCT partition FROM system.parts WHERE active AND "
                f"database = {ch_str(self.db)} AND table = {ch_str(table)} AND "
                f"partition <= {ch_str(limit)}"
            )
            for (part,) in rows:
                self._post(f"ALTER TABLE {self.db}.{table} DROP PARTITION {ch_str(str(part))}")
                gone.append(f"{table}/{part}")
        return gone

    def disk_usage(self) -> dict[str, int]:
        self.ensure()
        rows = self._json(
            f"SELECT table, sum(bytes_on_disk) FROM system.parts WHERE active AND "
            f"database = {ch_str(self.db)} GROUP BY table"
        )
        out = {"minute": 0, "daily": 0, "changes": 0}
        out |= {str(t): int(b) for t, b in rows}
        return out

    # ---- queries ----
    def aggregate(self, q: AggQuery) -> list[AggRow]:
        q.validate()
        self.ensure()
        g = group_exprs(q, "intDiv({0}, {1})")
        sel = ", ".join(f"{e} AS {a}" for e, a in g)
        aliases = ", ".join(a for _, a in g)
        sums = ", ".join(f"sum({m}) AS {m}" for m in MEASURES)
        hist = ", sumMap(lat_idx, lat_cnt) AS h" if q.histogram else ""
        last_day = 47_482 * L.DAY_US  # 2099-12-31: ClickHouse's Date ends in 2105
        lo = day_name(min(max(0, q.from_us), last_day))
        hi = day_name(min(max(0, q.to_us - 1), last_day))
        where = where_clause(q, ch_str) + f" AND day >= toDate('{lo}') AND day <= toDate('{hi}')"
        sql = (
            f"SELECT {sel}, {sums}, max(application_name) AS app_name_max{hist} "
            f"FROM {self.db}.{q.table} WHERE {where} GROUP BY {aliases}"
        )
        k = len(q.group_by)
        nk = k or 1
        out = []
        for r in self._json(sql):
            key = tuple(
                int(v) if grp in ("time", "status", "error_code") else str(v)
                for grp, v in zip(q.group_by, r[:k], strict=True)
            )
            measures = [int(v) for v in r[nk : nk + len(MEASURES)]]
            name = str(r[nk + len(MEASURES)]) if "application_id" in q.group_by else ""
            h: dict[int, int] = {}
            if q.histogram:
                bs, cs = r[nk + len(MEASURES) + 1]
                h = {int(b): int(c) for b, c in zip(bs, cs, strict=True) if int(c)}
            out.append(AggRow(key, measures, h, name))
        return finish(out)

    def changes(self, from_us: int, to_us: int) -> list[dict[str, Any]]:
        self.ensure()
        cols = ", ".join(CHANGE_FIELDS)
        rows = self._json(
            f"SELECT {cols} FROM {self.db}.changes WHERE at_us < {int(to_us)} "
            f"ORDER BY at_us, kind, name, application_id, api, api_version, event"
        )
        return [
            {f: (int(v) if f == "at_us" else str(v)) for f, v in zip(CHANGE_FIELDS, r, strict=True)}
            for r in rows
        ]

    def extent(self) -> tuple[int, int]:
        self.ensure()
        [[lo, hi]] = self._json(f"SELECT min(day_us), max(day_us) FROM {self.db}.daily")
        lo, hi = int(lo), int(hi)
        return (lo, hi + L.DAY_US) if hi else (0, 0)
