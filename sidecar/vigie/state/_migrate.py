"""Migration of a snapshot written with another state layout (an upgrade of vigie).

A snapshot's ``meta["layout"]`` holds every integer constant of ``state.layout`` as it was
when the snapshot was written. The columns of the field arrays are named by those constants:
``sub_i64`` by ``S_*`` (width ``S_FIELDS``), ``api_i64`` by ``A_*``, ``route_i64`` by ``R_*``,
``g`` by ``G_*``, the per-class arrays by ``C_*`` (width ``N_WINDOWED_CLASSES``). Migrating
copies every column whose name is in both layouts to its index in this one, leaves the new
columns zero, then recomputes the derived ones (the ring slot bitmaps ``S_SW_MASK`` /
``S_RW_MASK``, from the rings). A column is one index wide except the ranges of ``SPANS``.

What cannot be migrated is refused (``MigrationError``, naming the constant): a column of the
snapshot that this layout does not have (removed or renamed: its figures would be lost) and
any other constant whose value changed (a ring length, ``LAT_BUCKETS``, ...: it changes the
meaning of what the arrays hold, not where a figure sits).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vigie.state import layout as L
from vigie.state._windows import ring_masks


class MigrationError(Exception):
    """The snapshot's layout cannot be migrated to this one; the message says why."""


@dataclass(frozen=True, slots=True)
class Family:
    """Columns named ``prefix*`` along ``axis`` of ``arrays``, ``width`` columns in all."""

    prefix: str
    width: str
    arrays: tuple[str, ...]
    axis: int


FAMILIES: Final = (
    Family("S_", "S_FIELDS", ("sub_i64",), 1),
    Family("A_", "A_FIELDS", ("api_i64",), 1),
    Family("R_", "R_FIELDS", ("route_i64",), 1),
    Family("G_", "G_FIELDS", ("g",), 0),
    Family("C_", "N_WINDOWED_CLASSES", ("cls_first", "cls_last", "cls_evid"), 1),
)
# columns that are ranges: their width, by the name of the constant that gives it
SPANS: Final = {
    "S_SW_SUM": "N_SW",
    "S_RW_SUM": "N_RW",
    "S_CH_REQ": "MAX_CHANNELS",
    "S_DC_SUM": "MAX_CHANNELS",
}
# columns computed from other arrays: recomputed after a migration, never copied
DERIVED: Final = frozenset({"S_SW_MASK", "S_RW_MASK"})
# constants that describe no stored array (kernel return codes, parameters computed from the
# settings on start): they may change freely
UNSTORED_PREFIXES: Final = ("STOP_", "P_")


def signature() -> dict[str, int]:
    """Every integer constant of this layout (what a snapshot's ``meta["layout"]`` holds)."""
    return {k: v for k, v in vars(L).items() if k.isupper() and isinstance(v, int)}


def layout_id(sig: Mapping[str, int]) -> str:
    """A short name of a layout, for messages."""
    text = json.dumps(sorted(sig.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _columns(sig: Mapping[str, int], fam: Family) -> dict[str, int]:
    return {
        k: v
        for k, v in sig.items()
        if k.startswith(fam.prefix) and k != fam.width and 0 <= v < sig.get(fam.width, 0)
    }


def _span(sig: Mapping[str, int], name: str) -> int:
    return int(sig[SPANS[name]]) if name in SPANS else 1


def _is_column(name: str) -> bool:
    return any(name.startswith(f.prefix) or name == f.width for f in FAMILIES)


def check(old: Mapping[str, Any]) -> None:
    """Raise ``MigrationError`` when the layout ``old`` cannot be migrated to this one."""
    new = signature()
    if not isinstance(old, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int) for k, v in old.items()
    ):
        raise MigrationError("no readable layout in the snapshot")
    for fam in FAMILIES:
        if fam.width not in old:
            raise MigrationError(f"the snapshot's layout has no {fam.width}")
    for name in sorted(old):
        if name.startswith(UNSTORED_PREFIXES) or _is_column(name):
            continue
        if name in new and new[name] != old[name]:
            raise MigrationError(f"{name} changed ({old[name]} -> {new[name]})")
    for fam in FAMILIES:
        new_cols = _columns(new, fam)
        for name, index in sorted(_columns(old, fam).items(), key=lambda kv: kv[1]):
            if name in DERIVED:
                continue
            if name not in new_cols:
                raise MigrationError(f"column {name} (index {index}) is not in this layout")
            if index + _span(old, name) > old[fam.width]:
                raise MigrationError(f"column {name} goes past {fam.width} in the snapshot")


def migrate(old: Mapping[str, int], arrays: dict[str, npt.NDArray[Any]]) -> int:
    """Remap ``arrays`` (in place: the dict's entries are replaced) from layout ``old`` to
    this one; return how many columns were added. Raise ``MigrationError`` when it cannot."""
    check(old)
    new = signature()
    added = 0
    for fam in FAMILIES:
        old_cols, new_cols = _columns(old, fam), _columns(new, fam)
        added += sum(_span(new, k) for k in new_cols if k not in old_cols)
        for name in fam.arrays:
            if name not in arrays:
                raise MigrationError(f"array {name} is missing")
            src = arrays[name]
            if src.ndim <= fam.axis or src.shape[fam.axis] != old[fam.width]:
                raise MigrationError(f"array {name} is not {old[fam.width]} columns wide")
            shape = list(src.shape)
            shape[fam.axis] = new[fam.width]
            dst = np.zeros(shape, dtype=src.dtype)
            for col, o in old_cols.items():
                if col in DERIVED:
                    continue
                n, w = new_cols[col], _span(new, col)
                take = [slice(None)] * src.ndim
                put = [slice(None)] * src.ndim
                take[fam.axis], put[fam.axis] = slice(o, o + w), slice(n, n + w)
                dst[tuple(put)] = src[tuple(take)]
            arrays[name] = dst
    _derive(arrays)
    return added


def _derive(arrays: dict[str, npt.NDArray[Any]]) -> None:
    """Recompute the derived columns of ``DERIVED`` from the arrays they come from."""
    sub = np.ascontiguousarray(arrays["sub_i64"])
    sw, rw = arrays.get("sub_sw"), arrays.get("sub_rw")
    for ring, shape in ((sw, (L.SHORT_SLOTS, L.N_SW)), (rw, (L.RETRY_SLOTS, L.N_RW))):
        if ring is None or ring.dtype != np.int32 or ring.shape != (len(sub), *shape):
            raise MigrationError("the ring arrays do not match the subscription rows")
    assert sw is not None and rw is not None
    ring_masks(sub, np.ascontiguousarray(sw), np.ascontiguousarray(rw), len(sub))
    arrays["sub_i64"] = sub
