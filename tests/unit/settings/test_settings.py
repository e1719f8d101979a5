"""Settings: precedence, and `vigie check-config` naming the exact problem of each bad file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from vigie.cli.main import main
from vigie.errors import ConfigError
from vigie.settings import load_settings, parse_size

FIXTURES = Path(__file__).parents[2] / "fixtures" / "config"


def test_defaults_file_env_flags_in_that_order() -> None:
    s = load_settings(FIXTURES / "good.toml", env={})
    assert s.listen == "127.0.0.1:9000" and s.memory_cap == 512 * 1024**2
    assert s.thresholds.retry_min_retries == 50 and s.thresholds.error_min_share == 0.3
    assert s.thresholds.hold_seconds == 86_400  # untouched default
    s = load_settings(FIXTURES / "good.toml", env={"VIGIE_LISTEN": "127.0.0.1:9001"})
    assert s.listen == "127.0.0.1:9001"
    s = load_settings(
        FIXTURES / "good.toml",
        env={"VIGIE_LISTEN": "127.0.0.1:9001"},
        overrides={"listen": "127.0.0.1:9002", "state_dir": None},
    )
    assert s.listen == "127.0.0.1:9002" and s.state_dir == "./vigie-state"


def test_env_values_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"VIGIE_MAX_STREAMS: max_streams: expected an integer"):
        load_settings(env={"VIGIE_MAX_STREAMS": "ten"})


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("unknown_key.toml", "unknown setting 'lisen' (did you mean 'listen'?)"),
        ("share_above_one.toml", "thresholds.error_min_share: must be at most 1, got 3"),
        ("bad_size.toml", "memory_cap: expected a size such as 512MiB, got 'lots'"),
        ("not_an_integer.toml", "max_streams: expected an integer, got 'many'"),
        ("broken.toml", "not valid TOML"),
        ("bad_choice.toml", "log_level: must be one of debug, info, warning, error, got 'loud'"),
        ("bool_threshold.toml", "thresholds.retry_min_retries: expected a number, got True"),
        ("thresholds_not_table.toml", "thresholds: must be a table"),
        ("window_too_short.toml", "thresholds.retry_window_seconds: must be at least 60, got 30"),
    ],
)
def test_check_config_prints_the_exact_problem(name: str, message: str) -> None:
    result = CliRunner().invoke(main, ["check-config", str(FIXTURES / name)])
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert str(FIXTURES / name) in " ".join(result.stderr.split())


def test_check_config_accepts_a_good_file_and_warns_about_secrets(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check-config", str(FIXTURES / "good.toml")])
    assert result.exit_code == 0, result.output
    assert "OK" in result.stdout and "retry" not in result.stderr
    secret = tmp_path / "token"
    secret.write_text("s3cret")
    secret.chmod(0o644)
    cfg = tmp_path / "vigie.toml"
    cfg.write_text(f'admin_token = "inline"\nadmin_token_file = "{secret}"\n')
    result = CliRunner().invoke(main, ["check-config", str(cfg)])
    assert result.exit_code == 0
    err = " ".join(result.stderr.split())
    assert "world-readable" in err and "prefer admin_token_file" in err
    assert "inline" not in result.stdout  # the secret itself is never printed


def test_missing_config_file() -> None:
    result = CliRunner().invoke(main, ["check-config", "/nonexistent/vigie.toml"])
    assert result.exit_code == 2 and "No such file" in result.stderr


@pytest.mark.parametrize(
    ("text", "size"),
    [("1GiB", 1 << 30), ("2G", 2_000_000_000), ("512 MiB", 512 << 20), (4096, 4096)],
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size
