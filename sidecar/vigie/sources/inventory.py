"""The inventory: registered channels, and subscriptions/APIs that may never appear in traffic.

JSON::

    {"tenant": "carbon.super", "as_of": time,
     "applications": [{"id", "name", "owner", "channel", "created"}],
     "subscriptions": [{"application_id", "api", "api_version", "tier", "tenant", "created",
                        "last_used"}],
     "apis": [{"name", "version", "context", "id", "lifecycle", "environments": [str],
               "tenant", "created", "last_used"}]}

Every key but the identities (``id``; ``application_id``, ``api``, ``api_version``; ``name``,
``version``) is optional. ``tenant`` (the WSO2 tenant domain), an API's ``id`` (WSO2's UUID),
``lifecycle`` (``PUBLISHED``, ``RETIRED``, ...) and ``environments`` (the gateway environments
it is deployed to) are what ``vigie inventory fetch`` records from WSO2; the state keeps the
``id``, not the lifecycle nor the environments yet. An API is tenant x name x version: a
subscription's or an API's own ``tenant`` wins over the file's (an inventory of several tenants,
``merged``); none at all is the super tenant. ``write_inventory`` writes the same format
atomically.

Dates (the evidence behind ``dormant`` and ``retired`` before vigie has observed that long,
see ``vigie.classify.views``): a time is ISO 8601 (``2026-10-20T08:00:00Z``, UTC when no offset
is given) or an integer of epoch milliseconds (WSO2's form). ``created`` is when WSO2 created the
application, subscription or API; ``last_used`` when it was last called as WSO2 knows it, or
``"never"`` (not once since ``created``). ``as_of`` is the moment these dates were true: written
by ``vigie inventory fetch``; absent, the file's modification time (when the file has a date).
A date before 2000 or after ``as_of`` (one minute of clock skew allowed), or a ``last_used``
before ``created``, is refused with the entry named.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from vigie.errors import InputError
from vigie.wire import tenants

if TYPE_CHECKING:  # the inventory is applied to a State; it does not depend on one
    from vigie.state.engine import State

NEVER: Final = -1  # ``last_used``: not once since it was created
EARLIEST_US: Final = 946_684_800_000_000  # 2000-01-01T00:00:00Z: an earlier date is absurd
SKEW_US: Final = 60_000_000  # a date this far after ``as_of`` is still taken (clock skew)
_WSO2_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?")


def parse_time(value: object) -> int | None:
    """Microseconds since the epoch of an ISO 8601 time (UTC when no offset), of epoch
    milliseconds (an int, or a string of digits as WSO2's REST APIs give them) or of WSO2's
    ``2021-02-11 09:57:25`` (read as UTC); None when it is none of these."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value * 1000 if abs(value) < 1 << 52 else None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return parse_time(int(text)) if len(text) <= 15 else None
    if _WSO2_LOCAL.fullmatch(text):
        text = text.replace(" ", "T")
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000)


def format_time(us: int) -> str:
    """``2026-10-20T08:00:00Z`` (to the millisecond when it has one)."""
    dt = datetime.fromtimestamp(us / 1e6, tz=UTC)
    spec = "milliseconds" if us % 1_000_000 else "seconds"
    return dt.isoformat(timespec=spec).replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Application:
    id: str
    name: str = ""
    owner: str = ""
    channel: str = ""
    created_us: int = 0  # 0: not known


@dataclass(frozen=True, slots=True)
class Subscription:
    application_id: str
    api: str
    api_version: str
    tier: str = ""
    tenant: str = ""  # the API's tenant; empty: the inventory's
    created_us: int = 0  # 0: not known
    last_used_us: int = 0  # 0: not known; NEVER: not once since created


@dataclass(frozen=True, slots=True)
class Api:
    name: str
    version: str
    context: str = ""
    id: str = ""
    lifecycle: str = ""
    environments: tuple[str, ...] = ()
    tenant: str = ""  # empty: the inventory's
    created_us: int = 0  # 0: not known
    last_used_us: int = 0  # 0: not known; NEVER: not once since created


