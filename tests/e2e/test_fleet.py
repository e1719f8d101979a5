"""The fleet: real ``vigie serve`` instances that are each other's peers (``fleet_peers``).

A directive put on one instance is in the other's table and pushed to the gateways connected
only to the other; an instance that was down catches up when it returns (and says it started
from a peer); the fleet-wide version is the same everywhere; the audit trail says where a change
was made and where it was replicated; ``vigie status --json`` lists the peers and the directives
by id. The delays measured are printed (``pytest -s``), never asserted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import SidecarProcess, free_port, start_sidecar
from tests.support.policy_sidecar import INVENTORY
from tests.support.policy_traffic import DAY, MINUTE, T0, rec, retry_storm
from tests.support.streams import StreamClient
from vigie.cli.client import AdminClient
from vigie.cli.main import main
from vigie.sources.probe import GatewayProbe
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import directives_pb2 as dpb
from vigie.wire.columns import StreamEncoder

pytestmark = pytest.mark.slow

TOKEN = "fleet-shared-token-for-the-tests"
WAIT_S = 30.0  # how long to wait for something that must happen (never a speed assertion)


class Member:
    """One instance of the fleet: its ports and state directory, fixed across restarts."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.state_dir = root / name
        self.tport, self.aport = free_port(), free_port()
        self.peers: list[Member] = []
        self.sp: SidecarProcess | None = None

    @property
    def admin(self) -> str:
        return f"127.0.0.1:{self.aport}"

    @property
    def telemetry(self) -> str:
        return f"127.0.0.1:{self.tport}"

    def start(self, *extra: str) -> SidecarProcess:
        env = {
            "VIGIE_ADMIN_TOKEN": TOKEN,
            "VIGIE_FLEET_PEERS": ",".join(p.admin for p in self.peers),
            "VIGIE_FLEET_INSTANCE_ID": self.name,
            "VIGIE_FLEET_START_TIMEOUT_SECONDS": "2",
        }
        self.sp = start_sidecar(
            self.state_dir, *extra, env=env, telemetry_port=self.tport, admin_port=self.aport
        )
        return self.sp

    def stop(self) -> None:
        if self.sp is not None:
            self.sp.stop()
            self.sp = None

    def kill(self) -> None:
        """SIGKILL: no last snapshot, nothing flushed but what each change already fsynced."""
        if self.sp is not None:
            self.sp.proc.kill()
            self.sp.proc.wait()
            self.sp = None

    def client(self) -> AdminClient:
        return AdminClient(self.admin, TOKEN)

    def status(self) -> apb.Status:
        with self.client() as c:
            st: apb.Status = c.call(c.stub.GetStatus, apb.StatusRequest())
        return st

    def peer_states(self) -> list[str]:
        return [p.state for p in self.status().peers]

    def table(self) -> dict[str, int]:
        """Directive id -> fleet-wide version, as this instance holds them."""
        with self.client() as c:
            dl = c.call(c.stub.ListDirectives, apb.ListDirectivesRequest())
        return {d.id: d.version for d in dl.directives}

    def audit(self) -> list[dict[str, Any]]:
        path = self.state_dir / "directives-audit.jsonl"
        return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def fleet_of(root: Path, n: int) -> list[Member]:
    members = [Member(root, f"vigie-{k}") for k in range(n)]
    for m in members:
        m.peers = [p for p in members if p is not m]
    return members


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[list[Member]]:
    members = fleet_of(tmp_path, 2)
    try:
        for m in members:
            m.start()
        yield members
    finally:
        for m in members:
            m.stop()


