"""What the command modules share: the consoles, option sets, parsers of times, durations and
rates, the admin client of the options, and the JSON and table shapes several commands print.

It imports no command module (the import-linter contract "The CLI" in ``pyproject.toml``).
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from vigie.cli.client import (
    DEFAULT_ADMIN,
    AdminClient,
    default_admin,
    fleet_addresses,
    one_of,
    read_token,
)

console = Console()
err_console = Console(stderr=True)

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

# ---------------------------------------------------------------------------------------------
# parsing what the operator types
# ---------------------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE_S = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
           "hour": 3600, "d": 86400, "day": 86400}  # fmt: skip


def parse_time(value: str) -> int:
    """ISO 8601 (with a zone, or UTC assumed) -> microseconds since the epoch."""
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000)


def parse_duration(value: str) -> int:
    """``90``, ``90s``, ``15m``, ``1h``, ``7d`` -> seconds."""
    m = _DURATION.match(value)
    if not m:
        raise click.BadParameter(f"{value!r}: expected a duration such as 90s, 15m, 1h or 7d")
    seconds = int(float(m.group(1)) * _UNIT_S[m.group(2)])
    if seconds <= 0:
        raise click.BadParameter(f"{value!r}: must be positive")
    return seconds


def parse_rate(value: str) -> tuple[int, int]:
    """``100/min``, ``10/s``, ``5000/hour``, ``30/10s`` -> (requests, period seconds)."""
    m = _RATE.match(value)
    if not m:
        raise click.BadParameter(f"{value!r}: expected a rate such as 100/min, 10/s or 30/10s")
    n, mult, unit = int(m.group(1)), int(m.group(2) or 1), m.group(3)
    if n <= 0 or mult <= 0:
        raise click.BadParameter(f"{value!r}: must be positive")
    return n, mult * _RATE_S[unit]


def mode_value(name: str) -> int:
    """``shadow`` or ``enforce`` -> the directive mode of the protocol."""
    from vigie.v1 import directives_pb2 as dpb  # noqa: PLC0415 - keep `vigie --help` fast

    return dpb.DIRECTIVE_MODE_ENFORCE if name == "enforce" else dpb.DIRECTIVE_MODE_SHADOW


# ---------------------------------------------------------------------------------------------
# option sets
# ---------------------------------------------------------------------------------------------


def option_group(*options: Decorator) -> Decorator:
    """Several click options as one decorator, in the order ``--help`` lists them."""

    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for opt in reversed(options):
            f = opt(f)
        return f

    return apply


fleet_option = click.option(
    "--fleet",
    "fleet",
    envvar="VIGIE_FLEET",
    type=click.Path(dir_okay=False),
    help="File listing the fleet's admin addresses, one a line or comma-separated "
    "(VIGIE_FLEET); with --admin, both count.",
)


def _with_fleet(joined: bool) -> Decorator:
    """Hands the command ``admin`` as the addresses of --admin and --fleet together (each at
    most once: ``fleet_addresses``), comma-joined (``joined``) or as a tuple."""

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def run(*args: Any, admin: Sequence[str], fleet: str | None, **kw: Any) -> Any:
            addresses = fleet_addresses(admin, fleet)
            return f(*args, admin=",".join(addresses) if joined else addresses, **kw)

        return run

    return wrap


# --admin (repeated for a fleet), --fleet, --token-file, --state-dir: the running instances a
# command talks to. The command gets them comma-joined; ``client`` picks the one it talks to
admin_options = option_group(
    click.option(
        "--admin",
        "admin",
        multiple=True,
        help=f"Admin address of a vigie instance (VIGIE_ADMIN, default {DEFAULT_ADMIN}); repeat "
        "it for a fleet: a write goes to the first that answers and the fleet replicates it.",
    ),
    fleet_option,
    click.option("--token-file", help="Admin token file (default <state-dir>/admin.token)."),
    click.option("--state-dir", help="The sidecar's state directory, to find its admin token."),
    _with_fleet(joined=True),
)

# Like admin_options, but the command gets the addresses as a tuple, and --token-file and
# --state-dir may repeat: several instances whose answers are merged (the fleet view)
fleet_admin_options = option_group(
    click.option(
        "--admin",
        "admin",
        multiple=True,
        help=f"Admin address of a vigie instance (VIGIE_ADMIN, default {DEFAULT_ADMIN}); repeat "
        "it for a fleet: each is asked, their answers merged.",
    ),
    fleet_option,
    click.option("--token-file", multiple=True, help="Admin token file (or one per --admin)."),
    click.option(
        "--state-dir", multiple=True, help="Sidecar state directory (or one per --admin)."
    ),
    _with_fleet(joined=False),
)


def default_actor() -> str:
    """Who decides: ``VIGIE_ACTOR``, else the user name."""
    env = os.environ.get("VIGIE_ACTOR")
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no user name at all
        return "unknown"


actor_option = click.option(
    "--actor",
    default=default_actor,
    show_default="$VIGIE_ACTOR or your user name",
    help="Who decides.",
)


# ---------------------------------------------------------------------------------------------
# reaching sidecars
# ---------------------------------------------------------------------------------------------


def first(values: Sequence[str], default: str | None = None) -> str | None:
    """The first of a repeated option's values (a single sidecar), or ``default``."""
    return values[0] if values else default


