"""The data store's losses as self metrics: ``vigie.data.dropped`` per reason (from the same
``*_dropped`` counters ``vigie status`` shows, each from 0) and ``vigie.data.degraded``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.unit.export.test_export_series import FakeSidecar, _values, metric
from vigie.export import _catalogue as C
from vigie.export._builder import Builder
from vigie.export._collect import collect
from vigie.export._platform import DATA_DROP_REASONS
from vigie.state.engine import State


@dataclass
class FakeData:
    state: str = "ok"
    dropped: int = 0

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "counters": {"rollup_events_dropped": self.dropped, "minute_rows_written": 7},
        }


@dataclass
class SidecarWithData(FakeSidecar):
    data: FakeData | None = None


def test_data_losses_and_degradation_are_exported() -> None:
    sc = SidecarWithData(State(), data=FakeData("degraded: disk full", 42))
    batch = Builder().build(collect(sc))
    dropped = _values(metric(batch, C.DATA_DROPPED), "vigie.drop.reason")
    assert dropped == dict.fromkeys(DATA_DROP_REASONS, 0) | {"rollup_events": 42}
    assert metric(batch, C.DATA_DEGRADED).values.tolist() == [1]

    assert sc.data is not None
    sc.data.state = "ok"
    batch = Builder().build(collect(sc))
    assert metric(batch, C.DATA_DEGRADED).values.tolist() == [0]


def test_no_data_metrics_without_a_data_store() -> None:
    batch = Builder().build(collect(FakeSidecar(State())))
    names = {m.spec.name for m in batch.metrics}
    assert C.DATA_DROPPED.name not in names and C.DATA_DEGRADED.name not in names
