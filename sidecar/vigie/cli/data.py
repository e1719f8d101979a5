"""``vigie autopsy`` and ``vigie report``: what the rollups say about a time range.

Where the data comes from: ``--store DIR`` (a Parquet store, e.g. written by
``vigie replay --store DIR`` or a sidecar's ``<state_dir>/data``), ``--clickhouse URL``, or
running sidecars (``--admin ADDR`` repeated, or ``--fleet FILE`` / ``VIGIE_FLEET``): the answers
of sidecars that each saw a share add up; replicas of one fleet (each other's peers, each saw all
the traffic) are read once, the busiest (``vigie.cli.fleet.distinct_instances``).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape
from rich.table import Table

from vigie.cli.client import DEFAULT_ADMIN, AdminClient
from vigie.cli.common import (
    admin_clients,
    console,
    err_console,
    fleet_option,
    option_group,
    parse_time,
)
from vigie.errors import VigieError

if TYPE_CHECKING:
    from vigie.store.query import AggQuery, AggRow

# ---------------------------------------------------------------------------------------------
# stores
# ---------------------------------------------------------------------------------------------


class RemoteStore:
    """A running sidecar's data store, through its admin service."""

    def __init__(self, client: AdminClient) -> None:
        self.client = client

    def aggregate(self, q: AggQuery) -> list[AggRow]:
        from vigie.server.convert import query_to_proto, rows_from_proto  # noqa: PLC0415

        c = self.client
        return rows_from_proto(q, c.call(c.stub.QueryData, query_to_proto(q)))

    def changes(self, from_us: int, to_us: int) -> list[dict[str, Any]]:
        from vigie.server.convert import changes_from_proto  # noqa: PLC0415
        from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

        c = self.client
        resp = c.call(c.stub.ListChanges, apb.ListChangesRequest(from_us=from_us, to_us=to_us))
        return changes_from_proto(resp.changes)

    def extent(self) -> tuple[int, int]:
        return 0, 0


class FleetStore:
    """Several stores as one: answers add up (counters and histograms)."""

    def __init__(self, stores: Sequence[Any]) -> None:
        self.stores = list(stores)

    def aggregate(self, q: AggQuery) -> list[AggRow]:
        from vigie.store.query import merge_rows  # noqa: PLC0415 - keep `vigie --help` fast

        return merge_rows(s.aggregate(q) for s in self.stores)

    def changes(self, from_us: int, to_us: int) -> list[dict[str, Any]]:
        seen: dict[tuple[Any, ...], dict[str, Any]] = {}
        for s in self.stores:
            for c in s.changes(from_us, to_us):
                seen.setdefault(tuple(sorted(c.items())), c)
        return sorted(seen.values(), key=lambda c: (c["at_us"], c["kind"], c["name"]))

    def extent(self) -> tuple[int, int]:
        ext = [s.extent() for s in self.stores]
        ext = [e for e in ext if e[1]]
        return (min(e[0] for e in ext), max(e[1] for e in ext)) if ext else (0, 0)


def open_source(
    store: Path | None,
    clickhouse: str | None,
    database: str,
    admins: Sequence[str],
    token_files: Sequence[str],
    state_dirs: Sequence[str],
) -> tuple[Any, list[AdminClient]]:
    """The store to read and the admin clients to close afterwards."""
    if store is not None:
        from vigie.store.parquet import ParquetStore  # noqa: PLC0415

        root = store / "data" if (store / "data").is_dir() else store
        if not root.is_dir():
            raise VigieError(f"{store}: no such store directory")
        return ParquetStore(root), []
    if clickhouse:
        from vigie.store.clickhouse import ClickHouseStore  # noqa: PLC0415

        return ClickHouseStore(clickhouse, database), []
    clients = admin_clients(admins or [DEFAULT_ADMIN], token_files, state_dirs)
    if len(clients) > 1:  # replicas of one fleet are read once (vigie.cli.fleet)
        from vigie.cli.fleet import distinct_instances  # noqa: PLC0415

        clients = distinct_instances(clients)
    stores = [RemoteStore(c) for c in clients]
    return (stores[0] if len(stores) == 1 else FleetStore(stores)), clients


def _fleet_into_admins(f: Callable[..., Any]) -> Callable[..., Any]:
    """--fleet's addresses (or VIGIE_FLEET's) after --admin's, each at most once."""

    @functools.wraps(f)
    def run(*args: Any, admins: Sequence[str], fleet: str | None, **kw: Any) -> Any:
        if fleet:
            from vigie.cli.client import fleet_addresses  # noqa: PLC0415

            admins = fleet_addresses(admins, fleet)
        return f(*args, admins=admins, **kw)

    return run


