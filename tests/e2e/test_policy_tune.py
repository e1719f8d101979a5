"""``vigie tune`` guard rails against a real ``vigie serve``: names resolved to UUIDs (unknown
or ambiguous ones refused with the candidates), bounds with one-line errors, confirmation of
wide ENFORCE directives and long TTLs (no terminal: refused without ``--yes``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import SidecarProcess
from tests.support.policy_sidecar import cli, cli_json, serve
from tests.support.policy_traffic import MINUTE, T0, rec, steady
from vigie.sources.probe import GatewayProbe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProcess]:
    sp = serve(tmp_path_factory.mktemp("tune") / "state")
    try:
        twins = [rec(T0 + MINUTE, "app-t1", name="Twin"), rec(T0 + MINUTE, "app-t2", name="Twin")]
        twins += steady("app-half", T0 + 2 * MINUTE, 10, 6, name="Half", owner="team-h")
        with GatewayProbe(sp.telemetry, "gw-tune") as gw:
            gw.send_records(twins)
            assert gw.wait_for(lambda p: p.acked_events >= len(twins), 60), gw.error
        yield sp
    finally:
        sp.stop()


def refused(sp: SidecarProcess, *args: str) -> str:
    out = cli(sp, "tune", *args, "--reason", "test", code=2).output
    assert "Traceback" not in out
    return out


def test_a_name_is_resolved_to_its_uuid(sidecar: SidecarProcess) -> None:
    doc = cli_json(sidecar, "tune", "limit", "--application", "Half", "--rate", "10/s",
                   "--ttl", "10m", "--reason", "by name")  # fmt: skip
    assert doc["directive"]["application_id"] == "app-half"
    cli(sidecar, "tune", "unblock", doc["directive"]["id"], "--reason", "done")


def test_unknown_and_ambiguous_names_are_refused_with_the_candidates(
    sidecar: SidecarProcess,
) -> None:
    out = refused(sidecar, "limit", "--application", "Halff", "--rate", "10/s", "--ttl", "1h")
    assert "no application 'Halff' is known to the sidecar (close: Half" in out
    out = refused(sidecar, "block", "--application", "Twin", "--ttl", "1h")
    assert "'Twin' names 2 applications: app-t1, app-t2; give the UUID" in out
    assert cli_json(sidecar, "status")["directives"] == []


def test_bad_values_get_one_line_errors(sidecar: SidecarProcess) -> None:
    out = refused(sidecar, "block", "--application", "app-half", "--ttl", "200000000d")
    assert "'200000000d': at most 30 days (max_directive_ttl_seconds)" in out
    out = refused(sidecar, "limit", "--application", "app-half", "--rate", "10/s", "--burst",
                  "-5", "--ttl", "1h")  # fmt: skip
    assert "limit_burst must be between 0 and 4,294,967,295, got -5" in out
    out = refused(sidecar, "limit", "--api", "Orders", "--rate", "5000000000/min", "--ttl", "1h")
    assert "limit_requests must be between 1 and 4,294,967,295" in out


def test_wide_enforce_and_long_ttl_need_confirmation(sidecar: SidecarProcess) -> None:
    out = refused(sidecar, "block", "--api", "Orders", "--mode", "enforce", "--ttl", "1h")
    assert "ENFORCE on every application of API Orders: confirm with --yes (no terminal" in out
    out = refused(sidecar, "block", "--channel", "sale", "--mode", "enforce", "--ttl", "1h")
    assert "ENFORCE on every application of channel sale" in out
    out = refused(sidecar, "block", "--application", "app-half", "--ttl", "10d")
    assert "a TTL of 10 days (over 7): confirm with --yes" in out
    assert cli_json(sidecar, "status")["directives"] == []
    doc = cli_json(sidecar, "tune", "block", "--api", "Orders", "--mode", "enforce", "--ttl",
                   "1h", "--reason", "decided", "--yes")  # fmt: skip
    assert doc["directive"]["api_name"] == "Orders"
    cli(sidecar, "tune", "unblock", doc["directive"]["id"], "--reason", "done")
    # shadow on an API asks nothing
    doc = cli_json(sidecar, "tune", "block", "--api", "Orders", "--ttl", "1h", "--reason", "look")
    cli(sidecar, "tune", "unblock", doc["directive"]["id"], "--reason", "done")


def test_the_audit_trail_shows_the_values(sidecar: SidecarProcess) -> None:
    from click.testing import CliRunner  # noqa: PLC0415

    from vigie.cli.audit import values  # noqa: PLC0415
    from vigie.cli.main import main  # noqa: PLC0415
    from vigie.directives.audit import read_entries  # noqa: PLC0415

    a = cli_json(sidecar, "tune", "limit", "--application", "app-half", "--rate", "10/s",
                 "--ttl", "1h", "--reason", "first")  # fmt: skip
    cli(sidecar, "tune", "limit", "--application", "app-half", "--rate", "20/s", "--ttl", "1h",
        "--reason", "looser")  # fmt: skip
    cli(sidecar, "tune", "thresholds", "retry_min_retries=45", "--reason", "noisy")
    cli(sidecar, "tune", "unblock", a["directive"]["id"], "--reason", "done")
    d = sidecar.state_dir
    entries = list(read_entries([d / "directives-audit.jsonl", d / "audit.jsonl"]))
    shown = {(e["subject"], e["action"]): values(e) for e in entries}
    sub = f"directive:{a['directive']['id']}"
    assert "limitRequests=10 limitPeriodSeconds=1" in shown[(sub, "put")]
    before, after = shown[(sub, "replace")].split(" -> ")
    assert "limitRequests=10" in before and "limitRequests=20" in after
    assert "applicationId=app-half" in shown[(sub, "remove")]
    assert shown[("thresholds", "changed")] == "retry_min_retries 30 -> 45"
    res = CliRunner().invoke(main, ["audit", "--state-dir", str(d)])
    assert res.exit_code == 0 and "values" in res.output


def test_the_impact_is_previewed_before_the_push(sidecar: SidecarProcess) -> None:
    doc = cli_json(sidecar, "tune", "block", "--application", "app-half", "--api", "Orders",
                   "--ttl", "10m", "--reason", "preview")  # fmt: skip
    assert doc["impact"]["this_hour"] == {"requests": 60, "refused": 60}
    assert doc["impact"]["last_24_hours"] == {"requests": 60, "refused": 60}
    cli(sidecar, "tune", "unblock", doc["directive"]["id"], "--reason", "done")
    out = cli(sidecar, "tune", "limit", "--application", "app-half", "--api", "Orders", "--rate",
              "30/hour", "--ttl", "10m", "--reason", "preview").output  # fmt: skip
    assert "would have refused 30 of 60 requests this hour and 30 of 60 over the last 24" in out
    lim = cli_json(sidecar, "status")["directives"]
    cli(sidecar, "tune", "unblock", lim[0]["id"], "--reason", "done")


def test_an_absurd_approval_ttl_is_one_line(sidecar: SidecarProcess) -> None:
    doc = cli_json(sidecar, "suggestions", "list", "--state", "proposed")
    sid = doc["suggestions"][0]["id"]
    out = cli(sidecar, "suggestions", "approve", sid, "--ttl", "200000000d", "--reason", "x",
              code=2).output  # fmt: skip
    assert "'200000000d': at most 30 days (max_directive_ttl_seconds)" in out
    assert "Traceback" not in out
    assert cli_json(sidecar, "suggestions", "show", sid)["state"] == "proposed"
