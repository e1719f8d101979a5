"""What the policy engine is told: WSO2 tier limits, sizing headroom, auto-approval rules.

The values come from ``Settings`` (``tier_limits``, ``policy_headroom``, ``auto_approve``, ...);
the parsers here are also the settings' own checks, so a bad value is refused at start-up and
by ``vigie check-config`` with the exact problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from vigie.errors import ConfigError

if TYPE_CHECKING:
    from vigie.settings import Settings

# WSO2 API Manager's default subscription tiers (Admin Portal > Rate Limiting Policies >
# Subscription Policies): Bronze 1000, Silver 2000, Gold 5000 requests per minute, Unlimited.
DEFAULT_TIER_LIMITS: Final = "Bronze=1000/min,Silver=2000/min,Gold=5000/min,Unlimited=unlimited"
TIME_UNITS: Final = {"sec": 1.0, "min": 60.0, "hour": 3600.0, "day": 86400.0}
# classes whose suggestions carry a directive, hence may be auto-approved
AUTO_APPROVABLE: Final = ("retry_storm", "redundant", "wrong_channel", "dormant", "retired")
_TIER = re.compile(r"^\s*([^=,\s][^=,]*?)\s*=\s*(?:(unlimited)|(\d+)\s*/\s*(\w+))\s*$", re.I)


@dataclass(frozen=True, slots=True)
class TierLimit:
    """A WSO2 subscription tier's request-count limit (``count`` per ``unit_time`` ``unit``)."""

    name: str
    count: int | None  # None: unlimited
    unit: str = "min"
    unit_time: int = 1

    @property
    def per_minute(self) -> float | None:
        if self.count is None:
            return None
        return self.count * 60.0 / (TIME_UNITS[self.unit] * self.unit_time)

    def describe(self) -> str:
        if self.count is None:
            return f"{self.name} (unlimited)"
        return f"{self.name} ({self.count:,}/{self.unit})"


def parse_tier_limits(text: str) -> dict[str, TierLimit]:
    """``"Bronze=1000/min,Gold=5000/min,Unlimited=unlimited"`` -> tiers by lower-cased name."""
    out: dict[str, TierLimit] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        m = _TIER.match(part)
        if not m:
            raise ValueError(
                f"tier {part.strip()!r}: expected NAME=COUNT/UNIT (unit sec, min, hour or day) "
                "or NAME=unlimited"
            )
        name = m.group(1)
        if m.group(2):
            tier = TierLimit(name, None)
        else:
            unit = m.group(4).lower()
            if unit not in TIME_UNITS:
                raise ValueError(
                    f"tier {name!r}: unit {unit!r} is not one of {', '.join(TIME_UNITS)}"
                )
            count = int(m.group(3))
            if count <= 0:
                raise ValueError(f"tier {name!r}: the count must be positive")
            tier = TierLimit(name, count, unit)
        if name.lower() in out:
            raise ValueError(f"tier {name!r} is given twice")
        out[name.lower()] = tier
    return out


def parse_name_list(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def check_tier_limits(value: Any) -> None:
    parse_tier_limits(str(value))


def parse_auto_approve(text: str) -> tuple[str, ...]:
    """The classes ``auto_approve`` names; ValueError names the first that cannot be
    auto-approved (only classes whose suggestions carry a directive can). The one check of
    the rule: the settings' (``check_auto_approve``) and ``PolicyConfig``'s."""
    names = parse_name_list(text)
    for name in names:
        if name not in AUTO_APPROVABLE:
            raise ValueError(
                f"{name!r} cannot be auto-approved (classes with a directive: "
                f"{', '.join(AUTO_APPROVABLE)})"
            )
    return names


def check_auto_approve(value: Any) -> None:
    parse_auto_approve(str(value))


TRUST_CHOICES: Final = ("auto", "true", "false")


def trust_gateway_hits(trust_unauthenticated: str, listen: str, mtls: bool) -> bool:
    """Whether the hits gateways report count as evidence for auto-approval: always over
    mTLS (the gateway proved who it is); else as ``trust_unauthenticated_gateways`` says,
    ``auto`` meaning only when the gateway listener is loopback or a unix socket."""
    if mtls:
        return True
    if trust_unauthenticated != "auto":
        return trust_unauthenticated == "true"
    if listen.startswith("unix:"):
        return True
    host = listen.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def check_share(value: Any) -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"must be a share between 0 and 1, got {value!r}")


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Everything the suggestion engine needs besides the state."""

    tiers: dict[str, TierLimit] = field(
        default_factory=lambda: parse_tier_limits(DEFAULT_TIER_LIMITS)
    )
    headroom: float = 1.5
    # auto-approval: classes, the largest share of a consumer's traffic a directive may refuse,
    # the directive's lifetime, how long it stays in shadow before it may enforce
    auto_approve: tuple[str, ...] = ()
    auto_approve_max_share: float = 0.05
    auto_approve_ttl_seconds: float = 3600.0
    auto_approve_shadow_seconds: float = 900.0
    # evidence a shadow period must produce before it may enforce: this many matching requests
    # reported by gateways, counted only when their reports are trusted
    auto_approve_min_matched: int = 100
    trust_gateway_hits: bool = True
    # applications (id or name) and APIs ("api:NAME") never auto-approved
    allow_list: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.headroom < 1.0:
            raise ConfigError(f"policy_headroom: must be at least 1, got {self.headroom:g}")
        if not 0.0 <= self.auto_approve_max_share <= 1.0:
            raise ConfigError("auto_approve_max_share: must be between 0 and 1")
        if self.auto_approve_min_matched < 1:
            raise ConfigError("auto_approve_min_matched: must be at least 1")
        try:
            parse_auto_approve(",".join(self.auto_approve))
        except ValueError as exc:
            raise ConfigError(f"auto_approve: {exc}") from None

    def tier(self, name: str) -> TierLimit | None:
        return self.tiers.get(name.lower()) if name else None

    def allow_listed(self, application_id: str, application: str, api: str) -> bool:
        for entry in self.allow_list:
            if entry.startswith("api:"):
                if api and entry[4:] == api:
                    return True
            elif entry in (application_id, application) and entry:
                return True
        return False

    @staticmethod
    def from_settings(settings: Settings) -> PolicyConfig:
        try:
            tiers = parse_tier_limits(settings.tier_limits)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return PolicyConfig(
            tiers=tiers,
            headroom=settings.policy_headroom,
            auto_approve=parse_name_list(settings.auto_approve),  # checked by __post_init__
            auto_approve_max_share=settings.auto_approve_max_share,
            auto_approve_ttl_seconds=settings.auto_approve_ttl_seconds,
            auto_approve_shadow_seconds=settings.auto_approve_shadow_seconds,
            auto_approve_min_matched=settings.auto_approve_min_matched,
            trust_gateway_hits=trust_gateway_hits(
                settings.trust_unauthenticated_gateways,
                settings.listen,
                bool(settings.tls_client_ca_file),
            ),
            allow_list=parse_name_list(settings.allow_list),
        )
