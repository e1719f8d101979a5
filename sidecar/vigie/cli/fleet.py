"""The fleet side of ``vigie consumers`` and ``vigie status``: several running sidecars, their
states read with ``ExportState`` and merged (``vigie.state.merge``), their statuses added up."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.table import Table

from vigie.cli.client import fetch_states
from vigie.cli.common import admin_clients, console, human_bytes

if TYPE_CHECKING:
    from vigie.state.engine import State


def fleet_state(
    admins: Sequence[str], token_files: Sequence[str], state_dirs: Sequence[str]
) -> State:
    """The merged state of several running sidecars."""
    from vigie.state.merge import merge_states  # noqa: PLC0415 - keep `vigie --help` fast

    clients = admin_clients(admins, token_files, state_dirs)
    try:
        return merge_states(fetch_states(clients))
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
    """Each sidecar's status, and the fleet's: counts added up, classes of the merged state."""
    from google.protobuf import json_format  # noqa: PLC0415

    from vigie.classify import views  # noqa: PLC0415
    from vigie.state.merge import merge_states  # noqa: PLC0415
    from vigie.state.thresholds import CLASS_NAMES  # noqa: PLC0415
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    clients = admin_clients(admins, token_files, state_dirs)
    try:
        statuses = [c.call(c.stub.GetStatus, apb.StatusRequest()) for c in clients]
        merged = merge_states(fetch_states(clients))
    finally:
        for c in clients:
            c.close()
    held, _ = merged.held(merged.now_us)
    rows = merged.sub_rows()
    classes = {name: int(held[rows, i].sum()) for i, name in enumerate(CLASS_NAMES)}
    classes["normal"] = int((~held[rows].any(axis=1)).sum())
    counters: dict[str, int] = {}
    data_bytes: dict[str, int] = {}
    for st in statuses:
        for k, v in st.counters.items():
            counters[k] = counters.get(k, 0) + int(v)
        for k, v in st.data.bytes.items():
            data_bytes[k] = data_bytes.get(k, 0) + int(v)
    return {
        "sidecars": [
            json_format.MessageToDict(s, preserving_proto_field_name=True) for s in statuses
        ],
        "merged": {
            "now": views.iso(merged.now_us),
            "events_applied": sum(int(s.events_applied) for s in statuses),
            "ingest_rate": sum(s.ingest_rate for s in statuses),
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
    t = Table(title="Sidecars")
    for col in ("sidecar", "events", "gateways", "data store", "data on disk"):
        t.add_column(col)
    for s in doc["sidecars"]:
        data = s.get("data", {})
        t.add_row(
            s.get("sidecar_id", "?"),
            f"{int(s.get('events_applied', 0)):,}",
            str(len(s.get("gateways", []))),
            f"{data.get('backend', 'off')} {data.get('state', '')}",
            human_bytes(sum(int(v) for v in data.get("bytes", {}).values())),
        )
    console.print(t)
