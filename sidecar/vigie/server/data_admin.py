"""The data store's admin RPCs: ExportState, QueryData, ListChanges. ``AdminService`` calls
these inside its one error boundary; they are handed the live state and the data service (None
when the sidecar runs without a store), never the process object. The proto conversions they
use live in ``vigie.server.convert`` (re-exported here for the CLI)."""

from __future__ import annotations

from collections.abc import Callable

from vigie.classify.live import LiveState, copy_chunked
from vigie.errors import VigieError
from vigie.server.convert import (
    change_to_proto,
    changes_from_proto,
    query_from_proto,
    query_to_proto,
    rows_from_proto,
    rows_to_proto,
)
from vigie.state.merge import export_chunks
from vigie.store.query import Store
from vigie.store.service import SidecarData
from vigie.v1 import admin_pb2 as apb

__all__ = [
    "DataStoreOff",
    "change_to_proto",
    "changes_from_proto",
    "export_state",
    "list_changes",
    "query_data",
    "query_from_proto",
    "query_to_proto",
    "rows_from_proto",
    "rows_to_proto",
]


SETTLE_TIMEOUT_S = 5.0  # a query with ``settle`` waits at most this for the data writer


class DataStoreOff(VigieError):
    """The sidecar runs without a data store (data_store = "off")."""

    exit_code = 2


def _store(data: SidecarData | None) -> SidecarData:
    if data is None:
        raise DataStoreOff("this sidecar runs without a data store (data_store = off)")
    return data


def export_state(live: LiveState) -> list[apb.StateChunk]:
    return list(export_chunks(copy_chunked(live)))


def query_data(
    data: SidecarData | None,
    request: apb.DataQuery,
    store_for: Callable[[Store, int], Store] | None = None,
) -> apb.DataAnswer:
    """The rows of ``request``. ``store_for`` (the fleet's) may read another store for the
    period this instance did not store itself; a peer's query (``settle``) reads this
    instance's own store only, so two instances never ask each other in turn."""
    d = _store(data)
    q = query_from_proto(request)
    if request.settle:  # the store then holds every applied batch (else what is written)
        d.sink.settle(SETTLE_TIMEOUT_S)
    store = d.store if request.settle or store_for is None else store_for(d.store, q.from_us)
    return rows_to_proto(store.aggregate(q), d.sink.name)


def list_changes(data: SidecarData | None, request: apb.ListChangesRequest) -> apb.ChangeList:
    d = _store(data)
    to_us = request.to_us or (1 << 62)
    return apb.ChangeList(
        changes=[change_to_proto(c) for c in d.store.changes(request.from_us, to_us)]
    )
