"""The admin service (``vigie.v1.Admin``): the operators' and the CLI's RPCs, behind the
``AuthInterceptor`` (``credentials``) and ONE error boundary.

Every RPC runs inside ``_call``: a ``VigieError`` ends it with the status its type names
(``vigie.errors``; e.g. a refused directive INVALID_ARGUMENT, a refused lifecycle transition
FAILED_PRECONDITION, a missing suggestion NOT_FOUND), counted as ``admin_refused:<cause>``; any
other error with INTERNAL, counted as ``admin_internal_error`` and logged. The RPCs of the
state and the directives are here; those of suggestions and thresholds are in
``policy_admin``, those of the data store in ``data_admin``.

Every audited write (directives, suggestion decisions, policy exports and applications,
thresholds) is recorded with the actor ``credentials.caller_actor`` gives: the verified client
certificate's identity, else the caller's claim marked ``(self-declared)``. The ``actor`` a
request carries is never taken as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

import grpc

from vigie.directives.table import DirectiveError
from vigie.server import convert, data_admin, policy_admin
from vigie.server.boundary import Boundary
from vigie.server.core import Sidecar
from vigie.server.credentials import caller_actor
from vigie.server.positions import export_consistent
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Acting(Protocol):
    actor: str


R = TypeVar("R", bound=_Acting)


def as_caller(request: R, context: grpc.ServicerContext) -> R:
    """``request`` with its actor replaced by who the call comes from (``caller_actor``)."""
    request.actor = caller_actor(context, request.actor)
    return request


class AdminService(apb_grpc.AdminServicer):
    def __init__(self, sidecar: Sidecar) -> None:
        self.sc = sidecar
        self._boundary = Boundary(sidecar.counters, "admin_refused", "admin_internal_error")

    def _call(self, context: grpc.ServicerContext, fn: Callable[[], T]) -> T:
        return self._boundary.call(context, fn, "admin call")

    # ---- the live state ----
    def GetStatus(self, request: apb.StatusRequest, context: grpc.ServicerContext) -> apb.Status:
        return self._call(context, self.sc.status)

    def ListSubscriptions(
        self, request: apb.ListSubscriptionsRequest, context: grpc.ServicerContext
    ) -> apb.SubscriptionList:
        return self._call(context, lambda: self.sc.subscriptions(request))

    def ListApis(self, request: apb.ListApisRequest, context: grpc.ServicerContext) -> apb.ApiList:
        return self._call(context, lambda: self.sc.apis(request))

    def ListClients(
        self, request: apb.ListClientsRequest, context: grpc.ServicerContext
    ) -> apb.ClientList:
        return self._call(context, lambda: self.sc.clients(request))

    # ---- directives ----
    def _directive_list(self) -> apb.DirectiveList:
        table = self.sc.directives
        version, items = table.snapshot()
        return apb.DirectiveList(version=version, directives=items, hits=table.hits())

    def ListDirectives(
        self, request: apb.ListDirectivesRequest, context: grpc.ServicerContext
    ) -> apb.DirectiveList:
        return self._call(context, self._directive_list)

    def PutDirective(
        self, request: apb.PutDirectiveRequest, context: grpc.ServicerContext
    ) -> apb.DirectiveList:
        request = as_caller(request, context)

        def put() -> apb.DirectiveList:
            # the table fills the defaults, validates, pushes, persists and audits
            d = self.sc.directives.put(request.directive, request.actor, request.reason)
            log.info(
                "directive %s put by %s: %s", d.id, request.actor or "?", request.reason or "-"
            )
            return self._directive_list()

        return self._call(context, put)

    def RemoveDirective(
        self, request: apb.RemoveDirectiveRequest, context: grpc.ServicerContext
    ) -> apb.DirectiveList:
        request = as_caller(request, context)

        def remove() -> apb.DirectiveList:
            if not self.sc.directives.remove(request.directive_id, request.actor, request.reason):
                raise DirectiveError(f"no directive {request.directive_id!r}")
            log.info("directive %s removed by %s", request.directive_id, request.actor or "?")
            return self._directive_list()

        return self._call(context, remove)

    # ---- suggestions, WSO2 policies, thresholds ----
    def ListSuggestions(
        self, request: apb.ListSuggestionsRequest, context: grpc.ServicerContext
    ) -> apb.SuggestionList:
        return self._call(
            context,
            lambda: policy_admin.list_suggestions(self.sc.policy, request, self.sc.state.now_us),
        )

    def GetSuggestion(
        self, request: apb.GetSuggestionRequest, context: grpc.ServicerContext
    ) -> apb.Suggestion:
        return self._call(context, lambda: policy_admin.get_suggestion(self.sc.policy, request))

    def ApproveSuggestion(
        self, request: apb.ApproveSuggestionRequest, context: grpc.ServicerContext
    ) -> apb.Suggestion:
        request = as_caller(request, context)
        return self._call(context, lambda: policy_admin.approve(self.sc.policy, request))

    def RejectSuggestion(
        self, request: apb.DecideSuggestionRequest, context: grpc.ServicerContext
    ) -> apb.Suggestion:
        request = as_caller(request, context)
        return self._call(context, lambda: policy_admin.reject(self.sc.policy, request))

    def WithdrawSuggestion(
        self, request: apb.DecideSuggestionRequest, context: grpc.ServicerContext
    ) -> apb.Suggestion:
        request = as_caller(request, context)
        return self._call(context, lambda: policy_admin.withdraw(self.sc.policy, request))

    def ExportPolicies(
        self, request: apb.ExportPoliciesRequest, context: grpc.ServicerContext
    ) -> apb.PolicyExport:
        request = as_caller(request, context)
        return self._call(context, lambda: policy_admin.export_policies(self.sc.policy, request))

    def RecordPolicyApplied(
        self, request: apb.RecordPolicyAppliedRequest, context: grpc.ServicerContext
    ) -> apb.Suggestion:
        request = as_caller(request, context)
        return self._call(context, lambda: policy_admin.record_applied(self.sc.policy, request))

    def GetThresholds(
        self, request: apb.GetThresholdsRequest, context: grpc.ServicerContext
    ) -> apb.ThresholdSet:
        return self._call(context, lambda: convert.thresholds_to_proto(self.sc.policy.thresholds()))

    def SetThresholds(
        self, request: apb.SetThresholdsRequest, context: grpc.ServicerContext
    ) -> apb.ThresholdSet:
        request = as_caller(request, context)
        return self._call(context, lambda: policy_admin.set_thresholds(self.sc.policy, request))

    # ---- the fleet ----
    def PeerSync(
        self, request: apb.PeerSyncRequest, context: grpc.ServicerContext
    ) -> apb.PeerSyncAnswer:
        return self._call(context, lambda: self.sc.fleet.serve(request))

    # ---- the data store ----
    def ExportState(
        self, request: apb.ExportStateRequest, context: grpc.ServicerContext
    ) -> Iterator[apb.StateChunk]:
        if request.consistent:  # a fleet peer starting from it: with the gateway positions
            yield from self._call(context, lambda: export_consistent(self.sc, self.sc.positions))
            return
        yield from self._call(context, lambda: data_admin.export_state(self.sc))

    def QueryData(self, request: apb.DataQuery, context: grpc.ServicerContext) -> apb.DataAnswer:
        return self._call(
            context, lambda: data_admin.query_data(self.sc.data, request, self.sc.fleet.store_for)
        )

    def ListChanges(
        self, request: apb.ListChangesRequest, context: grpc.ServicerContext
    ) -> apb.ChangeList:
        return self._call(context, lambda: data_admin.list_changes(self.sc.data, request))
