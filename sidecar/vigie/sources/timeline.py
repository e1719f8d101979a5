"""A log's own timeline: a line dated far from the lines around it is an outlier.

A replay has no clock to hold a line's time against (the log may be years old), only the log
itself: a line is refused when it is further from the median of the ``2 * HALF_WINDOW`` lines
around it (in file order) than ``max_skew_us`` plus ``SPREADS`` times their interquartile range.
The spread lets a sparse log through (a quiet night's lines hours apart: the neighbours spread
as much) and a jump (a gateway restarted later: the neighbours straddle it); what is refused is
a line its neighbours disagree with, e.g. one dated 2999 or 1970 among lines of 2026, and a few
such lines in a row (the quartiles ignore a quarter of the neighbours).

The first and last ``HALF_WINDOW`` lines of a file have no lines before (after) them to vouch
for a jump: a log that starts with a few lines before a quiet spell, or ends soon after one.
There a line the mirrored window refuses is kept when it is in file order with the line kept
next to it on the inner side and no further from it than a day (``EDGE_GAP_US``) or the largest
gap between consecutive accepted lines the file shows (``max_gap_us``): a quiet spell. A line
dated 2999 or 1970, or one out of file order, is still refused.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

HALF_WINDOW: Final = 8
SPREADS: Final = 3  # times the neighbours' interquartile range a line may also be away
EDGE_GAP_US: Final = 86_400_000_000  # a quiet spell a file's first or last lines may follow


class Timeline:
    """The running check of one file: feed it each chunk's times in file order."""

    def __init__(self, max_skew_us: int) -> None:
        self.max_skew_us = max_skew_us
        self._before = np.empty(0, dtype=np.int64)  # the last accepted times of the file
        self.max_gap_us = 0  # the largest step forward between consecutive accepted lines
        self.refused = 0

    def outliers(self, times: npt.NDArray[np.int64], final: bool = True) -> npt.NDArray[np.bool_]:
        """Which of ``times`` (lines of the file, in file order) are outliers. The last
        accepted lines before count as neighbours. Past the end of the file (``final``) the
        window is mirrored (the lines before stand for those there are not); before it, the
        caller judges only ``judged(len(times), final)`` lines and gives the others again with
        the next lines, so that no line is judged without the lines after it."""
        n = len(times)
        ctx = np.concatenate([self._before, times.astype(np.int64)])
        k = len(self._before)
        if len(ctx) < 3:  # nothing to hold them against
            out = np.zeros(n, dtype=np.bool_)
        else:
            padded = np.pad(ctx, HALF_WINDOW, mode="reflect")
            windows = sliding_window_view(padded, 2 * HALF_WINDOW + 1)[k:]
            # the line's neighbours, in order: their median and quartiles (16 of them)
            around = np.sort(np.delete(windows, HALF_WINDOW, axis=1), axis=1)
            h = HALF_WINDOW
            median = (around[:, h - 1] + around[:, h]) // 2
            spread = around[:, h + h // 2] - around[:, h // 2 - 1]  # the quartiles
            out = np.abs(ctx[k:] - median) > self.max_skew_us + SPREADS * spread
        m = self.judged(n, final)
        out = out[:m]
        if out.any():
            self._keep_quiet_spells(ctx, k, out, final)
        kept = ctx[k : k + m][~out]
        steps = np.diff(np.concatenate([self._before[-1:], kept]))
        if len(steps):
            self.max_gap_us = max(self.max_gap_us, int(steps.max()))
        self._before = np.concatenate([self._before, kept])[-HALF_WINDOW:]
        self.refused += int(out.sum())
        return out

    def _keep_quiet_spells(
        self, ctx: npt.NDArray[np.int64], k: int, out: npt.NDArray[np.bool_], final: bool
    ) -> None:
        """The file's first and last lines (judged on a mirrored window, fewer than
        ``HALF_WINDOW`` real lines on one side): a refused line in file order with the line kept
        next to it on the inner side, and no further from it than ``EDGE_GAP_US`` or the file's
        largest gap so far, is kept."""
        m = len(out)
        start = max(0, min(m, HALF_WINDOW - len(self._before)))  # [0, start): the first lines
        end = max(start, m - HALF_WINDOW) if final else m  # [end, m): the last lines
        inner = ctx[k + start : k + end][~out[start:end]]
        steps = np.diff(np.concatenate([self._before, inner]))
        gap = max(EDGE_GAP_US, self.max_gap_us, int(steps.max()) if len(steps) else 0)
        nxt = int(inner[0]) if len(inner) else None
        for i in range(start - 1, -1, -1):  # the first lines, from the inside out
            t = int(ctx[k + i])
            if out[i] and nxt is not None and 0 <= nxt - t <= gap:
                out[i] = False
            if not out[i]:
                nxt = t
        head = np.concatenate([self._before, ctx[k : k + end][~out[:end]]])
        prev = int(head[-1]) if len(head) else None
        for i in range(end, m):  # the last lines
            t = int(ctx[k + i])
            if out[i] and prev is not None and 0 <= t - prev <= gap:
                out[i] = False
            if not out[i]:
                prev = t  # the gap itself does not grow here: no walking ahead step by step

    @staticmethod
    def judged(n: int, final: bool) -> int:
        """How many of ``n`` lines ``outliers`` judges: all at the end of the file, else all
        but the last ``HALF_WINDOW`` (their lines after are not read yet)."""
        return n if final else max(0, n - HALF_WINDOW)
