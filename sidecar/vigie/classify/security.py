"""What the ``auth_failing`` table (``vigie.state._security``) says, in words: one
``ClientView`` per tracked client IP, application key and API, with its evidence and its
closed episodes. Read by the admin service (``vigie clients``, ``vigie status``), the alerts
and the deny-policy suggestions.

A client IP is the handler's capture (``vigie.capture.client-ip``): the address itself in
``plain`` mode, ``h:`` + 16 hex digits of a salted hash in ``hash`` mode (``hashed`` is then
True: the operator looks the address up in the gateway's access log, see docs/classes.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from vigie.classify.views import iso
from vigie.state import _security as S
from vigie.state.engine import State
from vigie.state.thresholds import SECURITY_CLASS_NAMES
from vigie.wire import tenants

__all__ = ["HASH_PREFIX", "ClientView", "clients", "iso", "security_counts"]

HASH_PREFIX: Final = "h:"
CLASS: Final = SECURITY_CLASS_NAMES[0]


@dataclass(slots=True)
class ClientView:
    kind: str  # ip, app or api
    key: str  # the client IP (or its hash), the application id, or "name version"
    classes: list[str]
    evidence: dict[str, Any]
    episodes: list[dict[str, Any]] = field(default_factory=list)
    tenant: str = ""  # api rows: the API's tenant domain
    hashed: bool = False  # ip rows: a salted hash, not the address

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "tenant": self.tenant,
            "hashed": self.hashed,
            "classes": self.classes,
            "evidence": self.evidence,
            "episodes": self.episodes,
        }


def _api_name(state: State, key: int) -> tuple[str, str]:
    """("name version", tenant) of an API key ((keyed name gid << 32) | version gid)."""
    tenant, name = tenants.split(state.string(key >> 32))
    return f"{name} {state.string(key & 0xFFFFFFFF)}", tenant


def _name(state: State, kind: str, key: int) -> tuple[str, str]:
    if kind == "api":
        return _api_name(state, key)
    return state.string(key), ""


def clients(state: State, held_only: bool = False) -> list[ClientView]:
    """Every tracked row (or only those holding ``auth_failing``), held first, the most
    failures of the last hour first."""
    sec = state.security
    episodes: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for e in sec.episodes:
        episodes.setdefault((e.kind, e.key), []).append(
            {
                "class": CLASS,
                "first": iso(e.first_us),
                "last": iso(e.last_us),
                "failures": e.failures,
                "peak_failures_per_hour": e.peak,
                "ended": "evicted" if e.evicted else "quiet hour",
            }
        )
    out: list[ClientView] = []
    rows = sec.held() if held_only else sec.used_rows().tolist()
    for row in rows:
        r = sec.record(row)
        kind = r["kind"]
        name, tenant = _name(state, kind, r["key"])
        if kind == "api":
            others = [state.string(o) for o in r["others"]]
        else:
            others = [_api_name(state, o)[0] for o in r["others"]]
        evidence = {
            "failures_last_hour": r["failures_last_hour"],
            "failures_total": r["failures_total"],
            "first": iso(r["first_us"]),
            "last": iso(r["last_us"]),
            "codes": sorted(r["codes"]),
            ("client_ips" if kind == "api" else "apis"): others,
            ("distinct_client_ips" if kind == "api" else "distinct_apis"): (
                f"more than {S.OTHER_SLOTS}" if r["others_more"] else len(others)
            ),
        }
        if r["held"]:
            evidence |= {
                "episode_first": iso(r["episode_first_us"]),
                "episode_failures": r["episode_failures"],
                "peak_failures_per_hour": r["episode_peak"],
                "threshold": state.thresholds.auth_min_failures,
            }
        out.append(
            ClientView(
                kind=kind,
                key=name,
                classes=[CLASS] if r["held"] else ["normal"],
                evidence=evidence,
                episodes=episodes.get((kind, r["key"]), []),
                tenant=tenant,
                hashed=kind == "ip" and name.startswith(HASH_PREFIX),
            )
        )
    out.sort(key=lambda c: (c.classes != [CLASS], -c.evidence["failures_last_hour"], c.key))
    return out


def security_counts(state: State) -> dict[str, int]:
    """``{"auth_failing": n}``: the client IPs and application keys holding it (the API rows
    say where, they are not counted as clients)."""
    c = state.security.counts()
    return {CLASS: c["ip"] + c["app"]}
