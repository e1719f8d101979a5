"""Who may talk to the sidecar: TLS for both listeners, the admin token, the admin interceptor.

The gateway listener is plaintext, TLS or mTLS (``tls_*`` settings); the admin listener the
same (``admin_tls_*``), and its calls need ``authorization: Bearer <token>`` unless
``admin_auth = mtls``, where the client certificate is the credential. The token is the
settings' ``admin_token``, else the one in ``admin_token_file`` (generated, owner-only, on the
first start). A refused call is counted (``admin_unauthenticated``); a token is never logged.
``CallLimit`` bounds the calls that need no token and hold a worker (server reflection).

``gateway_identity`` says which gateway a stream is, for hit plausibility and quotas: over mTLS
the client certificate's identity (CN, else first SAN); a Hello claiming another id is counted
under ``<certificate> (claimed <id>)`` — never under the id it claims, so a gateway cannot
share (and inflate) another's count — and the server reports and counts it
(``gateway_id_mismatch``). Without a verified certificate the Hello's id stands (and the hits
count as evidence only as ``trust_unauthenticated_gateways`` says).

``caller_actor`` says who made an admin call, for the audit: the client certificate's identity
(its subject CN, else its first SAN) when the TLS handshake verified one, the name claimed
(``--actor``) kept beside it as declared; else the claimed name marked ``(self-declared)``.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from vigie.directives.audit import DECLARED, SELF_DECLARED
from vigie.errors import ConfigError
from vigie.settings import Settings

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/vigie.v1.Admin/"


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what}: {path}: {exc.strerror or exc}") from None


def server_credentials(
    cert: str, key: str, client_ca: str, what: str
) -> grpc.ServerCredentials | None:
    """TLS (and mTLS with a client CA) from PEM files; None for plaintext."""
    if not cert and not key and not client_ca:
        return None
    if not cert or not key:
        raise ConfigError(f"{what}: a TLS certificate and its key go together")
    ca = _read(client_ca, f"{what} client CA") if client_ca else None
    return grpc.ssl_server_credentials(
        [(_read(key, f"{what} TLS key"), _read(cert, f"{what} TLS certificate"))],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


def tls_mode(cert: str, client_ca: str) -> str:
    """How a listener is secured, for the start-up log line."""
    return "mTLS" if cert and client_ca else "TLS" if cert else "plaintext"


def admin_token(settings: Settings) -> str:
    """The admin token: configured, or read from (or first generated into) its file."""
    if settings.admin_token:
        return settings.admin_token
    path = settings.token_path()
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    log.info("generated an admin token in %s", path)
    return token


def cert_identity(context: grpc.ServicerContext) -> str:
    """The verified client certificate's subject CN, else its first SAN ("" without one: a
    plaintext or server-only TLS listener). Only a handshake that checked the certificate
    against the client CA fills these."""
    try:
        auth = context.auth_context() or {}
    except (AttributeError, ValueError):
        return ""
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        for value in auth.get(key, ()):
            name = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            name = clean_actor(name)
            if name:
                return name
    return ""


def gateway_identity(certified: str, claimed: str) -> str:
    """The id a gateway stream counts under: the Hello's (``claimed``) when no certificate was
    verified (``certified`` empty) or when the certificate names the same gateway; else
    ``<certificate> (claimed <id>)``."""
    if not certified or claimed == certified:
        return claimed
    return f"{certified} (claimed {clean_actor(claimed)[:100]})"


def clean_actor(name: str) -> str:
    """A name fit for one audit line: control characters dropped, at most 200 characters."""
    return "".join(ch for ch in name if ch.isprintable()).strip()[:200]


def caller_actor(context: grpc.ServicerContext, declared: str) -> str:
    """The actor an admin call is audited as: ``alice`` (a verified certificate; with a
    different claim ``alice (declared bob)``), else ``bob (self-declared)`` (a token's caller,
    who could have written any name; ``unknown`` when none)."""
    claim = clean_actor(declared)
    verified = cert_identity(context)
    if verified:
        return verified if claim in ("", verified) else f"{verified}{DECLARED}{claim})"
    return f"{claim or 'unknown'}{SELF_DECLARED}"


class AuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Refuses admin calls without ``authorization: Bearer <token>`` (counted)."""

    def __init__(self, token: str, admin_auth: str, counters: Counter[str]) -> None:
        self._token = token
        self._mtls_only = admin_auth == "mtls"
        self._counters = counters

        def deny(request: Any, context: grpc.ServicerContext) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong admin token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        method: str = handler_call_details.method
        if not method.startswith(ADMIN_PREFIX):
            return continuation(handler_call_details)
        if self._mtls_only:
            # the TLS handshake already required a client certificate signed by
            # admin_tls_client_ca_file (start() refuses mtls without it)
            return continuation(handler_call_details)
        md = dict(handler_call_details.invocation_metadata or ())
        expected = f"Bearer {self._token}"
        if secrets.compare_digest(md.get("authorization", ""), expected):
            return continuation(handler_call_details)
        self._counters["admin_unauthenticated"] += 1
        return self._deny


class CallLimit(grpc.ServerInterceptor):  # type: ignore[misc]
    """At most ``limit`` calls at once of the methods under ``prefix`` (server reflection, which
    needs no token and holds a worker for as long as the caller keeps its stream open): beyond
    that a call is refused at once with RESOURCE_EXHAUSTED, counted ``<counter>``, so that they
    cannot take the workers of the operators' and gateways' calls."""

    def __init__(self, prefix: str, limit: int, counters: Counter[str], counter: str) -> None:
        self._prefix = prefix
        self._slots = threading.BoundedSemaphore(limit)
        self._limit = limit
        self._counters = counters
        self._counter = counter

    def _bounded(self, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            if not self._slots.acquire(blocking=False):
                self._counters[self._counter] += 1
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{self._limit} such calls are open already; try again later",
                )
            try:
                yield from behaviour(request, context)
            finally:
                self._slots.release()

        return run

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not method.startswith(self._prefix):
            return handler
        if handler.stream_stream is not None:
            return handler._replace(stream_stream=self._bounded(handler.stream_stream))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=self._bounded(handler.unary_stream))
        return handler
