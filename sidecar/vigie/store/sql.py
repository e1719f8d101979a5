"""SQL shared by the two stores (DuckDB over Parquet, ClickHouse): the columns of the changes
table, day names, string literals, and the GROUP BY and WHERE of an aggregate query. Each
dialect passes what differs (its integer division, its quoting).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Final

from vigie.state import layout as L
from vigie.store.plan import Part
from vigie.store.query import AggQuery
from vigie.store.rollup import TIME_COLUMN
from vigie.wire.tenants import SUPER_TENANT

# the tenant of a row: files written before tenants have no such column (DuckDB reads it as
# NULL, ``union_by_name``): their rows are the super tenant's
TENANT_SQL: Final = f"coalesce(tenant, '{SUPER_TENANT}')"
# ... and when none of the files read has the column (DuckDB would not know the name)
NO_TENANT_SQL: Final = f"'{SUPER_TENANT}'"

# the columns of the changes table (classes raised and cleared, directives), in both stores
CHANGE_FIELDS: Final = (
    "at_us",
    "kind",
    "event",
    "name",
    "application_id",
    "api",
    "api_version",
    "detail",
    "tenant",  # the API's tenant for a class ("" for a directive: directives name no tenant)
)


def day_name(day_us: int) -> str:
    """The ISO date of the day that holds ``day_us`` (UTC), as partitions are named."""
    return (date(1970, 1, 1) + timedelta(days=day_us // L.DAY_US)).isoformat()


def day_us_of(name: str) -> int:
    """The start (us) of an ISO date: the inverse of ``day_name``."""
    d = date.fromisoformat(name)
    return (d - date(1970, 1, 1)).days * L.DAY_US


def sql_str(s: str) -> str:
    """A string literal in standard SQL (DuckDB): quotes doubled."""
    return "'" + s.replace("'", "''") + "'"


def group_exprs(
    q: AggQuery, div: str, table: str | None = None, tenant: str = TENANT_SQL
) -> list[tuple[str, str]]:
    """(expression, alias) of each group key; ``div`` formats an integer division; ``tenant``
    is the expression of a row's tenant."""
    tcol = TIME_COLUMN[table or q.table]
    out = []
    for g in q.group_by:
        if g == "time":
            out.append((f"{div.format(tcol, int(q.bucket_us))} * {int(q.bucket_us)}", "g_time"))
        else:
            out.append((tenant if g == "tenant" else g, f"g_{g}"))
    return out or [("0", "g_all")]


def where_clause(
    q: AggQuery, quote: Any, part: Part | None = None, tenant: str = TENANT_SQL
) -> str:
    table = part.table if part else q.table
    lo, hi = (part.from_us, part.to_us) if part else (q.from_us, q.to_us)
    tcol = TIME_COLUMN[table]
    parts = [f"{tcol} >= {int(lo)}", f"{tcol} < {int(hi)}"]
    for f, v in q.filters().items():
        if f == "application":
            parts.append(f"(application_id = {quote(v)} OR application_name = {quote(v)})")
        else:
            parts.append(f"{tenant if f == 'tenant' else f} = {quote(v)}")
    return " AND ".join(parts)
