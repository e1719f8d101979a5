"""OpenTelemetry export: vigie's figures as OTLP metrics, built from the state arrays at
collection time (never one SDK call per event), sent by the OTel SDK's OTLP exporters.

``start_export(sidecar, settings)`` is what ``vigie serve`` calls; ``METRICS`` lists every
metric vigie exports and ``prometheus_names`` what Prometheus calls them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from vigie.export._builder import Builder
from vigie.export._catalogue import (
    METRICS,
    Kind,
    MetricSpec,
    all_prometheus_names,
    prometheus_names,
)
from vigie.export._collect import Frame, Source, collect
from vigie.export._exporters import (
    EncodedRequest,
    ExportConfig,
    GrpcExporter,
    HttpExporter,
    env_resource,
    export_config,
    export_enabled,
    make_exporter,
)
from vigie.export._points import Batch, encode_request, to_metrics_data
from vigie.export._runner import MetricsExport
from vigie.export._series import BuildOptions
from vigie.settings import Settings

log = logging.getLogger(__name__)


def build_options(settings: Settings, delta: bool) -> BuildOptions:
    return BuildOptions(
        histogram=settings.otel_histogram,
        bounds=settings.otel_explicit_bounds,
        top_k=settings.otel_top_k,
        delta=delta,
        resource=env_resource(),
        gateway=settings.otel_gateway,
        channel=settings.otel_channel,
        tenant=settings.otel_tenant,
    )


def start_export(
    source: Source, settings: Settings, env: Mapping[str, str] | None = None
) -> MetricsExport | None:
    """Start the periodic export when the settings (or the OTEL_* variables) ask for it."""
    env = os.environ if env is None else env
    if not export_enabled(settings, env):
        return None
    cfg = export_config(settings, env)
    export = MetricsExport(
        source,
        make_exporter(cfg.protocol),
        Builder(build_options(settings, cfg.delta)),
        interval_s=cfg.interval_s,
        timeout_s=cfg.timeout_s,
        encoder=settings.otel_encoder,
    )
    export.start()
    log.info(
        "exporting OTLP metrics over %s every %gs (%s temporality)",
        cfg.protocol,
        cfg.interval_s,
        "delta" if cfg.delta else "cumulative",
    )
    return export


__all__ = [
    "METRICS",
    "Batch",
    "BuildOptions",
    "Builder",
    "EncodedRequest",
    "ExportConfig",
    "Frame",
    "GrpcExporter",
    "HttpExporter",
    "Kind",
    "MetricSpec",
    "MetricsExport",
    "Source",
    "all_prometheus_names",
    "build_options",
    "collect",
    "encode_request",
    "export_config",
    "export_enabled",
    "make_exporter",
    "prometheus_names",
    "start_export",
    "to_metrics_data",
]
