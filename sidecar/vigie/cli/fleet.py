"""The fleet side of ``vigie consumers`` and ``vigie status``: several running instances.

Instances that are each other's peers (``fleet_peers``) are replicas: each saw all the traffic,
so their states are not added (that would count each request once per replica): the fleet's
view is the one of the replica that applied the most events. Sidecars that are not peers (each
next to its own gateway) saw a share each: their states are read with ``ExportState`` and merged
(``vigie.state.merge``), their statuses added up. Two addresses reaching one instance (the same
``sidecar_id``) are refused: never counted twice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.table import Table

from vigie.cli.client import AdminClient, FleetError, fetch_states
from vigie.cli.common import admin_clients, console, err_console, human_bytes

if TYPE_CHECKING:
    from vigie.state.engine import State


def replicas(statuses: Sequence[Any]) -> bool:
    """Whether the instances of ``statuses`` are each other's peers (replicas of one fleet)."""
    if len(statuses) < 2:
        return False
    ids = {s.instance_id for s in statuses}
    return (
        all(ids - {s.instance_id} <= {p.instance_id for p in s.peers} for s in statuses)
        and "" not in ids
    )


def _statuses(clients: Sequence[AdminClient]) -> tuple[list[AdminClient], list[Any], list[str]]:
    """The instances that answer and their statuses, and a line for each that does not (all
    silent: ``SidecarUnavailable``); two addresses of one instance are refused."""
    from vigie.errors import SidecarUnavailable  # noqa: PLC0415
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    live: list[AdminClient] = []
    out: list[Any] = []
    silent: list[str] = []
    for c in clients:
        try:
            out.append(c.call(c.stub.GetStatus, apb.StatusRequest()))
            live.append(c)
        except SidecarUnavailable as exc:
            silent.append(str(exc))
    if not live:
        raise SidecarUnavailable("no instance of the fleet answers: " + "; ".join(silent))
    seen: dict[str, str] = {}
    for c, st in zip(live, out, strict=True):
        if st.sidecar_id in seen:
            raise FleetError(
                f"{seen[st.sidecar_id]} and {c.target} are the same instance "
                f"({st.sidecar_id}): give it once"
            )
        seen[st.sidecar_id] = c.target
    return live, out, silent


def _fleet_view(clients: Sequence[AdminClient], statuses: Sequence[Any]) -> State:
    """The fleet's state: the busiest replica's, or the sidecars' merged (module comment)."""
    from vigie.state.merge import merge_states  # noqa: PLC0415 - keep `vigie --help` fast

    if replicas(statuses):
        best = max(range(len(clients)), key=lambda i: int(statuses[i].events_applied))
        return fetch_states([clients[best]])[0]
    return merge_states(fetch_states(clients))


def distinct_instances(clients: Sequence[AdminClient]) -> list[AdminClient]:
    """Of several instances, the ones whose answers add up: replicas (each other's peers) are
    one, the busiest; sidecars that are not peers are all kept. The clients left out (and the
    silent ones, said on stderr) are closed."""
    live, statuses, silent = _statuses(clients)
    for line in silent:
        err_console.print(f"vigie: {line}", highlight=False, soft_wrap=True)
    keep = list(live)
    if replicas(statuses):
        best = max(range(len(live)), key=lambda i: int(statuses[i].events_applied))
        keep = [live[best]]
        err_console.print(f"vigie: replicas of one fleet: reading {live[best].target}",
                          highlight=False)  # fmt: skip
    for c in clients:
        if c not in keep:
            c.close()
    return keep


def fleet_state(
    admins: Sequence[str], token_files: Sequence[str], state_dirs: Sequence[str]
) -> State:
    """The state of several running instances (replicas: one; sidecars: merged)."""
    clients = admin_clients(admins, token_files, state_dirs)
    try:
        live, statuses, silent = _statuses(clients)
        for line in silent:
            err_console.print(f"vigie: {line}", highlight=False, soft_wrap=True)
        return _fleet_view(live, statuses)
    finally:
        for c in clients:
            c.close()


