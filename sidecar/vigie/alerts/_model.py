"""An alert as Alertmanager's v2 API takes it, and its identity.

Alertmanager identifies an alert by its label set: the same labels posted again refresh it,
``endsAt`` in the past resolves it. So the labels here never carry the sidecar's instance — two
replicas watching the same platform post identical label sets, and Alertmanager keeps one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Labels = tuple[tuple[str, str], ...]


def rfc3339(us: int) -> str:
    """Microseconds since the epoch as RFC 3339 UTC (what Alertmanager's API reads)."""
    dt = datetime.fromtimestamp(us / 1e6, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Alert:
    """One alert: labels (its identity), annotations (what a person reads), and when it began
    and ended (0: still active), in wall-clock microseconds."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at_us: int = 0
    ends_at_us: int = 0
    generator_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> Labels:
        return tuple(sorted(self.labels.items()))

    def to_v2(self) -> dict[str, Any]:
        """The JSON object of ``POST /api/v2/alerts``. An active alert has no ``endsAt``:
        Alertmanager keeps it for its resolve_timeout, and vigie posts it again before then."""
        doc: dict[str, Any] = {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": rfc3339(self.starts_at_us),
        }
        if self.ends_at_us:
            doc["endsAt"] = rfc3339(self.ends_at_us)
        if self.generator_url:
            doc["generatorURL"] = self.generator_url
        return doc


def clean_labels(labels: dict[str, str]) -> dict[str, str]:
    """Labels without the empty ones (Alertmanager treats an empty label as absent)."""
    return {k: v for k, v in labels.items() if v}
