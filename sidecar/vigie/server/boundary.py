"""The error boundary of an RPC service: the one place its errors become a status.

A ``VigieError`` says how it is reported (``vigie.errors``): its ``grpc_status``, and its
``cause``, counted as ``<refused>:<cause>``. Anything else is a bug: INTERNAL, counted under the
service's ``internal`` counter and logged once with its traceback. Neither ends the process
(envoy ratelimit's ``ShouldRateLimit`` is the model: typed errors, one mapping, one counter per
error type).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Final, TypeVar

import grpc

from vigie.errors import VigieError

log = logging.getLogger(__name__)

T = TypeVar("T")
Status = tuple[grpc.StatusCode, str]
LOG_TEXT_MAX: Final = 200  # characters of a string from the wire that a log line shows


def loggable(text: str, limit: int = LOG_TEXT_MAX) -> str:
    """A string from the wire as a log line may show it: control and other non-printable
    characters escaped (``\\n``, ``\\x1b``: no forged lines, no terminal escapes), and cut to
    ``limit`` characters with the length it had."""
    cut = text[:limit]
    out = cut if cut.isprintable() else cut.encode("unicode_escape").decode("ascii")
    return out if len(text) <= limit else f"{out}... ({len(text)} characters)"


def status_code(exc: VigieError) -> grpc.StatusCode:
    """The gRPC status an error type names (FAILED_PRECONDITION when the name is unknown)."""
    code: grpc.StatusCode = getattr(
        grpc.StatusCode, exc.grpc_status, grpc.StatusCode.FAILED_PRECONDITION
    )
    return code


class Boundary:
    """One per service: refusals counted as ``<refused>:<cause>``, bugs as ``internal``."""

    def __init__(self, counters: Counter[str], refused: str, internal: str) -> None:
        self._counters = counters
        self._refused = refused
        self._internal = internal

    def refusal(self, exc: VigieError, prefix: str = "", refused: str = "") -> Status:
        """Count ``exc`` (as ``<refused>:<cause>``, the service's ``refused`` unless given);
        the status and message (after ``prefix``) to end the call with."""
        self._counters[f"{refused or self._refused}:{exc.cause}"] += 1
        return status_code(exc), f"{prefix}{exc}"

    def internal(self, exc: BaseException, what: str) -> Status:
        """Count and log an error nobody raised on purpose; INTERNAL to end the call with."""
        self._counters[self._internal] += 1
        log.exception("%s: internal error", what)
        return grpc.StatusCode.INTERNAL, f"internal error: {exc}"

    def call(self, context: grpc.ServicerContext, fn: Callable[[], T], what: str) -> T:
        """``fn()``; or the call ended with the status of what it raised (``abort`` raises)."""
        try:
            return fn()
        except VigieError as exc:
            context.abort(*self.refusal(exc))
        except Exception as exc:  # the error boundary
            context.abort(*self.internal(exc, what))
        raise AssertionError("unreachable: ServicerContext.abort raises")
