"""One typed settings object for the sidecar.

Each field has a default, an environment variable (``VIGIE_<NAME>``) and a one-line meaning.
Sources, later ones winning: defaults < TOML file (``--config`` / ``VIGIE_CONFIG``) < environment
< command-line flags. Thresholds live in the file's ``[thresholds]`` table (see
``vigie.state.thresholds.Thresholds``). ``vigie check-config FILE`` prints the exact problem.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from vigie.errors import ConfigError, InputError
from vigie.settings import alerts as _alerts
from vigie.settings import fleet as _fleet
from vigie.settings._values import check_address as check_address
from vigie.settings._values import convert, unknown_setting
from vigie.settings._values import loopback as loopback
from vigie.settings._values import parse_bool as parse_bool
from vigie.settings._values import parse_floats as parse_floats
from vigie.settings._values import parse_size as parse_size
from vigie.settings.policy import (
    DEFAULT_TIER_LIMITS,
    TRUST_CHOICES,
    check_auto_approve,
    check_share,
    check_tier_limits,
)
from vigie.sources import wso2_api
from vigie.sources.wso2_api import DEFAULT_TIMEOUT_S
from vigie.state.thresholds import Thresholds

ENV_PREFIX: Final = "VIGIE_"
DAY_S: Final = 86_400
YEAR_S: Final = 365 * DAY_S
MAX_BATCH_EVENTS: Final = 1 << 20


def _s(default: Any, doc: str, kind: str = "str", **extra: Any) -> Any:
    return field(default=default, metadata={"doc": doc, "kind": kind, **extra})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``vigie serve`` can be told."""

    listen: str = _s(
        "127.0.0.1:7355",
        "gateway stream address: host:port or unix:/path",
        check=check_address,
    )
    admin_listen: str = _s(
        "127.0.0.1:7356",
        "admin service address (the CLI): host:port or unix:/path",
        check=check_address,
    )
    state_dir: str = _s("./vigie-state", "directory for snapshots, the admin token and data")
    snapshot_interval_seconds: float = _s(
        60.0, "how often the state is written to disk", "float", min=1, max=DAY_S
    )
    memory_cap: int = _s(
        1 << 30,
        "memory the per-subscription state may use (e.g. 1GiB)",
        "size",
        min=1 << 20,
        max=1 << 40,
    )
    max_batch_events: int = _s(
        65_536,
        "largest event batch a gateway may send (it also sets the gRPC message limit)",
        "int",
        min=1,
        max=MAX_BATCH_EVENTS,
    )
    max_dictionary_entries: int = _s(
        262_144,
        "largest string dictionary per gateway stream (the handler then starts a new stream)",
        "int",
        min=16,
        max=1 << 24,
    )
    max_streams: int = _s(64, "gateway streams served at once", "int", min=1, max=4096)
    hello_timeout_seconds: float = _s(
        5.0,
        "a gateway stream that sends no Hello within this time is ended (hello_timeout)",
        "float",
        min=0.1,
        max=300,
    )
    max_clock_skew_seconds: float = _s(
        300.0,
        "an event this far ahead of the sidecar's clock is refused (event_refused:future)",
        "float",
        min=1,
        max=DAY_S,
    )
    allow_plaintext_remote: bool = _s(
        False,
        "serve a plaintext (no TLS) listener on an address beyond loopback (e.g. 0.0.0.0 for "
        "the kubelet's probes); without it such a listener is refused",
        "bool",
    )
    inventory: str = _s("", "inventory JSON (registered channels, known subscriptions and APIs)")
    admin_token: str = _s(
        "", "admin bearer token (prefer admin_token_file); empty: generated", secret=True
    )
    admin_token_file: str = _s(
        "", "file holding the admin bearer token; empty: <state_dir>/admin.token", secret_file=True
    )
    log_level: str = _s(
        "info", "debug, info, warning or error", choices=("debug", "info", "warning", "error")
    )
    data_store: str = _s(
        "parquet",
        "where rollups go: parquet (files in data_dir), clickhouse, or off",
        choices=("parquet", "clickhouse", "off"),
    )
    data_dir: str = _s("", "directory of the Parquet store; empty: <state_dir>/data")
    clickhouse_url: str = _s("http://127.0.0.1:8123", "ClickHouse HTTP interface (data_store)")
    clickhouse_database: str = _s("vigie", "ClickHouse database of the rollup tables")
    short_retention_days: int = _s(
        14, "days of per-minute data kept (autopsy)", "int", min=1, max=3660
    )
    long_retention_days: int = _s(
        1830,
        "days of per-day rollups and changes kept (reports); 0 = forever",
        "int",
        min=0,
        max=36600,
    )
    data_flush_seconds: float = _s(
        30.0, "how often rollups are written to the store", "float", min=0.1, max=DAY_S
    )
    data_queue_batches: int = _s(
        4096,
        "batches waiting for the data writer before new ones are dropped",
        "int",
        min=1,
        max=1 << 20,
    )
    data_memory_cap: int = _s(
        256 << 20,
        "memory for rollups the store could not take yet (e.g. 256MiB)",
        "size",
        min=1 << 20,
        max=1 << 40,
    )
    thresholds: Thresholds = field(
        default_factory=Thresholds,
        metadata={"doc": "behaviour class thresholds", "kind": "thresholds"},
    )
    # OpenTelemetry export (vigie.export); the OTEL_EXPORTER_OTLP_* variables set the endpoint,
    # headers, TLS, compression and timeout, OTEL_RESOURCE_ATTRIBUTES adds resource attributes
    otel_export: str = _s(
        "auto",
        "OTLP metrics export: auto (on when OTEL_EXPORTER_OTLP_ENDPOINT or "
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is set), on or off",
        choices=("auto", "on", "off"),
    )
    otel_protocol: str = _s(
        "",
        "grpc or http/protobuf; empty: OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, "
        "OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf",
        choices=("", "grpc", "http/protobuf"),
    )
    otel_interval_seconds: float = _s(
        0.0,
        "seconds between exports; 0: OTEL_METRIC_EXPORT_INTERVAL (ms), else 60",
        "float",
        min=0,
        max=DAY_S,
    )
    otel_histogram: str = _s(
        "exponential",
        "latency histograms: exponential (vigie's base-2 buckets as they are) or explicit",
        choices=("exponential", "explicit"),
    )
    otel_explicit_bounds: tuple[float, ...] = _s(
        (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0),
        "bucket bounds in seconds when otel_histogram = explicit (comma-separated, increasing)",
        "floats",
    )
    otel_top_k: int = _s(
        20,
        "subscriptions exported one by one: the top K by traffic and the top K by "
        "misbehaviour; the others are summed as application 'other'",
        "int",
        min=0,
        max=100_000,
    )
    otel_encoder: str = _s(
        "vigie",
        "vigie (points written from the arrays, fast) or sdk (the OTel SDK's own encoder)",
        choices=("vigie", "sdk"),
    )
    otel_gateway: str = _s("", "resource attribute wso2.gateway.id (the gateway next to vigie)")
    otel_channel: str = _s("", "resource attribute wso2.channel (that gateway's channel)")
    otel_tenant: str = _s("", "resource attribute wso2.tenant (that gateway's tenant)")
    # ---- suggestions, directives and WSO2 policies (vigie.policy) ----
    tier_limits: str = _s(
        DEFAULT_TIER_LIMITS,
        "WSO2 subscription tiers: NAME=COUNT/UNIT (sec, min, hour, day) or NAME=unlimited",
        check=check_tier_limits,
    )
    policy_headroom: float = _s(
        1.5,
        "suggested limits = observed p99 per minute x this, rounded up",
        "float",
        min=1,
        max=1000,
    )
    policy_refresh_seconds: float = _s(
        30.0, "how often suggestions are recomputed from the state", "float", min=1, max=DAY_S
    )
    auto_approve: str = _s(
        "",
        "classes whose suggestions are approved without an operator (shadow first, with a "
        "TTL), e.g. retry_storm,redundant; empty: none",
        check=check_auto_approve,
    )
    auto_approve_max_share: float = _s(
        0.05,
        "auto-approval never refuses more than this share of the consumer's requests",
        "float",
        check=check_share,
    )
    auto_approve_ttl_seconds: float = _s(
        3600.0, "lifetime of an auto-approved directive", "float", min=60, max=YEAR_S
    )
    auto_approve_shadow_seconds: float = _s(
        900.0,
        "an auto-approved directive stays in shadow this long before it enforces",
        "float",
        min=0,
        max=YEAR_S,
    )
    max_directive_ttl_seconds: float = _s(
        30 * 86_400.0,
        "the longest lifetime a directive may have (a longer TTL is refused)",
        "float",
        min=60,
    )
    auto_approve_min_matched: int = _s(
        100,
        "an auto-approved directive enforces only once gateways reported at least this many "
        "requests matching it in shadow",
        "int",
        min=1,
    )
    quota_rebalance_seconds: float = _s(
        5.0,
        "a LIMIT is a fleet-wide budget: each gateway's share of it is re-computed this often "
        "(from the requests each gateway reported matching it)",
        "float",
        min=0.1,
        max=3600,
    )
    quota_window_seconds: float = _s(
        30.0,
        "the recent demand a gateway's share of a LIMIT follows: its requests matching the "
        "LIMIT over this many seconds",
        "float",
        min=1,
        max=DAY_S,
    )
    quota_floor_share: float = _s(
        0.1,
        "part of a LIMIT's budget spread evenly over the gateways it applies to, whatever their "
        "demand (a gateway that starts receiving the consumer is not starved)",
        "float",
        check=check_share,
    )
    trust_unauthenticated_gateways: str = _s(
        "auto",
        "count the directive hits of gateways that did not prove who they are (no mTLS) as "
        "auto-approval evidence: true, false, or auto (only on a loopback or unix listener)",
        choices=TRUST_CHOICES,
    )
    allow_list: str = _s(
        "", "applications (id or name) and APIs (api:NAME) never auto-approved, comma-separated"
    )

    max_strings: int = _s(
        1_000_000,
        "strings (application ids, names, APIs, resources) held at most; past 3/4 of it, "
        "strings no row or stream refers to are released; at the cap, a batch bringing new "
        "ones is refused (the gateway starts a new stream)",
        "int",
        min=1024,
        max=1 << 30,
    )
    max_line_bytes: int = _s(
        1 << 20,
        "vigie replay: a log line longer than this is rejected with its file:line (e.g. 1MiB)",
        "size",
        min=4096,
        max=1 << 30,
    )
    max_string_bytes: int = _s(
        256 << 20,
        "UTF-8 bytes of those strings held at most (e.g. 256MiB), released and refused as "
        "max_strings is (batch_refused:string_bytes_full)",
        "size",
        min=1 << 20,
        max=1 << 40,
    )
    tls_cert_file: str = _s(
        "", "gateway stream TLS: PEM certificate chain (empty: plaintext, for loopback/unix)"
    )
    tls_key_file: str = _s(
        "", "gateway stream TLS: PEM private key of tls_cert_file", secret_file=True
    )
    tls_client_ca_file: str = _s(
        "", "gateway stream mTLS: PEM CA that signs the gateways' certificates (required then)"
    )
    admin_tls_cert_file: str = _s("", "admin service TLS: PEM certificate chain (empty: plaintext)")
    admin_tls_key_file: str = _s(
        "", "admin service TLS: PEM private key of admin_tls_cert_file", secret_file=True
    )
    admin_tls_client_ca_file: str = _s(
        "", "admin service mTLS: PEM CA that signs the operators' client certificates"
    )
    admin_auth: str = _s(
        "token",
        "how admin callers prove who they are: token (bearer), mtls (client certificate "
        "signed by admin_tls_client_ca_file), or both",
        choices=("token", "mtls", "both"),
    )
    audit_file: str = _s(
        "",
        "operator actions on directives, one JSON line each; "
        "empty: <state_dir>/directives-audit.jsonl",
    )
    # the inventory read from WSO2 itself (vigie.sources.wso2_inventory), refreshed by serve
    inventory_source: str = _s(
        "file",
        "where the inventory comes from: file (inventory) or wso2 (WSO2's REST APIs, read "
        "again every inventory_refresh_seconds)",
        choices=("file", "wso2"),
    )
    inventory_refresh_seconds: float = _s(
        3600.0,
        "how often the inventory is read from WSO2 (inventory_source = wso2)",
        "float",
        min=1,
    )
    inventory_channel_attribute: str = _s(
        "channel", "application attribute naming its channel (else its APIs' gateway environment)"
    )
    wso2_url: str = _s("", "WSO2 API Manager the inventory is read from, e.g. https://apim:9443")
    wso2_apim_version: str = _s("4.2", "its APIM version (picks the REST API versions): 4.0 .. 4.6")
    wso2_tenant: str = _s("", "tenant domain sent as X-WSO2-Tenant; empty: the super tenant")
    wso2_client_id: str = _s("", "OAuth2 client id for WSO2 (client-credentials grant)")
    wso2_client_secret_file: str = _s("", "file holding that client's secret", secret_file=True)
    wso2_username: str = _s("", "or an admin user: a client is registered through DCR")
    wso2_password_file: str = _s("", "file holding that user's password", secret_file=True)
    wso2_ca_file: str = _s("", "CA bundle for WSO2's certificate; empty: the system's")
    wso2_timeout_seconds: float = _s(
        DEFAULT_TIMEOUT_S, "seconds to wait for each WSO2 answer", "float", min=0.1
    )
    # ---- alerts to Alertmanager (vigie.alerts, docs/alerts.md) ----
    alertmanager_urls: str = _s(
        "",
        "Alertmanager base URLs (http://host:9093), comma-separated; vigie posts every alert to "
        "each (an HA pair); empty: no alerts",
        check=_alerts.check_urls,
    )
    alert_classes: str = _s(
        _alerts.DEFAULT_ALERT_CLASSES,
        "classes whose episodes alert, comma-separated (API classes as api:NAME)",
        check=_alerts.check_classes,
    )
    alert_on: str = _s(
        _alerts.DEFAULT_ALERT_ON,
        "what alerts, comma-separated: episodes (of alert_classes), suggestions (awaiting "
        "review), directives (enforced), data (rollups lost or the store degraded)",
        check=_alerts.check_sources,
    )
    alert_resend_seconds: float = _s(
        60.0,
        "active alerts are posted again this often (Alertmanager forgets an alert not re-sent "
        "within its resolve_timeout, 5m by default)",
        "float",
        min=1,
    )
    alert_check_seconds: float = _s(
        5.0, "how often classes, suggestions, directives and data are looked at", "float", min=1
    )
    alert_timeout_seconds: float = _s(
        5.0, "how long one post to Alertmanager may take", "float", min=0.1
    )

    # ---- the fleet of instances (vigie.server.fleet, docs/operations.md) ----
    fleet_peers: str = _s(
        "",
        "the other vigie instances' admin addresses (host:port), comma-separated; each takes "
        "the others' directive and suggestion changes; empty: a fleet of one",
        check=_fleet.check_peers,
    )
    fleet_instance_id: str = _s(
        "", "this instance's name in the fleet (audit, status); empty: <host name>:<admin port>"
    )
    fleet_sync_seconds: float = _s(
        _fleet.DEFAULT_SYNC_SECONDS,
        "how often each peer is asked for its changes",
        "float",
        min=0.05,
        max=10,
    )
    fleet_start_timeout_seconds: float = _s(
        3.0,
        "at start, how long to wait for a peer to answer before starting from the snapshot",
        "float",
        min=0.1,
        max=60,
    )
    fleet_tls_ca_file: str = _s(
        "",
        "CA of the peers' admin certificates (TLS to peers, this instance's admin certificate "
        "as client certificate); empty: plaintext",
    )
    fleet_tls_server_name: str = _s(
        "", "the name in the peers' admin certificates, when it is not their host"
    )

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    def audit_path(self) -> Path:
        return (
            Path(self.audit_file) if self.audit_file else self.state_path / "directives-audit.jsonl"
        )

    def token_path(self) -> Path:
        return (
            Path(self.admin_token_file)
            if self.admin_token_file
            else self.state_path / "admin.token"
        )

    @staticmethod
    def env_var(name: str) -> str:
        return ENV_PREFIX + name.upper()

    @staticmethod
    def describe() -> list[tuple[str, str, str, str]]:
        """(name, env var, default, meaning) of every setting, for --help and the README."""
        rows = []
        for f in dataclasses.fields(Settings):
            if f.name == "thresholds":
                continue
            rows.append((f.name, Settings.env_var(f.name), repr(f.default), f.metadata["doc"]))
        return rows


