"""Jitted hash tables of the state: the row tables and the detector caches.

Row tables (a key -> a row) are open-addressing tables: linear probing, keys != 0, load factor
<= 1/2, rebuilt rather than deleted from. The route table's key is a hash of the identity, so
two routes may share a key: each has its own entry (``table_append``) and the caller checks the
row's stored identity on a match (``find_route``).

The detector caches (retries, repeated reads) are set-associative, keyed by a 64-bit hash: a
new key replaces the empty or oldest entry of its set.

Also here: the CPU prefetch hint, latency buckets by lookup table, and the rows themselves (their
identity, their creation, and ``resolve_chunk``, the batch kernel's first pass that finds them).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from llvmlite import ir  # type: ignore[import-untyped]
from numba import njit, types
from numba.core import cgutils as _cgutils
from numba.core.extending import intrinsic
from numba.cpython.unsafe import numbers as _numbers

from vigie.state._groups import ApiGroup, EventGroup, RouteGroup, SubGroup, group_kernel
from vigie.state.codes import is_throttled
from vigie.state.layout import (
    A_KEY,
    A_NAME,
    A_VERSION,
    CACHE_WAYS,
    LAT_BUCKETS,
    P_RW_SLOT_US,
    P_SW_SLOT_US,
    R_API,
    R_CHANNEL,
    R_ERROR_CODE,
    R_KEY,
    R_METHOD,
    R_RESOURCE,
    R_STATUS,
    R_THROTTLED,
    S_API,
    S_APP,
    S_GEN,
    S_KEY,
)
from vigie.state.primitives import GOLDEN, combine, latency_bucket, mix64, nonzero_key

cgutils: Any = _cgutils  # Numba's code generation helpers, untyped
leading_zeros: Any = _numbers.leading_zeros  # count of leading zero bits (LLVM ctlz)


@njit(cache=True, nogil=True)
def table_find(tkeys: np.ndarray, tvals: np.ndarray, key: int) -> int:
    """The row of ``key``, or -1."""
    mask = np.int64(len(tkeys) - 1)
    slot = np.int64(mix64(np.uint64(key))) & mask
    while True:
        k = tkeys[slot]
        if k == key:
            return np.int64(tvals[slot])
        if k == 0:
            return np.int64(-1)
        slot = (slot + 1) & mask


@njit(cache=True, nogil=True)
def table_insert(tkeys: np.ndarray, tvals: np.ndarray, key: int, value: int) -> None:
    """Map ``key`` to ``value`` (the table has room: the caller keeps it at most half full)."""
    mask = np.int64(len(tkeys) - 1)
    slot = np.int64(mix64(np.uint64(key))) & mask
    while tkeys[slot] != 0 and tkeys[slot] != key:
        slot = (slot + 1) & mask
    tkeys[slot] = key
    tvals[slot] = value


@njit(cache=True, nogil=True)
def table_append(tkeys: np.ndarray, tvals: np.ndarray, key: int, value: int) -> None:
    """A new entry ``key`` -> ``value`` in the first free slot of its probe sequence, even when
    ``key`` is already present (rows that share a key each keep an entry; the table has room)."""
    mask = np.int64(len(tkeys) - 1)
    slot = np.int64(mix64(np.uint64(key))) & mask
    while tkeys[slot] != 0:
        slot = (slot + 1) & mask
    tkeys[slot] = key
    tvals[slot] = value


@njit(cache=True, nogil=True)
def table_rebuild(tkeys: np.ndarray, tvals: np.ndarray, row_keys: np.ndarray, n_rows: int) -> None:
    """Refill a table from the key column of the rows (rows whose key is 0 are free; rows that
    share a key each get an entry)."""
    tkeys[:] = 0
    tvals[:] = -1
    for row in range(n_rows):
        k = row_keys[row]
        if k != 0:
            table_append(tkeys, tvals, k, row)


@njit(cache=True, nogil=True, inline="always")
def cache_set(ckeys: np.ndarray, key: int) -> int:
    """The first entry of the set of ``key``."""
    nsets = np.int64(len(ckeys) // CACHE_WAYS)
    return (np.int64(mix64(np.uint64(key) ^ GOLDEN)) & (nsets - 1)) * CACHE_WAYS


@njit(cache=True, nogil=True, inline="always")
def cache_slot(ckeys: np.ndarray, key: int) -> tuple[int, bool]:
    """The entry holding ``key``, or the first entry of its set and False."""
    base = cache_set(ckeys, key)
    for w in range(CACHE_WAYS):
        if ckeys[base + w] == key:
            return base + w, True
    return base, False


@njit(cache=True, nogil=True, inline="always")
def cache_victim(ckeys: np.ndarray, cvals: np.ndarray, base: int) -> int:
    """The entry of the set at ``base`` to replace: an empty one, else the oldest."""
    best = base
    for w in range(CACHE_WAYS):
        e = base + w
        if ckeys[e] == 0:
            return e
        if cvals[e, 0] < cvals[best, 0]:
            best = e
    return best


@njit(cache=True, nogil=True, inline="always")
def remember_failure(
    start: int, end: int, f_start: int, f_end: int, gap: int
) -> tuple[int, int, bool]:
    """Fold a failure (request at ``f_start``, response at ``f_end``) into a remembered retry
    window: the requests from ``start`` to ``end + gap`` are retries (``start`` 0: none yet).

    The window is one connected piece of the union of the failures' windows
    ``[f_start, f_end + gap]``: a failure whose window meets it widens it (earliest start,
    latest end), so a fast failure during a slow one keeps the slow one's retries; a failure
    after it starts a new piece (requests arrive in request-time order, so none can fall in
    the old piece any more). Exact for requests in request-time order. The bound: a late
    failure, older than the piece and apart from it, is forgotten (the late requests in its
    window do not count) and reported by the third value, True.
    """
    if start == 0:
        return f_start, f_end, False
    if f_start <= end + gap and f_end + gap >= start:
        return min(start, f_start), max(end, f_end), False
    if f_start > end + gap:
        return f_start, f_end, False
    return start, end, True


@njit(cache=True, nogil=True, inline="always")
def in_failure_window(start: int, end: int, t: int, gap: int) -> bool:
    """Whether a request at ``t`` falls in the remembered window ``[start, end + gap]``."""
    return start > 0 and t >= start and t <= end + gap


# ---------------------------------------------------------------------------------------------
# Prefetching: a hint to the CPU that a cache line is about to be read or written
# ---------------------------------------------------------------------------------------------


def _prefetch(typingctx: Any, arr: Any, index: Any) -> Any:
    """Ask the CPU to bring the cache line of ``arr[index]`` (``index`` a tuple of as many
    integers as ``arr`` has dimensions) in, for writing. Nothing else happens: no bounds check,
    no fault (a hint of an address outside the array is harmless). LLVM's ``llvm.prefetch``."""
    sig = types.void(arr, index)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty, idxty = signature.args
        ary = context.make_array(aryty)(context, builder, args[0])
        inds = [
            context.cast(builder, v, t, types.intp)
            for v, t in zip(cgutils.unpack_tuple(builder, args[1]), idxty.types, strict=True)
        ]
        ptr = cgutils.get_item_pointer2(
            context,
            builder,
            data=ary.data,
            shape=cgutils.unpack_tuple(builder, ary.shape),
            strides=cgutils.unpack_tuple(builder, ary.strides),
            layout=aryty.layout,
            inds=inds,
            wraparound=False,
            boundscheck=False,
        )
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(1), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


