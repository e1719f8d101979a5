"""The OTel SDK's OTLP exporters (gRPC, HTTP/protobuf), configured the standard way.

The SDK exporters read their endpoint, headers, TLS files, compression and timeout from the
``OTEL_EXPORTER_OTLP_*`` variables themselves. vigie adds what the SDK leaves to its metric
reader: whether to export at all, the protocol, the interval (``OTEL_METRIC_EXPORT_INTERVAL``),
the timeout (``OTEL_METRIC_EXPORT_TIMEOUT``) and the temporality
(``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``).

The two exporter classes below accept, besides the SDK's ``MetricsData``, a request vigie
encoded itself (``EncodedRequest``): everything else about sending (retries, TLS, headers,
compression) stays the SDK's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as _SdkGrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as _SdkHttpExporter,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.resources import OTELResourceDetector

from vigie.errors import ConfigError
from vigie.settings import Settings

log = logging.getLogger(__name__)

PROTOCOLS: Final = ("grpc", "http/protobuf")
DEFAULT_INTERVAL_S: Final = 60.0
DEFAULT_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class EncodedRequest:
    """An ``ExportMetricsServiceRequest`` serialized by vigie."""

    payload: bytes
    points: int

    def request(self) -> ExportMetricsServiceRequest:
        return ExportMetricsServiceRequest.FromString(self.payload)


# Handing vigie's bytes to the SDK exporters without parsing them back into a protobuf message
# (and the exporter serializing it again): for 10,000 series that round trip is ~15 ms of C
# code holding the GIL, a stall for every ingest thread. Each exporter below passes the bytes
# through its own transport; should the SDK's internals ever differ, it falls back to parsing.
_EXPORT_METHOD: Final = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


class _Serialized:
    """What the HTTP exporter's ``_export_batch`` reads of a request: its bytes (and its
    points, for the SDK's optional self-metrics, which then count none)."""

    resource_metrics: tuple[()] = ()

    def __init__(self, payload: bytes) -> None:
        self._payload = payload

    def SerializeToString(self) -> bytes:
        return self._payload


class _BytesOrMessage:
    """The gRPC stub's ``Export``, also taking requests already serialized."""

    def __init__(self, stub: Any, raw: Any) -> None:
        self._stub = stub
        self._raw = raw

    def Export(self, request: Any, **kwargs: Any) -> Any:
        if isinstance(request, bytes):
            return self._raw(request, **kwargs)
        return self._stub.Export(request=request, **kwargs)


class GrpcExporter(_SdkGrpcExporter):
    """The SDK's OTLP/gRPC metric exporter, also taking vigie's encoded requests."""

    def _initialize_channel_and_stub(self) -> None:
        super()._initialize_channel_and_stub()  # type: ignore[no-untyped-call]
        channel = getattr(self, "_channel", None)
        stub = getattr(self, "_client", None)
        if channel is not None and hasattr(stub, "Export"):
            raw = channel.unary_unary(
                _EXPORT_METHOD,
                request_serializer=None,  # bytes as they are
                response_deserializer=ExportMetricsServiceResponse.FromString,
            )
            self._client = _BytesOrMessage(stub, raw)  # type: ignore[assignment]

    def _translate_data(self, data: Any) -> Any:
        if isinstance(data, EncodedRequest):
            if isinstance(getattr(self, "_client", None), _BytesOrMessage):
                return data.payload
            return data.request()
        return super()._translate_data(data)

    def _count_data(self, data: Any) -> int:
        if isinstance(data, EncodedRequest):
            return data.points
        count: int = super()._count_data(data)
        return count


class HttpExporter(_SdkHttpExporter):
    """The SDK's OTLP/HTTP (protobuf) metric exporter, also taking vigie's encoded requests."""

    def export(
        self,
        metrics_data: MetricsData | EncodedRequest,
        timeout_millis: float | None = 10_000,
        **kwargs: Any,
    ) -> MetricExportResult:
        if isinstance(metrics_data, EncodedRequest):
            if self._shutdown:
                return MetricExportResult.FAILURE
            if self._max_export_batch_size is None:
                return self._export_batch(_Serialized(metrics_data.payload))  # type: ignore[arg-type]
            return super().export(metrics_data.request(), timeout_millis, **kwargs)  # type: ignore[arg-type]
        return super().export(metrics_data, timeout_millis, **kwargs)


@dataclass(frozen=True, slots=True)
class ExportConfig:
    protocol: str
    interval_s: float
    timeout_s: float
    delta: bool


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number of milliseconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name}: must be positive, got {raw!r}")
    return value


def export_enabled(settings: Settings, env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if settings.otel_export == "off":
        return False
    if settings.otel_export == "on":
        return True
    if env.get("OTEL_METRICS_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    )


def export_config(settings: Settings, env: Mapping[str, str] | None = None) -> ExportConfig:
    """Protocol, interval, timeout and temporality from vigie's settings and the standard
    variables; a bad value is a ``ConfigError`` naming it."""
    env = os.environ if env is None else env
    protocol = (
        settings.otel_protocol
        or env.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip()
        or "http/protobuf"
    )
    if protocol not in PROTOCOLS:
        raise ConfigError(
            f"OTLP protocol {protocol!r}: vigie exports over {' or '.join(PROTOCOLS)}"
        )
    interval = settings.otel_interval_seconds or (
        _env_float(env, "OTEL_METRIC_EXPORT_INTERVAL", DEFAULT_INTERVAL_S * 1000) / 1000
    )
    timeout = _env_float(env, "OTEL_METRIC_EXPORT_TIMEOUT", DEFAULT_TIMEOUT_S * 1000) / 1000
    pref = env.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "cumulative")
    pref = pref.strip().lower() or "cumulative"
    if pref not in ("cumulative", "delta", "lowmemory"):
        raise ConfigError(
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: cumulative, delta or lowmemory, "
            f"got {pref!r}"
        )
    # vigie's counters and histograms count events as synchronous instruments would: delta
    # and lowmemory both ask for deltas; gauges stay as they are
    return ExportConfig(protocol, interval, timeout, pref != "cumulative")


def make_exporter(protocol: str) -> MetricExporter:
    """The SDK exporter for ``protocol``; it reads the OTEL_EXPORTER_OTLP_* variables."""
    if protocol == "grpc":
        return GrpcExporter()
    return HttpExporter()


def env_resource() -> dict[str, Any]:
    """Attributes set by OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME (they win over vigie's)."""
    return dict(OTELResourceDetector().detect().attributes)
