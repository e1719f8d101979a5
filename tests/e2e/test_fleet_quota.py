"""A LIMIT is a fleet-wide budget: what the instances give the gateways (``LocalQuota``).

Real ``vigie serve`` processes over real gRPC; the gateways are plain stream clients that report
the directive hits a handler would (the enforcement itself is the handler's, proven by the Java
``FleetQuotaE2ETest``: four handler cores against two real instances). Here: the shares follow the
reported demand, never go below the floor, sum to at most the budget on each instance and, merged
as the handler merges them (latest epoch, then the smallest share), across two instances; untrusted
reports move nothing; a gateway that leaves gives its share back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.conftest import SidecarProcess, start_sidecar
from tests.support.streams import StreamClient
from tests.support.waiting import RPC_S
from vigie.server.hits import LEAD_SECONDS
from vigie.server.quota import WHOLE_PPM, shares
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc
from vigie.v1 import directives_pb2 as dpb
from vigie.v1 import telemetry_pb2 as tpb
from vigie.wire.columns import StreamEncoder

LIMIT_ID = "fleet-limit"
LIMIT_APP = "app-hot"
FLOOR = 0.2
ENV = {
    "VIGIE_QUOTA_REBALANCE_SECONDS": "0.5",
    "VIGIE_QUOTA_WINDOW_SECONDS": "3",
    "VIGIE_QUOTA_FLOOR_SHARE": str(FLOOR),
}
# requests matching the LIMIT each gateway receives per report (every 0.1 s): 60/25/15/0 %
DEMAND = {"gw-1": 60, "gw-2": 25, "gw-3": 15, "gw-4": 0}


def test_shares_sum_to_the_budget_with_the_floor_and_follow_demand() -> None:
    got = shares({"a": 60, "b": 25, "c": 15, "d": 0}, 0.2)
    assert sum(got.values()) <= WHOLE_PPM
    assert WHOLE_PPM - sum(got.values()) <= 4  # rounding down only
    assert got["a"] > got["b"] > got["c"] > got["d"] >= 49_999  # floor / n = 5 %
    # a naive twin: floor / n + (1 - floor) x demand share
    for g, d in {"a": 60, "b": 25, "c": 15, "d": 0}.items():
        assert abs(got[g] - (0.05 + 0.8 * d / 100) * WHOLE_PPM) <= 1
    assert shares({"a": 0, "b": 0}, 0.2) == {"a": 500_000, "b": 500_000}  # no demand: equal
    assert shares({"a": 90, "b": 10}, 0.2, trust=False) == {"a": 500_000, "b": 500_000}
    assert shares({"a": 5}, 0.2) == {"a": WHOLE_PPM}
    assert shares({}, 0.2) == {}


def _put_limit(sp: SidecarProcess) -> None:
    d = dpb.Directive(
        id=LIMIT_ID,
        mode=dpb.DIRECTIVE_MODE_ENFORCE,
        action=dpb.DIRECTIVE_ACTION_LIMIT,
        application_id=LIMIT_APP,
        limit_requests=6000,
        limit_period_seconds=60,
        limit_burst=50,
        expires_at_us=int((time.time() + 3600) * 1e6),
    )
    with grpc.insecure_channel(sp.admin) as ch:
        apb_grpc.AdminStub(ch).PutDirective(
            apb.PutDirectiveRequest(directive=d, actor="test", reason="fleet budget"),
            metadata=(("authorization", f"Bearer {sp.token}"),),
            timeout=RPC_S,
        )


class Gateway:
    """One gateway streaming to every instance: the requests matching the LIMIT it received
    (events of its application), then its cumulative hits of the LIMIT in a report, to each (as
    the handler does: the directive figures are the gateway's). ``claim`` times the requests
    sent is what it reports (a forger's inflated report: more than 1)."""

    def __init__(self, gateway_id: str, instances: list[SidecarProcess], claim: int = 1) -> None:
        self.gateway_id = gateway_id
        self.streams = [StreamClient(sp.telemetry, gateway_id=gateway_id) for sp in instances]
        self.encoders = [StreamEncoder() for _ in instances]
        self.claim = claim
        self.matched = 0

    def report(self, per_report: int) -> None:
        if per_report:
            now = int(time.time() * 1e6)
            one = {"application_id": LIMIT_APP, "api_name": "Orders", "api_version": "v1",
                   "http_status": 200}  # fmt: skip
            events = [one | {"event_time_us": now + k} for k in range(per_report)]
            for s, enc in zip(self.streams, self.encoders, strict=True):
                s.send(enc.batch_from_records(events))
        self.matched += per_report * self.claim
        hits = dpb.DirectiveHits(directive_id=LIMIT_ID, passed=self.matched)
        msg = tpb.GatewayMessage(
            report=tpb.GatewayReport(at_us=int(time.time() * 1e6), directive_hits=[hits])
        )
        for s in self.streams:
            s.send_raw(msg)

    def quotas(self, k: int) -> dict[int, int]:
        """The shares instance ``k`` sent this gateway for the LIMIT, by epoch: the last one
        of each epoch, as the handler keeps it from one instance."""
        out: dict[int, int] = {}
        for m in self.streams[k].of_kind("directives"):
            for q in m.directives.quotas:
                if q.directive_id == LIMIT_ID:
                    out[q.epoch_us] = q.share_ppm
        return out

    def close(self) -> None:
        for s in self.streams:
            if not s.done.is_set():
                s.close()


class Reporter:
    """Sends every gateway's report every 0.1 s, in the background."""

    def __init__(self, gateways: list[Gateway], demand: dict[str, int]) -> None:
        self.gateways = gateways
        self.demand = demand
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.1):
            for g in self.gateways:
                g.report(self.demand.get(g.gateway_id, 0))

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[list[SidecarProcess], list[Gateway]]]:
    instances = [start_sidecar(tmp_path / f"i{k}", env=ENV) for k in range(2)]
    gateways: list[Gateway] = []
    try:
        for sp in instances:
            _put_limit(sp)
        gateways = [Gateway(g, instances) for g in DEMAND]
        yield instances, gateways
    finally:
        for g in gateways:
            g.close()
        for sp in instances:
            sp.stop()


