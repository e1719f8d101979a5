"""Which events of each handler run this instance applied: the exact hand-over from a peer.

A handler numbers the events it takes (``Hello.run_id``, ``EventBatch.first_event``: the same
number for the same event on the streams to every instance of the fleet, consecutive within a
batch). The sidecar keeps, per gateway and run, the number of the last event it applied
(``Positions``, under the sidecar's lock). A restarted instance that takes a live peer's state
takes, in the same hold of that peer's lock, the peer's positions (``ExportState`` with
``consistent``: ``export_consistent``); the gateways' streams to the restarted instance then
bring the events the handler held for it while it was down, and it applies only those after the
peer's position: no event counted twice, none missed as long as the handler still held the first
one the peer had not applied (``vigie.disconnected.hold-ms``, 10 s by default, and its queue's
bound). An event number past the next one expected is a gap: counted
(``stream_events_missed``) and logged, never hidden. The same skip makes a batch sent again (a
reconnection) harmless: ``stream_events_already_applied``.

The positions are not written in the snapshot: an instance that restarts from its own snapshot
has lost the events after it anyway, and starts every run afresh.
"""

from __future__ import annotations

import io
import logging
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vigie.classify.live import LiveState
from vigie.server.boundary import loggable
from vigie.state.engine import State
from vigie.state.merge import CHUNK_BYTES, export_chunks
from vigie.v1 import admin_pb2 as apb

log = logging.getLogger(__name__)

# the retry and repeat detectors' caches, which a snapshot leaves out (they remember seconds)
DETECTOR_ARRAYS: Final = ("retry_keys", "retry_vals", "repeat_keys", "repeat_vals")
# handler runs remembered at most (the oldest forgotten first): a gateway restarted every minute
# for a month
MAX_RUNS: Final = 65_536


class Positions:
    """The last event applied per (gateway id, run id); call under the sidecar's lock."""

    def __init__(self, counters: Counter[str]) -> None:
        self.last: dict[tuple[str, str], int] = {}
        self.counters = counters

    def skip(self, gateway_id: str, run_id: str, first: int, count: int) -> int:
        """A batch of ``count`` events numbered from ``first`` arrives: how many of its first
        events were applied already (0..count); the position moves to its last event."""
        if not run_id or first <= 0 or count <= 0:
            return 0
        key = (gateway_id, run_id)
        last = self.last.get(key, 0)
        if key in self.last and first > last + 1:
            missed = first - last - 1
            self.counters["stream_events_missed"] += missed
            log.warning(
                "gateway %s: events %d to %d of its run %s never reached this instance (its "
                "handler dropped them for this instance, or held them shorter than this "
                "instance's restart): %d events missing",
                loggable(gateway_id), last + 1, first - 1, loggable(run_id), missed,
            )  # fmt: skip
        done = min(count, max(0, last - first + 1))
        if done:
            self.counters["stream_events_already_applied"] += done
        end = first + count - 1
        if end > last:
            if key not in self.last and len(self.last) >= MAX_RUNS:
                del self.last[next(iter(self.last))]
            self.last[key] = end
        return done

    def to_proto(self) -> list[apb.StreamPosition]:
        return [
            apb.StreamPosition(gateway_id=g, run_id=r, last_event=n)
            for (g, r), n in self.last.items()
        ]

    def take(self, positions: Iterable[apb.StreamPosition]) -> int:
        """A peer's positions (its state taken with them): this instance's from now on."""
        n = 0
        for p in positions:
            if p.run_id and p.last_event:
                key = (p.gateway_id, p.run_id)
                self.last[key] = max(self.last.get(key, 0), p.last_event)
                n += 1
        return n


def export_consistent(live: LiveState, positions: Positions) -> list[apb.StateChunk]:
    """The state, its detectors' caches and the positions applied at one moment (one hold of
    the lock: the batches of every stream wait for the copy, a whole copy of the arrays), for
    a peer to start from."""
    started = time.perf_counter()
    with live.lock:
        state = live.state.copy()
        detectors = {name: getattr(live.state, name).copy() for name in DETECTOR_ARRAYS}
        pos = positions.to_proto()
    held_ms = (time.perf_counter() - started) * 1e3
    log.info("state copied for a peer with the positions of %d gateway runs: the lock held "
             "%.1f ms", len(pos), held_ms)  # fmt: skip
    chunks = list(export_chunks(state))
    chunks[0].positions.extend(pos)
    chunks[0].events_applied = int(state.counters()["events_applied"])
    buf = io.BytesIO()
    np.savez(buf, **detectors)
    data = buf.getvalue()
    for off in range(0, len(data), CHUNK_BYTES):
        chunks.append(apb.StateChunk(detectors=data[off : off + CHUNK_BYTES]))
    return chunks


def read_detectors(data: bytes) -> dict[str, npt.NDArray[Any]]:
    """The detectors' caches of a consistent export ({} when none or unreadable)."""
    if not data:
        return {}
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {name: z[name] for name in DETECTOR_ARRAYS}
    except (OSError, ValueError, KeyError) as exc:
        log.warning("the peer's detector caches do not read (%s): started without them", exc)
        return {}


def restore_detectors(state: State, arrays: dict[str, npt.NDArray[Any]]) -> bool:
    """The peer's detectors' caches into ``state`` (before any batch), when they have this
    instance's shapes and types (the same ``detector_entries``); False otherwise."""
    if not arrays:
        return False
    for name in DETECTOR_ARRAYS:
        mine = getattr(state, name)
        if arrays[name].shape != mine.shape or arrays[name].dtype != mine.dtype:
            log.warning(
                "the peer's detector cache %s is %s %s, this instance's %s %s: started without "
                "the peer's detectors", name, arrays[name].shape, arrays[name].dtype,
                mine.shape, mine.dtype,
            )  # fmt: skip
            return False
    for name in DETECTOR_ARRAYS:
        getattr(state, name)[...] = arrays[name]
    return True