source_options = option_group(
    click.option(
        "--store",
        type=click.Path(file_okay=False, path_type=Path),
        help="Read a Parquet store directory (replay --store, or <state_dir>/data).",
    ),
    click.option("--clickhouse", help="Read ClickHouse at this HTTP URL instead."),
    click.option("--clickhouse-database", default="vigie", show_default=True),
    click.option(
        "--admin",
        "admins",
        multiple=True,
        help=f"A running sidecar's admin address; repeat it for a fleet (default {DEFAULT_ADMIN}).",
    ),
    fleet_option,
    click.option(
        "--token-file",
        "token_files",
        multiple=True,
        help="Admin token file: one for all sidecars, or one per --admin.",
    ),
    click.option(
        "--state-dir",
        "state_dirs",
        multiple=True,
        help="Sidecar state directory holding admin.token (one, or one per --admin).",
    ),
    _fleet_into_admins,
)


# ---------------------------------------------------------------------------------------------
# autopsy / report
# ---------------------------------------------------------------------------------------------


def _scope(from_text: str, to_text: str, **filters: str | None) -> Any:
    from vigie.reports.build import Scope  # noqa: PLC0415

    frm, to = parse_time(from_text), parse_time(to_text)
    if to <= frm:
        raise click.BadParameter("--to must come after --from")
    return Scope(frm, to, **{k: v or "" for k, v in filters.items()})


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err_console.print(f"written to {output}", highlight=False)


_FORMATS = click.Choice(["table", "csv", "json", "html"])

# what autopsy and report share after --from/--to: the filters, the output, the data source
_scope_options = option_group(
    click.option("--api", help="Only this API name."),
    click.option("--api-version", help="Only this API version."),
    click.option("--application", help="Only this application (id or name)."),
    click.option("--channel", help="Only this channel."),
    click.option("--tenant", help="Only this WSO2 tenant's APIs (carbon.super: the super tenant)."),
    click.option("--top", type=int, default=20, show_default=True, help="Rows per list (0: all)."),
    click.option("--format", "fmt", type=_FORMATS, default="table", show_default=True),
    click.option(
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write to this file instead of stdout.",
    ),
    source_options,
)


@click.command()
@click.option("--from", "from_text", required=True, help="Start (ISO 8601, UTC if no zone).")
@click.option("--to", "to_text", required=True, help="End (ISO 8601), exclusive.")
@_scope_options
def autopsy(
    from_text: str,
    to_text: str,
    api: str | None,
    api_version: str | None,
    application: str | None,
    channel: str | None,
    tenant: str | None,
    top: int,
    fmt: str,
    output: Path | None,
    store: Path | None,
    clickhouse: str | None,
    clickhouse_database: str,
    admins: Sequence[str],
    token_files: Sequence[str],
    state_dirs: Sequence[str],
) -> None:
    """What happened between --from and --to (the per-minute data, 14 days by default).

    A timeline, the HTTP status and WSO2 error codes, the consumers involved with their
    latency, the resources, and the classes and directives active then. Example:

    \b
      vigie autopsy --from 2026-11-28T08:00 --to 2026-11-28T08:30 --api TrackAndTrace
    """
    from vigie.reports import build, incomplete  # noqa: PLC0415

    scope = _scope(
        from_text,
        to_text,
        api=api,
        api_version=api_version,
        application=application,
        channel=channel,
        tenant=tenant,
    )
    src, clients = open_source(
        store, clickhouse, clickhouse_database, admins, token_files, state_dirs
    )
    try:
        doc = build.autopsy(src, scope, top)
        doc["incomplete"] = incomplete.dropped_periods(src, scope.from_us, scope.to_us)
    finally:
        for c in clients:
            c.close()
    _render(doc, fmt, output)


