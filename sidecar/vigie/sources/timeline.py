"""A log's own timeline: a line dated far from the lines around it is an outlier.

A replay has no clock to hold a line's time against (the log may be years old), only the log
itself: a line is refused when it is further from the median of the ``2 * HALF_WINDOW`` lines
around it (in file order) than ``max_skew_us`` plus ``SPREADS`` times their interquartile range.
The spread lets a sparse log through (a quiet night's lines hours apart: the neighbours spread
as much) and a jump (a gateway restarted later: the neighbours straddle it); what is refused is
a line its neighbours disagree with, e.g. one dated 2999 or 1970 among lines of 2026, and a few
such lines in a row (the quartiles ignore a quarter of the neighbours).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

HALF_WINDOW: Final = 8
SPREADS: Final = 3  # times the neighbours' interquartile range a line may also be away


class Timeline:
    """The running check of one file: feed it each chunk's times in file order."""

    def __init__(self, max_skew_us: int) -> None:
        self.max_skew_us = max_skew_us
        self._before = np.empty(0, dtype=np.int64)  # the last accepted times of the file
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
        self._before = np.concatenate([self._before, ctx[k : k + m][~out]])[-HALF_WINDOW:]
        self.refused += int(out.sum())
        return out

    @staticmethod
    def judged(n: int, final: bool) -> int:
        """How many of ``n`` lines ``outliers`` judges: all at the end of the file, else all
        but the last ``HALF_WINDOW`` (their lines after are not read yet)."""
        return n if final else max(0, n - HALF_WINDOW)
