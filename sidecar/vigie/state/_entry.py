"""The state kernels' entry point from Python: ``apply_events`` with its groups passed flat.

Numba types a flat array argument on its fast path; an array inside a tuple costs some 30 ns
more per call, about 2 us for the 58 arrays of a batch, which is 15% of an 8-event batch (a
gateway flushing every few milliseconds). So ``State.apply`` passes the groups of ``_groups``
unpacked, in their order, and this function regroups them for ``apply_events`` (the call
between two jitted functions costs nothing). Its parameters are the groups' members by
position: ``e`` events (then ``start``), ``s`` subscription rows, ``a`` API rows, ``r`` route
rows, ``d`` detectors, then app_channel, params, ``o`` the output group and the scratch of
the kernel's first pass.

Both this function and ``apply_events`` are compiled without Numba's reference counting
(``_groups.group_kernel``): with it, every array taken out of a group is counted in and out
on each call (two atomic operations, some 20 ns an array: 1.3 us a call, 12-16% of an
8-event batch). They allocate nothing (Numba refuses to compile an allocation without it),
and the arrays live in ``State`` for the whole call.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np

from vigie.state._groups import group_kernel
from vigie.state._kernels import apply_events

Arr: TypeAlias = np.ndarray


# fmt: off
@group_kernel
def apply_flat(
    e0: Arr, e1: Arr, e2: Arr, e3: Arr, e4: Arr, e5: Arr, e6: Arr, e7: Arr,
    e8: Arr, e9: Arr, e10: Arr, e11: Arr, e12: Arr, e13: Arr, e14: Arr, e15: Arr,
    e16: Arr, e17: Arr, e18: Arr, e19: Arr,
    start: int,
    s0: Arr, s1: Arr, s2: Arr, s3: Arr, s4: Arr, s5: Arr, s6: Arr, s7: Arr,
    s8: Arr, s9: Arr, s10: Arr, s11: Arr, s12: Arr, s13: Arr,
    a0: Arr, a1: Arr, a2: Arr, a3: Arr, a4: Arr, a5: Arr, a6: Arr, a7: Arr,
    a8: Arr,
    r0: Arr, r1: Arr, r2: Arr, r3: Arr, r4: Arr,
    d0: Arr, d1: Arr, d2: Arr, d3: Arr,
    app_channel: Arr, params: Arr,
    o0: Arr, o1: Arr, o2: Arr,
    resolved: Arr,
) -> tuple[int, int]:
    """``apply_events(events, start, subs, apis, routes, detectors, app_channel, params, out,
    resolved)``."""
    return apply_events(
        (
            e0, e1, e2, e3, e4, e5, e6, e7, e8, e9,
            e10, e11, e12, e13, e14, e15, e16, e17, e18, e19,
        ),
        start,
        (
            s0, s1, s2, s3, s4, s5, s6, s7, s8, s9,
            s10, s11, s12, s13,
        ),
        (a0, a1, a2, a3, a4, a5, a6, a7, a8),
        (r0, r1, r2, r3, r4),
        (d0, d1, d2, d3),
        app_channel,
        params,
        (o0, o1, o2),
        resolved,
    )
# fmt: on
