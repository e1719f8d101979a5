"""The error boundary of the RPC services: each error type carries its status and counter;
a bug is INTERNAL, counted and logged once."""

from __future__ import annotations

import logging
from collections import Counter

import grpc
import pytest

from vigie.directives.table import DirectiveError
from vigie.errors import (
    BatchRefused,
    ConfigError,
    TooManyStreams,
    UnsupportedProtocol,
    VigieError,
)
from vigie.policy.book import LifecycleError, SuggestionNotFound
from vigie.server.boundary import Boundary, status_code
from vigie.server.data_admin import DataStoreOff
from vigie.store.query import QueryError


class Aborted(Exception):
    pass


class Context:
    """The part of ``grpc.ServicerContext`` a boundary uses: ``abort`` raises, as gRPC's."""

    def __init__(self) -> None:
        self.status: tuple[grpc.StatusCode, str] | None = None

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.status = (code, details)
        raise Aborted(details)


def _all_error_types() -> list[type[VigieError]]:
    out: list[type[VigieError]] = []
    todo = [VigieError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def test_every_error_type_names_a_real_status_and_a_counter() -> None:
    for cls in _all_error_types():
        assert isinstance(getattr(grpc.StatusCode, cls.grpc_status), grpc.StatusCode), cls
        assert cls.cause and cls.cause == cls.cause.lower(), cls


@pytest.mark.parametrize(
    ("exc", "code", "counter"),
    [
        (DirectiveError("no TTL"), grpc.StatusCode.INVALID_ARGUMENT, "admin_refused:directive"),
        (LifecycleError("not proposed"), grpc.StatusCode.FAILED_PRECONDITION,
         "admin_refused:lifecycle"),
        (SuggestionNotFound("no s-1"), grpc.StatusCode.NOT_FOUND,
         "admin_refused:suggestion_not_found"),
        (ConfigError("bad"), grpc.StatusCode.INVALID_ARGUMENT, "admin_refused:config_error"),
        (QueryError("bad"), grpc.StatusCode.FAILED_PRECONDITION, "admin_refused:query_error"),
        (DataStoreOff("off"), grpc.StatusCode.FAILED_PRECONDITION,
         "admin_refused:data_store_off"),
        (BatchRefused("bad_count", "x"), grpc.StatusCode.INVALID_ARGUMENT,
         "admin_refused:bad_count"),
        (TooManyStreams("x"), grpc.StatusCode.RESOURCE_EXHAUSTED,
         "admin_refused:too_many_streams"),
        (UnsupportedProtocol("x"), grpc.StatusCode.FAILED_PRECONDITION,
         "admin_refused:bad_hello"),
    ],
)  # fmt: skip
def test_a_typed_error_ends_the_call_with_its_status_and_its_counter(
    exc: VigieError, code: grpc.StatusCode, counter: str
) -> None:
    counters: Counter[str] = Counter()
    boundary = Boundary(counters, "admin_refused", "admin_internal_error")
    ctx = Context()

    def fail() -> None:
        raise exc

    with pytest.raises(Aborted):
        boundary.call(ctx, fail, "test call")
    assert ctx.status == (code, str(exc))
    assert status_code(exc) == code
    assert counters == Counter({counter: 1})


def test_a_bug_is_internal_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    counters: Counter[str] = Counter()
    boundary = Boundary(counters, "admin_refused", "admin_internal_error")
    ctx = Context()

    def bug() -> None:
        raise KeyError("oops")

    with caplog.at_level(logging.ERROR), pytest.raises(Aborted):
        boundary.call(ctx, bug, "admin call")
    assert ctx.status == (grpc.StatusCode.INTERNAL, "internal error: 'oops'")
    assert counters == Counter({"admin_internal_error": 1})
    assert [r.getMessage() for r in caplog.records] == ["admin call: internal error"]
    assert caplog.records[0].exc_info is not None


def test_an_answer_passes_through_untouched() -> None:
    counters: Counter[str] = Counter()
    boundary = Boundary(counters, "admin_refused", "admin_internal_error")
    assert boundary.call(Context(), lambda: 42, "call") == 42
    assert not counters


def test_a_refusal_after_the_stream_started_counts_under_its_own_prefix() -> None:
    counters: Counter[str] = Counter()
    boundary = Boundary(counters, "stream_refused", "stream_internal_error")
    code, message = boundary.refusal(BatchRefused("bad_sequence", "seq 3"), "batch refused: ",
                                     "batch_refused")  # fmt: skip
    assert (code, message) == (grpc.StatusCode.INVALID_ARGUMENT, "batch refused: seq 3")
    assert counters == Counter({"batch_refused:bad_sequence": 1})
