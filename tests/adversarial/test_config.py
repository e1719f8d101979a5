"""Config refuses what it should: NaN/inf, negatives, absurd bounds, bad ports, a plaintext
listener beyond loopback; ``vigie check-config`` and ``vigie serve`` say the same thing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import VIGIE
from vigie.cli import main

FIXTURES = Path(__file__).parents[1] / "fixtures" / "config"

REFUSED = [
    ("nan_interval.toml", "snapshot_interval_seconds: must be a finite number, got nan"),
    ("negative_flush.toml", "data_flush_seconds: must be at least 0.1, got -5.0"),
    ("infinite_shadow.toml", "auto_approve_shadow_seconds: must be a finite number, got inf"),
    (
        "port_out_of_range.toml",
        "listen: expected host:port (port 0-65535) or unix:/path, got '127.0.0.1:99999'",
    ),
    ("absurd_memory_cap.toml", "memory_cap: expected a size such as 512MiB, got '1e30TiB'"),
    (
        "huge_memory_cap.toml",
        "memory_cap: must be at most 1099511627776, got '1000000TiB'",
    ),
    ("huge_batch.toml", "max_batch_events: must be at most 1048576, got 5000000000"),
    (
        "plaintext_remote.toml",
        "listen: 0.0.0.0:7355 is beyond loopback and has no TLS certificate: set the TLS "
        "certificate and key, listen on loopback or a unix socket, or set "
        "allow_plaintext_remote = true",
    ),
]


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(("name", "message"), REFUSED)
def test_check_config_refuses_with_the_exact_message(name: str, message: str) -> None:
    r = CliRunner().invoke(main, ["check-config", str(FIXTURES / name)])
    assert r.exit_code == 2, r.output
    assert f"{FIXTURES / name}: {message}" in _flat(r.output)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "message"), [REFUSED[0], REFUSED[3], REFUSED[-1]])
def test_serve_refuses_the_same_files_with_the_same_message(
    tmp_path: Path, name: str, message: str
) -> None:
    r = subprocess.run(
        [*VIGIE, "serve", "--config", str(FIXTURES / name), "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert message in _flat(r.stderr)
    assert "Traceback" not in r.stderr


def test_an_operator_may_allow_a_plaintext_remote_listener_and_is_still_warned() -> None:
    r = CliRunner().invoke(main, ["check-config", str(FIXTURES / "plaintext_remote_allowed.toml")])
    assert r.exit_code == 0, r.output
    assert "listen: 0.0.0.0:7355 is reachable beyond this host without TLS" in _flat(r.output)


def test_the_environment_is_held_to_the_same_ranges(tmp_path: Path) -> None:
    r = subprocess.run(
        [*VIGIE, "serve", "--state-dir", str(tmp_path)],
        env={"VIGIE_MAX_BATCH_EVENTS": "5000000000", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert "VIGIE_MAX_BATCH_EVENTS: max_batch_events: must be at most 1048576" in r.stderr
