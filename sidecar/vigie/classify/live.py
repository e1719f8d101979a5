"""``LiveState``: what the policy engine and the data store read of a running sidecar.

A narrow protocol instead of the process object: the state and the one lock that guards it.
``vigie.server.Sidecar`` is one; a test can hand in any object with these two (e.g. a
``threading.Lock`` and a ``State`` it filled). Readers that need more than a few fields copy
the state with ``copy_chunked``: a range of rows under the lock at a time, so ingestion waits
for one range, never for the reader. ``export/_collect.Source`` is the export's own, wider view.

It lives here, in ``classify``, because that is the lowest layer above ``state`` that all its
users (policy, store, export, server) sit on.
"""

from __future__ import annotations

import threading
from typing import Protocol

from vigie.state.engine import State


class LiveState(Protocol):
    @property
    def lock(self) -> threading.Lock:
        """Held by ingestion while a batch is applied; hold it to read ``state``."""
        ...

    @property
    def state(self) -> State: ...


def copy_chunked(live: LiveState, routes: bool = True) -> State:
    """A copy of the live state to read at leisure (``State.copy_chunked`` under its lock)."""
    return live.state.copy_chunked(live.lock, routes=routes)
