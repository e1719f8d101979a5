"""Kept, then pushed: a real ``vigie serve`` whose disk refuses the write (the temporary file
of directives.json, directives.tmp, is /dev/full: ENOSPC, as root too). The directive is
neither applied nor pushed nor audited, the caller is told why in one line; the next change,
with room, goes out."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SidecarProcess
from tests.support.policy_sidecar import cli, cli_json, serve
from vigie.sources.probe import GatewayProbe

pytestmark = pytest.mark.slow


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[SidecarProcess]:
    sp = serve(tmp_path / "state", observed=False)
    yield sp
    sp.stop()


def test_a_directive_that_cannot_be_saved_is_not_pushed(sidecar: SidecarProcess) -> None:
    state = sidecar.state_dir
    audit = state / "directives-audit.jsonl"
    audited = audit.read_text() if audit.exists() else ""
    with GatewayProbe(sidecar.telemetry, "gw-kept") as gw:
        assert gw.wait_connected()
        os.symlink("/dev/full", state / "directives.tmp")
        res = cli(sidecar, "tune", "block", "--application", "app-idle", "--ttl", "1h",
                  "--reason", "disk full", code=2)  # fmt: skip
        assert "directive not saved: No space left on device" in res.output
        assert "Traceback" not in res.output
        assert cli_json(sidecar, "status")["directives"] == []
        assert (audit.read_text() if audit.exists() else "") == audited
        assert not (state / "directives.json").exists()
        # with room again, the next one is kept and pushed
        ok = cli_json(sidecar, "tune", "block", "--application", "app-half", "--ttl", "1h",
                      "--reason", "room")  # fmt: skip
        did = ok["directive"]["id"]
        assert gw.wait_for(lambda p: did in p.table)
        assert set(gw.table) == {did}  # app-idle's never reached the gateway
    assert did in (state / "directives.json").read_text()
    assert "app-half" in audit.read_text() and "app-idle" not in audit.read_text()


def test_directives_a_gateway_refused_are_shown_in_status(sidecar: SidecarProcess) -> None:
    from vigie.v1 import directives_pb2 as dpb  # noqa: PLC0415

    why = "limit_period_seconds 2147483648 is outside 1..315576000"
    bad = dpb.RejectedDirective(directive_id="manual-limit-x", update_version=3, reason=why)
    with GatewayProbe(sidecar.telemetry, "gw-old") as gw:
        assert gw.wait_connected()
        gw.send_report([], [bad])

        def shown() -> list[dict[str, Any]]:
            return [g for g in cli_json(sidecar, "status")["gateways"]
                    if g["gateway_id"] == "gw-old" and g.get("directives_rejected")]  # fmt: skip

        assert gw.wait_for(lambda _: bool(shown()), 120)
        (g,) = shown()
        assert g["directives_rejected"] == "1"  # uint64 in proto JSON
        assert g["rejected_directives"][0]["reason"].startswith("limit_period_seconds")
        out = cli(sidecar, "status").output
        assert "gateway gw-old refused 1 directive upsert(s): manual-limit-x" in out
