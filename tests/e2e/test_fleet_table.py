"""The directive tables of a fleet, in process: three tables making changes and taking each
other's (``changes_since`` / ``apply_remote``) in a random order end with the same table, the
one a naive twin computes (per id, the change of highest version then origin), whatever the
order; a removal is not undone by an older put arriving late; a restart (a new epoch) is
answered with everything; a peer's invalid directive is refused and counted."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from vigie.directives.audit import AuditLog
from vigie.directives.changes import Change
from vigie.directives.table import DirectiveTable
from vigie.v1 import directives_pb2 as dpb


def block(directive_id: str, app: str) -> dpb.Directive:
    return dpb.Directive(
        id=directive_id,
        mode=dpb.DIRECTIVE_MODE_SHADOW,
        action=dpb.DIRECTIVE_ACTION_BLOCK,
        application_id=app,
        expires_at_us=int((time.time() + 3600) * 1e6),
    )


class Node:
    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.dir = root / name
        self.table = self.open()
        self.seen: dict[str, tuple[str, int]] = {}  # peer -> (epoch, seq)

    def open(self) -> DirectiveTable:
        t = DirectiveTable(self.dir, audit=AuditLog(self.dir / "audit.jsonl"))
        t.instance_id = self.name
        return t

    def take_from(self, peer: Node) -> None:
        epoch, seq = self.seen.get(peer.name, ("", 0))
        new_seq, changes = peer.table.changes_since(epoch, seq, self.name)
        self.table.apply_remote(changes, peer.name)
        self.seen[peer.name] = (peer.table.epoch, new_seq)

    def view(self) -> dict[str, tuple[int, str]]:
        return {c.directive_id: (c.version, c.directive.application_id)
                for c in self.table.in_force() if c.directive is not None}  # fmt: skip


def naive(history: list[Change]) -> dict[str, tuple[int, str]]:
    """Per id, the change of highest (version, origin); removals leave nothing."""
    best: dict[str, Change] = {}
    for c in history:
        if c.directive_id not in best or (c.version, c.origin) > (
            best[c.directive_id].version, best[c.directive_id].origin):  # fmt: skip
            best[c.directive_id] = c
    return {k: (c.version, c.directive.application_id)
            for k, c in best.items() if c.directive is not None}  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_any_order_of_changes_and_syncs_converges_to_the_naive_twin(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    nodes = [Node(tmp_path, f"n{k}") for k in range(3)]
    history: list[Change] = []
    ids = [f"d{k}" for k in range(6)]
    for step in range(300):
        n = rng.choice(nodes)
        r = rng.random()
        if r < 0.55:
            did = rng.choice(ids)
            d = n.table.put(block(did, f"app-{step}"))
            history.append(Change(did, d, d.version, n.name))
        elif r < 0.8:
            did = rng.choice(ids)
            version = n.table.version + 1
            if n.table.remove(did):
                history.append(Change(did, None, version, n.name))
        else:
            n.take_from(rng.choice([p for p in nodes if p is not n]))
    for _ in range(2):  # everyone hears everyone
        for n in nodes:
            for p in nodes:
                if p is not n:
                    n.take_from(p)
    want = naive(history)
    assert [n.view() for n in nodes] == [want] * 3
    # what each gateway would hold from each node (full table) is that too
    for n in nodes:
        q = n.table.subscribe()
        full = q.get_nowait()
        assert {d.id: (d.version, d.application_id) for d in full.upserts} == want


def test_a_late_older_put_does_not_undo_a_removal(tmp_path: Path) -> None:
    a, b = Node(tmp_path, "a"), Node(tmp_path, "b")
    a.table.put(block("x", "app-1"))
    b.take_from(a)
    old = next(c for c in a.table.in_force() if c.directive_id == "x")
    b.table.remove("x")
    a.take_from(b)
    assert "x" not in a.view()
    # the old put arrives again (a third instance that lagged): refused by the tombstone
    assert a.table.apply_remote([old], "c") == 0
    assert "x" not in a.view()
    # the tombstone survives a restart of a
    a.table = a.open()
    assert a.table.apply_remote([old], "c") == 0 and "x" not in a.view()


def test_a_restarted_peer_is_answered_everything(tmp_path: Path) -> None:
    a, b = Node(tmp_path, "a"), Node(tmp_path, "b")
    for k in range(3):
        a.table.put(block(f"d{k}", "app"))
    b.take_from(a)
    epoch, seq = b.seen["a"]
    assert a.table.changes_since(epoch, seq)[1] == []
    a.table = a.open()  # a restarts: a new epoch, its changes numbered anew
    _, again = a.table.changes_since(epoch, seq)
    assert sorted(c.directive_id for c in again) == ["d0", "d1", "d2"]


def test_a_peers_invalid_directive_is_refused_and_counted(tmp_path: Path) -> None:
    a = Node(tmp_path, "a")
    bad = dpb.Directive(id="bad", mode=dpb.DIRECTIVE_MODE_ENFORCE,
                        action=dpb.DIRECTIVE_ACTION_BLOCK,
                        expires_at_us=int((time.time() + 60) * 1e6))  # fmt: skip  # no scope
    assert a.table.apply_remote([Change("bad", bad, 5, "b")], "b") == 0
    assert a.table.remote_refused == 1 and "bad" not in a.view()
    assert a.table.version == 5  # the clock still moved: the next change here is newer


def test_an_absurd_version_from_a_peer_is_refused(tmp_path: Path) -> None:
    a = Node(tmp_path, "a")
    for v in (0, 1 << 53, (1 << 64) - 1):
        assert a.table.apply_remote([Change("x", block("x", "app"), v, "b")], "b") == 0
    assert a.table.remote_refused == 3 and a.table.version == 0
    d = a.table.put(block("y", "app"))  # the clock was not pinned: the next put works
    assert d.version == 1


@pytest.mark.parametrize(
    ("peers", "why"),
    [
        ("a:7356,a:7356", "a:7356 is listed twice"),
        ("unix:/run/vigie.sock", "expected host:port admin addresses"),
        ("vigie-b", "expected host:port admin addresses"),
        ("vigie-b:99999", "expected host:port"),
    ],
)
def test_fleet_peers_that_cannot_be_are_refused(peers: str, why: str) -> None:
    from vigie.errors import ConfigError  # noqa: PLC0415
    from vigie.settings import load_settings  # noqa: PLC0415

    with pytest.raises(ConfigError, match=why):
        load_settings(None, env={"VIGIE_FLEET_PEERS": peers})
    ok = load_settings(None, env={"VIGIE_FLEET_PEERS": " vigie-b:7356 , vigie-c:7356 "})
    assert ok.fleet_peers.replace(" ", "") == "vigie-b:7356,vigie-c:7356"
