"""What every benchmark returns, and how the results are written and printed.

A benchmark module is ``benchmarks/bench_<name>.py`` with ``run(quick: bool) -> list[Result]``.
Absolute figures drift on shared machines; the ratio between vigie and the naive way, measured
side by side in the same run, is the figure to trust.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


@dataclass(slots=True)
class Result:
    name: str  # what is measured
    unit: str  # e.g. "events/s", "ns/event", "ms"
    vigie: float
    naive: float | None = None  # the naive way, measured in the same run
    naive_label: str = ""
    target: float | None = None
    higher_is_better: bool = True
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """How many times better vigie is than the naive way."""
        if self.naive in (None, 0) or self.vigie == 0:
            return None
        assert self.naive is not None
        return self.vigie / self.naive if self.higher_is_better else self.naive / self.vigie

    @property
    def meets_target(self) -> bool | None:
        if self.target is None:
            return None
        return self.vigie >= self.target if self.higher_is_better else self.vigie <= self.target


def write(group: str, results: list[Result]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{group}.json"
    doc = {
        "group": group,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count()},
        "results": [
            asdict(r) | {"ratio": r.ratio, "meets_target": r.meets_target} for r in results
        ],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def table(results: list[Result]) -> str:
    rows = [("benchmark", "unit", "vigie", "naive", "ratio", "target", "ok")]
    for r in results:
        ok = {None: "", True: "yes", False: "NO"}[r.meets_target]
        ratio = f"{r.ratio:,.1f}x" if r.ratio is not None else "-"
        rows.append((r.name, r.unit, fmt(r.vigie), fmt(r.naive), ratio, fmt(r.target), ok))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