@dataclass(frozen=True, slots=True)
class Inventory:
    applications: list[Application] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    apis: list[Api] = field(default_factory=list)
    tenant: str = ""
    as_of_us: int = 0  # when the dates were true; 0: not known (no date is used)

    def apply_to(self, state: State) -> None:
        """Register channels and create (pinned) rows for every known subscription and API;
        the dates replace the state's ``inventory_dates``."""
        for app in self.applications:
            state.register_application(app.id, app.name, app.owner, app.channel or None)
        for api in self.apis:
            state.ensure_api(
                api.name, api.version, api.context, tenant=api.tenant or self.tenant, api_id=api.id
            )
        for sub in self.subscriptions:
            state.ensure_subscription(
                sub.application_id, sub.api, sub.api_version, sub.tier, sub.tenant or self.tenant
            )
        state.inventory_dates = self.dates()

    def dates(self) -> Dates | None:
        """What the inventory says about when things were created and last used, by identity;
        None when it says nothing (or not as of when)."""
        if not self.as_of_us:
            return None
        apis: dict[tuple[str, str, str], tuple[int, int]] = {}
        for a in self.apis:
            if a.created_us or a.last_used_us:
                key = (tenants.display(a.tenant or self.tenant), a.name, a.version)
                apis[key] = (a.created_us, a.last_used_us)
        app_created = {a.id: a.created_us for a in self.applications if a.created_us}
        subs: dict[tuple[str, str, str, str], tuple[int, int, int]] = {}
        for s in self.subscriptions:
            tenant = tenants.display(s.tenant or self.tenant)
            api_created = apis.get((tenant, s.api, s.api_version), (0, 0))[0]
            # it cannot be older than its application nor its API
            bound = max(s.created_us, app_created.get(s.application_id, 0), api_created)
            if bound or s.last_used_us:
                subs[(s.application_id, tenant, s.api, s.api_version)] = (
                    s.created_us,
                    bound,
                    s.last_used_us,
                )
        if not (apis or subs):
            return None
        by_api: dict[tuple[str, str, str], dict[str, tuple[int, int, int]]] = {}
        for (app, *api), d in subs.items():
            by_api.setdefault((api[0], api[1], api[2]), {})[app] = d
        return Dates(self.as_of_us, subs, apis, by_api)

    @staticmethod
    def merged(parts: list[Inventory]) -> Inventory:
        """One inventory of several tenants' (each entry keeps its tenant)."""
        if len(parts) == 1:
            return parts[0]
        out = Inventory()
        seen: set[str] = set()
        for p in parts:
            for app in p.applications:
                if app.id not in seen:
                    seen.add(app.id)
                    out.applications.append(app)
            out.subscriptions.extend(
                replace(s, tenant=s.tenant or p.tenant) for s in p.subscriptions
            )
            out.apis.extend(replace(a, tenant=a.tenant or p.tenant) for a in p.apis)
        dated = [p.as_of_us for p in parts if p.as_of_us]
        # the oldest part's moment (a part without one has no date)
        return replace(out, as_of_us=min(dated) if dated else 0)


@dataclass(frozen=True, slots=True)
class Dates:
    """The inventory's dates, by identity (the tenant as displayed, ``carbon.super`` for the
    super tenant). Replaced whole, never changed in place."""

    as_of_us: int
    # (application id, tenant, API, version) -> (created, created at the latest — the
    # latest of its own, its application's and its API's creation —, last used)
    subs: dict[tuple[str, str, str, str], tuple[int, int, int]]
    apis: dict[tuple[str, str, str], tuple[int, int]]  # (tenant, API, version) -> (created,
    # last used)
    # ``subs`` by API: (tenant, API, version) -> application id -> its dates
    subs_by_api: dict[tuple[str, str, str], dict[str, tuple[int, int, int]]] = field(
        default_factory=dict
    )