@click.command()
@click.option("--from", "from_text", required=True, help="First day (ISO 8601).")
@click.option("--to", "to_text", required=True, help="End (ISO 8601), exclusive.")
@click.option(
    "--inventory",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Inventory JSON (vigie inventory fetch): application names, owners, tenant.",
)
@click.option(
    "--suggestions",
    "book_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Sidecar state directory whose suggestions.json and audit trail to report "
    "(default: the --store's, or the --admin sidecar's).",
)
@_scope_options
def report(
    from_text: str,
    to_text: str,
    inventory: Path | None,
    book_dir: Path | None,
    api: str | None,
    api_version: str | None,
    application: str | None,
    channel: str | None,
    tenant: str | None,
    top: int,
    fmt: str,
    output: Path | None,
    store: Path | None,
    clickhouse: str | None,
    clickhouse_database: str,
    admins: Sequence[str],
    token_files: Sequence[str],
    state_dirs: Sequence[str],
) -> None:
    """Usage between --from and --to (the per-day rollups, kept for years).

    Traffic over time by outcome, success/throttle/error rates, growth, top consumers, error
    codes, dormant subscriptions and retired APIs; the behaviour classes, suggestions and their
    decisions, and directives (with what they refused) of the period; per owner and per tenant.
    --format html writes one self-contained page with charts. Example:

    \b
      vigie report --from 2026-01-01 --to 2027-01-01 --format html --output 2026.html \\
        --store /var/lib/vigie --inventory inventory.json
    """
    from vigie.reports import build, incomplete, sections  # noqa: PLC0415
    from vigie.sources.inventory import load_inventory  # noqa: PLC0415

    scope = _scope(
        from_text,
        to_text,
        api=api,
        api_version=api_version,
        application=application,
        channel=channel,
        tenant=tenant,
    )
    src, clients = open_source(
        store, clickhouse, clickhouse_database, admins, token_files, state_dirs
    )
    try:
        if book_dir is None and store is not None:
            book_dir = store if (store / "data").is_dir() else store.parent
        if book_dir is not None:
            book, note = sections.load_book(book_dir)
        else:
            book, note = _remote_book(clients)
        inv = load_inventory(inventory) if inventory is not None else None
        names = sections.Directory.of(inv, book)
        doc = build.report(src, scope, top, names, book, note)
        doc["incomplete"] = incomplete.dropped_periods(src, scope.from_us, scope.to_us)
    finally:
        for c in clients:
            c.close()
    _render(doc, fmt, output)


def _remote_book(clients: Sequence[AdminClient]) -> tuple[list[dict[str, Any]], str]:
    """The suggestions of the --admin sidecars (``vigie suggestions list``, no recompute), as
    report rows; a fleet's are merged by id (each sidecar keeps its own book)."""
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    rows: dict[str, dict[str, Any]] = {}
    for c in clients:
        try:
            resp = c.call(c.stub.ListSuggestions, apb.ListSuggestionsRequest(refresh=False))
        except VigieError as exc:
            return [], f"suggestions unavailable: {exc}"
        for s in resp.suggestions:
            rows.setdefault(
                s.id,
                {
                    "id": s.id, "class": s.class_name, "concerns": s.concerns,
                    "action": s.action, "application_id": s.application_id,
                    "application": s.application_name, "owner": s.application_owner,
                    "api": s.api, "api_version": s.api_version, "summary": s.summary,
                    "state": s.state, "auto": False, "created_us": s.created_at_us,
                    "updated_us": s.updated_at_us, "decided_by": "", "reason": "",
                },
            )  # fmt: skip
    return list(rows.values()), ""


def _render(doc: dict[str, Any], fmt: str, output: Path | None) -> None:
    from vigie.reports.incomplete import banner  # noqa: PLC0415

    line = banner(doc.get("incomplete", []))
    if line and (fmt != "table" or output is not None):
        err_console.print(f"[bold red]{escape(line)}[/]", highlight=False, soft_wrap=True)
    elif line:
        console.print(f"[bold red]{escape(line)}[/]", highlight=False, soft_wrap=True)
    if fmt == "json":
        _write(json.dumps(doc, ensure_ascii=False) + "\n", output)
    elif fmt == "csv":
        _write(to_csv(doc), output)
    elif fmt == "html":
        from vigie.reports import html  # noqa: PLC0415

        page = html.report_html(doc) if doc["kind"] == "report" else html.autopsy_html(doc)
        _write(page, output)
    else:
        _print_tables(doc)


CSV_COLUMNS = (
    "section",
    "at",
    "api",
    "api_version",
    "method",
    "resource",
    "application_id",
    "application",
    "channel",
    "status",
    "error_code",
    "name",
    "requests",
    "successes",
    "client_errors",
    "server_errors",
    "throttled",
    "error_rate",
    "throttle_rate",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "growth",
    "requests_before",
    "from",
    "to",
    "new",
    "kind",
    "evidence",
    "owner",
    "tenant",
    "applications",
    "class",
    "action",
    "state",
    "decision",
    "summary",
    "refused",
    "scope_requests",
)
_SECTIONS = (
    "total",
    "series",
    "timeline",
    "apis",
    "consumers",
    "resources",
    "channels",
    "codes",
    "error_codes",
    "dormant_subscriptions",
    "retired_apis",
    "active",
    "episodes",
    "suggestions",
    "owners",
    "tenants",
)


