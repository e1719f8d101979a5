"""Proto conversion: vigie's own objects to and from the admin API's messages, written once.

The admin service answers with these; the CLI reads the answers back with the ``*_from_proto``
ones (queries, rows, changes), so both ends agree on one mapping.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from vigie.classify import views
from vigie.policy.book import AuditEntry, Record
from vigie.policy.engine import Exported, ThresholdInfo
from vigie.store.query import AggQuery, AggRow, QueryError
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import telemetry_pb2 as tpb

# the group-by keys whose values are integers (a DataRow's keys travel as strings)
_INT_KEYS: Final = {"time", "status", "error_code"}


# ---- the live state ------------------------------------------------------------------------


def evidence_to_proto(evidence: Mapping[str, Mapping[str, Any]]) -> list[apb.ClassEvidence]:
    """A view's evidence per class: numbers become figures, strings labels."""
    out = []
    for cname, figures in evidence.items():
        ce = apb.ClassEvidence(class_name=cname)
        for k, v in figures.items():
            if isinstance(v, int | float):  # bool is an int
                ce.figures[k] = float(v)
            elif isinstance(v, str):
                ce.labels[k] = v
        out.append(ce)
    return out


def subscription_to_proto(s: views.SubscriptionView) -> apb.SubscriptionInfo:
    return apb.SubscriptionInfo(
        application_id=s.application_id,
        application_name=s.application,
        application_owner=s.owner,
        api=s.api,
        api_version=s.api_version,
        tier=s.tier,
        requests=s.requests,
        classes=s.classes,
        evidence=evidence_to_proto(s.evidence),
        episodes=[
            apb.Episode(class_name=e.class_name, first_us=e.first_us, last_us=e.last_us)
            for e in s.episodes
        ],
        first_seen_us=s.first_seen_us,
        last_seen_us=s.last_seen_us,
        client_errors=s.client_errors,
        server_errors=s.server_errors,
        throttled=s.throttled,
        channels=s.channels,
        tenant=s.tenant,
    )


def api_to_proto(a: views.ApiView) -> apb.ApiInfo:
    return apb.ApiInfo(
        api=a.api,
        api_version=a.api_version,
        context=a.context,
        requests=a.requests,
        classes=a.classes,
        first_seen_us=a.first_seen_us,
        last_seen_us=a.last_seen_us,
        evidence=evidence_to_proto(a.evidence),
        tenant=a.tenant,
        api_id=a.api_id,
    )


def gateway_info(
    hello: tpb.Hello,
    peer: str,
    connected_at_us: int,
    batches: int,
    events: int,
    report: tpb.GatewayReport | None,
) -> apb.GatewayInfo:
    """A connected gateway as its Hello introduced it, with its stream's figures and the
    handler's own, from its last report."""
    info = apb.GatewayInfo(
        gateway_id=hello.gateway_id,
        channel=hello.channel or "default",
        tenant=hello.tenant,
        region=hello.region,
        handler_version=hello.handler_version,
        peer=peer,
        connected_at_us=connected_at_us,
        batches=batches,
        events=events,
    )
    if report is not None:
        info.handler_offered = report.offered
        info.handler_sent = report.sent
        info.handler_dropped = (
            report.dropped_queue_full
            + report.dropped_disconnected
            + report.dropped_send_failed
            + report.dropped_other
        )
        info.handler_reconnects = report.reconnects
        info.directives_rejected = report.directives_rejected
        info.rejected_directives.extend(report.rejected_directives[:256])
        info.unmatched_requests = report.unmatched_requests
        info.quotas_rejected = report.quotas_rejected
        info.last_quota_rejection = _printable(report.last_quota_rejection[:256])[:256]
        for u in report.unmatched_prefixes[:UNMATCHED_PREFIXES]:
            key = _printable(u.prefix)[:64] or "(empty)"
            info.unmatched_by_prefix[key] = info.unmatched_by_prefix[key] + u.requests
    return info


UNMATCHED_PREFIXES: Final = 65  # the handler's 64 prefixes and "*"


def _printable(text: str) -> str:
    """``text`` with control characters escaped (a prefix comes from a client's path)."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


# ---- suggestions, WSO2 policies, thresholds -------------------------------------------------


def record_to_proto(rec: Record, trail: Iterable[AuditEntry] = ()) -> apb.Suggestion:
    s = rec.suggestion
    out = apb.Suggestion(
        id=s.id,
        class_name=s.class_name,
        concerns=s.concerns,
        application_id=s.application_id,
        application_name=s.application,
        application_owner=s.owner,
        api=s.api,
        api_version=s.api_version,
        channel=s.channel,
        state=rec.state,
        action=s.action,
        summary=s.summary,
        expected_effect=s.expected_effect,
        owner_note=s.owner_note,
        evidence_json=json.dumps(s.evidence, default=str),
        wso2_json=json.dumps(s.wso2.to_json()) if s.wso2 else "",
        created_at_us=rec.created_at_us,
        updated_at_us=rec.updated_at_us,
        expires_at_us=rec.expires_at_us,
        exported=rec.exported,
        auto_approval=s.auto_approval,
        refused_share=s.refused_share,
        tenant=s.tenant,
    )
    if s.directive is not None:
        out.directive.CopyFrom(s.directive.build(s.id, rec.mode, rec.expires_at_us))
    for e in trail:
        out.audit.append(
            apb.AuditEntry(
                at_us=e.at_us,
                actor=e.actor,
                action=e.action,
                from_state=e.from_state,
                to_state=e.to_state,
                reason=e.reason,
                details_json=json.dumps(e.details, default=str) if e.details else "",
                subject=e.subject,
            )
        )
    return out


def exported_to_proto(items: Iterable[Exported], skipped: Sequence[str]) -> apb.PolicyExport:
    out = apb.PolicyExport(skipped=skipped)
    for e in items:
        out.policies.append(
            apb.ExportedPolicy(
                suggestion_id=e.suggestion_id,
                schema=e.request.schema,
                method=e.request.method,
                path=e.request.path,
                body_json=json.dumps(e.body),
                file_name=e.file_name,
                policy_name=e.request.policy_name,
            )
        )
    return out


def thresholds_to_proto(items: Iterable[ThresholdInfo]) -> apb.ThresholdSet:
    return apb.ThresholdSet(
        thresholds=[
            apb.ThresholdValue(
                name=t.name,
                value=t.value,
                default_value=t.default,
                doc=t.doc,
                start_up_only=t.start_up_only,
                tuned=t.tuned,
            )
            for t in items
        ]
    )


# ---- the data store --------------------------------------------------------------------------


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
        tenant=q.tenant,
    )


def query_from_proto(m: apb.DataQuery) -> AggQuery:
    """The query a DataQuery asks, validated (``QueryError`` says what is wrong)."""
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
        tenant=m.tenant,
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


def change_to_proto(c: Mapping[str, Any]) -> apb.Change:
    return apb.Change(**{k: c[k] for k in apb.Change.DESCRIPTOR.fields_by_name if k in c})


def changes_from_proto(changes: Sequence[apb.Change]) -> list[dict[str, Any]]:
    return [{f: getattr(c, f) for f in apb.Change.DESCRIPTOR.fields_by_name} for c in changes]


def data_status_to_proto(st: Mapping[str, Any]) -> apb.DataStatus:
    """``SidecarData.status()`` as the DataStatus part of GetStatus."""
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
