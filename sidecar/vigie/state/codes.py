"""The WSO2 error-code taxonomy: the one place that says what an error code means to vigie.

WSO2 API Manager 4.x puts a six-digit error code on every failed request (the API Manager error
code reference). vigie reads four families of them:

==============  ===========================  ======================================================
family          codes                        what vigie does with it
==============  ===========================  ======================================================
throttling      900800-900899                the request was throttled (see "throttled" below)
authentication  900900-900999                counted in a subscription's authentication errors
backend         101500-101599, 303001        counted in its backend errors (the backend did not
                                             answer: connection refused, timeout, ...)
transport       101000-101499                a family of the export's ``wso2.error.family``
==============  ===========================  ======================================================

Every other code is of family ``other``.

**Throttled** means the same everywhere (state, rollups, export): the response carries a WSO2
throttling code, or the event carries vigie's own throttled flag (bit ``FLAG_THROTTLED`` of the
``flags`` column: the handler refused the request on a directive, or a log parser read a
``THROTTLED`` fault). A bare HTTP 429 without such a code or flag is *not* throttled: it is a
4xx like any other, although the state's ``client_errors`` leave 429 out (``is_client_error``).

The predicates are tiny jitted functions (``inline="always"``): the kernels call them at no
cost, and plain Python calls them as functions. ``vector()`` writes the taxonomy as the shared
test vector ``tests/vectors/taxonomy/codes.json`` (regenerate with ``python
tests/vectors/taxonomy/make_codes.py``; a test fails when it is stale), so that
the Java handler and the log parsers, which cannot import this module (``vigie.sources`` sits
below ``vigie.state``), are checked against the same table.
"""

from __future__ import annotations

import json
from typing import Any, Final

from numba import njit

THROTTLING_FIRST: Final = 900800
THROTTLING_LAST: Final = 900899
AUTHENTICATION_FIRST: Final = 900900
AUTHENTICATION_LAST: Final = 900999
BACKEND_FIRST: Final = 101500
BACKEND_LAST: Final = 101599
BACKEND_TIMEOUT: Final = 303001  # "sending the request to the backend timed out"
# the backend did not answer at all (what API ``backend_down`` counts): connection failed,
# timed out, closed; and the endpoint timeout
CONNECTION_FAILED: Final = 101503
CONNECTION_TIMEOUT: Final = 101504
CONNECTION_CLOSED: Final = 101505
CONNECTION_FAILURES: Final = (
    CONNECTION_FAILED,
    CONNECTION_TIMEOUT,
    CONNECTION_CLOSED,
    BACKEND_TIMEOUT,
)
TRANSPORT_FIRST: Final = 101000
TRANSPORT_LAST: Final = 101499

FLAG_THROTTLED: Final = 1  # bit of the ``flags`` column: vigie's own throttled flag

HTTP_TOO_MANY_REQUESTS: Final = 429

# the families in the order ``error_family`` tests them: (name, ranges (first, last) inclusive)
FAMILIES: Final[tuple[tuple[str, tuple[tuple[int, int], ...]], ...]] = (
    ("throttling", ((THROTTLING_FIRST, THROTTLING_LAST),)),
    ("authentication", ((AUTHENTICATION_FIRST, AUTHENTICATION_LAST),)),
    ("backend", ((BACKEND_FIRST, BACKEND_LAST), (BACKEND_TIMEOUT, BACKEND_TIMEOUT))),
    ("transport", ((TRANSPORT_FIRST, TRANSPORT_LAST),)),
)
OTHER: Final = "other"

# the HTTP status a log parser gives a fault that has none, by WSO2's ``errorType``
FAULT_STATUS: Final = {"THROTTLED": 429, "AUTH": 401, "TARGET_CONNECTIVITY": 503}


@njit(cache=True, nogil=True, inline="always")
def is_throttling_code(code: int) -> bool:
    """A WSO2 throttling code (900800-900899)."""
    return code >= THROTTLING_FIRST and code <= THROTTLING_LAST


