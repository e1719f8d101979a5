"""A flood of new application ids through the real handler core into a real sidecar with a
small memory cap (tests/ops/flood.py): state under the cap, evictions counted, strings released
and bounded by max_strings, the known consumers' classes and counts untouched.
`make soak` runs the same with a million applications and reports the RSS over time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ops.flood import flood
from tests.ops.harness import write_figures


@pytest.mark.slow
def test_a_flood_of_new_applications_stays_under_the_caps(tmp_path: Path) -> None:
    doc = flood(100_000, tmp_path, memory_cap="32MiB", max_strings=50_000)
    write_figures("flood-short", doc)
    s = doc["summary"]
    assert s["accounting_exact"] and s["events_dropped"] == 0
    assert s["evicted_subscriptions"] > 50_000, "the cap evicted, and counted it"
    assert s["state_bytes_end"] <= s["state_bytes_cap"]
    assert s["strings_released"] > 50_000, "evicted applications' strings were released"
    assert s["strings_held_max"] <= s["max_strings"]
    assert all(x["refused_strings_full"] == 0 for x in doc["samples"])
    # the known consumers: every request counted, the same classes as before the flood
    assert s["known_consumers_unaffected"], (s["known_before"], s["known_after"])
    assert "error_prone" in s["known_after"]["known-err"][1]
    assert "error_prone" not in s["known_after"]["known-ok"][1]
