"""The notifier: one thread that looks at the sidecar every ``check_seconds`` and posts what
changed to every Alertmanager.

- **Never in the way of ingestion.** The background loop only wakes the thread (``tick``); the
  thread copies the state a range of rows at a time (``classify.live.copy_chunked``: ingestion
  waits for one range at most) and reads the classes from the copy. Alerts held at once are
  bounded (``MAX_ALERTS``; past it a new one is a counted drop, ``alerts_dropped``).
- **Alertmanager forgets.** An active alert is posted again every ``resend_seconds``, without
  ``endsAt`` (Alertmanager keeps it for its ``resolve_timeout``); an alert that ended is posted
  once more with ``endsAt`` = now, which resolves it.
- **Each Alertmanager on its own.** Every URL gets every alert (an HA pair deduplicates by
  label set); a URL that fails is counted (``alert_post_failures``), retried with a growing
  pause (at most ``resend_seconds``), and never raised: the others carry on. A resolution not
  yet delivered is kept until it is, or for ``RESOLVED_KEEP_S`` (then counted,
  ``alerts_undelivered``).
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from vigie.alerts import _rules
from vigie.alerts._model import Alert
from vigie.alerts._rules import Ident
from vigie.classify import security, views
from vigie.classify.live import copy_chunked
from vigie.clock import SYSTEM, Clock, wall_us
from vigie.settings.alerts import AlertConfig
from vigie.state.engine import State
from vigie.state.thresholds import CLASS_NAMES, HEALTH_CLASS_NAMES

log = logging.getLogger(__name__)

MAX_ALERTS: Final = 10_000
RESOLVED_KEEP_S: Final = 3600.0
# data lost: the alert stays while a loss counter grew within this long
DATA_QUIET_S: Final = 600.0
POST_BATCH: Final = 500  # alerts per POST

Post = Callable[[str, list[dict[str, Any]], float], None]


class AlertSource(Protocol):
    """What the notifier reads (``vigie.server.Sidecar`` is one): the state and its lock, the
    directive table, the policy engine (its suggestion book) and the data store (or None)."""

    @property
    def lock(self) -> threading.Lock: ...
    @property
    def state(self) -> State: ...
    @property
    def directives(self) -> Any: ...  # vigie.directives.table.DirectiveTable
    @property
    def policy(self) -> Any: ...  # vigie.policy.engine.PolicyEngine (its .book)
    @property
    def data(self) -> Any: ...  # vigie.store.service.DataService, or None


def post_json(url: str, alerts: list[dict[str, Any]], timeout: float) -> None:
    """``POST url/api/v2/alerts`` with ``alerts``; raise ``OSError`` unless Alertmanager took
    them (2xx)."""
    req = urllib.request.Request(
        url + "/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        if not 200 <= resp.status < 300:  # pragma: no cover - urllib raises on 4xx/5xx
            raise OSError(f"HTTP {resp.status}")


@dataclass(slots=True)
class _Target:
    """One Alertmanager: what it was last sent, and its retry pause."""

    url: str
    sent_at: dict[Ident, float] = field(default_factory=dict)  # monotonic, active alerts
    failures: int = 0
    retry_at: float = 0.0


class Notifier:
    def __init__(
        self,
        source: AlertSource,
        config: AlertConfig,
        counters: MutableMapping[str, int] | None = None,
        clock: Clock = SYSTEM,
        post: Post = post_json,
    ) -> None:
        self.source = source
        self.config = config
        self.counters: MutableMapping[str, int] = Counter() if counters is None else counters
        self.clock = clock
        self._post = post
        self.active: dict[Ident, Alert] = {}
        # ended alerts not yet delivered everywhere: ident -> (alert, URLs still to tell)
        self.resolving: dict[Ident, tuple[Alert, set[str], float]] = {}
        self.targets = [_Target(u) for u in config.urls]
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._next_check = 0.0
        self._thread: threading.Thread | None = None
        self._drops_seen: dict[str, int] = {}
        self._drops_grew_at: dict[str, float] = {}

    # ---- driven by the sidecar ----
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
        self._thread.start()

    def tick(self) -> None:
        """Called from the background loop: wake the thread when a check is due (no work)."""
        if self.clock.monotonic() >= self._next_check:
            self._next_check = self.clock.monotonic() + self.config.check_seconds
            self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread. Active alerts are not resolved: the sidecar did not see them end
        (a restarted sidecar posts them again; a gone one lets Alertmanager time them out)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.step()
            except Exception:  # the thread's error boundary: log, count, carry on
                self.counters["alert_errors"] = self.counters.get("alert_errors", 0) + 1
                log.exception("alerts: a check failed")

    # ---- one check ----
    def step(self) -> None:
        """Look, compare, post."""
        self.update(self.wanted())
        self.deliver()

    def wanted(self) -> dict[Ident, Alert]:
        """Everything that should be alerting now."""
        cfg = self.config
        out: dict[Ident, Alert] = {}
        if "episodes" in cfg.sources:
            copy = copy_chunked(self.source, routes=False)
            now = copy.now_us
            subs = views.subscriptions(copy, now) if self._any_held(copy, now) else []
            out |= _rules.class_alerts(subs, views.apis(copy, now), cfg.classes, cfg.tenant)
            held = security.clients(copy, held_only=True)
            out |= _rules.security_alerts(held, cfg.classes, cfg.tenant)
        if "suggestions" in cfg.sources:
            book = self.source.policy.book
            with book.lock:
                records = list(book)
            out |= _rules.suggestion_alerts(records, cfg.tenant)
        if "directives" in cfg.sources:
            _, directives = self.source.directives.snapshot()
            out |= _rules.directive_alerts(directives, cfg.tenant)
        if "data" in cfg.sources and self.source.data is not None:
            status = self.source.data.status()
            out |= _rules.data_alerts(status, self._recent_losses(status), cfg.tenant)
        return out

    def _any_held(self, copy: State, now: int) -> bool:
        """Whether any subscription holds an alerting class (the views, one Python object per
        subscription, are built only then)."""
        health = [i for i, c in enumerate(HEALTH_CLASS_NAMES) if c in self.config.classes]
        if health and copy.baselines.sub_held(copy, now)[:, health].any():
            return True
        cols = [i for i, c in enumerate(CLASS_NAMES) if c in self.config.classes]
        if not cols:
            return False
        held, _ = copy.held(now)
        return bool(held[copy.sub_rows()][:, cols].any())

    def _recent_losses(self, status: dict[str, Any]) -> dict[str, int]:
        """The loss counters (``*_dropped``) that grew within ``DATA_QUIET_S``, with their
        totals (they start at 0 with the process: the first look counts from there)."""
        now = self.clock.monotonic()
        drops = {k: int(v) for k, v in status.get("counters", {}).items() if k.endswith("_dropped")}
        for k, v in drops.items():
            if v > self._drops_seen.get(k, 0):
                self._drops_grew_at[k] = now
        self._drops_seen = drops
        return {k: drops[k] for k, t in self._drops_grew_at.items() if now - t < DATA_QUIET_S}

    def update(self, wanted: dict[Ident, Alert]) -> None:
        """Start the alerts that appeared, resolve those that went away."""
        now_us = wall_us(self.clock)
        mono = self.clock.monotonic()
        for ident, alert in wanted.items():
            held = self.active.get(ident)
            if held is not None:
                held.annotations = alert.annotations  # the latest evidence; labels stay
                continue
            if len(self.active) >= MAX_ALERTS:
                self.counters["alerts_dropped"] = self.counters.get("alerts_dropped", 0) + 1
                continue
            alert.starts_at_us = now_us
            self.active[ident] = alert
            self.resolving.pop(ident, None)  # back before its end was delivered
            log.info("alert started: %s", alert.labels)
        for ident in [i for i in self.active if i not in wanted]:
            alert = self.active.pop(ident)
            alert.ends_at_us = max(now_us, alert.starts_at_us + 1)
            self.resolving[ident] = (alert, {t.url for t in self.targets}, mono)
            for t in self.targets:
                t.sent_at.pop(ident, None)
            log.info("alert resolved: %s", alert.labels)
        for ident, (_alert, _, since) in list(self.resolving.items()):
            if mono - since > RESOLVED_KEEP_S:
                del self.resolving[ident]
                n = self.counters.get("alerts_undelivered", 0)
                self.counters["alerts_undelivered"] = n + 1

    def deliver(self) -> None:
        """Post to each Alertmanager what it has not been told lately."""
        mono = self.clock.monotonic()
        for t in self.targets:
            if mono < t.retry_at:
                continue
            due: list[tuple[Ident, Alert]] = [
                (i, a)
                for i, a in self.active.items()
                if mono - t.sent_at.get(i, -1e18) >= self.config.resend_seconds
            ]
            due += [(i, a) for i, (a, urls, _) in self.resolving.items() if t.url in urls]
            for chunk in _chunks(due, POST_BATCH):
                if not self._send(t, chunk, mono):
                    break

    def _send(self, t: _Target, chunk: list[tuple[Ident, Alert]], mono: float) -> bool:
        try:
            self._post(t.url, [a.to_v2() for _, a in chunk], self.config.timeout_seconds)
        except (OSError, ValueError) as exc:  # urllib's errors are OSErrors; a bad reply
            t.failures += 1
            t.retry_at = mono + min(self.config.resend_seconds, 2.0 ** min(t.failures, 10))
            self.counters["alert_post_failures"] = self.counters.get("alert_post_failures", 0) + 1
            log.warning("alerts: posting to %s failed (%s); retrying", t.url, exc)
            return False
        t.failures = 0
        t.retry_at = 0.0
        for ident, alert in chunk:
            if alert.ends_at_us:
                entry = self.resolving.get(ident)
                if entry is not None:
                    entry[1].discard(t.url)
                    if not entry[1]:
                        del self.resolving[ident]
            else:
                t.sent_at[ident] = mono
        self.counters["alerts_posted"] = self.counters.get("alerts_posted", 0) + len(chunk)
        return True


def _chunks(items: list[Any], n: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
