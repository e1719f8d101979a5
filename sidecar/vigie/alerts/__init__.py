"""Alerts through Alertmanager: class episodes, suggestions awaiting review, enforced
directives and data lost, posted to Alertmanager's v2 API (``alertmanager_urls``), resent while
active, resolved when they end. docs/alerts.md says what each alert carries.

``for_sidecar`` builds the notifier of a running sidecar (None when no URL is set); the server
starts it, wakes it from its background loop (``Notifier.tick``) and stops it.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from vigie.alerts._model import Alert, rfc3339
from vigie.alerts._notifier import AlertSource, Notifier, post_json
from vigie.alerts._rules import alertname, one_line
from vigie.clock import SYSTEM, Clock
from vigie.settings import Settings
from vigie.settings.alerts import AlertConfig

__all__ = [
    "Alert",
    "AlertConfig",
    "AlertSource",
    "Notifier",
    "alertname",
    "for_sidecar",
    "one_line",
    "post_json",
    "rfc3339",
]


def for_sidecar(
    source: AlertSource,
    settings: Settings,
    counters: MutableMapping[str, int] | None = None,
    clock: Clock = SYSTEM,
) -> Notifier | None:
    """The notifier of a sidecar, not started; None when ``alertmanager_urls`` is empty."""
    config = AlertConfig.from_settings(settings)
    if not config.urls:
        return None
    return Notifier(source, config, counters, clock)
