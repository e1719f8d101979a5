"""Time, injected: every service takes a ``Clock`` so that tests move time instead of sleeping.

Wall time (seconds since the Unix epoch) is for what the contract stamps: event times,
directive expiry, audit entries, ``started_at``. Monotonic time (seconds, arbitrary origin) is
for intervals: how long since the last refresh, when the next snapshot is due. The Java
handler's ``io.vigie.gateway.Clock`` is the same pair.
"""

from __future__ import annotations

import time
from typing import Final, Protocol


class Clock(Protocol):
    def wall(self) -> float:
        """Seconds since the Unix epoch (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes back."""
        ...


class SystemClock:
    """The system's clocks."""

    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM: Final[Clock] = SystemClock()


def wall_us(clock: Clock) -> int:
    """The clock's wall time in microseconds (the unit of every time on the wire)."""
    return int(clock.wall() * 1e6)