def to_csv(doc: dict[str, Any]) -> str:
    """Every list of the document in one CSV, the first column naming the list."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for section in _SECTIONS:
        if section not in doc:
            continue
        rows = doc[section] if isinstance(doc[section], list) else [doc[section]]
        for r in rows:
            w.writerow({"section": section, **{k: ("" if v is None else v) for k, v in r.items()}})
    return buf.getvalue()


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _rich(title: str, rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> Table:
    t = Table(title=title)
    for c in cols:
        t.add_column(c, overflow="fold")
    for r in rows:  # codes and statuses are names, not quantities: no thousands separator
        t.add_row(*(str(r.get(c)) if c in _CODES else _fmt(r.get(c)) for c in cols))
    return t


_CODES = ("error_code", "status")


def _print_tables(doc: dict[str, Any]) -> None:
    t = doc["total"]
    f = ", ".join(f"{k}={v}" for k, v in doc["filters"].items())
    console.print(f"[bold]{doc['kind']}[/] {doc['from']} → {doc['to']} {f}", highlight=False)
    console.print(
        f"{_fmt(t['requests'])} requests: {_fmt(t['successes'])} successes, "
        f"{_fmt(t['client_errors'])} client errors, {_fmt(t['server_errors'])} server errors, "
        f"{_fmt(t['throttled'])} throttled; p50 {_fmt(t.get('p50_ms'))} ms, "
        f"p95 {_fmt(t.get('p95_ms'))} ms, p99 {_fmt(t.get('p99_ms'))} ms",
        highlight=False,
    )
    out = ("requests", "successes", "client_errors", "server_errors", "throttled")
    if doc["kind"] == "autopsy":
        console.print(_rich("Timeline", doc["timeline"], ("at", *out, "p95_ms")))
        console.print(
            _rich(
                "Status / WSO2 error code",
                doc["codes"],
                ("status", "error_code", "requests", "outcome"),
            )
        )
        console.print(
            _rich(
                f"Consumers involved ({doc['consumers_involved']})",
                doc["consumers"],
                ("application", "application_id", *out, "p50_ms", "p95_ms", "p99_ms"),
            )
        )
        console.print(
            _rich("Resources", doc["resources"], ("api", "method", "resource", *out, "p95_ms"))
        )
        console.print(
            _rich(
                "Classes and directives active then",
                doc["active"],
                ("kind", "name", "application_id", "api", "from", "to", "detail"),
            )
        )
        return
    console.print(_rich("Traffic", doc["series"], ("at", *out)))
    console.print(
        _rich(
            "APIs",
            doc["apis"],
            ("api", "api_version", "requests", "growth", "error_rate", "throttle_rate", "p95_ms"),
        )
    )
    console.print(
        _rich(
            f"Top consumers (of {doc['consumers_total']})",
            doc["consumers"],
            (
                "application",
                "application_id",
                "requests",
                "growth",
                "new",
                "error_rate",
                "throttle_rate",
                "p95_ms",
            ),
        )
    )
    console.print(_rich("Per channel", doc["channels"], ("channel", *out)))
    console.print(_rich("Error and throttle codes", doc["error_codes"], ("error_code", *out)))
    console.print(
        _rich(
            "Dormant subscriptions",
            doc["dormant_subscriptions"],
            ("application", "application_id", "api", "api_version", "requests_before"),
        )
    )
    console.print(
        _rich("Retired APIs", doc["retired_apis"], ("api", "api_version", "requests_before"))
    )
    console.print(
        _rich(
            "Behaviour classes and directives of the period",
            doc["episodes"],
            ("kind", "name", "application", "application_id", "api", "from", "to", "evidence",
             "refused"),
        )
    )  # fmt: skip
    console.print(
        _rich(
            "Suggestions and decisions",
            doc["suggestions"],
            ("who", "class", "action", "decision", "proposed", "decided", "summary"),
        )
    )
    if doc.get("suggestions_note"):
        err_console.print(doc["suggestions_note"], highlight=False)
    console.print(
        _rich(
            "Per owner",
            doc["owners"],
            ("owner", "applications", "requests", "error_rate", "throttle_rate", "classes",
             "suggestions", "busiest_application"),
        )
    )  # fmt: skip
    if doc["tenants"]:
        console.print(
            _rich(f"Per tenant — from {doc['tenant_source']}", doc["tenants"],
                  ("tenant", "requests", "errors", "throttled"))
        )  # fmt: skip
