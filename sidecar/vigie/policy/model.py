"""The suggestion model: a ``Suggestion`` (what vigie proposes, with evidence and effect), the
``DirectiveSpec`` it pushes once approved, and the stable ids that carry a suggestion's lifecycle
over when the suggestions are computed again.

The suggestions themselves are computed by ``vigie.policy.suggest``, one family at a time
(``vigie.policy.families``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

from vigie.policy.wso2 import AdminRequest
from vigie.v1 import directives_pb2 as dpb

HOUR_S: Final = 3600
DAY_S: Final = 86_400
# proposed directive lifetimes per class
TTL_SECONDS: Final = {
    "retry_storm": HOUR_S,
    "redundant": DAY_S,
    "wrong_channel": 7 * DAY_S,
    "dormant": 30 * DAY_S,
    "retired": 30 * DAY_S,
}
ACTIONS: Final = (
    "subscription_policy",
    "subscription_tier",
    "application_policy",
    "advanced_policy",
    "temporary_limit",
    "revoke",
    "block_channel",
    "contact_owner",
    "deny_ip",
)


@dataclass(frozen=True, slots=True)
class DirectiveSpec:
    """The directive a suggestion pushes once approved (mode, id and expiry come then)."""

    action: str  # "BLOCK" or "LIMIT"
    application_id: str = ""
    api_name: str = ""
    api_version: str = ""
    channel: str = ""
    limit_requests: int = 0
    limit_period_seconds: int = 0
    ttl_seconds: int = HOUR_S
    reason: str = ""

    def build(self, suggestion_id: str, mode: int, expires_at_us: int) -> dpb.Directive:
        block = self.action == "BLOCK"
        return dpb.Directive(
            id=suggestion_id,
            mode=mode,  # type: ignore[arg-type]
            action=dpb.DIRECTIVE_ACTION_BLOCK if block else dpb.DIRECTIVE_ACTION_LIMIT,
            application_id=self.application_id,
            api_name=self.api_name,
            api_version=self.api_version,
            channel=self.channel,
            limit_requests=self.limit_requests,
            limit_period_seconds=self.limit_period_seconds,
            expires_at_us=expires_at_us,
            error_code=900805 if block else 900806,
            reason=self.reason[:240],
            suggestion_id=suggestion_id,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action}
        for k in ("application_id", "api_name", "api_version", "channel"):
            if getattr(self, k):
                out[k] = getattr(self, k)
        if self.action == "LIMIT":
            out["limit_requests"] = self.limit_requests
            out["limit_period_seconds"] = self.limit_period_seconds
        out["ttl_seconds"] = self.ttl_seconds
        out["reason"] = self.reason
        return out

    @staticmethod
    def from_json(doc: dict[str, Any]) -> DirectiveSpec:
        return DirectiveSpec(
            action=str(doc["action"]),
            application_id=str(doc.get("application_id", "")),
            api_name=str(doc.get("api_name", "")),
            api_version=str(doc.get("api_version", "")),
            channel=str(doc.get("channel", "")),
            limit_requests=int(doc.get("limit_requests", 0)),
            limit_period_seconds=int(doc.get("limit_period_seconds", 0)),
            ttl_seconds=int(doc.get("ttl_seconds", HOUR_S)),
            reason=str(doc.get("reason", "")),
        )


@dataclass(slots=True)
class Suggestion:
    id: str
    class_name: str
    concerns: str  # "subscription", "application", "api" or "client" (an IP)
    action: str
    summary: str
    expected_effect: str
    evidence: dict[str, Any]
    application_id: str = ""
    application: str = ""
    owner: str = ""
    api: str = ""
    api_version: str = ""
    channel: str = ""
    owner_note: str = ""
    directive: DirectiveSpec | None = None
    wso2: AdminRequest | None = None
    refused_share: float = 0.0
    auto_approval: str = ""
    auto_eligible: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    tenant: str = ""  # the API's WSO2 tenant ("" for an application: it spans tenants)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"id": self.id, "class": self.class_name, "concerns": self.concerns}
        if self.concerns in ("subscription", "application"):
            doc["application_id"] = self.application_id
            doc["application"] = self.application
            doc["owner"] = self.owner
        if self.concerns in ("subscription", "api"):
            doc["api"] = self.api
            doc["api_version"] = self.api_version
            if self.tenant:
                doc["tenant"] = self.tenant
        if self.channel:
            doc["channel"] = self.channel
        if self.concerns == "client":  # auth_failing: a client IP (or its salted hash)
            doc["client_ip"] = str(self.extra.get("client_ip", ""))
        doc |= {
            "action": self.action,
            "summary": self.summary,
            "evidence": self.evidence,
            "expected_effect": self.expected_effect,
            "owner_note": self.owner_note,
            "directive": self.directive.to_json() if self.directive else None,
            "wso2": self.wso2.to_json() if self.wso2 else None,
            "refused_share": round(self.refused_share, 4),
            "auto_approval": self.auto_approval,
        }
        return doc

    @staticmethod
    def from_json(doc: dict[str, Any]) -> Suggestion:
        return Suggestion(
            id=str(doc["id"]),
            class_name=str(doc["class"]),
            concerns=str(doc["concerns"]),
            action=str(doc["action"]),
            summary=str(doc.get("summary", "")),
            expected_effect=str(doc.get("expected_effect", "")),
            evidence=dict(doc.get("evidence") or {}),
            application_id=str(doc.get("application_id", "")),
            application=str(doc.get("application", "")),
            owner=str(doc.get("owner", "")),
            api=str(doc.get("api", "")),
            api_version=str(doc.get("api_version", "")),
            channel=str(doc.get("channel", "")),
            owner_note=str(doc.get("owner_note", "")),
            directive=DirectiveSpec.from_json(doc["directive"]) if doc.get("directive") else None,
            wso2=AdminRequest.from_json(doc["wso2"]) if doc.get("wso2") else None,
            refused_share=float(doc.get("refused_share", 0.0)),
            auto_approval=str(doc.get("auto_approval", "")),
            tenant=str(doc.get("tenant", "")),
            extra={"client_ip": str(doc["client_ip"])} if "client_ip" in doc else {},
        )

    @property
    def who(self) -> str:
        app = self.application or self.application_id
        if self.concerns == "api":
            return f"API {self.api} {self.api_version}"
        if self.concerns == "application":
            return f"application {app}"
        if self.concerns == "client":
            return f"client {self.extra.get('client_ip', '')}"
        return f"{app} on {self.api} {self.api_version}"


def suggestion_id(*parts: object) -> str:
    h = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return f"sg-{h[:12]}"