def _wait(what: str, predicate: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _common_epochs(gateways: list[Gateway], instances: int) -> list[int]:
    """The epochs for which every gateway has a quota from every instance."""
    sets = [set(g.quotas(k)) for g in gateways for k in range(instances)]
    return sorted(set.intersection(*sets))


def _window_filled() -> int:
    """The first epoch whose shares follow a whole demand window of reports starting now."""
    return int((time.time() + 3.5) * 1e6)


def _wait_epochs(gateways: list[Gateway], instances: int, after_us: int) -> None:
    """Until every gateway has, from every instance, the quotas of 3 epochs after ``after_us``."""
    _wait(
        "three epochs of shares after the demand window",
        lambda: len([e for e in _common_epochs(gateways, instances) if e >= after_us]) >= 3,
    )


@pytest.mark.slow
def test_two_instances_give_compatible_shares_that_follow_demand(
    fleet: tuple[list[SidecarProcess], list[Gateway]],
) -> None:
    _, gateways = fleet
    # every gateway holds a share as soon as it has the LIMIT (with the directive itself)
    for g in gateways:
        for s in g.streams:
            s.wait_for(lambda s=s: any(m.directives.quotas for m in s.of_kind("directives")))
    reporter = Reporter(gateways, DEMAND)
    try:
        # demand established (a whole 3 s window of it), then a few epochs of shares
        _wait_epochs(gateways, 2, _window_filled())
    finally:
        reporter.close()
    epochs = _common_epochs(gateways, 2)
    for epoch in epochs:
        per_instance = [[g.quotas(k)[epoch] for g in gateways] for k in range(2)]
        merged = [min(a, b) for a, b in zip(*per_instance, strict=True)]
        # each instance's shares of one epoch, and the handler's merge of both, fit the budget
        assert all(sum(p) <= WHOLE_PPM for p in per_instance), (epoch, per_instance)
        assert sum(merged) <= WHOLE_PPM, (epoch, merged)
        # never below the floor
        assert min(merged) >= int(FLOOR / 4 * WHOLE_PPM) - 1, (epoch, merged)
    last = epochs[-1]
    a, b = ([g.quotas(k)[last] for g in gateways] for k in range(2))
    # the same function of the same reports: the instances agree (but for a report one of them
    # had and the other had not yet when it sampled: at most one report in a 3 s window)
    assert all(abs(x - y) <= 0.05 * WHOLE_PPM for x, y in zip(a, b, strict=True)), (a, b)
    assert a[0] > a[1] > a[2] > a[3], a
    # 60/25/15/0 % of the demand with a floor of 20 %: 53/25/17/5 % of the budget
    expected = [
        (FLOOR / 4 + (1 - FLOOR) * DEMAND[g.gateway_id] / 100) * WHOLE_PPM for g in gateways
    ]
    assert all(abs(x - e) <= 0.05 * WHOLE_PPM for x, e in zip(a, expected, strict=True)), a


@pytest.mark.slow
def test_a_gateway_that_leaves_gives_its_share_back(
    fleet: tuple[list[SidecarProcess], list[Gateway]],
) -> None:
    _, gateways = fleet
    gone = gateways.pop()  # gw-4
    gone.close()
    remaining = gateways

    def equal_thirds() -> bool:
        epochs = _common_epochs(remaining, 2)
        if not epochs:
            return False
        shares_now = [g.quotas(0)[epochs[-1]] for g in remaining]
        return all(s == WHOLE_PPM // 3 for s in shares_now)

    # no demand reported: the three left share the budget equally, gw-4's quarter included
    _wait("the three remaining gateways to get a third each", equal_thirds)


@pytest.mark.slow
def test_untrusted_reports_move_no_share(tmp_path: Path) -> None:
    sp = start_sidecar(
        tmp_path / "state", env=ENV | {"VIGIE_TRUST_UNAUTHENTICATED_GATEWAYS": "false"}
    )
    gateways: list[Gateway] = []
    try:
        _put_limit(sp)
        gateways = [Gateway(g, [sp]) for g in ("gw-1", "gw-2")]
        reporter = Reporter(gateways, {"gw-1": 1000, "gw-2": 1})  # gw-1 claims it all
        try:
            _wait_epochs(gateways, 1, _window_filled())
        finally:
            reporter.close()
        last = _common_epochs(gateways, 1)[-1]
        assert [g.quotas(0)[last] for g in gateways] == [500_000, 500_000]
    finally:
        for g in gateways:
            g.close()
        sp.stop()


@pytest.mark.slow
def test_an_inflated_report_counts_only_what_the_gateway_sent(tmp_path: Path) -> None:
    """Trusted reports, but gw-1 claims 50 times the requests it streams: its demand is what it
    sent (the per-gateway plausible hits), so both gateways, streaming alike, share equally."""
    sp = start_sidecar(tmp_path / "state", env=ENV)
    gateways: list[Gateway] = []
    try:
        _put_limit(sp)
        gateways = [Gateway("gw-1", [sp], claim=50), Gateway("gw-2", [sp])]
        reporter = Reporter(gateways, {"gw-1": 10, "gw-2": 10})
        try:
            _wait_epochs(gateways, 1, _window_filled())
        finally:
            reporter.close()
        last = _common_epochs(gateways, 1)[-1]
        got = [g.quotas(0)[last] for g in gateways]
        # the raw reports (500 vs 10 a report) would give gw-1 0.1 + 0.8 x 500 / 510 = 88 %
        raw = shares({"gw-1": 500, "gw-2": 10}, FLOOR)
        assert raw["gw-1"] > 850_000
        assert all(abs(x - 500_000) <= 0.05 * WHOLE_PPM for x in got), got
        # an over-claim within LEAD_EVENTS may be a report racing its batch: it is judged
        # LEAD_SECONDS after it was made (a status read judges what is due)
        deadline = time.monotonic() + LEAD_SECONDS + 30
        with grpc.insecure_channel(sp.admin) as ch:
            while True:
                st = apb_grpc.AdminStub(ch).GetStatus(
                    apb.StatusRequest(),
                    metadata=(("authorization", f"Bearer {sp.token}"),),
                    timeout=RPC_S,
                )
                if st.counters["directive_hits_implausible"] > 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        assert st.counters["directive_hits_implausible"] > 0, dict(st.counters)
    finally:
        for g in gateways:
            g.close()
        sp.stop()


def test_the_quotas_a_gateway_refused_are_in_the_status(tmp_path: Path) -> None:
    """The handler reports the local quotas it refused (``GatewayReport.quotas_rejected``, the
    Java ``SenderTest``): ``vigie status`` shows them per gateway, the reason sanitised."""
    sp = start_sidecar(tmp_path / "state")
    gw = StreamClient(sp.telemetry, gateway_id="gw-q")
    try:
        forged = "l1: epoch_us 0 is not a time\x1b[2J" + "x" * 5000
        report = tpb.GatewayReport(
            at_us=int(time.time() * 1e6), quotas_rejected=2, last_quota_rejection=forged
        )
        gw.send_raw(tpb.GatewayMessage(report=report))
        md = (("authorization", f"Bearer {sp.token}"),)
        with grpc.insecure_channel(sp.admin) as ch:
            stub = apb_grpc.AdminStub(ch)

            def reported() -> bool:
                st = stub.GetStatus(apb.StatusRequest(), metadata=md, timeout=RPC_S)
                return any(g.quotas_rejected for g in st.gateways)

            _wait("the report", reported)
            (g,) = stub.GetStatus(apb.StatusRequest(), metadata=md, timeout=RPC_S).gateways
        assert g.quotas_rejected == 2
        assert g.last_quota_rejection.startswith("l1: epoch_us 0 is not a time\\x1b[2J")
        assert len(g.last_quota_rejection) <= 256
        env = os.environ | {"VIGIE_ADMIN_TOKEN": sp.token}
        cmd = [sys.executable, "-m", "vigie.cli", "status", "--admin", sp.admin]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
        assert out.returncode == 0, out.stderr
        assert "gateway gw-q refused 2 local quota(s)" in " ".join(out.stdout.split()), out.stdout
    finally:
        gw.close()
        sp.stop()