def fleet_consumers(
    admins: Sequence[str],
    token_files: Sequence[str],
    state_dirs: Sequence[str],
    class_name: str | None,
    application: str | None,
    api: str | None,
    limit: int,
    tenant: str = "",
) -> dict[str, Any]:
    """The subscriptions of the merged state, filtered as ``vigie consumers`` filters."""
    from vigie.classify import views  # noqa: PLC0415
    from vigie.wire import tenants  # noqa: PLC0415

    merged = fleet_state(admins, token_files, state_dirs)
    subs = views.subscriptions(merged, merged.now_us)
    if class_name:
        subs = [s for s in subs if class_name in s.classes]
    if application:
        subs = [s for s in subs if application in (s.application_id, s.application)]
    if api:
        subs = [s for s in subs if s.api == api]
    if tenant:
        subs = [s for s in subs if tenants.matches(tenant, s.tenant)]
    subs.sort(key=lambda s: -s.requests)
    if limit:
        subs = subs[:limit]
    return {
        "now": views.iso(merged.now_us),
        "sidecars": list(admins),
        "subscriptions": [s.to_json() for s in subs],
    }


def fleet_status(
    admins: Sequence[str], token_files: Sequence[str], state_dirs: Sequence[str]
) -> dict[str, Any]:
    """Each sidecar's status, and the fleet's: classes of the fleet's state; counts added up
    over sidecars that each saw a share, the largest of each over replicas (each saw all the
    traffic: their sum would count every request once per replica); each instance's own
    figures stay in ``sidecars``."""
    from google.protobuf import json_format  # noqa: PLC0415

    from vigie.classify import views  # noqa: PLC0415
    from vigie.state.thresholds import CLASS_NAMES  # noqa: PLC0415

    clients = admin_clients(admins, token_files, state_dirs)
    try:
        live, statuses, silent = _statuses(clients)
        merged = _fleet_view(live, statuses)
    finally:
        for c in clients:
            c.close()
    same = replicas(statuses)
    held, _ = merged.held(merged.now_us)
    rows = merged.sub_rows()
    classes = {name: int(held[rows, i].sum()) for i, name in enumerate(CLASS_NAMES)}
    classes["normal"] = int((~held[rows].any(axis=1)).sum())
    counters: dict[str, int] = {}
    data_bytes: dict[str, int] = {}
    for st in statuses:
        for k, v in st.counters.items():
            # replicas saw the same traffic: the fleet's count is the largest, not their sum
            counters[k] = max(counters.get(k, 0), int(v)) if same else counters.get(k, 0) + int(v)
        for k, v in st.data.bytes.items():  # each instance's own disk: they add up
            data_bytes[k] = data_bytes.get(k, 0) + int(v)
    tables = {tuple(sorted((d.id, d.version) for d in st.directives)) for st in statuses}

    def total(values: list[float]) -> float:
        return max(values) if same else sum(values)

    return {
        "sidecars": [
            json_format.MessageToDict(s, preserving_proto_field_name=True) for s in statuses
        ],
        "replicas": same,
        # the instances that did not answer (the others' figures are the fleet's)
        "unreachable": silent,
        # every instance holds the same directives at the same versions
        "directives_agree": len(tables) == 1,
        "merged": {
            "now": views.iso(merged.now_us),
            "events_applied": int(total([int(s.events_applied) for s in statuses])),
            "ingest_rate": total([s.ingest_rate for s in statuses]),
            "subscriptions": len(rows),
            "apis": merged.n_api_rows,
            "gateways": sum(len(s.gateways) for s in statuses),
            "classes": classes,
            "counters": counters,
            "data_bytes": data_bytes,
            "degraded_stores": [
                s.sidecar_id for s in statuses if s.data.state.startswith("degraded")
            ],
        },
    }


