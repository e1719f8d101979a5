"""The export thread: every interval, collect, build, encode, send.

It never stands in the ingest path: collection holds the sidecar's lock one small chunk at a
time, and everything else happens on copies. A failed export (backend down, timeout, an
encoding problem) is logged, counted (``vigie.export.failures`` and the sidecar's counters) and
retried at the next interval with fresh figures; it never stops ingestion.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

from vigie.export._builder import Builder
from vigie.export._collect import DEFAULT_CHUNK_BYTES, Source, collect
from vigie.export._exporters import EncodedRequest
from vigie.export._platform import EXPORT_BOUNDS, SelfFigures, bucket_of_seconds
from vigie.export._points import Batch, encode_request, to_metrics_data

log = logging.getLogger(__name__)

ENCODERS: Final = ("vigie", "sdk")


class MetricsExport:
    """Periodic OTLP export of a sidecar's figures through an SDK ``MetricExporter``."""

    def __init__(
        self,
        source: Source,
        exporter: MetricExporter,
        builder: Builder,
        interval_s: float = 60.0,
        timeout_s: float = 30.0,
        encoder: str = "vigie",
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, not {encoder!r}")
        self.source = source
        self.exporter = exporter
        self.builder = builder
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.encoder = encoder
        self.chunk_bytes = chunk_bytes
        self.clock = clock
        self.failures: Counter[str] = Counter()
        self.exports = 0
        self.durations = np.zeros(len(EXPORT_BOUNDS) + 1, dtype=np.int64)
        self.duration_sum = 0.0
        self.last_points = 0
        self.last_lock_hold_s = 0.0
        self.last_ok = True
        self._buffers: dict[str, npt.NDArray[Any]] = {}  # collection copies, reused
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cycle = threading.Lock()  # one cycle at a time (the thread, a final flush)

    # -----------------------------------------------------------------------------------------
    def collect(self) -> Batch:
        """Copy the figures out and build every metric's points (no sending)."""
        frame = collect(self.source, self.chunk_bytes, self.clock, self._buffers)
        self.last_lock_hold_s = frame.lock_hold_max_s
        own = SelfFigures(
            self.durations.copy(), self.duration_sum, dict(self.failures), self.last_points
        )
        return self.builder.build(frame, own)

    def export_once(self) -> bool:
        """One cycle; True when the backend took the figures. Never raises."""
        with self._cycle:
            t0 = time.perf_counter()
            ok = False
            try:
                batch = self.collect()
                if self.encoder == "vigie":
                    data: EncodedRequest | object = EncodedRequest(
                        encode_request(batch), batch.n_points
                    )
                else:
                    data = to_metrics_data(batch)
                # the exporters of _exporters take EncodedRequest too
                result = self.exporter.export(
                    data,  # type: ignore[arg-type]
                    timeout_millis=self.timeout_s * 1000,
                )
                ok = result is MetricExportResult.SUCCESS
                if ok:
                    self.last_points = batch.n_points
                    self.exports += 1
                else:
                    self._failed("export_failed", "the OTLP backend did not take the metrics")
            except Exception as exc:  # the export's error boundary: log, count, carry on
                self._failed(type(exc).__name__, f"{exc}", exc)
            self.last_ok = ok
            dt = time.perf_counter() - t0
            self.durations[bucket_of_seconds(dt)] += 1
            self.duration_sum += dt
            return ok

    def _failed(self, kind: str, message: str, exc: BaseException | None = None) -> None:
        self.failures[kind] += 1
        counters = getattr(self.source, "counters", None)
        if isinstance(counters, Counter):
            counters[f"export_failed:{kind}"] += 1
        log.warning(
            "OTLP export failed (%s, %d so far): %s",
            kind,
            sum(self.failures.values()),
            message,
            exc_info=exc is not None and log.isEnabledFor(logging.DEBUG),
        )

    # -----------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="otel-export", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.export_once()

    def stop(self, flush: bool = True) -> None:
        """Stop the thread; with ``flush``, send the figures one last time (only when the
        backend took the previous ones: a stopping sidecar does not wait on a dead backend)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 1.0)
            self._thread = None
        if flush and self.last_ok:
            self.export_once()
        try:
            self.exporter.shutdown(timeout_millis=self.timeout_s * 1000)
        except Exception:  # shutting down: nothing more to do about it
            log.debug("exporter shutdown failed", exc_info=True)
