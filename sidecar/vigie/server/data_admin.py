"""The data store's side of the admin service: ExportState, QueryData, ListChanges, and the
``DataStatus`` part of GetStatus. ``server.AdminService`` calls these inside its error
boundary; proto <-> query conversions live here so the CLI uses the same ones."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from vigie.errors import VigieError
from vigie.state.merge import export_chunks
from vigie.store.query import AggQuery, AggRow, QueryError
from vigie.v1 import admin_pb2 as apb

_INT_KEYS = {"time", "status", "error_code"}


class DataStoreOff(VigieError):
    """The sidecar runs without a data store (data_store = "off")."""

    exit_code = 2


def query_to_proto(q: AggQuery) -> apb.DataQuery:
    return apb.DataQuery(
        table=q.table,
        from_us=q.from_us,
        to_us=q.to_us,
        group_by=list(q.group_by),
        bucket_us=q.bucket_us,
        api=q.api,
        api_version=q.api_version,
        application=q.application,
        channel=q.channel,
        resource=q.resource,
        histogram=q.histogram,
    )


def query_from_proto(m: apb.DataQuery) -> AggQuery:
    return AggQuery(
        table=m.table,
        from_us=m.from_us,
        to_us=m.to_us,
        group_by=tuple(m.group_by),
        bucket_us=m.bucket_us,
        api=m.api,
        api_version=m.api_version,
        application=m.application,
        channel=m.channel,
        resource=m.resource,
        histogram=m.histogram,
    ).validate()


def rows_to_proto(rows: Iterable[AggRow], backend: str) -> apb.DataAnswer:
    out = apb.DataAnswer(backend=backend)
    for r in rows:
        buckets = sorted(r.hist)
        out.rows.append(
            apb.DataRow(
                key=[str(k) for k in r.key],
                measures=r.measures,
                hist_buckets=buckets,
                hist_counts=[r.hist[b] for b in buckets],
                application_name=r.application_name,
            )
        )
    return out


def rows_from_proto(q: AggQuery, answer: apb.DataAnswer) -> list[AggRow]:
    out = []
    for r in answer.rows:
        if len(r.key) != len(q.group_by):
            raise QueryError(f"a sidecar answered {len(r.key)} keys for {len(q.group_by)}")
        key = tuple(int(v) if g in _INT_KEYS else v for g, v in zip(q.group_by, r.key, strict=True))
        out.append(
            AggRow(
                key,
                list(r.measures),
                dict(zip(r.hist_buckets, r.hist_counts, strict=True)),
                r.application_name,
            )
        )
    return out


def change_to_proto(c: dict[str, Any]) -> apb.Change:
    return apb.Change(**{k: c[k] for k in apb.Change.DESCRIPTOR.fields_by_name if k in c})


def changes_from_proto(changes: Sequence[apb.Change]) -> list[dict[str, Any]]:
    return [{f: getattr(c, f) for f in apb.Change.DESCRIPTOR.fields_by_name} for c in changes]


# ---- handlers (called by server.AdminService with the Sidecar) ----


def _data(sidecar: Any) -> Any:
    data = getattr(sidecar, "data", None)
    if data is None:
        raise DataStoreOff("this sidecar runs without a data store (data_store = off)")
    return data


def export_state(sidecar: Any) -> list[apb.StateChunk]:
    frozen = sidecar.state.copy_chunked(sidecar.lock)
    return list(export_chunks(frozen))


def query_data(sidecar: Any, request: apb.DataQuery) -> apb.DataAnswer:
    data = _data(sidecar)
    q = query_from_proto(request)
    return rows_to_proto(data.store.aggregate(q), data.sink.name)


def list_changes(sidecar: Any, request: apb.ListChangesRequest) -> apb.ChangeList:
    data = _data(sidecar)
    to_us = request.to_us or (1 << 62)
    return apb.ChangeList(
        changes=[change_to_proto(c) for c in data.store.changes(request.from_us, to_us)]
    )


def data_status(sidecar: Any) -> apb.DataStatus | None:
    data = getattr(sidecar, "data", None)
    if data is None:
        return None
    st = data.status()
    return apb.DataStatus(
        backend=st["backend"],
        state=st["state"],
        bytes={k: int(v) for k, v in st["bytes"].items()},
        open_rows=st["open_rows"],
        unwritten_rows=st["unwritten_rows"],
        short_retention_days=st["short_retention_days"],
        long_retention_days=st["long_retention_days"],
        counters={k: int(v) for k, v in st["counters"].items()},
        degraded_since_us=int(st["degraded_since"] * 1e6),
    )
