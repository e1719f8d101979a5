"""The report's sections a manager forwards: suggestions and their decisions, what the
directives refused, per-owner and per-tenant splits, and the names that replace ids.

Where each comes from:

- **names and owners** (``Directory``): the inventory (``--inventory``: application names and
  owners, the tenant), then the suggestions' own names and owners, then the names the rollups
  carry (the events' ``applicationName``); an id nothing names stays an id;
- **suggestions** (``load_book`` for a state directory, or the rows ``vigie suggestions list``
  returns from a running sidecar): each with its state, when it was decided, by whom and why
  (the audit trail, when read from the state directory);
- **directive effect**: the requests the rollups counted in the directive's scope while it was
  active, and those refused with its code (900805 for a BLOCK, 900806 for a LIMIT). WSO2's own
  deny and custom policies answer the same codes: the count is an upper bound of vigie's;
- **tenants**: a ``tenant`` key of the store when it has one (``GROUPABLE``), else the
  inventory's tenant for the whole period; otherwise no tenant split.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from vigie.classify.views import iso
from vigie.errors import VigieError
from vigie.policy.book import AUDIT_FILE, RECORDS_FILE, AuditEntry, Record
from vigie.sources.inventory import Inventory
from vigie.state import layout as L
from vigie.store.query import GROUPABLE, AggQuery, Store

DAY: Final = L.DAY_US
LIVE: Final = ("approved", "pushed", "exported")
DECIDED: Final = ("approved", "rejected", "pushed", "exported", "expired", "withdrawn")
UNKNOWN_OWNER: Final = "(owner unknown)"


@dataclass(slots=True)
class Directory:
    """Application id -> name and owner; the platform's tenant when one is known."""

    names: dict[str, str] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    tenant: str = ""

    @staticmethod
    def of(inventory: Inventory | None, suggestions: Iterable[Mapping[str, Any]] = ()) -> Directory:
        d = Directory(tenant=inventory.tenant if inventory else "")
        for s in suggestions:
            app = str(s.get("application_id") or "")
            if app and s.get("application"):
                d.names.setdefault(app, str(s["application"]))
            if app and s.get("owner"):
                d.owners.setdefault(app, str(s["owner"]))
        if inventory is not None:  # the inventory wins: it is what WSO2 says
            for a in inventory.applications:
                if a.name:
                    d.names[a.id] = a.name
                if a.owner:
                    d.owners[a.id] = a.owner
        return d

    def name(self, app_id: str, fallback: str = "") -> str:
        return self.names.get(app_id) or fallback or app_id

    def owner(self, app_id: str) -> str:
        return self.owners.get(app_id, "")


def load_book(directory: Path) -> tuple[list[dict[str, Any]], str]:
    """The suggestions of a state directory, read only (never rewritten), as report rows; and
    a one-line note when they cannot be read (then no rows)."""
    path = directory / RECORDS_FILE
    if not path.is_file():
        return [], ""
    try:
        doc = orjson.loads(path.read_bytes())
        records = [Record.from_json(r) for r in doc["records"]]
    except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        return [], f"{path}: unreadable, suggestions left out ({exc})"
    trail: dict[str, list[AuditEntry]] = defaultdict(list)
    audit = directory / AUDIT_FILE
    if audit.is_file():
        for line in audit.read_bytes().splitlines():
            try:
                e = AuditEntry.from_json(orjson.loads(line))
            except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
                continue  # a torn line: the rest still says who decided
            trail[e.subject].append(e)
    rows = []
    for r in records:
        s = r.suggestion
        decision = next((e for e in reversed(trail.get(r.id, ())) if e.to_state == r.state), None)
        rows.append(
            {
                "id": r.id,
                "class": s.class_name,
                "concerns": s.concerns,
                "action": s.action,
                "application_id": s.application_id,
                "application": s.application,
                "owner": s.owner,
                "api": s.api,
                "api_version": s.api_version,
                "summary": s.summary,
                "state": r.state,
                "auto": r.auto,
                "created_us": r.created_at_us,
                "updated_us": r.updated_at_us,
                "decided_by": decision.actor if decision and r.state in DECIDED else "",
                "reason": decision.reason if decision and r.state in DECIDED else "",
            }
        )
    return rows, ""


def suggestions(
    rows: Sequence[Mapping[str, Any]], frm: int, to: int, names: Directory, scope_app: str = "",
    scope_api: str = "",
) -> list[dict[str, Any]]:  # fmt: skip
    """The suggestions of the period: made or decided in it, or still live in it."""
    out = []
    for r in rows:
        made, changed = int(r.get("created_us", 0)), int(r.get("updated_us", 0))
        live = r.get("state") in LIVE and made < to
        if not (frm <= made < to or frm <= changed < to or live):
            continue
        app = str(r.get("application_id") or "")
        if scope_app and scope_app not in (app, r.get("application")):
            continue
        if scope_api and r.get("api") and r.get("api") != scope_api:
            continue
        who = (
            f"API {r.get('api')} {r.get('api_version')}"
            if r.get("concerns") == "api"
            else names.name(app, str(r.get("application") or ""))
        )
        state = str(r.get("state", ""))
        decided = state in DECIDED
        out.append(
            dict(r)
            | {
                "who": who,
                "owner": names.owner(app) or str(r.get("owner") or ""),
                "proposed": _minute(made),
                "decided": _minute(changed) if decided else "",
                "decision": _decision(state, bool(r.get("auto")), str(r.get("decided_by", ""))),
            }
        )
    out.sort(key=lambda s: (s["state"] != "proposed", -int(s.get("created_us", 0))))
    return out


