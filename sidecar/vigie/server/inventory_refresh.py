"""``inventory_source = "wso2"``: ``vigie serve`` reads the inventory from WSO2 periodically.

The background loop calls ``InventoryRefresh.tick`` every turn; when a refresh is due it runs in
a thread of its own (a fetch of thousands of subscriptions takes a while and must not hold up
snapshots or suggestions), then applies the inventory to the state under the sidecar's lock, a
slice of ``SLICE`` entries per hold (``apply_sliced``: tens of thousands of subscriptions in one
hold would stall every gateway stream for a second); the dates, computed outside the lock, are
replaced last, in one short hold.
The first refresh is due at start, the next ``inventory_refresh_seconds`` after one succeeds;
after a failure, one is tried again in ``min(inventory_refresh_seconds, RETRY_S)``.

A failed refresh (WSO2 down, a 401, a missing secret file, a setting left empty) changes
nothing: the last good inventory stays applied; it is logged in one line and counted
(``inventory_refresh_failed``; successes: ``inventory_refreshed``). Secrets are read from their
files at each refresh, so a rotated secret is picked up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Final, TypeVar

from vigie.errors import ConfigError, VigieError
from vigie.settings import Settings
from vigie.sources import wso2_api
from vigie.sources.inventory import Inventory
from vigie.sources.wso2_inventory import Fetched, fetch

if TYPE_CHECKING:
    from vigie.server.core import Sidecar
    from vigie.state.engine import State

log = logging.getLogger(__name__)
RETRY_S: Final = 60.0
SLICE: Final = 500  # inventory entries applied per hold of the sidecar's lock

T = TypeVar("T")


def _sliced(
    lock: AbstractContextManager[object], items: Sequence[T], size: int, fn: Callable[[T], object]
) -> int:
    holds = 0
    for start in range(0, len(items), size):
        with lock:
            for item in items[start : start + size]:
                fn(item)
        holds += 1
    return holds


def apply_sliced(
    inv: Inventory, state: State, lock: AbstractContextManager[object], size: int = SLICE
) -> int:
    """``inv.apply_to(state)`` (the same calls in the same order), ``size`` entries per hold
    of ``lock``, the dates (computed before) replaced in a hold of their own, last; returns how
    many holds it took. Between two holds the state has part of the new entries and the old
    dates: rows are only ever added, so a batch applied meanwhile sees nothing wrong."""
    tenant = inv.tenant
    holds = _sliced(lock, inv.applications, size, lambda a: state.register_application(
        a.id, a.name, a.owner, a.channel or None))  # fmt: skip
    holds += _sliced(lock, inv.apis, size, lambda a: state.ensure_api(
        a.name, a.version, a.context, tenant=a.tenant or tenant, api_id=a.id))  # fmt: skip
    holds += _sliced(lock, inv.subscriptions, size, lambda s: state.ensure_subscription(
        s.application_id, s.api, s.api_version, s.tier, s.tenant or tenant))  # fmt: skip
    dates = inv.dates()
    with lock:
        state.inventory_dates = dates
    return holds + 1


def connection(s: Settings) -> wso2_api.Connection:
    """The WSO2 connection the settings describe; ``ConfigError``/``InputError`` if they do not."""
    if not s.wso2_url:
        raise ConfigError("inventory_source = wso2 needs wso2_url")
    login = wso2_api.login(
        s.wso2_client_id, s.wso2_client_secret_file, s.wso2_username, s.wso2_password_file
    )
    return wso2_api.Connection(
        s.wso2_url,
        login,
        s.wso2_tenant,
        s.wso2_apim_version,
        s.wso2_ca_file or None,
        False,
        s.wso2_timeout_seconds,
    )


class InventoryRefresh:
    """Refreshes a sidecar's inventory from WSO2 when due (a no-op for ``inventory_source =
    "file"``)."""

    def __init__(self, sc: Sidecar) -> None:
        self.sc = sc
        self.enabled = sc.settings.inventory_source == "wso2"
        self.due = sc.clock.monotonic()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        if not self.enabled or (self._thread is not None and self._thread.is_alive()):
            return
        if self.sc.clock.monotonic() < self.due:
            return
        self._thread = threading.Thread(target=self.refresh, name="inventory", daemon=True)
        self._thread.start()

    def refresh(self) -> Fetched | None:
        """Fetch and apply the inventory now; None (logged and counted) when it failed."""
        sc, s = self.sc, self.sc.settings
        try:
            client = wso2_api.Wso2Client(connection(s))
            got = fetch(client, s.inventory_channel_attribute)
            apply_sliced(got.inventory, sc.state, sc.lock)
            with sc.lock:
                sc.counters["inventory_refreshed"] += 1
        except Exception as exc:  # a failed refresh keeps the last good inventory
            with sc.lock:
                sc.counters["inventory_refresh_failed"] += 1
            self.due = sc.clock.monotonic() + min(s.inventory_refresh_seconds, RETRY_S)
            if isinstance(exc, VigieError | ValueError | OSError):
                log.warning("inventory refresh from WSO2 failed: %s", exc)
            else:
                log.exception("inventory refresh from WSO2 failed")
            return None
        self.due = sc.clock.monotonic() + s.inventory_refresh_seconds
        inv = got.inventory
        log.info(
            "inventory refreshed from %s (tenant %s): %d APIs, %d subscriptions, %d "
            "applications, %d without a channel",
            s.wso2_url,
            inv.tenant,
            len(inv.apis),
            len(inv.subscriptions),
            len(inv.applications),
            len(got.unmapped),
        )
        return got
