"""``vigie policies apply``: send WSO2 Admin REST API v4 payloads to a WSO2 API Manager.

Authentication is OAuth2 client credentials against WSO2's token endpoint (``/oauth2/token``,
HTTP Basic with the client id and secret of an application registered for the Admin API, e.g.
through DCR). The client secret comes from a file or an environment variable, is sent only to
the token endpoint, and is never printed or logged; neither is the access token. A dry run
prints every request instead of sending it.

A policy whose name already exists answers 409; with ``update_existing`` the policy is looked
up by name (GET on its collection) and replaced (PUT on ``/{policyId}``).

``apply`` sends each distinct policy once (several suggestions may share one) and hands every
outcome to a callback, which records it in the suggestions' audit trail.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from vigie.errors import VigieError
from vigie.policy.wso2 import BLOCKING_SCHEMA, AdminRequest

DEFAULT_SCOPES: Final = (
    "apim:tier_view apim:tier_manage apim:admin_tier_view apim:admin_tier_manage apim:bl_manage"
)


class ApplyError(VigieError):
    """WSO2 refused the credentials or could not be reached (never carries a secret)."""

    exit_code = 4


@dataclass(frozen=True, slots=True)
class Credentials:
    client_id: str
    client_secret: str
    source: str  # where the secret came from, for messages ("file /x", "env VAR")

    def __repr__(self) -> str:  # never show the secret
        return f"Credentials(client_id={self.client_id!r}, secret from {self.source})"


@dataclass(frozen=True, slots=True)
class Outcome:
    request: AdminRequest
    method: str
    url: str
    status: int
    message: str
    ok: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.request.schema,
            "method": self.method,
            "url": self.url,
            "status": self.status,
            "message": self.message,
            "ok": self.ok,
        }


@dataclass(frozen=True, slots=True)
class PolicyToSend:
    """One request, and the suggestions whose WSO2 payload it is."""

    suggestions: list[str]
    request: AdminRequest


@dataclass(slots=True)
class ApplyReport:
    """What ``apply`` did: one result per request sent, and how many failed."""

    results: list[dict[str, Any]] = field(default_factory=list)
    failed: int = 0


def default_token_url(admin_url: str) -> str:
    """WSO2's token endpoint on the Admin API's host; ``ValueError`` if not an http(s) URL."""
    u = urllib.parse.urlsplit(admin_url)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ValueError(f"{admin_url!r} is not an http(s) URL")
    return f"{u.scheme}://{u.netloc}/oauth2/token"


def distinct(requests: Iterable[tuple[str, AdminRequest]]) -> list[PolicyToSend]:
    """(suggestion id, request) pairs -> one request per distinct policy, first seen first."""
    unique: dict[str, PolicyToSend] = {}
    for sid, r in requests:
        key = json.dumps([r.schema, r.path, r.payload], sort_keys=True)
        unique.setdefault(key, PolicyToSend([], r)).suggestions.append(sid)
    return list(unique.values())


def _ssl_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    if insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=ca_file)


class AdminApi:
    """A minimal client of WSO2's Admin REST API v4 (standard library HTTP only)."""

    def __init__(
        self,
        admin_url: str,
        token_url: str,
        creds: Credentials,
        scopes: str = DEFAULT_SCOPES,
        ca_file: str | None = None,
        insecure: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.admin_url = admin_url.rstrip("/")
        self.token_url = token_url
        self.creds = creds
        self.scopes = scopes
        self.timeout = timeout
        self._ctx = _ssl_context(ca_file, insecure)
        self._token: str | None = None

    def _open(self, req: urllib.request.Request) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._ctx) as resp:
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApplyError(f"{req.full_url}: cannot connect ({reason})") from None

    def token(self) -> str:
        if self._token:
            return self._token
        basic = base64.b64encode(
            f"{self.creds.client_id}:{self.creds.client_secret}".encode()
        ).decode()
        body = urllib.parse.urlencode(
            {"grant_type": "client_credentials", "scope": self.scopes}
        ).encode()
        req = urllib.request.Request(
            self.token_url,
            data=body,
            method="POST",
            headers={
                "Authorization": f"Basic {basic}",
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )
        status, raw = self._open(req)
        if status != 200:
            raise ApplyError(
                f"token endpoint {self.token_url} answered {status} for client "
                f"{self.creds.client_id!r} ({_short(raw)})"
            )
        try:
            token = str(json.loads(raw)["access_token"])
        except (ValueError, KeyError, TypeError):
            raise ApplyError(
                f"token endpoint {self.token_url}: no access_token in its answer"
            ) from None
        self._token = token
        return token

    def call(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(
            self.admin_url + path, data=data, method=method, headers=headers
        )
        return self._open(req)

    def send(self, r: AdminRequest, update_existing: bool = False) -> Outcome:
        status, raw = self.call(r.method, r.path, r.payload)
        url = self.admin_url + r.path
        if status in (200, 201):
            return Outcome(r, r.method, url, status, "created", True)
        if status == 409 and r.schema == BLOCKING_SCHEMA:
            return Outcome(r, r.method, url, status, "the deny policy exists already", True)
        if status == 409 and update_existing and r.policy_name:
            return self._update(r)
        return Outcome(r, r.method, url, status, _short(raw), False)

    def _update(self, r: AdminRequest) -> Outcome:
        status, raw = self.call("GET", r.path, None)
        if status != 200:
            return Outcome(r, "GET", self.admin_url + r.path, status, _short(raw), False)
        try:
            items = json.loads(raw).get("list", [])
            ids = [i["policyId"] for i in items if i.get("policyName") == r.policy_name]
        except (ValueError, AttributeError, KeyError, TypeError):
            ids = []
        if not ids:
            msg = f"409 but no policy named {r.policy_name} in the list"
            return Outcome(r, "GET", self.admin_url + r.path, 409, msg, False)
        path = f"{r.path}/{urllib.parse.quote(ids[0])}"
        status, raw = self.call("PUT", path, r.payload)
        ok = status == 200
        msg = "updated" if ok else _short(raw)
        return Outcome(r, "PUT", self.admin_url + path, status, msg, ok)


def apply(
    api: AdminApi,
    batch: Iterable[PolicyToSend],
    update_existing: bool,
    record: Callable[[str, Outcome], None],
) -> ApplyReport:
    """Send each request; ``record(suggestion id, outcome)`` for each of its suggestions."""
    report = ApplyReport()
    for p in batch:
        o = api.send(p.request, update_existing)
        report.failed += not o.ok
        report.results.append(o.to_json() | {"suggestions": p.suggestions})
        for sid in p.suggestions:
            record(sid, o)
    return report


def _short(raw: bytes, limit: int = 300) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        doc = json.loads(text)
        if isinstance(doc, dict):
            text = str(doc.get("description") or doc.get("message") or doc.get("error") or text)
    except ValueError:
        pass
    return text[:limit]


def dry_run_lines(
    admin_url: str,
    token_url: str,
    creds_source: str,
    client_id: str,
    scopes: str,
    requests: list[AdminRequest],
) -> list[str]:
    """What ``apply`` would send, secrets masked."""
    lines = [
        f"POST {token_url}",
        "  Authorization: Basic <client id and secret, "
        f"client id {client_id!r}, secret from {creds_source}>",
        f"  grant_type=client_credentials&scope={scopes}",
    ]
    base = admin_url.rstrip("/")
    for r in requests:
        lines.append(f"{r.method} {base}{r.path}")
        lines.append("  Authorization: Bearer <access token>")
        lines.append("  Content-Type: application/json")
        lines.append("  " + json.dumps(r.payload, indent=2).replace("\n", "\n  "))
    return lines


def dry_run_json(admin_url: str, token_url: str, batch: Iterable[PolicyToSend]) -> dict[str, Any]:
    """What ``apply`` would send, as JSON (no credentials in it)."""
    base = admin_url.rstrip("/")
    return {
        "dry_run": True,
        "token_url": token_url,
        "requests": [
            {
                "suggestions": p.suggestions,
                "method": p.request.method,
                "url": base + p.request.path,
                "body": p.request.payload,
            }
            for p in batch
        ],
    }


def read_secret(
    secret_file: str | None, secret_env: str, getenv: Callable[[str], str | None]
) -> tuple[str, str]:
    """(secret, where it came from): the file wins over the environment variable."""
    if secret_file:
        try:
            with open(secret_file) as f:
                secret = f.read().strip()
        except OSError as exc:
            raise ApplyError(f"client secret file {secret_file}: {exc.strerror or exc}") from None
        if not secret:
            raise ApplyError(f"client secret file {secret_file} is empty")
        return secret, f"file {secret_file}"
    secret = getenv(secret_env) or ""
    if not secret:
        raise ApplyError(
            f"no client secret: pass --client-secret-file FILE or set {secret_env} "
            "(never on the command line)"
        )
    return secret, f"env {secret_env}"
