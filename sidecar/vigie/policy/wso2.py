"""WSO2 API Manager Admin REST API v4 payloads, and the files ``apictl`` imports.

Schemas (``admin-v4.yaml``, base path ``/api/am/admin/v4``):

- ``ApplicationThrottlePolicy`` / ``SubscriptionThrottlePolicy`` / ``AdvancedThrottlePolicy``:
  ``ThrottlePolicy`` (``policyName``, ``displayName``, ``description``, and ``type``, the
  discriminator, which must name the schema) plus a ``defaultLimit`` ``ThrottleLimit`` of type
  ``REQUESTCOUNTLIMIT`` holding a ``requestCount`` (``timeUnit`` sec/min/hour/day, ``unitTime``,
  ``requestCount``). POSTed to ``/throttling/policies/{application,subscription,advanced}``.
- ``BlockingCondition`` (a deny policy): ``conditionType`` API, APPLICATION, IP, IPRANGE or USER,
  ``conditionValue``, ``conditionStatus``. POSTed to ``/throttling/deny-policies``.

One deviation from the spec, on purpose: the spec types ``conditionValue`` as an object, but
WSO2's implementation (carbon-apimgt ``ThrottlingApiServiceImpl``: ``(String)
body.getConditionValue()`` for API, APPLICATION and USER) reads a JSON *string* for those
types — the API context (``/pizzashack/1.0.0``) or ``owner:applicationName`` — and WSO2's own
integration tests send a string. An object there fails on a real server, so vigie sends the
string; only IP and IPRANGE take an object.

``apictl import policy rate-limiting -f FILE`` (and ``POST /throttling/policies/import``) reads
the envelope ``/throttling/policies/export`` writes: ``{"type": "throttling policy",
"subtype": "subscription policy" | "application policy" | "advanced policy", "version": ...,
"data": <the policy>}`` in a ``.json`` or ``.yaml`` file. Deny policies have no apictl form.

Policy names may only hold ``[A-Za-z0-9_]`` (carbon-apimgt
``RestApiAdminUtils.validateThrottlePolicyNameProperty``) and at most 60 characters (the spec's
``maxLength``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Final

from vigie.errors import VigieError

ADMIN_BASE: Final = "/api/am/admin/v4"
APPLICATION_SCHEMA: Final = "ApplicationThrottlePolicy"
SUBSCRIPTION_SCHEMA: Final = "SubscriptionThrottlePolicy"
ADVANCED_SCHEMA: Final = "AdvancedThrottlePolicy"
BLOCKING_SCHEMA: Final = "BlockingCondition"
POLICY_SCHEMAS: Final = (APPLICATION_SCHEMA, SUBSCRIPTION_SCHEMA, ADVANCED_SCHEMA)
COLLECTION_PATHS: Final = {
    APPLICATION_SCHEMA: "/throttling/policies/application",
    SUBSCRIPTION_SCHEMA: "/throttling/policies/subscription",
    ADVANCED_SCHEMA: "/throttling/policies/advanced",
    BLOCKING_SCHEMA: "/throttling/deny-policies",
}
# the "subtype" of an apictl throttling policy file (RestApiConstants in carbon-apimgt, v4 API)
APICTL_SUBTYPES: Final = {
    APPLICATION_SCHEMA: "application policy",
    SUBSCRIPTION_SCHEMA: "subscription policy",
    ADVANCED_SCHEMA: "advanced policy",
}
APICTL_TYPE: Final = "throttling policy"
DEFAULT_APIM_VERSION: Final = "v4.2.0"
CONDITION_TYPES: Final = ("API", "APPLICATION", "IP", "IPRANGE", "USER")
STRING_CONDITIONS: Final = ("API", "APPLICATION", "USER")
TIME_UNITS: Final = ("sec", "min", "hour", "day")
_NAME_OK = re.compile(r"^[A-Za-z0-9_]{1,60}$")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_]+")


class PayloadError(VigieError):
    """A WSO2 payload cannot be built from what vigie knows (the message says what is missing)."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class AdminRequest:
    """One request to the WSO2 Admin REST API v4 (path relative to ``ADMIN_BASE``)."""

    schema: str
    method: str
    path: str
    payload: dict[str, Any]

    @property
    def policy_name(self) -> str:
        return str(self.payload.get("policyName", ""))

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "method": self.method,
            "path": self.path,
            "payload": self.payload,
        }

    @staticmethod
    def from_json(doc: dict[str, Any]) -> AdminRequest:
        return AdminRequest(
            str(doc["schema"]), str(doc["method"]), str(doc["path"]), dict(doc["payload"])
        )


def policy_name(*parts: str) -> str:
    """A WSO2-valid policy name from parts: ``[A-Za-z0-9_]``, at most 60 characters."""
    name = "_".join(p for p in (_NOT_NAME.sub("", x) for x in parts) if p)
    name = name[:60] or "vigie"
    if not _NAME_OK.match(name):  # pragma: no cover - the substitution guarantees it
        raise PayloadError(f"cannot make a policy name from {parts!r}")
    return name


def request_count_limit(count: int, time_unit: str = "min", unit_time: int = 1) -> dict[str, Any]:
    """A ``ThrottleLimit`` of type ``REQUESTCOUNTLIMIT``."""
    if count <= 0:
        raise PayloadError(f"a request count limit must be positive, got {count}")
    if time_unit not in TIME_UNITS:
        raise PayloadError(f"time unit {time_unit!r} is not one of {', '.join(TIME_UNITS)}")
    return {
        "type": "REQUESTCOUNTLIMIT",
        "requestCount": {"timeUnit": time_unit, "unitTime": unit_time, "requestCount": count},
    }


