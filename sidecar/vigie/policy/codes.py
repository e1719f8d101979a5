"""Which WSO2 throttle code each throttled subscription hits, and what each code points to.

The state counts throttled responses per subscription but not by code; the store's rollups
keep the code (``error_code`` in the minute and daily tables). ``vigie.store.codes`` reads
them into the JSON document ``ThrottleCodes.from_json`` takes, so the policy layer never
imports the store (they are sibling layers) and a remote store could send the same document.

WSO2 4.x throttle codes (carbon-apimgt ``APIThrottleConstants``; all answered with 429):

| code | WSO2 name | the limit it hits | the policy to change (Admin API v4 schema) |
|---|---|---|---|
| 900800 | API_LIMIT_EXCEEDED | the API's API-level limit | AdvancedThrottlePolicy on the API |
| 900802 | RESOURCE_LIMIT_EXCEEDED | a resource's limit | AdvancedThrottlePolicy on the resource |
| 900803 | APPLICATION_LEVEL_LIMIT_EXCEEDED | the application's tier | ApplicationThrottlePolicy |
| 900804 | SUBSCRIPTION_LIMIT_EXCEEDED | the subscription's tier | SubscriptionThrottlePolicy |
| 900806 | CUSTOM_POLICY_LIMIT_EXCEEDED | a custom (Siddhi) policy | CustomRule |
| 900807 | SUBSCRIPTION_BURST_LIMIT_EXCEEDED | the tier's burst | SubscriptionThrottlePolicy |

900801 (hard limit, 503), 900805 (blocked, 403) and 900808 (connection count) name no policy a
consumer outgrew and are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

THROTTLE_CODES: Final = {
    900800: ("API_LIMIT_EXCEEDED", "the API's advanced policy (API-level limit)"),
    900802: ("RESOURCE_LIMIT_EXCEEDED", "the resource's advanced policy"),
    900803: ("APPLICATION_LEVEL_LIMIT_EXCEEDED", "its application policy"),
    900804: ("SUBSCRIPTION_LIMIT_EXCEEDED", "its subscription tier"),
    900806: ("CUSTOM_POLICY_LIMIT_EXCEEDED", "the custom policy"),
    900807: ("SUBSCRIPTION_BURST_LIMIT_EXCEEDED", "its subscription tier's burst control"),
}
SubKey = tuple[str, str, str]  # application id, API, API version


def describe(code: int) -> str:
    """``900803 APPLICATION_LEVEL_LIMIT_EXCEEDED — its application policy``."""
    name, where = THROTTLE_CODES.get(code, ("unknown throttle code", "?"))
    return f"{code} {name} — {where}"


def code_guide() -> str:
    """Each throttle code with its meaning and the policy it points to, for an owner note."""
    return "; ".join(f"{c} {name} → {where}" for c, (name, where) in THROTTLE_CODES.items())


@dataclass(slots=True)
class SubCodes:
    """One subscription's throttled responses by code, and by resource for 900802."""

    codes: dict[int, int] = field(default_factory=dict)
    resources: dict[tuple[str, str], int] = field(default_factory=dict)  # (method, resource)

    def dominant(self) -> int | None:
        """The code of most of its throttled responses (ties: the lowest code), or None."""
        known = [(n, -c) for c, n in self.codes.items() if c in THROTTLE_CODES and n > 0]
        return -max(known)[1] if known else None

    def resource(self) -> tuple[str, str] | None:
        """The (method, resource) most of its 900802 responses came from."""
        if not self.resources:
            return None
        return max(self.resources.items(), key=lambda kv: (kv[1], kv[0]))[0]


@dataclass(slots=True)
class ThrottleCodes:
    """The throttle codes of a time window, and the busiest minute (requests, all consumers)
    of each API and resource that answered 900800 or 900802 (what their limit is sized from)."""

    subs: dict[SubKey, SubCodes] = field(default_factory=dict)
    api_peak: dict[tuple[str, str], int] = field(default_factory=dict)
    resource_peak: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    window: str = ""  # how the window was chosen, for the evidence

    def of(self, key: SubKey) -> SubCodes | None:
        return self.subs.get(key)

    @staticmethod
    def from_json(doc: Mapping[str, Any]) -> ThrottleCodes:
        """Read ``vigie.store.codes.throttle_codes``'s document (unknown keys ignored)."""
        out = ThrottleCodes(window=str(doc.get("window", "")))
        for s in doc.get("subs", ()):
            key = (str(s["application_id"]), str(s["api"]), str(s["api_version"]))
            sc = out.subs.setdefault(key, SubCodes())
            for code, n in dict(s.get("codes", {})).items():
                sc.codes[int(code)] = sc.codes.get(int(code), 0) + int(n)
            for r in s.get("resources", ()):
                rk = (str(r["method"]), str(r["resource"]))
                sc.resources[rk] = sc.resources.get(rk, 0) + int(r["throttled"])
        for a in doc.get("api_peaks", ()):
            out.api_peak[(str(a["api"]), str(a["api_version"]))] = int(a["per_minute"])
        for r in doc.get("resource_peaks", ()):
            rk4 = (str(r["api"]), str(r["api_version"]), str(r["method"]), str(r["resource"]))
            out.resource_peak[rk4] = int(r["per_minute"])
        return out