prefetch: Any = intrinsic(_prefetch)


# ---------------------------------------------------------------------------------------------
# Latency buckets by lookup table (``primitives.latency_bucket`` without its log2)
# ---------------------------------------------------------------------------------------------

_CELL_BITS: Final = 4  # bits after the leading one that pick a cell: cells narrower than buckets
_MAX_LATENCY: Final = (1 << 32) - 1  # latency columns are uint32


def _bucket_tables() -> tuple[np.ndarray, np.ndarray]:
    """``first[cell]``: the bucket of a cell's smallest latency; ``upper[b]``: the largest
    latency of bucket ``b`` (by ``primitives.latency_bucket`` itself, so the two agree)."""
    upper = np.zeros(LAT_BUCKETS + 2, dtype=np.int64)
    for b in range(LAT_BUCKETS + 1):
        lo, hi = 0, _MAX_LATENCY + 1  # the first latency whose bucket is > b
        while lo < hi:
            mid = (lo + hi) // 2
            if latency_bucket(mid) > b:
                hi = mid
            else:
                lo = mid + 1
        upper[b] = lo - 1
    upper[LAT_BUCKETS] = upper[LAT_BUCKETS + 1] = np.iinfo(np.int64).max
    cells = 1 << _CELL_BITS
    first = np.zeros((65 * cells,), dtype=np.int64)
    for cell in range(len(first)):
        bl, top = divmod(cell, cells)
        if bl <= _CELL_BITS:  # small latencies: the cell is the latency itself
            lat = cell if cell < cells else 0
        else:
            lat = (cells | top) << (bl - 1 - _CELL_BITS) if bl <= 32 else 0
        first[cell] = latency_bucket(lat) if lat <= _MAX_LATENCY else LAT_BUCKETS
    return first, upper


