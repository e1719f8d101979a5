"""Jitted hash tables of the state: the row tables and the detector caches.

Row tables (a key -> a row) are open-addressing tables: linear probing, keys != 0, load factor
<= 1/2, rebuilt rather than deleted from. The route table's key is a hash of the identity, so
two routes may share a key: each has its own entry (``table_append``) and the caller checks the
row's stored identity on a match (``vigie.state._kernels.find_route``).

The detector caches (retries, repeated reads) are set-associative, keyed by a 64-bit hash: a
new key replaces the empty or oldest entry of its set.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.extending import intrinsic
from numba.cpython.unsafe.numbers import leading_zeros

from vigie.state.layout import CACHE_WAYS, LAT_BUCKETS
from vigie.state.primitives import GOLDEN, latency_bucket, mix64


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
def cache_slot(ckeys: np.ndarray, key: int) -> tuple[int, bool]:
    """The entry holding ``key``, or the first entry of its set and False."""
    nsets = np.int64(len(ckeys) // CACHE_WAYS)
    base = (np.int64(mix64(np.uint64(key) ^ GOLDEN)) & (nsets - 1)) * CACHE_WAYS
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


@intrinsic
def prefetch(typingctx: Any, arr: Any, index: Any) -> Any:
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