def fleet_suggestions(clients: Sequence[AdminClient], request: Any) -> tuple[Any, list[str]]:
    """``ListSuggestions`` of every instance that answers, merged by id: of one id, the record
    changed last (a decision replicates, so the instance that has it newest). Returns the
    merged list (as a ``SuggestionList``, ``by_state`` recounted) and a line per silent
    instance; two addresses of one instance are refused (``_statuses``)."""
    from vigie.errors import SidecarUnavailable  # noqa: PLC0415
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    live, _, silent = _statuses(clients)
    best: dict[str, Any] = {}
    now = 0
    for c in live:
        try:
            resp = c.call(c.stub.ListSuggestions, request)
        except SidecarUnavailable as exc:
            silent.append(str(exc))
            continue
        now = max(now, resp.now_us)
        for sg in resp.suggestions:
            had = best.get(sg.id)
            if had is None or sg.updated_at_us > had.updated_at_us:
                best[sg.id] = sg
    out = apb.SuggestionList(now_us=now)
    for sg in sorted(best.values(), key=lambda x: (x.created_at_us, x.id)):
        out.suggestions.append(sg)
        out.by_state[sg.state] = out.by_state[sg.state] + 1
    return out, silent


class FleetSubscriptions:
    """``ListSubscriptions`` of several instances as one answer, merged by subscription:
    replicas (each saw all the traffic) give each subscription's entry of the instance that
    counted it most; sidecars that each saw a share add their requests up (the rest of the
    entry, classes and evidence, is the busiest one's). Instances that do not answer are left
    out of that poll."""

    def __init__(self, clients: Sequence[AdminClient]) -> None:
        self.clients, statuses, silent = _statuses(clients)
        for line in silent:
            err_console.print(f"vigie: {line}", highlight=False, soft_wrap=True)
        self.replicas = replicas(statuses)

    def poll(self) -> Any:
        from vigie.errors import SidecarUnavailable  # noqa: PLC0415
        from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

        best: dict[tuple[str, str, str, str], Any] = {}
        total: dict[tuple[str, str, str, str], int] = {}
        now = 0
        for c in self.clients:
            try:
                resp = c.call(c.stub.ListSubscriptions, apb.ListSubscriptionsRequest())
            except SidecarUnavailable:
                continue
            now = max(now, resp.now_us)
            for sub in resp.subscriptions:
                key = (sub.application_id, sub.api, sub.api_version, sub.tenant)
                total[key] = total.get(key, 0) + int(sub.requests)
                if key not in best or sub.requests > best[key].requests:
                    best[key] = sub
        out = apb.SubscriptionList(now_us=now)
        for key, sub in best.items():
            m = out.subscriptions.add()
            m.CopyFrom(sub)
            if not self.replicas:
                m.requests = total[key]
        return out


def print_fleet_status(doc: dict[str, Any]) -> None:
    """The readable form of ``fleet_status``."""
    m = doc["merged"]
    console.print(
        f"[bold]fleet of {len(doc['sidecars'])} sidecars[/]: {m['events_applied']:,} events, "
        f"{m['ingest_rate']:,.0f}/s, {m['subscriptions']:,} subscriptions, {m['apis']} APIs, "
        f"{m['gateways']} gateways, now {m['now']}",
        highlight=False,
    )
    console.print("classes: " + ", ".join(f"{k} {v}" for k, v in sorted(m["classes"].items())))
    for line in doc["unreachable"]:
        console.print(f"[bold red]{line}[/]", highlight=False, soft_wrap=True)
    if doc["replicas"]:
        agree = "the same directives" if doc["directives_agree"] else "DIFFERENT directives"
        console.print(f"replicas of one fleet (counted once), holding {agree}", highlight=False)
    t = Table(title="Sidecars")
    for col in ("sidecar", "instance", "events", "gateways", "directives", "peers", "data store",
                "data on disk"):  # fmt: skip
        t.add_column(col)
    for s in doc["sidecars"]:
        data = s.get("data", {})
        t.add_row(
            s.get("sidecar_id", "?"),
            s.get("instance_id", ""),
            f"{int(s.get('events_applied', 0)):,}",
            str(len(s.get("gateways", []))),
            str(len(s.get("directives", []))),
            ", ".join(f"{p['address']} {p['state']}" for p in s.get("peers", [])),
            f"{data.get('backend', 'off')} {data.get('state', '')}",
            human_bytes(sum(int(v) for v in data.get("bytes", {}).values())),
        )
    console.print(t)