def _policy(schema: str, name: str, display: str, description: str, per_min: int) -> dict[str, Any]:
    if not _NAME_OK.match(name):
        raise PayloadError(f"policy name {name!r}: only [A-Za-z0-9_], at most 60 characters")
    return {
        "policyName": name,
        "displayName": display[:512],
        "description": description[:1024],
        "type": schema,
        "defaultLimit": request_count_limit(per_min),
    }


def subscription_policy(
    name: str,
    per_min: int,
    description: str,
    stop_on_quota_reach: bool = True,
    burst_per_min: int = 0,
) -> AdminRequest:
    """A subscription tier; ``burst_per_min`` > 0 adds burst control (``rateLimitCount`` per
    ``rateLimitTimeUnit``), the spike arrest WSO2 answers with 900807."""
    body = _policy(SUBSCRIPTION_SCHEMA, name, f"{per_min:,} per minute", description, per_min)
    if burst_per_min > 0:
        body["rateLimitCount"] = burst_per_min
        body["rateLimitTimeUnit"] = "min"
    body["stopOnQuotaReach"] = stop_on_quota_reach
    body["billingPlan"] = "FREE"
    return AdminRequest(SUBSCRIPTION_SCHEMA, "POST", COLLECTION_PATHS[SUBSCRIPTION_SCHEMA], body)


def application_policy(name: str, per_min: int, description: str) -> AdminRequest:
    body = _policy(APPLICATION_SCHEMA, name, f"{per_min:,} per minute", description, per_min)
    return AdminRequest(APPLICATION_SCHEMA, "POST", COLLECTION_PATHS[APPLICATION_SCHEMA], body)


def advanced_policy(name: str, per_min: int, description: str) -> AdminRequest:
    """An API-level (advanced) policy: attach it to the API in the Publisher as its limit."""
    body = _policy(ADVANCED_SCHEMA, name, f"{per_min:,} per minute", description, per_min)
    body["conditionalGroups"] = []
    return AdminRequest(ADVANCED_SCHEMA, "POST", COLLECTION_PATHS[ADVANCED_SCHEMA], body)


def deny_api(context: str) -> AdminRequest:
    """Deny every request to an API: ``conditionValue`` is its context with the version."""
    if not context.startswith("/"):
        raise PayloadError(f"API context {context!r} must start with '/' (e.g. /pizzashack/1.0.0)")
    body = {"conditionType": "API", "conditionValue": context, "conditionStatus": True}
    return AdminRequest(BLOCKING_SCHEMA, "POST", COLLECTION_PATHS[BLOCKING_SCHEMA], body)


def deny_application(owner: str, application_name: str) -> AdminRequest:
    """Deny every request of an application: ``conditionValue`` is ``owner:applicationName``."""
    if not owner or not application_name:
        raise PayloadError("an APPLICATION deny policy needs the application's owner and name")
    body = {
        "conditionType": "APPLICATION",
        "conditionValue": f"{owner}:{application_name}",
        "conditionStatus": True,
    }
    return AdminRequest(BLOCKING_SCHEMA, "POST", COLLECTION_PATHS[BLOCKING_SCHEMA], body)


def deny_ip(address: str) -> AdminRequest:
    """Deny every request from one client address: ``conditionValue`` is ``{"fixedIp": ...,
    "invert": false}`` (an object, as the spec says for IP)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise PayloadError(f"{address!r} is not an IP address") from None
    body = {
        "conditionType": "IP",
        "conditionValue": {"fixedIp": str(ip), "invert": False},
        "conditionStatus": True,
    }
    return AdminRequest(BLOCKING_SCHEMA, "POST", COLLECTION_PATHS[BLOCKING_SCHEMA], body)


def deny_ip_range(first: str, last: str) -> AdminRequest:
    """Deny a range of client addresses (``startingIp``..``endingIp``, one family, ordered)."""
    try:
        lo, hi = ipaddress.ip_address(first), ipaddress.ip_address(last)
    except ValueError as exc:
        raise PayloadError(f"not an IP range: {exc}") from None
    if lo.version != hi.version or int(lo) > int(hi):
        raise PayloadError(f"{first}..{last} is not an ordered range of one address family")
    body = {
        "conditionType": "IPRANGE",
        "conditionValue": {"startingIp": str(lo), "endingIp": str(hi), "invert": False},
        "conditionStatus": True,
    }
    return AdminRequest(BLOCKING_SCHEMA, "POST", COLLECTION_PATHS[BLOCKING_SCHEMA], body)


def apictl_file(req: AdminRequest, apim_version: str = DEFAULT_APIM_VERSION) -> dict[str, Any]:
    """The file ``apictl import policy rate-limiting -f`` takes for a throttling policy."""
    subtype = APICTL_SUBTYPES.get(req.schema)
    if subtype is None:
        raise PayloadError(f"{req.schema} has no apictl form (apply it with the Admin API)")
    return {"type": APICTL_TYPE, "subtype": subtype, "version": apim_version, "data": req.payload}


def apictl_file_name(req: AdminRequest) -> str:
    kind = APICTL_SUBTYPES[req.schema].split()[0]
    return f"{kind}-{req.policy_name}.json"


def check_discriminator(req: AdminRequest) -> None:
    """The ``type`` discriminator names the schema (JSON-schema validators ignore it)."""
    if req.schema in POLICY_SCHEMAS and req.payload.get("type") != req.schema:
        raise PayloadError(f"{req.schema}: type is {req.payload.get('type')!r}")
    if req.schema == BLOCKING_SCHEMA and req.payload.get("conditionType") not in CONDITION_TYPES:
        raise PayloadError(f"conditionType {req.payload.get('conditionType')!r} is not valid")
