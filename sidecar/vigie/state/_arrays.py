"""The state's arrays: their sizes (``Capacity``), per-row shapes and dtypes, and the episode
record. ``State`` allocates them; the groups the kernels take are named in ``_kernels``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from vigie.state import layout as L

MAX_EPISODES_PER_ROW: Final = 64
EPISODE_BUFFER: Final = 4096
MIN_SUB_ROWS: Final = 64


@dataclass(frozen=True, slots=True)
class Capacity:
    """Sizes of the state. ``memory_cap_bytes`` bounds all its arrays (``State.nbytes``)."""

    memory_cap_bytes: int = 1 << 30
    initial_subscriptions: int = 1024
    initial_apis: int = 256
    max_apis: int = 65_536
    max_routes: int = 65_536
    detector_entries: int = 1 << 16  # per detector cache, a power of two


# arrays of a subscription row and their per-row shape / dtype
SUB_ARRAYS: Final[dict[str, tuple[tuple[int, ...], Any]]] = {
    "sub_i64": ((L.S_FIELDS,), np.int64),
    "sub_sw": ((L.SHORT_SLOTS, L.N_SW), np.int32),
    "sub_rw": ((L.RETRY_SLOTS, L.N_RW), np.int32),
    "sub_hour": ((L.HOUR_SLOTS,), np.int32),
    "sub_day": ((L.DAY_SLOTS, L.MAX_CHANNELS), np.int32),
    "sub_hist": ((L.LAT_WIDTH,), np.int64),
    "sub_rate": ((L.RATE_BUCKETS,), np.int32),
    "cls_first": ((L.N_WINDOWED_CLASSES,), np.int64),
    "cls_last": ((L.N_WINDOWED_CLASSES,), np.int64),
    "cls_evid": ((L.N_WINDOWED_CLASSES, L.N_EVIDENCE), np.float64),
}
API_ARRAYS: Final[dict[str, tuple[tuple[int, ...], Any]]] = {
    "api_i64": ((L.A_FIELDS,), np.int64),
    "api_hour": ((L.HOUR_SLOTS,), np.int32),
    "api_hist": ((L.LAT_WIDTH,), np.int64),
    "api_cls_first": ((1,), np.int64),
    "api_cls_last": ((1,), np.int64),
    "api_cls_evid": ((1, L.N_EVIDENCE), np.float64),
}
PLAIN_ARRAYS: Final = ("sub_free", "sub_meta", "api_meta", "route_meta", "g", "app_channel")
DETECTOR_ARRAYS: Final = ("retry_keys", "retry_vals", "repeat_keys", "repeat_vals")
ROUTE_ARRAYS: Final[dict[str, tuple[tuple[int, ...], Any]]] = {
    "route_i64": ((L.R_FIELDS,), np.int64),
    "route_hist": ((L.LAT_WIDTH,), np.int64),
}


def sub_row_bytes() -> int:
    """Bytes one subscription row costs: its arrays, its hash-table share and its baselines'
    arrays (``_baselines.SUB_SPEC``, grown with the rows), so that ``memory_cap_bytes`` bounds
    all of it."""
    from vigie.state._baselines import sub_row_bytes as baseline_row_bytes  # noqa: PLC0415 - it imports this module

    per = sum(int(np.prod(shape)) * int(np.dtype(dt).itemsize) for shape, dt in SUB_ARRAYS.values())
    return per + 2 * (8 + 4) + 4 + baseline_row_bytes()


@dataclass(slots=True)
class Episode:
    class_name: str
    first_us: int
    last_us: int
