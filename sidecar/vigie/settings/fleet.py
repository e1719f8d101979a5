"""What ``vigie.server.fleet`` is told: the other instances of the fleet and how to reach them.

``fleet_peers`` lists the other instances' admin addresses (``host:port``, comma-separated; the
environment's ``VIGIE_FLEET_PEERS`` the same). Peers call each other's admin service with the
admin token they share (``admin_token`` / ``admin_token_file``: the same on every instance), or
over TLS with ``fleet_tls_ca_file`` (the CA of the peers' admin certificates), presenting this
instance's admin certificate as client certificate (mTLS, ``admin_auth = mtls``).
"""

from __future__ import annotations

from typing import Final

from vigie.settings._values import check_address

DEFAULT_SYNC_SECONDS: Final = 0.2


def parse_peers(value: str) -> tuple[str, ...]:
    """``vigie-1:7356, vigie-2:7356`` -> the addresses; a repeated one is refused."""
    out: list[str] = []
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        if item.startswith("unix:") or ":" not in item:
            raise ValueError(f"expected host:port admin addresses, got {item!r}")
        check_address(item)
        if item in out:
            raise ValueError(f"{item} is listed twice")
        out.append(item)
    return tuple(out)


def check_peers(value: str) -> None:
    parse_peers(value)