_FIRST, _UPPER = _bucket_tables()


@njit(cache=True, nogil=True, inline="always")
def bucket_of_latency(latency_us: int) -> int:
    """``primitives.latency_bucket(latency_us)`` by two table reads: the cell of the latency
    (its bit length and the next 4 bits) gives a bucket, one step up when a boundary falls in
    the cell (the cells are narrower than the buckets)."""
    lat = np.int64(latency_us)
    if lat <= 0:
        return np.int64(0)
    if lat < (1 << _CELL_BITS):
        b = _FIRST[lat]
    else:
        bl = 64 - np.int64(leading_zeros(np.uint64(lat)))
        b = _FIRST[(bl << _CELL_BITS) | ((lat >> (bl - 1 - _CELL_BITS)) & ((1 << _CELL_BITS) - 1))]
    while lat > _UPPER[b]:
        b += 1
    return b


# ---------------------------------------------------------------------------------------------
# Rows: their identity, creation, and the kernel's first pass that finds them
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def api_key(name: int, version: int) -> int:
    """Key of an API row in its table: (name gid << 32) | version gid. Both kernel passes (and
    ``State.ensure_api``) key API rows by it: change it here."""
    return (np.int64(name) << 32) | np.int64(version)


@njit(cache=True, nogil=True, inline="always")
def sub_key(app: int, api_row: int) -> int:
    """Key of a subscription row in its table: (application gid << 32) | API row."""
    return (np.int64(app) << 32) | np.int64(api_row)


@njit(cache=True, nogil=True, inline="always")
def route_key(
    api_row: int, resource: int, method: int, status: int, error_code: int, channel: int, thr: int
) -> int:
    """Identity of a route row: API x resource x method x status x WSO2 error code x channel x
    throttled. API row (< 2^16), resource id (< 2^31), method (< 16) and status (< 1024) are
    packed in one key; a WSO2 error code, a channel but the first, or throttling are folded in
    by a hash. The key is not unique (a method >= 16, a status >= 1024, an API row >= 2^18 or
    the hash can make two identities share it): ``find_route`` checks the stored identity."""
    me = method if method < 16 else 15
    st = status if status < 1024 else 0
    k = ((resource << 32) | (api_row << 14) | (me << 10) | st) + 1
    if error_code == 0 and channel == 0 and thr == 0:
        return k
    return nonzero_key(combine(combine(combine(np.uint64(k), error_code), channel), thr))


