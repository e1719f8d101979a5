"""Waiting on real processes: poll a condition with a bound, never sleep blindly.

Tests never sleep to move time (an injected clock moves it). What they wait for in a real
process (a sidecar serving, a batch acknowledged, a row stored) is polled with ``wait_for``
until it holds or a generous bound passes; the bound is a failure, named by ``what``, never a
figure the test asserts. Bounds are generous because the suite must pass on a loaded machine
(several runs side by side, load 10+), where a step that takes 50 ms alone may take 30 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.05  # between two looks at a real process; never a figure of the test


class Timeout(AssertionError):
    """A condition a test waited for did not hold within its bound."""


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float,
    what: str,
    every: float = POLL_S,
) -> T:
    """Poll ``predicate`` until it returns something true, and return that; after ``timeout``
    seconds (monotonic) fail with ``what`` and the last value seen. The predicate is always
    tried at least twice: once at once, once at the bound (a process that was starved of CPU
    during the whole bound is given its last chance)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            break
        time.sleep(min(every, max(0.0, deadline - time.monotonic())))
    last = predicate()
    if last:
        return last
    raise Timeout(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")


# the deadline of a test's call to a real sidecar's admin service: a call that answers in
# milliseconds alone can wait tens of seconds behind a flood, a snapshot or other runs' work
RPC_S = 120.0
