"""The inventory: registered channels, and subscriptions/APIs that may never appear in traffic.

JSON::

    {"tenant": "carbon.super",
     "applications": [{"id", "name", "owner", "channel"}],
     "subscriptions": [{"application_id", "api", "api_version", "tier", "tenant"}],
     "apis": [{"name", "version", "context", "id", "lifecycle", "environments": [str],
               "tenant"}]}

Every key but the identities (``id``; ``application_id``, ``api``, ``api_version``; ``name``,
``version``) is optional. ``tenant`` (the WSO2 tenant domain), an API's ``id`` (WSO2's UUID),
``lifecycle`` (``PUBLISHED``, ``RETIRED``, ...) and ``environments`` (the gateway environments
it is deployed to) are what ``vigie inventory fetch`` records from WSO2; the state keeps the
``id``, not the lifecycle nor the environments yet. An API is tenant x name x version: a
subscription's or an API's own ``tenant`` wins over the file's (an inventory of several tenants,
``merged``); none at all is the super tenant. ``write_inventory`` writes the same format
atomically.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from vigie.errors import InputError

if TYPE_CHECKING:  # the inventory is applied to a State; it does not depend on one
    from vigie.state.engine import State


@dataclass(frozen=True, slots=True)
class Application:
    id: str
    name: str = ""
    owner: str = ""
    channel: str = ""


@dataclass(frozen=True, slots=True)
class Subscription:
    application_id: str
    api: str
    api_version: str
    tier: str = ""
    tenant: str = ""  # the API's tenant; empty: the inventory's


@dataclass(frozen=True, slots=True)
class Api:
    name: str
    version: str
    context: str = ""
    id: str = ""
    lifecycle: str = ""
    environments: tuple[str, ...] = ()
    tenant: str = ""  # empty: the inventory's


@dataclass(frozen=True, slots=True)
class Inventory:
    applications: list[Application] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    apis: list[Api] = field(default_factory=list)
    tenant: str = ""

    def apply_to(self, state: State) -> None:
        """Register channels and create (pinned) rows for every known subscription and API."""
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
        return out


def to_json(inv: Inventory) -> dict[str, Any]:
    """The inventory as ``load_inventory`` reads it (empty optional keys left out)."""

    def compact(d: dict[str, Any]) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items() if v}

    doc: dict[str, Any] = {"tenant": inv.tenant} if inv.tenant else {}
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


def load_inventory(path: Path) -> Inventory:
    try:
        doc = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object")
    unknown = set(doc) - {"tenant", "applications", "subscriptions", "apis"}
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    apps = [
        Application(
            id=_text(w, a, "id", True),
            name=_text(w, a, "name", False),
            owner=_text(w, a, "owner", False),
            channel=_text(w, a, "channel", False),
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
        )
        for i, s in enumerate(_items(path, doc, "subscriptions"))
        for w in (f"{path}: subscriptions[{i}]",)
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
        )
        for i, a in enumerate(_items(path, doc, "apis"))
        for w in (f"{path}: apis[{i}]",)
    ]
    return Inventory(apps, subs, apis, _text(str(path), doc, "tenant", False))