@njit(cache=True, nogil=True)
def find_route(
    routes: RouteGroup,
    key: int,
    api_row: int,
    resource: int,
    method: int,
    status: int,
    error_code: int,
    channel: int,
    thr: int,
) -> int:
    """The route row of exactly that identity (``key`` its ``route_key``), or -1: the entries
    of ``key`` are probed until one's row stores the same API row, resource, method, status,
    error code, channel and throttling."""
    route_i64, route_tkeys, route_tvals = routes[0], routes[2], routes[3]
    mask = np.int64(len(route_tkeys) - 1)
    slot = np.int64(mix64(np.uint64(key))) & mask
    while True:
        k = route_tkeys[slot]
        if k == 0:
            return np.int64(-1)
        if k == key:
            row = np.int64(route_tvals[slot])
            r = route_i64[row]
            if (
                r[R_API] == api_row
                and r[R_RESOURCE] == resource
                and r[R_METHOD] == method
                and r[R_STATUS] == status
                and r[R_ERROR_CODE] == error_code
                and r[R_CHANNEL] == channel
                and r[R_THROTTLED] == thr
            ):
                return row
        slot = (slot + 1) & mask


@njit(cache=True, nogil=True)
def init_sub_row(subs: SubGroup, row: int, key: int, app: int, api_row: int) -> None:
    """(Re)initialise subscription row ``row`` for ``key``: zeroed, its generation + 1."""
    sub_i64, sub_sw, sub_rw, sub_hour, sub_day, sub_hist, sub_rate = subs[:7]
    cls_first, cls_last, cls_evid = subs[7:10]
    gen = sub_i64[row, S_GEN]
    sub_i64[row, :] = 0
    sub_sw[row] = 0
    sub_rw[row] = 0
    sub_hour[row] = 0
    sub_day[row] = 0
    sub_hist[row] = 0
    sub_rate[row] = 0
    cls_first[row] = 0
    cls_last[row] = 0
    cls_evid[row] = 0.0
    sub_i64[row, S_KEY] = key
    sub_i64[row, S_APP] = app
    sub_i64[row, S_API] = api_row
    sub_i64[row, S_GEN] = gen + 1


@njit(cache=True, nogil=True)
def alloc_sub(sub_i64: np.ndarray, sub_free: np.ndarray, sub_meta: np.ndarray) -> int:
    """A free subscription row, or -1 when the arrays are full. sub_meta: [n_free, high]."""
    if sub_meta[0] > 0:
        sub_meta[0] -= 1
        return np.int64(sub_free[sub_meta[0]])
    if sub_meta[1] < sub_i64.shape[0]:
        row = sub_meta[1]
        sub_meta[1] += 1
        return np.int64(row)
    return np.int64(-1)


@njit(cache=True, nogil=True)
def init_api_row(apis: ApiGroup, row: int, key: int, name: int, version: int) -> None:
    """(Re)initialise API row ``row`` for ``key`` (name, version)."""
    api_i64, api_hour, api_hist, api_cls_first, api_cls_last, api_cls_evid = apis[:6]
    api_i64[row, :] = 0
    api_hour[row] = 0
    api_hist[row] = 0
    api_cls_first[row] = 0
    api_cls_last[row] = 0
    api_cls_evid[row] = 0.0
    api_i64[row, A_KEY] = key
    api_i64[row, A_NAME] = name
    api_i64[row, A_VERSION] = version


@njit(cache=True, nogil=True)
def new_route_row(
    routes: RouteGroup,
    key: int,
    api_row: int,
    resource: int,
    method: int,
    status: int,
    channel: int,
    error_code: int,
    throttled: int,
) -> int:
    """A new route row for ``key`` (``route_key`` of the other arguments), or -1 when full."""
    route_i64, route_hist, route_tkeys, route_tvals, route_meta = routes
    if route_meta[1] >= route_i64.shape[0]:
        return np.int64(-1)
    row = route_meta[1]
    route_meta[1] += 1
    route_i64[row, :] = 0
    route_hist[row] = 0
    route_i64[row, R_KEY] = key
    route_i64[row, R_API] = api_row
    route_i64[row, R_RESOURCE] = resource
    route_i64[row, R_METHOD] = method
    route_i64[row, R_STATUS] = status
    route_i64[row, R_CHANNEL] = channel
    route_i64[row, R_ERROR_CODE] = error_code
    route_i64[row, R_THROTTLED] = throttled
    table_append(route_tkeys, route_tvals, key, row)
    return row


