"""What ``vigie.alerts`` is told: where Alertmanager is, which classes alert, what else does.

The values come from ``Settings`` (``alertmanager_urls``, ``alert_classes``, ``alert_on``, ...);
the parsers here are also the settings' own checks, so a bad value is refused at start-up and by
``vigie check-config`` with the exact problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from vigie.errors import ConfigError
from vigie.state.thresholds import (
    API_CLASS_NAMES,
    API_HEALTH_CLASS_NAMES,
    CLASS_NAMES,
    HEALTH_CLASS_NAMES,
    SECURITY_CLASS_NAMES,
)

if TYPE_CHECKING:
    from vigie.settings import Settings

# a consumer misbehaving, and what happens to an API: the classes someone on call acts on
DEFAULT_ALERT_CLASSES: Final = (
    "retry_storm,error_prone,redundant,throttle_hitter,wrong_channel,traffic_anomaly,"
    "api:retired,api:growing,api:degraded,api:backend_down,api:traffic_anomaly,auth_failing"
)
# what alerts: class episodes, suggestions awaiting review, enforced directives, data lost
ALERT_SOURCES: Final = ("episodes", "suggestions", "directives", "data")
DEFAULT_ALERT_ON: Final = ",".join(ALERT_SOURCES)


def _items(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_urls(value: str) -> tuple[str, ...]:
    """``http://am-0:9093, http://am-1:9093`` -> the base URLs (no trailing slash)."""
    out = []
    for item in _items(value):
        u = urlsplit(item)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise ValueError(f"expected http(s)://host:port URLs, got {item!r}")
        out.append(item.rstrip("/"))
    return tuple(out)


def parse_classes(value: str) -> frozenset[str]:
    """``retry_storm, api:retired`` -> the classes whose episodes alert (API ones as api:X)."""
    known = {*CLASS_NAMES, *HEALTH_CLASS_NAMES, *SECURITY_CLASS_NAMES}
    known |= {f"api:{c}" for c in (*API_CLASS_NAMES, *API_HEALTH_CLASS_NAMES)}
    known |= {f"api:{c}" for c in SECURITY_CLASS_NAMES}
    out = set(_items(value))
    unknown = out - known
    if unknown:
        raise ValueError(
            f"unknown class(es) {', '.join(sorted(unknown))}: expected some of "
            f"{', '.join(sorted(known))}"
        )
    return frozenset(out)


def parse_sources(value: str) -> frozenset[str]:
    out = set(_items(value))
    unknown = out - set(ALERT_SOURCES)
    if unknown:
        raise ValueError(
            f"unknown {', '.join(sorted(unknown))}: expected some of {', '.join(ALERT_SOURCES)}"
        )
    return frozenset(out)


def check_urls(value: str) -> None:
    parse_urls(value)


def check_classes(value: str) -> None:
    parse_classes(value)


def check_sources(value: str) -> None:
    parse_sources(value)


@dataclass(frozen=True, slots=True)
class AlertConfig:
    urls: tuple[str, ...]
    classes: frozenset[str]
    sources: frozenset[str]
    resend_seconds: float = 60.0
    check_seconds: float = 5.0
    timeout_seconds: float = 5.0
    tenant: str = ""  # the sidecar's WSO2 tenant (otel_tenant), a label when set

    @staticmethod
    def from_settings(s: Settings) -> AlertConfig:
        try:
            return AlertConfig(
                urls=parse_urls(s.alertmanager_urls),
                classes=parse_classes(s.alert_classes),
                sources=parse_sources(s.alert_on),
                resend_seconds=s.alert_resend_seconds,
                check_seconds=s.alert_check_seconds,
                timeout_seconds=s.alert_timeout_seconds,
                tenant=s.otel_tenant,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