def wait_until(what: str, cond: Callable[[], bool], timeout: float = WAIT_S) -> float:
    """Poll ``cond`` until it holds; return the seconds it took (AssertionError past
    ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if cond():
            return time.monotonic() - started
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


class GatewayTable:
    """What a gateway holds from one sidecar: the full table, then the deltas, in order."""

    def __init__(self, stream: StreamClient) -> None:
        self.stream = stream

    def now(self) -> dict[str, int]:
        table: dict[str, int] = {}
        for m in self.stream.of_kind("directives"):
            u = m.directives
            if u.full:
                table = {}
            for rid in u.removals:
                table.pop(rid, None)
            for d in u.upserts:
                table[d.id] = d.version or u.version
        return table


def records(n: int) -> list[dict[str, Any]]:
    t0 = int((time.time() - 600) * 1e6)
    return [{"event_time_us": t0 + k * 1000, "application_id": "app-r", "api_name": "Orders",
             "api_version": "v1", "http_status": 200} for k in range(n)]  # fmt: skip


def block(directive_id: str, app: str) -> dpb.Directive:
    return dpb.Directive(
        id=directive_id,
        mode=dpb.DIRECTIVE_MODE_ENFORCE,
        action=dpb.DIRECTIVE_ACTION_BLOCK,
        application_id=app,
        expires_at_us=int((time.time() + 3600) * 1e6),
        reason="fleet test",
    )


def put(m: Member, d: dpb.Directive, actor: str = "alice") -> None:
    with m.client() as c:
        c.call(c.stub.PutDirective, apb.PutDirectiveRequest(directive=d, actor=actor, reason="t"))


def remove(m: Member, directive_id: str) -> None:
    with m.client() as c:
        c.call(
            c.stub.RemoveDirective,
            apb.RemoveDirectiveRequest(directive_id=directive_id, actor="bob", reason="t"),
        )


def test_a_directive_put_on_one_is_pushed_by_the_other(pair: list[Member]) -> None:
    a, b = pair
    wait_until("the peers to connect", lambda: all(
        [p.state for p in m.status().peers] == ["connected"] for m in pair))  # fmt: skip
    gw = StreamClient(b.telemetry, gateway_id="gw-of-b-only")
    try:
        seen = GatewayTable(gw)
        wait_until("the gateway's first table", lambda: bool(gw.of_kind("directives")))
        started = time.monotonic()
        put(a, block("block-x", "app-x"))
        delay = wait_until("block-x on b's gateway", lambda: "block-x" in seen.now())
        print(f"\nput on {a.name} -> pushed by {b.name} to its gateway: {delay * 1000:.0f} ms")
        assert a.table() == b.table() == seen.now()
        version = a.table()["block-x"]
        assert version >= 1
        # and back: a removal on b is gone from a, and from b's gateway
        remove(b, "block-x")
        delay = wait_until("block-x gone from a", lambda: "block-x" not in a.table())
        print(f"removed on {b.name} -> gone on {a.name}: {time.monotonic() - started:.2f} s "
              f"after the put ({delay * 1000:.0f} ms after the removal)")  # fmt: skip
        wait_until("block-x gone from b's gateway", lambda: "block-x" not in seen.now())
    finally:
        gw.close()
    # the audit: made on a, replicated to b; removed on b, replicated to a
    made = [e for e in a.audit() if e["subject"] == "directive:block-x"]
    assert made[0]["action"] == "put" and made[0]["details"]["made_on"] == a.name
    assert made[0]["details"]["version"] == version
    wait_until("a's audit to say where it was replicated", lambda: any(
        e["action"] == "replicated" and e["details"]["replicated_to"] == b.name
        for e in a.audit() if e["subject"] == "directive:block-x"))  # fmt: skip
    theirs = [e for e in b.audit() if e["subject"] == "directive:block-x"]
    assert theirs[0]["action"] == "put" and theirs[0]["actor"] == "alice (self-declared)"
    assert theirs[0]["details"]["made_on"] == a.name
    assert theirs[0]["details"]["replicated_to"] == b.name
    gone = [e for e in a.audit() if e["subject"] == "directive:block-x" and e["action"] == "remove"]
    assert (
        gone
        and gone[0]["details"]["made_on"] == b.name
        and gone[0]["actor"] == "bob (self-declared)"
    )


def directives(m: Member) -> dict[str, dpb.Directive]:
    with m.client() as c:
        return {d.id: d for d in c.call(c.stub.ListDirectives,
                                        apb.ListDirectivesRequest()).directives}  # fmt: skip


def test_versions_are_fleet_wide_and_concurrent_changes_converge(pair: list[Member]) -> None:
    a, b = pair
    wait_until("the peers to connect", lambda: all(
        [p.state for p in m.status().peers] == ["connected"] for m in pair))  # fmt: skip
    # a change made after the instance heard of the previous one wins everywhere
    put(a, block("seq", "app-first"))
    wait_until("b has seq", lambda: "seq" in b.table())
    put(b, block("seq", "app-second"))
    wait_until("a has b's seq", lambda: directives(a)["seq"].application_id == "app-second")
    assert a.table()["seq"] > 1
    # concurrent changes on both, the same id among them: both end with the same table, and
    # the same winner for "shared" (highest version, then instance id)
    for k in range(5):
        put(a, block(f"a-{k}", f"app-a{k}"))
        put(b, block(f"b-{k}", f"app-b{k}"))
        put(a if k % 2 else b, block("shared", f"app-shared-{k}"))
    wait_until("both tables equal", lambda: directives(a) == directives(b)
               and len(a.table()) == 12)  # fmt: skip
    with a.client() as c:
        st = c.call(c.stub.GetStatus, apb.StatusRequest())
    refs = {d.id: (d.version, d.origin) for d in st.directives}
    assert {d.id: (d.version, d.origin) for d in b.status().directives} == refs
    assert {o for _, o in refs.values()} == {a.name, b.name}
    puts_of_shared = [e["details"] for m in pair for e in m.audit()
                      if e["subject"] == "directive:shared" and "made_on" in e["details"]
                      and "replicated_to" not in e["details"]]  # fmt: skip
    best = max(puts_of_shared, key=lambda d: (d["version"], d["made_on"]))
    assert refs["shared"] == (best["version"], best["made_on"])


def test_an_instance_that_was_down_catches_up(tmp_path: Path) -> None:
    a, b = fleet_of(tmp_path, 2)
    try:
        a.start()
        b.start()
        put(a, block("kept", "app-k"))
        put(a, block("lifted", "app-l"))
        wait_until("b has both", lambda: set(b.table()) == {"kept", "lifted"})
        b.kill()
        remove(a, "lifted")
        put(a, block("new", "app-n"))
        put(a, block("kept", "app-k2"))  # replaced while b was down
        wait_until("a sees b unreachable", lambda: a.status().peers[0].state == "unreachable")
        gw = StreamClient(a.telemetry, gateway_id="gw-while-b-down")  # traffic b missed
        try:
            gw.send(StreamEncoder().batch_from_records(records(200)))
            assert gw.wait_ack(1).events_applied == 200
        finally:
            gw.close()
        b.start()
        st = b.status()
        assert st.started_from == f"peer {a.name} ({a.admin})", st.started_from
        # its classes' state is a's snapshot (same version): the traffic it missed included
        assert st.state_from == f"peer {a.name} ({a.admin})", st.state_from
        assert st.events_applied == a.status().events_applied == 200
        assert b.sp is not None and f"state snapshot taken from peer {a.name}" in b.sp.log()
        assert b.table() == a.table()
        assert set(b.table()) == {"kept", "new"}
        assert b.sp is not None and f"started from peer {a.name}" in b.sp.log()
        # the gateways of b get the caught-up table from its first message
        gw = StreamClient(b.telemetry, gateway_id="gw-after")
        try:
            wait_until("b's first table", lambda: bool(gw.of_kind("directives")))
            assert GatewayTable(gw).now() == a.table()
        finally:
            gw.close()
        # status: the peer and the directives by id, on both
        for m, other in ((a, b), (b, a)):
            wait_until(f"{m.name} connected", lambda: m.peer_states() == ["connected"])  # noqa: B023
            st = m.status()
            assert [(p.address, p.instance_id) for p in st.peers] == [(other.admin, other.name)]
            assert {d.id: d.version for d in st.directives} == a.table()
        # the rollups of the traffic b missed: read from a's store (b's own has none of it)
        now = time.time()
        span = ("--from", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600)),
                "--to", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 60)))  # fmt: skip
        for m in (b, a):
            r = run_cli("autopsy", *span, "--admin", m.admin, "--format", "json")
            assert r.exit_code == 0, r.output
            assert json.loads(r.stdout)["total"]["requests"] == 200, m.name
        # alone, from its snapshot; a new one with nothing: empty
        a.stop()
        b.stop()
        b.start()
        assert b.status().started_from == "snapshot"
        assert set(b.table()) == {"kept", "new"}
        fresh = Member(tmp_path, "vigie-new")
        fresh.peers = [a]
        fresh.start()
        try:
            assert fresh.status().started_from == "empty"
            assert fresh.status().peers[0].state == "unreachable"
        finally:
            fresh.stop()
    finally:
        a.stop()
        b.stop()


def test_a_new_instance_takes_a_peers_directives_and_audit(tmp_path: Path) -> None:
    a, b = fleet_of(tmp_path, 2)
    try:
        b.peers = []  # b starts later, as a new instance
        a.start()
        put(a, block("one", "app-1"))
        remove(a, "one")
        put(a, block("two", "app-2"))
        b.peers = [a]
        b.start()
        assert b.status().started_from.startswith(f"peer {a.name}")
        assert b.table() == a.table() == {"two": a.table()["two"]}
        subjects = [(e["subject"], e["action"]) for e in b.audit()]
        # a's trail first (taken whole), then b's own lines of what it applied
        assert subjects[:3] == [("directive:one", "put"), ("directive:one", "remove"),
                                ("directive:two", "put")]  # fmt: skip
    finally:
        a.stop()
        b.stop()


def suggestions(m: Member) -> dict[str, apb.Suggestion]:
    with m.client() as c:
        got = c.call(c.stub.ListSuggestions, apb.ListSuggestionsRequest(refresh=True))
    return {s.id: s for s in got.suggestions}


def trail(m: Member, sid: str) -> list[apb.AuditEntry]:
    with m.client() as c:
        return list(c.call(c.stub.GetSuggestion, apb.GetSuggestionRequest(id=sid)).audit)


def test_a_decision_on_one_instance_is_the_fleets(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(INVENTORY))
    members = fleet_of(tmp_path, 2)
    a, b = members
    try:
        for m in members:
            m.start("--inventory", str(inventory))
        marks = [rec(T0 - 31 * DAY, "app-half", "Legacy", "v0", name="Half", owner="team-h"),
                 rec(T0, "app-clock", "Clock", "v1")]  # fmt: skip
        storm = retry_storm("app-retry", T0 + 10 * MINUTE)
        for m in members:  # every gateway streams to every instance: each sees it all
            with GatewayProbe(m.telemetry, "gw-1") as gw:
                for mark in marks:
                    gw.send_records([mark])
                gw.send_records(storm)
                assert gw.wait_for(lambda p: p.acked_events >= len(marks) + len(storm), 60)
        mine, theirs = suggestions(a), suggestions(b)
        assert set(mine) == set(theirs)  # the same ids: never proposed twice in the fleet
        sid = next(s.id for s in mine.values() if s.application_id == "app-retry")
        dormant = next(s.id for s in mine.values() if s.application_id == "app-half")
        # approve on a (the CLI: a write goes to one instance), pushed on both
        env = {"VIGIE_ADMIN_TOKEN": TOKEN, "VIGIE_ACTOR": "alice"}
        out = CliRunner().invoke(main, ["suggestions", "approve", sid, "--reason", "storm",
                                        "--admin", a.admin, "--admin", b.admin, "--json"],
                                 env=env)  # fmt: skip
        assert out.exit_code == 0, out.output
        assert f"talking to {a.admin} ({a.name})" in out.stderr
        wait_until("approved on b", lambda: suggestions(b)[sid].state == "pushed")
        assert sid in b.table() and b.table() == a.table()
        last = trail(b, sid)[-1]
        assert (last.actor, last.action, last.to_state) == (
            "alice (self-declared)",
            "approved",
            "pushed",
        )
        details = json.loads(last.details_json)
        assert (details["made_on"], details["replicated_to"]) == (a.name, b.name)
        wait_until("a's trail to say it was replicated to b", lambda: any(
            e.action == "replicated" and json.loads(e.details_json)["replicated_to"] == b.name
            for e in trail(a, sid)))  # fmt: skip
        # reject on b, rejected on a
        with b.client() as c:
            c.call(c.stub.RejectSuggestion,
                   apb.DecideSuggestionRequest(id=dormant, actor="carol", reason="DR"))  # fmt: skip
        wait_until("rejected on a", lambda: suggestions(a)[dormant].state == "rejected")
        # withdraw on b: withdrawn on a, its directive gone from both tables
        with b.client() as c:
            c.call(c.stub.WithdrawSuggestion,
                   apb.DecideSuggestionRequest(id=sid, actor="carol", reason="fixed"))  # fmt: skip
        wait_until("withdrawn on a", lambda: suggestions(a)[sid].state == "withdrawn")
        wait_until("its directive gone from a", lambda: sid not in a.table())
        states = {k: s.state for k, s in suggestions(a).items()}
        assert {k: s.state for k, s in suggestions(b).items()} == states
        # reads of the fleet: the replicas' suggestions merged by id, their subscriptions and
        # counters counted once (each instance saw all the traffic)
        both = ("--admin", a.admin, "--admin", b.admin)
        out = CliRunner().invoke(main, ["suggestions", "list", *both, "--json"], env=env)
        assert out.exit_code == 0, out.output
        listed = json.loads(out.stdout)["suggestions"]
        assert sorted(x["id"] for x in listed) == sorted(states)
        assert {x["id"]: x["state"] for x in listed} == states
        top = ["top", *both, "--json", "--iterations", "1", "--interval", "0.1", "--limit", "99"]
        out = CliRunner().invoke(main, top, env=env)
        assert out.exit_code == 0, out.output
        busiest = json.loads(out.stdout.splitlines()[-1])["busiest"]
        with a.client() as c:
            one = c.call(c.stub.ListSubscriptions, apb.ListSubscriptionsRequest())
        assert sorted((x["application_id"], x["requests"]) for x in busiest) == sorted(
            (x.application_id, x.requests) for x in one.subscriptions
        )
        out = CliRunner().invoke(main, ["status", *both, "--json"], env=env)
        assert out.exit_code == 0, out.output
        doc = json.loads(out.stdout)
        assert doc["replicas"] is True
        per = [{k: int(v) for k, v in x.get("counters", {}).items()} for x in doc["sidecars"]]
        assert doc["merged"]["counters"] == {
            k: max(p.get(k, 0) for p in per) for k in set().union(*per)
        }
        # counters both replicas counted (each saw all the traffic): added up, they would
        # count it twice — the merge above takes the largest
        assert [k for k in per[0] if per[0][k] > 0 and per[1].get(k, 0) > 0], per
    finally:
        for m in members:
            m.stop()


def run_cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env={"VIGIE_ADMIN_TOKEN": TOKEN} | (env or {}))


def test_the_cli_takes_the_fleet(pair: list[Member], tmp_path: Path) -> None:
    a, b = pair
    wait_until("the peers to connect", lambda: all(
        m.peer_states() == ["connected"] for m in pair))  # fmt: skip
    # a repeated address is refused, in one line, whatever the command
    for cmd in (["status"], ["suggestions", "list"], ["consumers"]):
        r = run_cli(*cmd, "--admin", a.admin, "--admin", a.admin)
        assert r.exit_code == 2, r.output
        assert f"{a.admin} is given twice" in r.output and len(r.output.splitlines()) == 1
    fleet = tmp_path / "fleet.txt"
    fleet.write_text(f"# the fleet\n{a.admin}\n{b.admin}  # the other one\n")
    r = run_cli("status", "--fleet", str(fleet), "--admin", b.admin)
    assert r.exit_code == 2 and f"{b.admin} is given twice" in r.output
    r = run_cli("status", "--fleet", str(tmp_path / "missing.txt"))
    assert r.exit_code == 2 and "missing.txt" in r.output and len(r.output.splitlines()) == 1
    # a write through VIGIE_FLEET goes to the first instance, replicates to the other
    app = "0b7e3a4c-0000-4000-8000-00000000000a"
    r = run_cli("tune", "block", "--application", app, "--ttl", "1h", "--reason", "cli",
                "--json", env={"VIGIE_FLEET": str(fleet)})  # fmt: skip
    assert r.exit_code == 0, r.output
    assert f"talking to {a.admin} ({a.name})" in r.stderr
    did = json.loads(r.stdout)["directive"]["id"]
    wait_until("the block on b", lambda: did in b.table())
    # a read of the fleet asks each instance; replicas are counted once
    r = run_cli("status", "--fleet", str(fleet), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [s["instance_id"] for s in doc["sidecars"]] == [a.name, b.name]
    assert doc["replicas"] is True and doc["directives_agree"] is True
    assert doc["merged"]["events_applied"] == max(
        int(s.get("events_applied", 0)) for s in doc["sidecars"])  # fmt: skip
    # the rollups of replicas are read once, not added up
    span = ("--from", "2026-01-01", "--to", "2030-01-01", "--format", "json")
    r = run_cli("report", *span, "--admin", a.admin, "--admin", b.admin)
    assert r.exit_code == 0, r.output
    assert "replicas of one fleet: reading" in r.stderr
    r = run_cli("report", *span, "--admin", a.admin, "--admin", a.admin)
    assert r.exit_code == 2 and "given twice" in r.output
    # one instance's status lists its peers and the directives in force by id
    r = run_cli("status", "--admin", b.admin, "--json")
    one = json.loads(r.stdout)
    assert one["instance_id"] == b.name and one["started_from"] in ("empty", f"peer {a.name} "
                                                                    f"({a.admin})")  # fmt: skip
    assert [(p["address"], p["state"]) for p in one["peers"]] == [(a.admin, "connected")]
    assert [(d["id"], d["origin"]) for d in one["directives"]] == [(did, a.name)]
    text = run_cli("status", "--admin", b.admin).output
    assert f"peer {a.admin} {a.name}: connected" in text and did in text
    # one instance down: the fleet's read says so and answers from the other
    b.stop()
    r = run_cli("status", "--fleet", str(fleet), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [s["instance_id"] for s in doc["sidecars"]] == [a.name]
    assert len(doc["unreachable"]) == 1 and b.admin in doc["unreachable"][0]
    assert run_cli("status", "--fleet", str(fleet), "--check").exit_code == 1
    r = run_cli("tune", "unblock", did, "--reason", "done", env={"VIGIE_FLEET": str(fleet)})
    assert r.exit_code == 0, r.output
    assert did not in a.table()