def _minute(us: int) -> str:
    return (iso(us) or "")[:16].replace("T", " ")


def _decision(state: str, auto: bool, actor: str) -> str:
    if state == "proposed":
        return "awaiting review"
    by = " (auto-approved)" if auto else f" by {actor}" if actor else ""
    return f"{state}{by}"


def directive_effects(store: Store, scope_to: int, episodes: list[dict[str, Any]]) -> None:
    """Add to each directive episode ``scope_requests`` and ``refused``: the requests of its
    scope while active (whole days) and those answered with its code; None when the scope is
    the whole platform with no application or API (too broad to attribute)."""
    for e in episodes:
        if e["kind"] != "directive":
            continue
        try:
            d = json.loads(e.get("detail") or "{}")
        except ValueError:
            d = {}
        block = "BLOCK" in str(d.get("action", ""))
        code = int(d.get("error_code") or (900805 if block else 900806))
        e["mode"] = str(d.get("mode", "")).removeprefix("DIRECTIVE_MODE_").lower()
        e["refused_code"] = code
        if not (e["application_id"] or e["api"]):
            e["scope_requests"] = e["refused"] = None
            continue
        frm = e["from_us"] - e["from_us"] % DAY
        end = e["to_us"] or scope_to
        to = max(end + (-end) % DAY, frm + DAY)
        q = AggQuery(
            table="daily",
            from_us=frm,
            to_us=to,
            group_by=("error_code",),
            api=e["api"],
            api_version=e["api_version"],
            application=e["application_id"],
            channel=str(d.get("channel", "")),
            histogram=False,
        ).validate()
        rows = store.aggregate(q)
        e["scope_requests"] = sum(r.get("requests") for r in rows)
        e["refused"] = sum(r.get("requests") for r in rows if r.key[0] == code)


def owners(
    consumers: Sequence[Mapping[str, Any]],
    names: Directory,
    episodes: Sequence[Mapping[str, Any]],
    suggested: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Per owner: its applications, their requests and outcomes, classes and suggestions."""
    acc: dict[str, dict[str, Any]] = {}
    for c in consumers:
        owner = names.owner(c["application_id"]) or UNKNOWN_OWNER
        a = acc.setdefault(owner, {"owner": owner, "applications": 0, "requests": 0,
                                   "client_errors": 0, "server_errors": 0, "throttled": 0,
                                   "classes": 0, "suggestions": 0, "_top": ("", -1)})  # fmt: skip
        a["applications"] += 1
        for k in ("requests", "client_errors", "server_errors", "throttled"):
            a[k] += c[k] or 0
        if c["requests"] > a["_top"][1]:
            a["_top"] = (c["application"] or c["application_id"], c["requests"])
    classes = Counter(
        names.owner(e["application_id"]) or UNKNOWN_OWNER
        for e in episodes
        if e["kind"] == "class" and e["application_id"]
    )
    sugg = Counter(
        names.owner(str(s.get("application_id") or "")) or str(s.get("owner") or "")
        for s in suggested
        if s.get("application_id")
    )
    out = []
    for owner, a in acc.items():
        n = a["requests"]
        a["classes"] = classes.get(owner, 0)
        a["suggestions"] = sugg.get(owner, 0)
        a["error_rate"] = round((a["client_errors"] + a["server_errors"]) / n, 5) if n else None
        a["throttle_rate"] = round(a["throttled"] / n, 5) if n else None
        a["busiest_application"] = a.pop("_top")[0]
        out.append(a)
    out.sort(key=lambda a: (a["owner"] == UNKNOWN_OWNER, -a["requests"]))
    return out


def tenants(store: Store, query: AggQuery, names: Directory, total: Mapping[str, Any]) -> tuple[
        list[dict[str, Any]], str]:  # fmt: skip
    """Per tenant, and where the tenant came from: the store's ``tenant`` key when it has one,
    the inventory's tenant (the whole period is that tenant's), or nothing."""
    if "tenant" in GROUPABLE:
        try:
            q = AggQuery(**{**_fields(query), "group_by": ("tenant",)}).validate()
            answer = store.aggregate(q)
        except VigieError:  # a store (or a remote sidecar) older than the tenant field
            answer = []
        rows = [
            {"tenant": r.key[0] or "(no tenant)", "requests": r.get("requests"),
             "throttled": r.get("throttled"),
             "errors": r.get("client_errors") + r.get("server_errors")}
            for r in answer
        ]  # fmt: skip
        if rows:
            return sorted(rows, key=lambda r: -r["requests"]), "the store's tenant field"
    if names.tenant:
        errors = (total.get("client_errors") or 0) + (total.get("server_errors") or 0)
        row = {"tenant": names.tenant, "requests": total.get("requests", 0),
               "throttled": total.get("throttled", 0), "errors": errors}  # fmt: skip
        return [row], "the inventory, one tenant"
    return [], ""


def _fields(q: AggQuery) -> dict[str, Any]:
    return {
        "table": q.table,
        "from_us": q.from_us,
        "to_us": q.to_us,
        "api": q.api,
        "api_version": q.api_version,
        "application": q.application,
        "channel": q.channel,
        "tenant": q.tenant,
        "histogram": False,
    }
