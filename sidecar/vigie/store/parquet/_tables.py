"""The rows of the Parquet store as Arrow tables: each table's schema, rollup rows and change
records in it, reading files back, and the fold that adds up rows with the same keys (the merge
of compaction, in one jitted pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vigie.state import layout as L
from vigie.store import _rollup_kernels as RK
from vigie.store.rollup import (
    MEASURES,
    ROLLUP_TABLES,
    STRING_KEYS,
    TABLE_KEYS,
    TIME_COLUMN,
    Rows,
    month_start,
)
from vigie.store.sql import CHANGE_FIELDS
from vigie.wire.tenants import SUPER_TENANT

TABLE_DIRS: Final = (*ROLLUP_TABLES, "changes")
# the sort order of a compacted file: rows of one API (then one application) together
SORT_KEYS: Final = {
    "minute": ("api", "minute_us", "application_id", "api_version", "resource", "method"),
    "daily": ("api", "application_id", "api_version", "resource", "method", "channel"),
    "sub_daily": ("api", "application_id", "api_version", "channel"),
    "sub_monthly": ("api", "application_id", "api_version", "channel", "error_code"),
}


def _schema(table: str) -> pa.Schema:
    if table == "changes":
        return pa.schema(
            [
                ("at_us", pa.int64()),
                ("day", pa.date32()),
                ("kind", pa.string()),
                ("event", pa.string()),
                ("name", pa.string()),
                ("application_id", pa.string()),
                ("api", pa.string()),
                ("api_version", pa.string()),
                ("detail", pa.string()),
                ("tenant", pa.string()),
            ]
        )
    keys = TABLE_KEYS[table]
    fields: list[tuple[str, pa.DataType]] = [(keys[0], pa.int64()), ("day", pa.date32())]
    for k in keys[1:]:
        fields.append((k, pa.string() if k in STRING_KEYS else pa.int32()))
    fields += [(m, pa.int64()) for m in MEASURES]
    fields += [("lat_idx", pa.list_(pa.int16())), ("lat_cnt", pa.list_(pa.int64()))]
    return pa.schema(fields)


SCHEMAS: Final = {t: _schema(t) for t in TABLE_DIRS}


def _arrow(
    table: str,
    cols: dict[str, pa.Array],
    measures: npt.NDArray[np.int64],
    off: npt.NDArray[np.int64],
    idx: npt.NDArray[np.int16],
    cnt: npt.NDArray[np.int64],
) -> pa.Table:
    """A table of the store's schema from key columns, measures and CSR histograms."""
    tcol = TIME_COLUMN[table]
    t = np.asarray(cols[tcol].to_numpy(), dtype=np.int64)
    arrays: dict[str, pa.Array] = {tcol: cols[tcol], "day": _date32(t)}
    for k in TABLE_KEYS[table][1:]:
        arrays[k] = cols[k]
    for i, m in enumerate(MEASURES):
        arrays[m] = pa.array(np.ascontiguousarray(measures[:, i]), pa.int64())
    offsets = pa.array(off.astype(np.int32))
    arrays["lat_idx"] = pa.ListArray.from_arrays(offsets, pa.array(idx, pa.int16()))
    arrays["lat_cnt"] = pa.ListArray.from_arrays(offsets, pa.array(cnt, pa.int64()))
    return pa.table(arrays, schema=SCHEMAS[table])