@njit(cache=True, nogil=True, inline="always")
def is_authentication_code(code: int) -> bool:
    """A WSO2 authentication code (900900-900999)."""
    return code >= AUTHENTICATION_FIRST and code <= AUTHENTICATION_LAST


@njit(cache=True, nogil=True, inline="always")
def is_backend_code(code: int) -> bool:
    """A WSO2 backend-connectivity code (101500-101599, or 303001)."""
    return (code >= BACKEND_FIRST and code <= BACKEND_LAST) or code == BACKEND_TIMEOUT


@njit(cache=True, nogil=True, inline="always")
def is_connection_failure(code: int) -> bool:
    """The backend could not be reached (101503, 101504, 101505, 303001): API backend_down."""
    return (code >= CONNECTION_FAILED and code <= CONNECTION_CLOSED) or code == BACKEND_TIMEOUT


@njit(cache=True, nogil=True, inline="always")
def is_transport_code(code: int) -> bool:
    """A WSO2 transport code (101000-101499)."""
    return code >= TRANSPORT_FIRST and code <= TRANSPORT_LAST


@njit(cache=True, nogil=True, inline="always")
def is_throttled(error_code: int, flags: int) -> bool:
    """Throttled: a WSO2 throttling code or vigie's own throttled flag (a bare 429 is not)."""
    return (flags & FLAG_THROTTLED) != 0 or is_throttling_code(error_code)


@njit(cache=True, nogil=True, inline="always")
def is_client_error(status: int) -> bool:
    """A 4xx that says the client erred: every 4xx but 429 (too many requests)."""
    return status >= 400 and status < 500 and status != HTTP_TOO_MANY_REQUESTS


def error_family(code: int) -> str:
    """The family of a WSO2 error code: throttling, authentication, backend, transport, other."""
    if is_throttling_code(code):
        return "throttling"
    if is_authentication_code(code):
        return "authentication"
    if is_backend_code(code):
        return "backend"
    if is_transport_code(code):
        return "transport"
    return OTHER


def _probes() -> list[int]:
    """Codes that pin every range: each bound, its neighbours, and a few ordinary values."""
    codes = {0, -1, 200, 429, 500, 2**31 - 1, -(2**31)}
    for _, ranges in FAMILIES:
        for first, last in ranges:
            codes.update(
                (first - 1, first, first + 1, (first + last) // 2, last - 1, last, last + 1)
            )
    return sorted(codes)


CASE_COLUMNS: Final = ("error_code", "http_status", "flags", "family", "throttled", "client_error")


def vector() -> dict[str, Any]:
    """The taxonomy as test data: the families' ranges and, for probe codes, the expected
    family, throttled and client-error readings (with and without vigie's flag, for a few HTTP
    statuses: a bare 429 is not throttled). A case is a list in ``CASE_COLUMNS`` order."""
    cases: list[list[Any]] = []
    for code in _probes():
        for status in (0, 200, 429, 503):
            for flags in (0, FLAG_THROTTLED):
                throttled = bool(is_throttled(code, flags))
                client = bool(is_client_error(status))
                cases.append([code, status, flags, error_family(code), throttled, client])
    return {
        "about": "the WSO2 error-code taxonomy (vigie.state.codes); generated: do not edit",
        "flag_throttled": FLAG_THROTTLED,
        "families": {name: [list(r) for r in ranges] for name, ranges in FAMILIES},
        "fault_status": FAULT_STATUS,
        "case_columns": list(CASE_COLUMNS),
        "cases": cases,
    }


def vector_text() -> str:
    """``vector()`` as the text of ``tests/vectors/taxonomy/codes.json`` (one case a line)."""
    doc = vector()
    cases = doc.pop("cases")
    head = json.dumps(doc, indent=1)[:-2]
    lines = ",\n  ".join(json.dumps(c) for c in cases)
    return f'{head},\n "cases": [\n  {lines}\n ]\n}}\n'