# the rows and figures of an event resolved by the first pass (``resolve_chunk``), per event of
# a chunk: resolved[i - c0, X_*]
X_API: Final = 0  # API row, -1: not found (the second pass finds or creates it)
X_SUB: Final = 1  # subscription row, -1: not found or no application
X_ROUTE: Final = 2  # route row, -1: not found
X_LAT: Final = 3  # latency bucket
X_SW: Final = 4  # short-window slot (t // width)
X_RW: Final = 5  # retry-window slot
X_FIELDS: Final = 8
CHUNK: Final = 512  # events per chunk: both passes of a chunk, then the next
AHEAD: Final = 8  # the second pass prefetches the rows of the event this far ahead
DETECT_AHEAD: Final = 4  # and the repeat detector's set of the event this far ahead


@group_kernel
def resolve_chunk(
    events: EventGroup,
    c0: int,
    c1: int,
    subs: SubGroup,
    apis: ApiGroup,
    routes: RouteGroup,
    params: np.ndarray,
    resolved: np.ndarray,
) -> None:
    """Pass 1 over events ``c0..c1``: the rows that exist already (nothing created, nothing
    changed), the latency bucket and the window slots of each event. Independent per event, so
    the processor overlaps the cache misses of the table lookups."""
    ts, app = events[0], events[1]
    api_name, api_version = events[4], events[5]
    resource, method, status, error_code, latency = events[7:12]
    flags, channel = events[18], events[19]
    sub_tkeys, sub_tvals = subs[10], subs[11]
    api_tkeys, api_tvals = apis[6], apis[7]
    sw_slot = np.int64(params[P_SW_SLOT_US])
    rw_slot = np.int64(params[P_RW_SLOT_US])
    for i in range(c0, c1):
        x = i - c0
        t = np.int64(ts[i])
        resolved[x, X_LAT] = bucket_of_latency(latency[i])
        resolved[x, X_SW] = t // sw_slot
        resolved[x, X_RW] = t // rw_slot
        a_name = np.int64(api_name[i])
        arow = np.int64(-1)
        if a_name != 0:
            arow = table_find(api_tkeys, api_tvals, api_key(a_name, api_version[i]))
        srow = np.int64(-1)
        rrow = np.int64(-1)
        if arow >= 0:
            ap = np.int64(app[i])
            if ap != 0:
                srow = table_find(sub_tkeys, sub_tvals, sub_key(ap, arow))
            ec = np.int64(error_code[i])
            thr = np.int64(1) if is_throttled(ec, np.int64(flags[i])) else np.int64(0)
            res = np.int64(resource[i])
            me = np.int64(method[i])
            st = np.int64(status[i])
            ch = np.int64(channel[i])
            rkey = route_key(arow, res, me, st, ec, ch, thr)
            rrow = find_route(routes, rkey, arow, res, me, st, ec, ch, thr)
        resolved[x, X_API] = arow
        resolved[x, X_SUB] = srow
        resolved[x, X_ROUTE] = rrow


@njit(cache=True, nogil=True)
def rekey_routes(route_i64: np.ndarray, n_rows: int) -> None:
    """Recompute the key of route rows 1..n_rows-1 from their stored identity (after their
    API rows moved: the key packs the API row). Route 0, the overflow, keeps key 0."""
    for row in range(1, n_rows):
        r = route_i64[row]
        r[R_KEY] = route_key(
            r[R_API], r[R_RESOURCE], r[R_METHOD], r[R_STATUS], r[R_ERROR_CODE], r[R_CHANNEL],
            r[R_THROTTLED],
        )  # fmt: skip
