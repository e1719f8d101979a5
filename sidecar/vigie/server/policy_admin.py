"""The admin RPCs of suggestions, WSO2 policies and thresholds: what each one does with the
policy engine. ``AdminService`` calls these inside its one error boundary, where a missing
suggestion answers NOT_FOUND, a refused transition FAILED_PRECONDITION, a refused threshold or
directive INVALID_ARGUMENT (the mapping lives on each error type, ``vigie.errors``)."""

from __future__ import annotations

import logging

from vigie.policy import wso2
from vigie.policy.engine import PolicyEngine
from vigie.server import convert
from vigie.v1 import admin_pb2 as apb
from vigie.wire import tenants

log = logging.getLogger(__name__)


def list_suggestions(
    eng: PolicyEngine, request: apb.ListSuggestionsRequest, now_us: int
) -> apb.SuggestionList:
    eng.refresh(force=request.refresh)
    states = set(request.states)
    out = apb.SuggestionList(now_us=now_us)
    with eng.book.lock:
        records = list(eng.book)
    for rec in sorted(records, key=lambda r: (r.created_at_us, r.id)):
        s = rec.suggestion
        out.by_state[rec.state] = out.by_state[rec.state] + 1
        if states and rec.state not in states:
            continue
        if request.class_name and s.class_name != request.class_name:
            continue
        if request.application and request.application not in (s.application_id, s.application):
            continue
        if request.api and s.api != request.api:
            continue
        # an application's suggestion names no tenant: it is shown for any
        if request.tenant and s.tenant and not tenants.matches(request.tenant, s.tenant):
            continue
        out.suggestions.append(convert.record_to_proto(rec))
    return out


def get_suggestion(eng: PolicyEngine, request: apb.GetSuggestionRequest) -> apb.Suggestion:
    with eng.book.lock:
        rec = eng.book.get(request.id)
        return convert.record_to_proto(rec, trail=eng.book.trail(rec.id))


def approve(eng: PolicyEngine, request: apb.ApproveSuggestionRequest) -> apb.Suggestion:
    rec = eng.approve(request.id, request.actor, request.reason, request.mode, request.ttl_seconds)
    log.info("suggestion %s approved by %s: %s", rec.id, request.actor or "?", rec.state)
    return convert.record_to_proto(rec)


def reject(eng: PolicyEngine, request: apb.DecideSuggestionRequest) -> apb.Suggestion:
    return convert.record_to_proto(eng.reject(request.id, request.actor, request.reason))


def withdraw(eng: PolicyEngine, request: apb.DecideSuggestionRequest) -> apb.Suggestion:
    return convert.record_to_proto(eng.withdraw(request.id, request.actor, request.reason))


def export_policies(eng: PolicyEngine, request: apb.ExportPoliciesRequest) -> apb.PolicyExport:
    items, skipped = eng.export(
        list(request.ids),
        request.format or "wso2-admin",
        request.actor,
        request.apim_version or wso2.DEFAULT_APIM_VERSION,
        request.include_proposed,
    )
    return convert.exported_to_proto(items, skipped)


def record_applied(eng: PolicyEngine, request: apb.RecordPolicyAppliedRequest) -> apb.Suggestion:
    rec = eng.record_applied(request.id, request.actor, request.target, request.outcome, request.ok)
    return convert.record_to_proto(rec)


def set_thresholds(eng: PolicyEngine, request: apb.SetThresholdsRequest) -> apb.ThresholdSet:
    out = eng.set_thresholds(dict(request.changes), request.actor, request.reason, request.reset)
    log.info(
        "thresholds %s by %s: %s",
        "reset" if request.reset else "changed",
        request.actor or "?",
        dict(request.changes),
    )
    return convert.thresholds_to_proto(out)
