"""The alert settings: parsed and checked at load time, with the exact problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigie.alerts import AlertConfig, for_sidecar
from vigie.errors import ConfigError
from vigie.settings import Settings, load_settings
from vigie.settings.alerts import DEFAULT_ALERT_CLASSES, parse_classes, parse_urls


def test_defaults_alert_on_misbehaviour_and_api_classes_and_nothing_without_urls() -> None:
    s = Settings()
    assert for_sidecar(object(), s) is None  # type: ignore[arg-type]
    cfg = AlertConfig.from_settings(s)
    assert cfg.classes == parse_classes(DEFAULT_ALERT_CLASSES)
    assert "retry_storm" in cfg.classes and "api:retired" in cfg.classes
    assert "dormant" not in cfg.classes
    assert cfg.sources == {"episodes", "suggestions", "directives", "data"}


def test_several_urls_for_an_ha_pair() -> None:
    assert parse_urls(" http://am-0:9093/, https://am-1:9093 ") == (
        "http://am-0:9093",
        "https://am-1:9093",
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("alertmanager_urls", "am-0:9093", "alertmanager_urls: expected http(s)://host:port"),
        ("alert_classes", "retry_strom", "alert_classes: unknown class(es) retry_strom"),
        ("alert_on", "episodes,pager", "alert_on: unknown pager"),
        ("alert_resend_seconds", 0, "alert_resend_seconds: must be at least 1"),
    ],
)
def test_a_bad_value_is_refused_with_the_exact_problem(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    f = tmp_path / "vigie.toml"
    f.write_text(f"{key} = {value!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(f)
