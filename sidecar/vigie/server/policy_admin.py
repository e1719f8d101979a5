"""The admin RPCs of suggestions, WSO2 policies and thresholds (mixed into ``AdminService``).

Each handler runs inside the admin service's one error boundary; a missing suggestion answers
NOT_FOUND, a refused threshold or transition INVALID_ARGUMENT / FAILED_PRECONDITION with the
reason, and each refusal is counted by cause like every other admin refusal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from vigie.directives.table import DirectiveError
from vigie.errors import ConfigError, VigieError
from vigie.policy.book import LifecycleError, Record, SuggestionNotFound
from vigie.v1 import admin_pb2 as apb

if TYPE_CHECKING:
    from vigie.server.core import Sidecar

log = logging.getLogger(__name__)


def record_to_proto(rec: Record, trail: list[Any] | None = None) -> apb.Suggestion:
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
    )
    if s.directive is not None:
        out.directive.CopyFrom(s.directive.build(s.id, rec.mode, rec.expires_at_us))
    for e in trail or ():
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


class PolicyAdmin:
    """RPC handlers; ``AdminService`` inherits them (``sc`` is its sidecar)."""

    sc: Sidecar

    def _policy(self, context: grpc.ServicerContext, fn: Callable[[], Any]) -> Any:
        """The error boundary of these RPCs: typed errors -> status + a counter per cause."""
        counters = self.sc.counters
        try:
            return fn()
        except SuggestionNotFound as exc:
            counters["admin_refused:suggestion_not_found"] += 1
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except (LifecycleError, DirectiveError) as exc:
            counters["admin_refused:lifecycle"] += 1
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except ConfigError as exc:
            counters["admin_refused:thresholds"] += 1
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except VigieError as exc:
            counters[f"admin_refused:{type(exc).__name__}"] += 1
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except Exception as exc:
            counters["admin_internal_error"] += 1
            log.exception("admin call failed")
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {exc}")

    def ListSuggestions(
        self, request: apb.ListSuggestionsRequest, context: grpc.ServicerContext
    ) -> apb.SuggestionList:
        def run() -> apb.SuggestionList:
            eng = self.sc.policy
            eng.refresh(force=request.refresh)
            states = set(request.states)
            out = apb.SuggestionList(now_us=self.sc.state.now_us)
            with eng.book.lock:
                records = list(eng.book)
            for rec in sorted(records, key=lambda r: (r.created_at_us, r.id)):
                s = rec.suggestion
                out.by_state[rec.state] = out.by_state[rec.state] + 1
                if states and rec.state not in states:
                    continue
                if request.class_name and s.class_name != request.class_name:
                    continue
                if request.application and request.application not in (
                    s.application_id,
                    s.application,
                ):
                    continue
                if request.api and s.api != request.api:
                    continue
                out.suggestions.append(record_to_proto(rec))
            return out

        return self._policy(context, run)  # type: ignore[no-any-return]

    def GetSuggestion(
        self, request: apb.GetSuggestionRequest, context: grpc.ServicerContext
    ) -> apb.Suggestion:
        def run() -> apb.Suggestion:
            eng = self.sc.policy
            with eng.book.lock:
                rec = eng.book.get(request.id)
                return record_to_proto(rec, trail=eng.book.trail(rec.id))

        return self._policy(context, run)  # type: ignore[no-any-return]

    def ApproveSuggestion(
        self, request: apb.ApproveSuggestionRequest, context: grpc.ServicerContext
    ) -> apb.Suggestion:
        def run() -> apb.Suggestion:
            eng = self.sc.policy
            rec = eng.approve(
                request.id, request.actor, request.reason, request.mode, request.ttl_seconds
            )
            log.info("suggestion %s approved by %s: %s", rec.id, request.actor or "?", rec.state)
            return record_to_proto(rec)

        return self._policy(context, run)  # type: ignore[no-any-return]

    def RejectSuggestion(
        self, request: apb.DecideSuggestionRequest, context: grpc.ServicerContext
    ) -> apb.Suggestion:
        return self._policy(  # type: ignore[no-any-return]
            context,
            lambda: record_to_proto(
                self.sc.policy.reject(request.id, request.actor, request.reason)
            ),
        )

    def WithdrawSuggestion(
        self, request: apb.DecideSuggestionRequest, context: grpc.ServicerContext
    ) -> apb.Suggestion:
        return self._policy(  # type: ignore[no-any-return]
            context,
            lambda: record_to_proto(
                self.sc.policy.withdraw(request.id, request.actor, request.reason)
            ),
        )

    def ExportPolicies(
        self, request: apb.ExportPoliciesRequest, context: grpc.ServicerContext
    ) -> apb.PolicyExport:
        def run() -> apb.PolicyExport:
            items, skipped = self.sc.policy.export(
                list(request.ids),
                request.format or "wso2-admin",
                request.actor,
                request.apim_version or "v4.2.0",
                request.include_proposed,
            )
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

        return self._policy(context, run)  # type: ignore[no-any-return]

    def RecordPolicyApplied(
        self, request: apb.RecordPolicyAppliedRequest, context: grpc.ServicerContext
    ) -> apb.Suggestion:
        return self._policy(  # type: ignore[no-any-return]
            context,
            lambda: record_to_proto(
                self.sc.policy.record_applied(
                    request.id, request.actor, request.target, request.outcome, request.ok
                )
            ),
        )

    def GetThresholds(
        self, request: apb.GetThresholdsRequest, context: grpc.ServicerContext
    ) -> apb.ThresholdSet:
        return self._policy(  # type: ignore[no-any-return]
            context, lambda: _thresholds(self.sc.policy.thresholds())
        )

    def SetThresholds(
        self, request: apb.SetThresholdsRequest, context: grpc.ServicerContext
    ) -> apb.ThresholdSet:
        def run() -> apb.ThresholdSet:
            out = self.sc.policy.set_thresholds(
                dict(request.changes), request.actor, request.reason, request.reset
            )
            log.info(
                "thresholds %s by %s: %s",
                "reset" if request.reset else "changed",
                request.actor or "?",
                dict(request.changes),
            )
            return _thresholds(out)

        return self._policy(context, run)  # type: ignore[no-any-return]


def _thresholds(items: list[Any]) -> apb.ThresholdSet:
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
