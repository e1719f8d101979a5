"""deploy/prometheus/alerts.yml: its rules read only metrics and labels vigie exports (names
from the export's own catalogue), and ``promtool test rules`` passes alerts.test.yml — each rule
firing and not firing. promtool is built from the Go module proxy by ``make promtool-path`` (part
of ``make backends``), like the Prometheus of the export tests."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from tests.conftest import REPO
from tests.e2e.test_deploy import metric_names
from vigie.export import METRICS, prometheus_names

RULES: Final = REPO / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS: Final = REPO / "deploy" / "prometheus" / "alerts.test.yml"
# labels Prometheus adds to every series vigie pushes over OTLP
RESOURCE_LABELS: Final = frozenset({"job", "instance"})
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def _labels_of(name: str) -> set[str]:
    """The label names a vigie series called ``name`` in Prometheus carries."""
    for spec in METRICS:
        if name in prometheus_names(spec, "exponential") + prometheus_names(spec, "explicit"):
            return {a.replace(".", "_") for a in spec.attributes} | RESOURCE_LABELS
    raise AssertionError(f"{name} is no metric vigie exports")


@pytest.fixture(scope="module")
def promtool() -> Path:
    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(REPO), "promtool-path"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return Path(out[-1])


def test_every_rule_reads_metrics_and_labels_vigie_exports() -> None:
    rules = _rules()
    assert {r["alert"] for r in rules} >= {
        "VigieIngestStopped",
        "VigieEventsDropped",
        "VigieExportFailing",
        "VigieDataDegraded",
        "VigieDataDropped",
        "VigieGatewayDisconnected",
    }
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']} reads no metric"
        known = set().union(*(_labels_of(n) for n in names))  # fails on an unknown name
        for group in _GROUPING.findall(rule["expr"]):
            used = {w.strip() for w in group.split(",") if w.strip()}
            assert used <= known, f"{rule['alert']} groups by {sorted(used - known)}"
        for text in rule["annotations"].values():
            for label in re.findall(r"\$labels\.(\w+)", text):
                assert label in known, f"{rule['alert']} annotates with {label}"
        assert rule["labels"]["severity"] in ("warning", "critical")


def test_every_rule_has_a_firing_and_a_quiet_case() -> None:
    doc = yaml.safe_load(RULE_TESTS.read_text())
    cases = [c for t in doc["tests"] for c in t["alert_rule_test"]]
    for rule in _rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"{rule['alert']} never fires in a test"
        assert any(not c["exp_alerts"] for c in mine), f"{rule['alert']} never stays quiet"


def test_promtool_checks_and_tests_the_rules(promtool: Path) -> None:
    check = subprocess.run(
        [str(promtool), "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run(
        [str(promtool), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout + run.stderr


def test_promtool_fails_a_wrong_expectation(promtool: Path, tmp_path: Path) -> None:
    """The rule tests can fail: an expected label changed makes promtool say so."""
    text = RULE_TESTS.read_text().replace(
        "instance: a, severity: critical}", "instance: b, severity: critical}", 1
    )
    assert text != RULE_TESTS.read_text()
    (tmp_path / "alerts.yml").write_text(RULES.read_text())
    (tmp_path / "alerts.test.yml").write_text(text)
    run = subprocess.run(
        [str(promtool), "test", "rules", "alerts.test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0
    assert "VigieIngestStopped" in run.stdout + run.stderr
