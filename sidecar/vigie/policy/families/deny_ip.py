"""auth_failing: deny the client IP that keeps failing to authenticate (a WSO2 deny policy,
``BlockingCondition`` with conditionType ``IP``), through the usual lifecycle: proposed,
approved, exported (``vigie policies export``) and applied (``vigie policies apply``) by the
operator. There is no gateway directive: vigie's directives match applications, APIs and
channels, not addresses; WSO2 enforces the deny policy itself.

When the handler captured the address as a salted hash (``vigie.capture.client-ip = hash``,
the default) vigie does not know the address: the suggestion carries no payload, says so, and
tells the operator how to find it (the gateway's access log of the failures' times, or the
handler's ``plain`` mode). Application keys and APIs holding the class are in the evidence of
``vigie clients`` and its alerts; they get no deny suggestion (an invalid key has no
application to deny, and denying an API would refuse its good consumers too).
"""

from __future__ import annotations

from vigie.classify.security import ClientView
from vigie.policy.families._context import Context
from vigie.policy.model import Suggestion, suggestion_id
from vigie.policy.wso2 import PayloadError, deny_ip

LOOKUP_NOTE = (
    "The handler captured this client as a salted hash ({key}), not its address: find the "
    "address in the gateway's access log (http_access_*.log) at the failures' times "
    "({first} to {last}, codes {codes}), or switch the handler to plain capture "
    "(vigie.capture.client-ip = plain), then POST the deny policy "
    '{{"conditionType": "IP", "conditionValue": {{"fixedIp": "<address>", "invert": false}}, '
    '"conditionStatus": true}} to /api/am/admin/v4/throttling/deny-policies.'
)


def clients(ctx: Context, items: list[ClientView]) -> None:
    """A deny-policy suggestion per client IP holding auth_failing."""
    for c in items:
        if c.kind != "ip" or "auth_failing" not in c.classes:
            continue
        ev = c.evidence
        first = str(ev.get("episode_first") or ev["first"])
        apis = ev.get("distinct_apis", 0)
        payload, note = None, ""
        if c.hashed:
            note = LOOKUP_NOTE.format(key=c.key, first=first, last=ev["last"],
                                      codes=",".join(ev["codes"]))  # fmt: skip
        else:
            try:
                payload = deny_ip(c.key)
            except PayloadError as exc:  # not an address (a gateway sent something else)
                note = f"no deny policy: {exc}"
        ctx.add(
            Suggestion(
                id=suggestion_id("auth_failing", c.key, first),
                class_name="auth_failing",
                concerns="client",
                action="deny_ip",
                summary=(
                    f"client {c.key} failed to authenticate {ev['failures_last_hour']:,} times "
                    f"in the last hour on {apis} API(s) — deny it in WSO2"
                    + (" (look the address up first: a salted hash)" if c.hashed else "")
                ),
                expected_effect=(
                    "WSO2 refuses every request from this address (HTTP 403, code 900805) "
                    "until the deny policy is removed; other clients are untouched"
                ),
                owner_note=note,
                evidence={"auth_failing": ev, "client_ip": c.key, "hashed": c.hashed},
                wso2=payload,
                extra={"client_ip": c.key, "hashed": c.hashed},
            )
        )
