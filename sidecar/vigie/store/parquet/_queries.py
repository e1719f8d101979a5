"""The DuckDB side of a query on the Parquet store: the SQL over a list of files, and the rows
of its answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from vigie.store.plan import Part
from vigie.store.query import AggQuery, AggRow
from vigie.store.rollup import MEASURES
from vigie.store.sql import TENANT_SQL, group_exprs, sql_str, where_clause


def sql_files(files: Iterable[Path]) -> str:
    """A list of file names in DuckDB's syntax (for ``read_parquet``)."""
    return "[" + ", ".join(sql_str(str(f)) for f in files) + "]"


def measures_sql(q: AggQuery, part: Part, files: str, tenant: str = TENANT_SQL) -> str:
    """``tenant``: the SQL of a row's tenant (``NO_TENANT_SQL`` when no file has the column)."""
    g = group_exprs(q, "({0} // {1})", part.table, tenant)
    sel = ", ".join(f"{e} AS {a}" for e, a in g)
    sums = ", ".join(f"sum({m})::BIGINT AS {m}" for m in MEASURES)
    return (
        f"SELECT {sel}, {sums}, max(application_name) AS application_name "
        f"FROM read_parquet({files}, union_by_name = true) "
        f"WHERE {where_clause(q, sql_str, part, tenant)} GROUP BY ALL"
    )


def hist_sql(q: AggQuery, part: Part, files: str, tenant: str = TENANT_SQL) -> str:
    """Each group's latency histogram, summed bucket by bucket: (keys..., buckets, counts)."""
    g = group_exprs(q, "({0} // {1})", part.table, tenant)
    sel = ", ".join(f"{e} AS {a}" for e, a in g)
    aliases = ", ".join(a for _, a in g)
    return (
        f"SELECT {aliases}, list(b ORDER BY b), list(c ORDER BY b) FROM ("
        f"SELECT {aliases}, b, sum(c)::BIGINT AS c FROM (SELECT {sel}, unnest(lat_idx) AS b, "
        f"unnest(lat_cnt) AS c FROM read_parquet({files}, union_by_name = true) "
        f"WHERE {where_clause(q, sql_str, part, tenant)}) GROUP BY ALL) GROUP BY ALL"
    )


def _key(q: AggQuery, r: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(int(v) if isinstance(v, int) else str(v) for v in r[: len(q.group_by)])


def rows_of(
    q: AggQuery, measures: Sequence[Sequence[Any]], hist: Sequence[Sequence[Any]]
) -> list[AggRow]:
    """AggRows from the answers of ``measures_sql`` and ``hist_sql`` (keys first)."""
    nk = len(q.group_by) or 1
    with_name = "application_id" in q.group_by
    out: dict[tuple[Any, ...], AggRow] = {}
    for r in measures:
        name = r[nk + len(MEASURES)] or ""
        out[_key(q, r)] = AggRow(
            _key(q, r),
            [int(v or 0) for v in r[nk : nk + len(MEASURES)]],
            {},
            str(name) if with_name else "",
        )
    for r in hist:
        row = out.get(_key(q, r))
        if row is not None:
            row.hist = {b: c for b, c in zip(r[nk], r[nk + 1], strict=True) if c}
    return list(out.values())