def client(admin: str, token_file: str | None, state_dir: str | None) -> AdminClient:
    """The admin client of one instance, with its token found from the options. ``admin``
    may name several (comma-joined, ``admin_options``): the first that answers is the one, and
    stderr says which and whether the others are its peers (a write reaches them through it)."""
    addresses = [a for a in admin.split(",") if a] or [default_admin()]
    token = read_token(None, token_file, state_dir)
    if len(addresses) == 1:
        return AdminClient(addresses[0], token)
    c, note = one_of(addresses, token)
    err_console.print(note, highlight=False, soft_wrap=True)
    return c


def listed(value: str | None) -> list[str]:
    """An option given once (or not) as the list ``admin_clients`` takes."""
    return [value] if value else []


def admin_clients(
    admins: Sequence[str], token_files: Sequence[str], state_dirs: Sequence[str]
) -> list[AdminClient]:
    """One client per --admin; --token-file and --state-dir given once, or once per --admin.
    An address given twice is refused (``FleetError``): never asked, nor counted, twice."""
    fleet_addresses(admins, None)

    def pick(values: Sequence[str], i: int) -> str | None:
        if not values:
            return None
        if len(values) == 1:
            return values[0]
        if len(values) != len(admins):
            raise click.BadParameter("give one value for all sidecars, or one per --admin")
        return values[i]

    return [
        AdminClient(a, read_token(None, pick(token_files, i), pick(state_dirs, i)))
        for i, a in enumerate(admins)
    ]


# ---------------------------------------------------------------------------------------------
# printing
# ---------------------------------------------------------------------------------------------


def iso(us: int) -> str | None:
    """Microseconds since the epoch -> ISO 8601 UTC (None for 0)."""
    from vigie.classify.views import iso as views_iso  # noqa: PLC0415

    return views_iso(us)


def emit_json(doc: Any) -> None:
    """One JSON document on one line of stdout."""
    sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")


def directive_json(d: Any) -> dict[str, Any]:
    """A directive (protocol message) as the CLI prints it, with its expiry in ISO 8601."""
    from google.protobuf import json_format  # noqa: PLC0415

    doc: dict[str, Any] = json_format.MessageToDict(d, preserving_proto_field_name=True)
    doc["expires"] = iso(d.expires_at_us)
    return doc


def subscription_table(subs: list[dict[str, Any]], title: str) -> Table:
    """Subscriptions (the JSON of ``vigie consumers`` or ``vigie replay``) with their evidence."""
    from vigie.classify.views import headline  # noqa: PLC0415

    t = Table(title=title, show_lines=False)
    for col in ("application", "API", "requests", "classes", "evidence"):
        t.add_column(col, overflow="fold")
    for s in subs:
        ev = "; ".join(headline(c, s["evidence"].get(c, {})) for c in s["classes"] if c != "normal")
        t.add_row(
            s["application"] or s["application_id"],
            _api_label(s),
            f"{s['requests']:,}",
            ", ".join(s["classes"]),
            ev,
        )
    return t


def _api_label(s: dict[str, Any]) -> str:
    """``Orders 1.0.0``, with the tenant when it is not the super tenant (``@acme.com``)."""
    tenant = s.get("tenant") or "carbon.super"
    at = "" if tenant == "carbon.super" else f" @{tenant}"
    return f"{s['api']} {s['api_version']}{at}"


def human_bytes(n: float) -> str:
    """A size in B, KiB, MiB, GiB or TiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
