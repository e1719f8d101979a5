"""The policy engine is handed a ``LiveState`` (a state and its lock), the directive table,
its settings values and a clock, never the process: here, none of them a ``Sidecar``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.policy_traffic import END, MINUTE, feed, retry_storm
from vigie.directives.table import DirectiveTable
from vigie.policy.engine import PolicyEngine
from vigie.settings.policy import PolicyConfig
from vigie.state.engine import State
from vigie.state.thresholds import Thresholds
from vigie.v1 import directives_pb2 as dpb


@dataclass
class Live:
    state: State = field(default_factory=State)
    lock: threading.Lock = field(default_factory=threading.Lock)


class StoppedClock:
    def wall(self) -> float:
        return END / 1e6

    def monotonic(self) -> float:
        return 0.0


def test_an_engine_over_a_plain_state_proposes_and_pushes(tmp_path: Path) -> None:
    live = Live()
    feed(live.state, retry_storm("app-retry", END - 10 * MINUTE))
    table = DirectiveTable(None, StoppedClock())
    eng = PolicyEngine(live, table, PolicyConfig(), Thresholds(), tmp_path, 30.0, StoppedClock())
    assert eng.refresh(force=True) >= 1
    assert eng.refresh() == 0  # the monotonic clock has not moved: not recomputed
    (sid,) = [r.id for r in eng.book if r.suggestion.class_name == "retry_storm"]
    rec = eng.approve(sid, "alice", "storm", dpb.DIRECTIVE_MODE_SHADOW, 0)
    assert rec.state == "pushed"
    (d,) = table.snapshot()[1]
    assert (d.id, d.mode, d.expires_at_us) == (sid, dpb.DIRECTIVE_MODE_SHADOW, rec.expires_at_us)
    assert not live.lock.locked()
