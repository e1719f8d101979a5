"""The export thread and its configuration: failures are counted and never reach ingestion; the
standard OTEL_* variables and vigie's settings decide what is exported, how and how often."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
)

from tests.unit.export.test_export_series import FakeSidecar, events, random_records
from vigie.errors import ConfigError
from vigie.export import (
    Builder,
    BuildOptions,
    EncodedRequest,
    GrpcExporter,
    HttpExporter,
    MetricsExport,
    collect,
    encode_request,
    export_config,
    export_enabled,
    start_export,
    to_metrics_data,
)
from vigie.settings import load_settings
from vigie.state.engine import State


class Recorder(MetricExporter):
    """A unit-test double: keeps what it is given, or fails as told."""

    def __init__(self, outcome: str = "ok") -> None:
        super().__init__()
        self.outcome = outcome
        self.got: list[Any] = []
        self.shut = False

    def export(
        self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.got.append(metrics_data)
        if self.outcome == "raise":
            raise ConnectionError("backend down")
        if self.outcome == "fail":
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.shut = True


def _fed() -> FakeSidecar:
    st = State()
    st.apply(events(st, random_records(500)))
    return FakeSidecar(st)


def _request(data: Any) -> ExportMetricsServiceRequest:
    if isinstance(data, EncodedRequest):
        return data.request()
    assert isinstance(data, MetricsData)
    return encode_metrics(data)


def _names(req: ExportMetricsServiceRequest) -> set[str]:
    return {m.name for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


@pytest.mark.parametrize("encoder", ["vigie", "sdk"])
def test_an_export_sends_every_metric_with_either_encoder(encoder: str) -> None:
    rec = Recorder()
    exp = MetricsExport(_fed(), rec, Builder(), encoder=encoder)
    assert exp.export_once()
    assert exp.export_once()  # the second one carries the first one's duration
    names = _names(_request(rec.got[-1]))
    assert {"http.server.request.duration", "wso2.api.requests", "vigie.export.duration"} <= names
    assert exp.exports == 2 and not exp.failures
    assert exp.durations.sum() == 2


def test_both_encoders_say_the_same() -> None:
    sc = _fed()
    a, b = Recorder(), Recorder()
    MetricsExport(sc, a, Builder(), encoder="vigie", clock=lambda: 1000.0).export_once()
    MetricsExport(sc, b, Builder(), encoder="sdk", clock=lambda: 1000.0).export_once()
    assert _request(a.got[0]) == _request(b.got[0])


@pytest.mark.parametrize(
    ("outcome", "kind"), [("fail", "export_failed"), ("raise", "ConnectionError")]
)
def test_a_failed_export_is_counted_and_ingestion_goes_on(outcome: str, kind: str) -> None:
    sc = _fed()
    exp = MetricsExport(sc, Recorder(outcome), Builder(), interval_s=0.01)
    exp.start()
    try:
        t0 = time.monotonic()
        while sum(exp.failures.values()) < 3 and time.monotonic() - t0 < 30:
            with sc.lock:  # ingestion, meanwhile
                sc.state.apply(events(sc.state, random_records(50, seed=int(t0))))
            time.sleep(0.01)
    finally:
        exp.stop()
    assert exp.failures[kind] >= 3
    assert sc.counters[f"export_failed:{kind}"] == exp.failures[kind]
    assert not sc.lock.locked()
    assert exp.exporter.shut  # type: ignore[attr-defined]
    # the failures are themselves exported, at the next cycle that gets through
    ok = Recorder()
    exp.exporter = ok
    assert exp.export_once()
    req = _request(ok.got[-1])
    failures = [
        m
        for rm in req.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "vigie.export.failures"
    ]
    (pt,) = failures[0].sum.data_points
    assert pt.as_int == exp.failures[kind]


def test_stop_flushes_once_more_but_not_into_a_dead_backend() -> None:
    rec = Recorder()
    exp = MetricsExport(_fed(), rec, Builder(), interval_s=3600)
    exp.start()
    exp.stop()
    assert len(rec.got) == 1 and rec.shut
    dead = Recorder("fail")
    exp = MetricsExport(_fed(), dead, Builder(), interval_s=3600)
    exp.export_once()
    exp.stop()
    assert len(dead.got) == 1  # no flush after a failure


def test_collection_waits_for_no_lock_longer_than_a_chunk() -> None:
    sc = _fed()
    exp = MetricsExport(sc, Recorder(), Builder(), chunk_bytes=8192)
    exp.export_once()
    assert exp.last_lock_hold_s < 0.05  # an 8 KiB memcpy; generous for a loaded machine


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------


def _settings(**kw: Any) -> Any:
    return load_settings(env={}, overrides=kw)


@pytest.mark.parametrize(
    ("setting", "env", "on"),
    [
        ("auto", {}, False),
        ("auto", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
        ("auto", {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:4318/v1/metrics"}, True),
        (
            "auto",
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_METRICS_EXPORTER": "none"},
            False,
        ),
        ("on", {}, True),
        ("off", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
    ],
)
def test_export_is_on_when_asked(setting: str, env: dict[str, str], on: bool) -> None:
    assert export_enabled(_settings(otel_export=setting), env) is on


def test_the_standard_variables_configure_the_export() -> None:
    cfg = export_config(_settings(), {})
    assert (cfg.protocol, cfg.interval_s, cfg.timeout_s, cfg.delta) == (
        "http/protobuf",
        60.0,
        30.0,
        False,
    )
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_METRIC_EXPORT_INTERVAL": "15000",
        "OTEL_METRIC_EXPORT_TIMEOUT": "5000",
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "Delta",
    }
    cfg = export_config(_settings(), env)
    assert (cfg.protocol, cfg.interval_s, cfg.timeout_s, cfg.delta) == ("grpc", 15.0, 5.0, True)
    env["OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"] = "http/protobuf"  # the signal's own wins
    assert export_config(_settings(), env).protocol == "http/protobuf"
    cfg = export_config(_settings(otel_protocol="grpc", otel_interval_seconds=2.5), env)
    assert (cfg.protocol, cfg.interval_s) == ("grpc", 2.5)  # vigie's settings win
    assert export_config(
        _settings(), {"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "lowmemory"}
    ).delta


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTLP protocol 'http/json'"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "soon"}, "OTEL_METRIC_EXPORT_INTERVAL: expected"),
        ({"OTEL_METRIC_EXPORT_TIMEOUT": "0"}, "OTEL_METRIC_EXPORT_TIMEOUT: must be positive"),
        (
            {"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "sometimes"},
            "cumulative, delta or lowmemory, got 'sometimes'",
        ),
    ],
)
def test_bad_variables_are_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        export_config(_settings(), env)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.1,0.05", "increasing"),
        ("0,1", "positive"),
        ("a,b", "increasing"),
    ],
)
def test_explicit_bounds_are_checked(value: str, message: str) -> None:
    with pytest.raises(
        ConfigError, match=f"VIGIE_OTEL_EXPLICIT_BOUNDS: otel_explicit_bounds: .*{message}"
    ):
        load_settings(env={"VIGIE_OTEL_EXPLICIT_BOUNDS": value})
    assert load_settings(env={"VIGIE_OTEL_EXPLICIT_BOUNDS": "0.1, 1,10"}).otel_explicit_bounds == (
        0.1,
        1.0,
        10.0,
    )


def test_start_export_builds_the_sdk_exporter_the_variables_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sc = _fed()
    assert start_export(sc, _settings(), {}) is None
    for protocol, cls in (("grpc", GrpcExporter), ("http/protobuf", HttpExporter)):
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_METRIC_EXPORT_INTERVAL": "3600000",
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
        exp = start_export(sc, _settings(otel_top_k=7, otel_histogram="explicit"), env)
        assert exp is not None
        try:
            assert isinstance(exp.exporter, cls)
            assert exp.interval_s == 3600.0
            opts: BuildOptions = exp.builder.options
            assert (opts.top_k, opts.histogram) == (7, "explicit")
            assert opts.resource["deployment.environment"] == "test"
        finally:
            exp.stop(flush=False)


def test_vigie_requests_go_through_the_sdk_exporters_hooks() -> None:
    sc = _fed()
    batch = Builder().build(collect(sc))
    enc = EncodedRequest(encode_request(batch), batch.n_points)
    g = GrpcExporter(endpoint="http://127.0.0.1:9", insecure=True)
    try:
        assert g._translate_data(enc) == enc.payload  # the bytes go out as they are
        assert g._count_data(enc) == batch.n_points
        assert g._translate_data(to_metrics_data(batch)) == enc.request()  # the SDK's way
    finally:
        g.shutdown()
    sent: list[bytes] = []
    h = HttpExporter(endpoint="http://127.0.0.1:9/v1/metrics")

    def fake_batch(req: Any) -> MetricExportResult:
        sent.append(req.SerializeToString())
        return MetricExportResult.SUCCESS

    h._export_batch = fake_batch  # type: ignore[method-assign,assignment]
    assert h.export(enc) is MetricExportResult.SUCCESS
    assert ExportMetricsServiceRequest.FromString(sent[0]) == enc.request()
    h.shutdown()
    assert h.export(enc) is MetricExportResult.FAILURE


def test_the_export_runs_off_the_ingest_thread() -> None:
    sc = _fed()
    rec = Recorder()
    exp = MetricsExport(sc, rec, Builder(), interval_s=0.01)
    threads: Counter[str] = Counter()
    real = rec.export

    def spy(data: Any, timeout_millis: float = 10_000, **kw: Any) -> MetricExportResult:
        threads[threading.current_thread().name] += 1
        return real(data, timeout_millis)

    rec.export = spy  # type: ignore[method-assign,assignment]
    exp.start()
    t0 = time.monotonic()
    while not threads and time.monotonic() - t0 < 30:
        time.sleep(0.01)
    exp.stop(flush=False)
    assert set(threads) == {"otel-export"}
