"""The inventory read from WSO2 itself (``vigie inventory fetch``, ``inventory_source = "wso2"``).

What is read, every collection paged to its end (``Wso2Client.paged``):

- APIs: Publisher ``GET /apis`` (name, version, context — recorded as the gateway serves it,
  ``gateway_context`` —, ``lifeCycleStatus``, ``id``) and, per
  API, ``GET /apis/{apiId}/deployments`` (the gateway environments its revisions are deployed
  to; a ``REJECTED`` deployment does not count);
- subscriptions: Publisher ``GET /subscriptions?apiId=`` per API (every user's subscriptions to
  it; the tier is ``throttlingPolicy``);
- applications: Admin ``GET /applications`` (every user's, with ``tenantDomain`` when a tenant
  is given) and, per application, Admin ``GET /applications/{applicationId}`` for its
  attributes.

Dates: an API's ``created`` is the Publisher's ``createdTime`` (epoch milliseconds as 4.x lists
it; ``2021-02-11 09:57:25`` read as UTC); one that is not a time, before 2000 or after the
fetch is left unknown and counted (``Fetched.undated``). The inventory's ``as_of`` is when the
fetch began. WSO2's REST APIs give no creation nor last-use date of a subscription, nor (through
the Admin API) of an application: those stay unknown.

An application's channel is its attribute ``channel_attribute`` when set; otherwise the gateway
environment of the APIs it subscribes to when they are all deployed to exactly one environment;
otherwise none (counted in ``Fetched.unmapped``). An application seen only in a subscription
(not in the Admin list) is kept, with the name and subscriber the subscription names.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final

from vigie.sources.inventory import (
    EARLIEST_US,
    SKEW_US,
    Api,
    Application,
    Inventory,
    Subscription,
    parse_time,
)
from vigie.sources.wso2_api import Wso2Client, Wso2Error

SUPER_TENANT: Final = "carbon.super"
# (task, items just done, the task's total when now known)
Progress = Callable[[str, int, int | None], None]


@dataclass(slots=True)
class Fetched:
    """What a fetch built, and how it mapped channels."""

    inventory: Inventory
    calls: int = 0
    from_attribute: int = 0
    from_environment: int = 0
    unmapped: list[str] = field(default_factory=list)  # application ids with no channel
    undated: int = 0  # APIs whose createdTime is not a plausible time (left unknown)


def _str(item: dict[str, Any], key: str, where: str, required: bool = False) -> str:
    v = item.get(key)
    if v is None or v == "":
        if required:
            raise Wso2Error(f"{where}: an item has no {key!r}")
        return ""
    if not isinstance(v, str):
        raise Wso2Error(f"{where}: {key!r} is a {type(v).__name__}, not a string")
    return v


def gateway_context(listed: str, version: str) -> str:
    """The context the gateway serves (and reports as ``apiContext``) from the one the Publisher
    lists. WSO2 stores a context template and lists it without a final ``/{version}``
    (carbon-apimgt ``APIMappingUtil.fromAPIToInfoDTO``); its gateway serves the template with
    ``{version}`` replaced: ``/pizzashack`` -> ``/pizzashack/1.0.0``, ``/{version}/pizzashack`` ->
    ``/1.0.0/pizzashack``."""
    if not listed:
        return ""
    if "{version}" in listed:
        return listed.replace("{version}", version)
    return f"{listed.rstrip('/')}/{version}"


def _no_progress(task: str, done: int, total: int | None) -> None:
    pass


def _environments(client: Wso2Client, api_id: str) -> tuple[str, ...]:
    path = f"{client.publisher}/apis/{urllib.parse.quote(api_id)}/deployments"
    doc = client.get(path)
    items = doc.get("list") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise Wso2Error(f"GET {path}: the answer has no list")
    names = {
        _str(d, "name", f"GET {path}", required=True)
        for d in items
        if isinstance(d, dict) and d.get("status") != "REJECTED"
    }
    return tuple(sorted(names))


def fetch(
    client: Wso2Client, channel_attribute: str = "channel", progress: Progress = _no_progress
) -> Fetched:
    """Read APIs, subscriptions and applications from WSO2 into an inventory."""
    as_of = int(time.time() * 1_000_000)
    undated = 0
    where = f"GET {client.publisher}/apis"
    raw_apis = list(client.paged(f"{client.publisher}/apis"))
    progress("APIs", 0, len(raw_apis))
    apis: list[Api] = []
    subs: list[Subscription] = []
    sub_apps: dict[str, tuple[str, str]] = {}  # application id -> (name, subscriber)
    app_envs: dict[str, set[str]] = {}
    for item in raw_apis:
        api_id = _str(item, "id", where, required=True)
        version = _str(item, "version", where, required=True)
        created = parse_time(item.get("createdTime")) if item.get("createdTime") else 0
        if created is None or not (created == 0 or EARLIEST_US <= created <= as_of + SKEW_US):
            undated += 1
            created = 0
        api = Api(
            name=_str(item, "name", where, required=True),
            version=version,
            context=gateway_context(_str(item, "context", where), version),
            id=api_id,
            lifecycle=_str(item, "lifeCycleStatus", where),
            environments=_environments(client, api_id),
            created_us=created,
        )
        apis.append(api)
        sub_where = f"GET {client.publisher}/subscriptions?apiId={api_id}"
        for s in client.paged(f"{client.publisher}/subscriptions", {"apiId": api_id}):
            info = s.get("applicationInfo")
            if not isinstance(info, dict):
                raise Wso2Error(f"{sub_where}: a subscription has no applicationInfo")
            app_id = _str(info, "applicationId", sub_where, required=True)
            subs.append(
                Subscription(
                    app_id,
                    api.name,
                    api.version,
                    _str(s, "throttlingPolicy", sub_where),
                    client.conn.tenant or SUPER_TENANT,
                )
            )
            sub_apps.setdefault(
                app_id, (_str(info, "name", sub_where), _str(info, "subscriber", sub_where))
            )
            app_envs.setdefault(app_id, set()).update(api.environments)
        progress("APIs", 1, None)

    tenant = client.conn.tenant
    params: dict[str, str | int] = {"tenantDomain": tenant} if tenant else {}
    raw_apps = list(client.paged(f"{client.admin}/applications", params))
    progress("applications", 0, len(raw_apps))
    fetched = Fetched(Inventory(), undated=undated)
    apps: list[Application] = []
    where = f"GET {client.admin}/applications"
    listed: set[str] = set()
    for item in raw_apps:
        app_id = _str(item, "applicationId", where, required=True)
        listed.add(app_id)
        path = f"{client.admin}/applications/{urllib.parse.quote(app_id)}"
        detail = client.get(path)
        attrs = detail.get("attributes") if isinstance(detail, dict) else None
        channel = attrs.get(channel_attribute, "") if isinstance(attrs, dict) else ""
        apps.append(
            _application(
                fetched,
                app_id,
                _str(item, "name", where),
                _str(item, "owner", where),
                channel if isinstance(channel, str) else "",
                app_envs.get(app_id, set()),
            )
        )
        progress("applications", 1, None)
    for app_id, (name, subscriber) in sub_apps.items():
        if app_id not in listed:
            apps.append(
                _application(fetched, app_id, name, subscriber, "", app_envs.get(app_id, set()))
            )
    fetched.inventory = replace(
        Inventory(apps, subs, apis, client.conn.tenant or SUPER_TENANT), as_of_us=as_of
    )
    fetched.calls = client.calls
    return fetched


def _application(
    fetched: Fetched, app_id: str, name: str, owner: str, attribute: str, envs: set[str]
) -> Application:
    if attribute:
        fetched.from_attribute += 1
        return Application(app_id, name, owner, attribute)
    if len(envs) == 1:
        fetched.from_environment += 1
        return Application(app_id, name, owner, next(iter(envs)))
    fetched.unmapped.append(app_id)
    return Application(app_id, name, owner, "")