def _date32(t: npt.NDArray[np.int64]) -> pa.Array:
    return pa.array((t // L.DAY_US).astype(np.int32), pa.date32())


def rows_to_arrow(rows: Rows) -> pa.Table:
    """Rows as an Arrow table of the store's schema."""
    cols: dict[str, pa.Array] = {}
    for k in TABLE_KEYS[rows.table]:
        if k in STRING_KEYS:
            names = pa.array(rows.names[k], pa.string())
            cols[k] = pa.DictionaryArray.from_arrays(rows.codes[k], names).cast(pa.string())
        elif k == TIME_COLUMN[rows.table]:
            cols[k] = pa.array(rows.ints[k], pa.int64())
        else:
            cols[k] = pa.array(rows.ints[k], pa.int32())
    return _arrow(rows.table, cols, rows.measures, rows.hist_off, rows.hist_idx, rows.hist_cnt)


def _list_parts(col: pa.ChunkedArray | pa.Array) -> tuple[npt.NDArray[np.int64], pa.Array]:
    """(offsets from 0, flat values) of a list column (nulls as empty lists)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    lens = pc.fill_null(pc.list_value_length(arr), 0).to_numpy().astype(np.int64)
    off = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=off[1:])
    return off, pc.list_flatten(arr)


def _with_tenant(data: pa.Table) -> pa.Table:
    """A table of a file written before tenants with its rows the super tenant's (compaction
    rewrites such files with the column: the store migrates as it compacts)."""
    if "tenant" in data.column_names or "api" not in data.column_names:
        return data
    return data.append_column("tenant", pa.array([SUPER_TENANT] * data.num_rows, pa.string()))


def read_files(table: str, paths: Sequence[Path]) -> pa.Table:
    """The rows of several files of a table, in the store's schema."""
    tables = [_with_tenant(pq.read_table(p)).select(SCHEMAS[table].names).cast(SCHEMAS[table])
              for p in paths]  # fmt: skip
    return pa.concat_tables(tables) if tables else SCHEMAS[table].empty_table()


def fold_table(table: str, data: pa.Table, sort: bool = True) -> pa.Table:
    """Rows with the same keys as one row (measures and histograms added), sorted by the
    table's sort keys when ``sort``: the merge of compaction, in one jitted pass."""
    keys = TABLE_KEYS[table]
    data = data.select([*keys, *MEASURES, "lat_idx", "lat_cnt"]).combine_chunks()
    n = data.num_rows
    mat = np.empty((n, len(keys)), dtype=np.int64)
    dictionaries: dict[str, pa.Array] = {}
    for j, k in enumerate(keys):
        col = data.column(k)
        if k in STRING_KEYS:
            enc = pc.dictionary_encode(pc.fill_null(col, "")).combine_chunks()
            # codes in the strings' order, so that sorting codes sorts the strings
            order = pc.sort_indices(enc.dictionary).to_numpy()
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            mat[:, j] = rank[enc.indices.to_numpy(zero_copy_only=False)] if n else 0
            dictionaries[k] = enc.dictionary.take(pa.array(order))
        else:
            mat[:, j] = pc.fill_null(col, 0).to_numpy()
    vals = np.empty((n, len(MEASURES)), dtype=np.int64)
    for i, m in enumerate(MEASURES):
        vals[:, i] = pc.fill_null(data.column(m), 0).to_numpy()
    off, idx_flat = _list_parts(data.column("lat_idx"))
    _, cnt_flat = _list_parts(data.column("lat_cnt"))
    idx = idx_flat.to_numpy(zero_copy_only=False).astype(np.int16)
    cnt = cnt_flat.to_numpy(zero_copy_only=False).astype(np.int64)
    gkeys, gvals, goff, gidx, gcnt, _ = RK.fold(mat, vals, off, idx, cnt)
    if sort and len(gkeys):
        pos = {k: j for j, k in enumerate(keys)}
        order = np.lexsort([gkeys[:, pos[k]] for k in reversed(SORT_KEYS[table])])
        gkeys, gvals = gkeys[order], gvals[order]
        lens = np.diff(goff)[order]
        src = np.repeat(goff[:-1][order], lens) + (
            np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
        )
        gidx, gcnt = gidx[src], gcnt[src]
        goff = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(lens, out=goff[1:])
    cols: dict[str, pa.Array] = {}
    for j, k in enumerate(keys):
        if k in STRING_KEYS:
            cols[k] = dictionaries[k].take(pa.array(gkeys[:, j])).cast(pa.string())
        elif j == 0:
            cols[k] = pa.array(gkeys[:, j], pa.int64())
        else:
            cols[k] = pa.array(gkeys[:, j].astype(np.int32), pa.int32())
    return _arrow(table, cols, gvals, goff, gidx, gcnt)


def changes_to_arrow(records: Sequence[dict[str, Any]]) -> pa.Table:
    cols: dict[str, list[Any]] = {f: [r.get(f, "") for r in records] for f in CHANGE_FIELDS}
    cols["at_us"] = [int(r["at_us"]) for r in records]
    cols["day"] = [int(r["at_us"]) // L.DAY_US for r in records]
    return pa.table(
        {
            "at_us": pa.array(cols["at_us"], pa.int64()),
            "day": pa.array(np.array(cols["day"], dtype=np.int32), pa.date32()),
            **{f: pa.array([str(v) for v in cols[f]], pa.string()) for f in CHANGE_FIELDS[1:]},
        },
        schema=SCHEMAS["changes"],
    )


def derive(daily: pa.Table, table: str) -> pa.Table:
    """Rows of the ``daily`` table as rows of ``sub_daily`` or ``sub_monthly`` (summed)."""
    if table == "sub_monthly":
        m = month_start(daily.column("day_us").to_numpy())
        daily = daily.append_column("month_us", pa.array(m, pa.int64()))
    return fold_table(table, daily)