def _thresholds(values: Mapping[str, Any], where: str, base: Thresholds) -> Thresholds:
    names = [f.name for f in dataclasses.fields(Thresholds)]
    changes: dict[str, float] = {}
    for key, value in values.items():
        if key not in names:
            raise unknown_setting(f"{where}thresholds.", key, names)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{where}thresholds.{key}: expected a number, got {value!r}")
        try:
            changes[key] = float(value)
        except ValueError:
            raise ConfigError(
                f"{where}thresholds.{key}: expected a number, got {value!r}"
            ) from None
    try:
        return base.replace(**changes)
    except ConfigError as exc:
        raise ConfigError(f"{where}thresholds.{exc}") from None


def read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def load_settings(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults < file < environment < overrides (flags; None values are ignored)."""
    env = os.environ if env is None else env
    if path is None and env.get(ENV_PREFIX + "CONFIG"):
        path = Path(env[ENV_PREFIX + "CONFIG"])
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    thresholds = Thresholds()
    if path is not None:
        doc = read_file(path)
        where = f"{path}: "
        for key, value in doc.items():
            if key == "thresholds":
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}thresholds: must be a table ([thresholds])")
                thresholds = _thresholds(value, where, thresholds)
                continue
            if key not in fields:
                raise unknown_setting(where, key, list(fields))
            values[key] = convert(key, value, fields[key].metadata, where)
    for name, f in fields.items():
        var = Settings.env_var(name)
        if name != "thresholds" and var in env:
            values[name] = convert(name, env[var], f.metadata, f"{var}: ")
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in fields or name == "thresholds":
            raise ConfigError(f"unknown setting '{name}'")
        values[name] = convert(name, value, fields[name].metadata, "--")
    settings = Settings(**values, thresholds=thresholds)
    check_listeners(settings, f"{path}: " if path is not None else "")
    return settings


def check_listeners(s: Settings, where: str = "") -> None:
    """Refuse a plaintext listener beyond loopback unless ``allow_plaintext_remote``."""
    if s.allow_plaintext_remote:
        return
    for listen, cert, what in (
        (s.listen, s.tls_cert_file, "listen"),
        (s.admin_listen, s.admin_tls_cert_file, "admin_listen"),
    ):
        if not cert and not loopback(listen):
            raise ConfigError(
                f"{where}{what}: {listen} is beyond loopback and has no TLS certificate: "
                "set the TLS certificate and key, listen on loopback or a unix socket, or "
                "set allow_plaintext_remote = true"
            )


def check_file(path: Path) -> list[str]:
    """Problems of a settings file, worst first; an empty list when it is good."""
    problems: list[str] = []
    try:
        settings = load_settings(path, env={})
    except ConfigError as exc:
        return [str(exc)]
    if settings.admin_token:
        problems.append(
            f"{path}: admin_token: a secret in the settings file; prefer admin_token_file "
            "(a file only the sidecar's user can read)"
        )
    for f in dataclasses.fields(Settings):
        if not _is_secret_file(f.name, f.metadata):
            continue
        p = getattr(settings, f.name)
        if p and Path(p).exists() and Path(p).stat().st_mode & 0o004:
            problems.append(f"{path}: {f.name}: {p} is world-readable (chmod 600 it)")
    problems += _exposure(path, settings)
    if settings.inventory and not Path(settings.inventory).exists():
        problems.append(f"{path}: inventory: {settings.inventory} does not exist")
    if settings.inventory_source == "wso2":
        problems += _wso2_problems(path, settings)
    return problems


def _wso2_problems(path: Path, s: Settings) -> list[str]:
    """What ``inventory_source = "wso2"`` would fail on at start: no URL, a URL that is not
    http(s), an APIM version that is not 4.x, credentials missing or unreadable, a CA file
    that does not exist (nothing is sent to WSO2 here)."""
    out: list[str] = []
    if not s.wso2_url:
        out.append(f"{path}: inventory_source = wso2 needs wso2_url")
    elif not s.wso2_url.startswith(("https://", "http://")):
        out.append(f"{path}: wso2_url: {s.wso2_url!r} is not an http(s) URL")
    try:
        wso2_api.api_versions(s.wso2_apim_version)
    except ValueError as exc:
        out.append(f"{path}: wso2_apim_version: {exc}")
    try:
        wso2_api.login(s.wso2_client_id, s.wso2_client_secret_file, s.wso2_username,
                       s.wso2_password_file)  # fmt: skip
    except (InputError, ValueError) as exc:
        out.append(f"{path}: WSO2 credentials: {exc}")
    if s.wso2_ca_file and not Path(s.wso2_ca_file).is_file():
        out.append(f"{path}: wso2_ca_file: {s.wso2_ca_file} does not exist")
    return out


def _is_secret_file(name: str, meta: Mapping[str, Any]) -> bool:
    """Settings naming a file that holds a secret: marked, or named like one (settings added
    later, e.g. WSO2 client credentials, are covered by their name)."""
    if meta.get("secret_file"):
        return True
    return name.endswith("_file") and any(w in name for w in ("token", "secret", "key", "password"))


def _exposure(path: Path, s: Settings) -> list[str]:
    """Listeners reachable beyond this host without TLS, and TLS settings that do not pair."""
    out: list[str] = []
    for listen, cert, key, ca, what in (
        (s.listen, s.tls_cert_file, s.tls_key_file, s.tls_client_ca_file, "listen"),
        (
            s.admin_listen,
            s.admin_tls_cert_file,
            s.admin_tls_key_file,
            s.admin_tls_client_ca_file,
            "admin_listen",
        ),
    ):
        if bool(cert) != bool(key):
            out.append(f"{path}: {what}: a TLS certificate and its key go together")
        if ca and not cert:
            out.append(f"{path}: {what}: a client CA needs a server certificate (mTLS is TLS)")
        if not cert and not loopback(listen):
            out.append(
                f"{path}: {what}: {listen} is reachable beyond this host without TLS "
                "(set the TLS certificate and key, or listen on loopback or a unix socket)"
            )
    if s.admin_auth in ("mtls", "both") and not s.admin_tls_client_ca_file:
        out.append(f"{path}: admin_auth = {s.admin_auth} needs admin_tls_client_ca_file")
    return out
