"""``vigie replay --json`` lists suggestions; ``vigie suggestions simulate`` replays a directive
over WSO2's analytics log and is checked against a naive token bucket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import CONFORMANCE, SidecarProcess
from tests.support.policy_sidecar import cli_json, serve
from tests.support.policy_traffic import (
    DAY,
    END,
    HOUR,
    MINUTE,
    T0,
    Record,
    elk_lines,
    rec,
    retry_storm,
    steady,
)
from tests.support.wso2_spec import AdminSpec
from vigie.cli.main import main
from vigie.errors import InputError
from vigie.policy.simulate import simulate
from vigie.policy.suggest import DirectiveSpec
from vigie.sources.probe import GatewayProbe


def write_log(path: Path, records: list[Record]) -> Path:
    path.write_text("\n".join(elk_lines(sorted(records, key=lambda r: r["event_time_us"]))) + "\n")
    return path


def run(*args: str, code: int = 0) -> Any:
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == code, (res.output, res.exception)
    return json.loads(res.stdout) if "--json" in args and code == 0 else res


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("logs")
    main_log = (
        retry_storm("app-retry", END - 10 * MINUTE)
        + steady("app-retry", END - 2 * HOUR, 60, 3, api="Stock")
        + steady("app-busy", END - HOUR, 45, 20)
        + steady("app-wrong", END - 2 * HOUR, 60, 5)
        # a month of observation: what was never seen may be called retired (an hour of
        # traffic a month ago: a lone line that far from the others is refused as off the
        # log's timeline, vigie.sources.timeline)
        + [rec(END - 31 * DAY + k * 3 * MINUTE, "app-busy") for k in range(20)]
    )
    inventory = {
        "applications": [{"id": "app-wrong", "name": "Picker", "owner": "team-w",
                          "channel": "main"}],
        "apis": [{"name": "Legacy", "version": "v0", "context": "/legacy/v0"}],
    }  # fmt: skip
    (d / "inventory.json").write_text(json.dumps(inventory))
    return {
        "main": write_log(d / "gw-main.log", main_log),
        "sale": write_log(d / "gw-sale.log", steady("app-wrong", END - 30 * MINUTE, 20, 1)),
        "inventory": d / "inventory.json",
    }


@pytest.fixture(scope="module")
def report(logs: dict[str, Path]) -> Any:
    return run("replay", f"main={logs['main']}", f"sale={logs['sale']}", "--inventory",
               str(logs["inventory"]), "--json")  # fmt: skip


def find(items: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    hits = [s for s in items if all(s.get(k) == v for k, v in match.items())]
    assert len(hits) == 1, (match, [(s["class"], s.get("application_id")) for s in items])
    return hits[0]


def test_replay_json_lists_the_suggestions(report: Any) -> None:
    items = report["suggestions"]
    storm = find(items, **{"class": "retry_storm"})
    who = (storm["application_id"], storm["api"], storm["api_version"])
    assert who == ("app-retry", "Stock", "v1")
    assert storm["concerns"] == "subscription" and storm["action"] == "temporary_limit"
    assert storm["evidence"]["retry_storm"]["retries"] >= 100
    assert storm["directive"]["action"] == "LIMIT"
    retired = find(items, **{"class": "retired"})
    assert (retired["api"], retired["api_version"]) == ("Legacy", "v0")
    assert "application_id" not in retired
    assert retired["wso2"]["payload"] == {"conditionType": "API", "conditionValue": "/legacy/v0",
                                          "conditionStatus": True}  # fmt: skip
    wrong = find(items, **{"class": "wrong_channel"})
    assert wrong["channel"] == "sale" and wrong["directive"]["channel"] == "sale"


def test_embedded_payloads_validate(report: Any) -> None:
    if not CONFORMANCE.is_dir():
        pytest.skip("../shared/conformance is not here")
    spec = AdminSpec(CONFORMANCE / "admin-v4.yaml")
    embedded = [s["wso2"] for s in report["suggestions"] if s["wso2"]]
    assert embedded
    for w in embedded:
        assert spec.errors(w["schema"], w["payload"]) == []


def naive_refusals(records: list[Record], d: DirectiveSpec) -> int:
    """A token bucket per gateway written the obvious way (all records on one gateway)."""
    rate = d.limit_requests / (d.limit_period_seconds * 1e6)
    tokens, last, refused = float(d.limit_requests), None, 0
    for r in sorted(records, key=lambda r: r["event_time_us"]):
        if (r["application_id"], r["api_name"], r["api_version"]) != (
            d.application_id, d.api_name, d.api_version):  # fmt: skip
            continue
        t = r["event_time_us"]
        if last is not None and t > last:
            tokens = min(float(d.limit_requests), tokens + (t - last) * rate)
        last = t if last is None else max(last, t)
        if tokens >= 1:
            tokens -= 1
        else:
            refused += 1
    return refused


@pytest.mark.parametrize(("limit", "period"), [(2, 60), (30, 60), (1, 1), (200, 3600)])
def test_simulated_token_bucket_matches_a_naive_one(tmp_path: Path, limit: int,
                                                    period: int) -> None:  # fmt: skip
    records = retry_storm("a", T0, n=400, gap_us=150_000) + steady("a", T0, 30, 7, api="Stock")
    log = write_log(tmp_path / "a.log", records)
    d = DirectiveSpec("LIMIT", application_id="a", api_name="Stock", api_version="v1",
                      limit_requests=limit, limit_period_seconds=period)  # fmt: skip
    result = simulate(d, [str(log)])
    assert result.matched == 400 + 30 * 7
    assert result.refused == naive_refusals(records, d)
    assert result.refused > 0


def test_simulate_a_suggestion_from_the_replay(logs: dict[str, Path], report: Any) -> None:
    storm = find(report["suggestions"], **{"class": "retry_storm"})
    doc = run("suggestions", "simulate", storm["id"], "--replay", f"main={logs['main']}",
              "--replay", f"sale={logs['sale']}", "--json")  # fmt: skip
    assert doc["found_in"] == "the replayed history"
    assert doc["requests_in_scope"] == 120 + 180  # the storm and its normal traffic
    assert doc["consumers_affected"] == 1
    (c,) = doc["consumers"]
    assert (c["application_id"], c["api"], c["requests"]) == ("app-retry", "Stock", 300)
    assert doc["requests_refused"] == c["refused"] > 100
    assert doc["share_of_their_traffic"] == pytest.approx(c["refused"] / 300, abs=1e-4)


def test_simulate_a_channel_block(logs: dict[str, Path], report: Any) -> None:
    wrong = find(report["suggestions"], **{"class": "wrong_channel"})
    doc = run("suggestions", "simulate", wrong["id"], "--replay", f"main={logs['main']}",
              "--replay", f"sale={logs['sale']}", "--json")  # fmt: skip
    assert doc["requests_refused"] == 20  # every request through sale, none through main
    assert doc["consumers"][0]["requests"] == 320
    spec = DirectiveSpec("BLOCK", application_id="app-wrong", channel="sale")
    with pytest.raises(InputError, match="scoped to channel 'sale'; name it on a log"):
        simulate(spec, [f"main={logs['main']}"])


def test_simulate_without_a_directive_says_so(logs: dict[str, Path], report: Any) -> None:
    retired = find(report["suggestions"], **{"class": "retired"})
    res = run("suggestions", "simulate", retired["id"], "--replay", f"main={logs['main']}",
              "--inventory", str(logs["inventory"]), "--json")  # fmt: skip
    assert res["requests_refused"] == 0  # no traffic on a retired API


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProcess]:
    sp = serve(tmp_path_factory.mktemp("simulate") / "state")
    yield sp
    sp.stop()


@pytest.mark.slow
def test_simulate_a_suggestion_of_the_running_sidecar(
    live: SidecarProcess, logs: dict[str, Path]
) -> None:
    with GatewayProbe(live.telemetry, "gw-live") as gw:
        gw.send_records(retry_storm("app-retry", T0))  # another episode than the log's
        assert gw.wait_for(lambda p: p.acked_events >= 120, 120)
    doc = cli_json(live, "suggestions", "list", "--class", "retry_storm", "--state", "proposed")
    (sid,) = [s["id"] for s in doc["suggestions"]]
    res = run("suggestions", "simulate", sid, "--replay", f"main={logs['main']}",
              "--admin", live.admin, "--state-dir", str(live.state_dir), "--json")  # fmt: skip
    assert res["found_in"] == f"the sidecar at {live.admin}"
    assert res["requests_refused"] > 100