def to_json(inv: Inventory) -> dict[str, Any]:
    """The inventory as ``load_inventory`` reads it (empty optional keys left out)."""

    def compact(d: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            if not v:
                continue
            if k.endswith("_us"):
                out[k[:-3]] = "never" if v == NEVER else format_time(v)
            else:
                out[k] = list(v) if isinstance(v, tuple) else v
        return out

    doc: dict[str, Any] = {"tenant": inv.tenant} if inv.tenant else {}
    if inv.as_of_us:
        doc["as_of"] = format_time(inv.as_of_us)
    doc["applications"] = [compact(asdict(a)) for a in inv.applications]
    doc["subscriptions"] = [compact(asdict(s)) for s in inv.subscriptions]
    doc["apis"] = [compact(asdict(a)) for a in inv.apis]
    return doc


def write_inventory(inv: Inventory, path: Path) -> None:
    """Write the inventory JSON atomically: a temporary file next to ``path``, then a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(orjson.dumps(to_json(inv), option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"{path}: {exc.strerror or exc}") from exc


def _names(where: str, obj: dict[str, Any], key: str) -> tuple[str, ...]:
    v = obj.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InputError(f"{where}: '{key}' must be a list of strings")
    return tuple(v)


def _text(where: str, obj: dict[str, Any], key: str, required: bool) -> str:
    v = obj.get(key)
    if v is None:
        if required:
            raise InputError(f"{where}: '{key}' is missing")
        return ""
    if not isinstance(v, str):
        raise InputError(f"{where}: '{key}' must be a string, got {type(v).__name__}")
    if required and not v:
        raise InputError(f"{where}: '{key}' is empty")
    return v


def _items(path: Path, doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = doc.get(key, [])
    if not isinstance(items, list):
        raise InputError(f"{path}: '{key}' must be a list")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(f"{path}: {key}[{i}] must be an object")
    return items


def _time(where: str, obj: dict[str, Any], key: str, as_of: int, never: bool) -> int:
    """A date of an entry in microseconds (0 when absent, ``NEVER`` for ``"never"``)."""
    v = obj.get(key)
    if v is None:
        return 0
    if never and v == "never":
        return NEVER
    us = parse_time(v)
    if us is None:
        allowed = ' or "never"' if never else ""
        raise InputError(
            f"{where}: '{key}' {v!r} is not a time (ISO 8601 or epoch milliseconds{allowed})"
        )
    if us < EARLIEST_US or us > as_of + SKEW_US:
        raise InputError(
            f"{where}: '{key}' {v!r} is not between 2000 and "
            f"the inventory's as_of {format_time(as_of)}"
        )
    return us


def _used(where: str, obj: dict[str, Any], as_of: int) -> tuple[int, int]:
    """(created, last used) of an entry; a last use before its creation is refused."""
    created = _time(where, obj, "created", as_of, False)
    used = _time(where, obj, "last_used", as_of, True)
    if created and used > 0 and used < created:
        raise InputError(f"{where}: 'last_used' is before 'created'")
    return created, used


def load_inventory(path: Path) -> Inventory:
    try:
        raw = path.read_bytes()
        mtime_us = int(path.stat().st_mtime * 1_000_000)
        doc = orjson.loads(raw)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object")
    unknown = set(doc) - {"tenant", "as_of", "applications", "subscriptions", "apis"}
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    as_of = mtime_us
    if "as_of" in doc:
        as_of = parse_time(doc["as_of"]) or 0
        if not EARLIEST_US <= as_of <= time.time() * 1e6 + SKEW_US:
            raise InputError(f"{path}: 'as_of' {doc['as_of']!r} is not a time between 2000 and now")
    apps = [
        Application(
            id=_text(w, a, "id", True),
            name=_text(w, a, "name", False),
            owner=_text(w, a, "owner", False),
            channel=_text(w, a, "channel", False),
            created_us=_time(w, a, "created", as_of, False),
        )
        for i, a in enumerate(_items(path, doc, "applications"))
        for w in (f"{path}: applications[{i}]",)
    ]
    subs = [
        Subscription(
            application_id=_text(w, s, "application_id", True),
            api=_text(w, s, "api", True),
            api_version=_text(w, s, "api_version", True),
            tier=_text(w, s, "tier", False),
            tenant=_text(w, s, "tenant", False),
            created_us=created,
            last_used_us=used,
        )
        for i, s in enumerate(_items(path, doc, "subscriptions"))
        for w in (f"{path}: subscriptions[{i}]",)
        for created, used in (_used(w, s, as_of),)
    ]
    apis = [
        Api(
            name=_text(w, a, "name", True),
            version=_text(w, a, "version", True),
            context=_text(w, a, "context", False),
            id=_text(w, a, "id", False),
            lifecycle=_text(w, a, "lifecycle", False),
            environments=_names(w, a, "environments"),
            tenant=_text(w, a, "tenant", False),
            created_us=created,
            last_used_us=used,
        )
        for i, a in enumerate(_items(path, doc, "apis"))
        for w in (f"{path}: apis[{i}]",)
        for created, used in (_used(w, a, as_of),)
    ]
    dated = (
        any(x.created_us for x in apps)
        or any(x.created_us or x.last_used_us for x in subs)
        or any(x.created_us or x.last_used_us for x in apis)
    )
    if "as_of" not in doc and not dated:
        as_of = 0  # no date: nothing is as of any time
    return Inventory(apps, subs, apis, _text(str(path), doc, "tenant", False), as_of)
