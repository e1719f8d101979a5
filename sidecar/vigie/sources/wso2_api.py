"""A read-only client of WSO2 API Manager's REST APIs (standard library HTTP only).

Authentication, the way WSO2's own tools do it: an OAuth2 client, either given (client id and
secret: the client-credentials grant) or registered here through DCR
(``POST /client-registration/v0.17/register`` with an admin user's basic credentials, then the
password grant), and a token from ``/oauth2/token`` with the scopes the reads need. Secrets and
tokens are never printed.

The API versions follow the APIM version (``VERSIONS``): 4.0 serves Publisher/DevPortal/Admin
v2, 4.1 Publisher v3, DevPortal v2, Admin v3, 4.2 and later Publisher v4, DevPortal v3, Admin
v4. ``--tenant`` sends ``X-WSO2-Tenant`` on every REST call (WSO2's ``requestedTenant``
header). Collections are paged with ``limit``/``offset`` until ``pagination.next`` is empty.

Every failure is one line naming the call: ``GET /api/am/publisher/v4/apis?offset=25&limit=25:
401 Unauthorized (Invalid Credentials)``; a WSO2 that does not answer in ``timeout`` seconds is
``Wso2Unreachable``.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

from vigie.errors import InputError, VigieError

PAGE_SIZE: Final = 25  # WSO2's default ``limit``
DCR_PATH: Final = "/client-registration/v0.17/register"
TOKEN_PATH: Final = "/oauth2/token"
TENANT_HEADER: Final = "X-WSO2-Tenant"
# Publisher: apim:api_view (APIs, deployments), apim:subscription_view (subscriptions);
# Admin: apim:admin_application_view (4.2+) or apim:admin (every version) for applications.
SCOPES: Final = "apim:api_view apim:subscription_view apim:admin_application_view apim:admin"
# APIM minor version -> (Publisher, DevPortal, Admin) REST API versions
VERSIONS: Final = {0: ("v2", "v2", "v2"), 1: ("v3", "v2", "v3"), 2: ("v4", "v3", "v4")}
DEFAULT_TIMEOUT_S: Final = 30.0
MAX_PAGES: Final = 100_000  # a WSO2 whose ``next`` never ends is refused, not followed forever


class Wso2Error(VigieError):
    """WSO2 answered a call with an error, or with something that is not its API."""

    exit_code = 4


class Wso2Unreachable(Wso2Error):
    """WSO2 could not be reached, or did not answer in time."""

    exit_code = 5


def api_versions(apim_version: str) -> tuple[str, str, str]:
    """``"4.2"`` -> ``("v4", "v3", "v4")`` (Publisher, DevPortal, Admin); ValueError if not 4.x."""
    m = re.fullmatch(r"\s*4\.(\d+)(?:\.\d+)*\s*", apim_version)
    if not m:
        raise ValueError(f"APIM version {apim_version!r}: expected 4.0, 4.1, 4.2, ... 4.6")
    return VERSIONS[min(int(m.group(1)), 2)]


@dataclass(frozen=True, slots=True)
class Login:
    """How to get a token: a client (``client_id``) or an admin user to register one (DCR)."""

    client_id: str = ""
    client_secret: str = ""
    username: str = ""
    password: str = ""

    def __post_init__(self) -> None:
        if not (self.client_id and self.client_secret) and not (self.username and self.password):
            raise ValueError("either a client id and secret or a user name and password")

    def __repr__(self) -> str:  # never show a secret
        who = f"client {self.client_id!r}" if self.client_id else f"user {self.username!r} (DCR)"
        return f"Login({who})"


def read_secret_file(path: str, what: str) -> str:
    """The secret a file holds (stripped); ``InputError`` naming ``what`` if unreadable or empty."""
    try:
        with open(path) as f:
            secret = f.read().strip()
    except OSError as exc:
        raise InputError(f"{what} file {path}: {exc.strerror or exc}") from None
    if not secret:
        raise InputError(f"{what} file {path} is empty")
    return secret


def login(client_id: str, client_secret_file: str, username: str, password_file: str) -> Login:
    """A client (id and secret file) or an admin user (name and password file, for DCR)."""
    if client_id:
        if not client_secret_file:
            raise InputError("a client id needs its client secret file")
        return Login(client_id, read_secret_file(client_secret_file, "client secret"))
    if username:
        if not password_file:
            raise InputError(f"user {username!r} needs a password file")
        return Login(username=username, password=read_secret_file(password_file, "password"))
    raise InputError(
        "no WSO2 credentials: give a client id and its secret file, or an admin user name "
        "and its password file (a client is then registered through DCR)"
    )


@dataclass(frozen=True, slots=True)
class Connection:
    url: str  # https://apim:9443
    login: Login
    tenant: str = ""
    apim_version: str = "4.2"
    ca_file: str | None = None
    insecure: bool = False
    timeout: float = DEFAULT_TIMEOUT_S


def _ssl_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _why(raw: bytes, limit: int = 200) -> str:
    """WSO2's error body in a few words (its ``description``, ``message`` or OAuth2 error)."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        for key in ("description", "message", "error_description", "error"):
            if isinstance(doc.get(key), str) and doc[key]:
                text = doc[key]
                break
    text = " ".join(text.split())
    return text[:limit] or "no body"


def _status(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


class Wso2Client:
    """GETs on the Publisher and Admin REST APIs of one WSO2, with one token."""

    def __init__(self, conn: Connection) -> None:
        u = urllib.parse.urlsplit(conn.url)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise ValueError(f"{conn.url!r} is not an http(s) URL")
        self.conn = conn
        self.origin = f"{u.scheme}://{u.netloc}"
        publisher, devportal, admin = api_versions(conn.apim_version)
        self.publisher = f"/api/am/publisher/{publisher}"
        self.devportal = f"/api/am/devportal/{devportal}"
        self.admin = f"/api/am/admin/{admin}"
        try:
            self._ctx = _ssl_context(conn.ca_file, conn.insecure)
        except OSError as exc:  # ssl.SSLError too: not a PEM bundle
            raise InputError(f"CA file {conn.ca_file}: {exc.strerror or exc}") from None
        self._token = ""
        self.calls = 0

    # ---- HTTP ----
    def _send(
        self, method: str, target: str, headers: dict[str, str], data: bytes | None = None
    ) -> tuple[int, bytes]:
        req = urllib.request.Request(
            self.origin + target, data=data, method=method, headers=headers
        )
        self.calls += 1
        try:
            with urllib.request.urlopen(req, timeout=self.conn.timeout, context=self._ctx) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()
        except TimeoutError:
            raise self._timeout(method, target) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise self._timeout(method, target) from None
            raise Wso2Unreachable(
                f"{method} {self.origin}{target}: cannot connect ({reason})"
            ) from None

    def _timeout(self, method: str, target: str) -> Wso2Unreachable:
        return Wso2Unreachable(
            f"{method} {self.origin}{target}: no answer in {self.conn.timeout:g} s "
            "(raise the timeout, or check that WSO2 is up)"
        )

    def _json(self, method: str, target: str, status: int, raw: bytes) -> Any:
        if status != 200:
            raise Wso2Error(f"{method} {target}: {_status(status)} ({_why(raw)})")
        try:
            return json.loads(raw)
        except ValueError:
            raise Wso2Error(f"{method} {target}: the answer is not JSON ({_why(raw)})") from None

    # ---- authentication ----
    def _register(self) -> tuple[str, str]:
        """DCR: an OAuth2 client owned by the admin user; (client id, client secret)."""
        login = self.conn.login
        basic = base64.b64encode(f"{login.username}:{login.password}".encode()).decode()
        body = {
            "callbackUrl": "www.google.lk",  # what WSO2's apictl sends; no redirect is used
            "clientName": "vigie_inventory",
            "owner": login.username,
            "grantType": "password refresh_token",
            "saasApp": True,
        }
        headers = {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        status, raw = self._send("POST", DCR_PATH, headers, json.dumps(body).encode())
        if status not in (200, 201):
            raise Wso2Error(
                f"POST {DCR_PATH} as {login.username!r}: {_status(status)} ({_why(raw)})"
            )
        doc = self._json("POST", DCR_PATH, 200, raw)
        if not (isinstance(doc, dict) and doc.get("clientId") and doc.get("clientSecret")):
            raise Wso2Error(f"POST {DCR_PATH}: no clientId/clientSecret in the answer")
        return str(doc["clientId"]), str(doc["clientSecret"])

    def token(self) -> str:
        if self._token:
            return self._token
        login = self.conn.login
        if login.client_id:
            client_id, secret = login.client_id, login.client_secret
            form = {"grant_type": "client_credentials", "scope": SCOPES}
        else:
            client_id, secret = self._register()
            form = {
                "grant_type": "password",
                "username": login.username,
                "password": login.password,
                "scope": SCOPES,
            }
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        headers = {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        data = urllib.parse.urlencode(form).encode()
        status, raw = self._send("POST", TOKEN_PATH, headers, data)
        if status != 200:
            raise Wso2Error(
                f"POST {TOKEN_PATH} ({form['grant_type']} grant, client {client_id!r}): "
                f"{_status(status)} ({_why(raw)})"
            )
        doc = self._json("POST", TOKEN_PATH, status, raw)
        if not (isinstance(doc, dict) and isinstance(doc.get("access_token"), str)):
            raise Wso2Error(f"POST {TOKEN_PATH}: no access_token in the answer")
        self._token = doc["access_token"]
        return self._token

    # ---- reads ----
    def get(self, path: str, params: dict[str, str | int] | None = None) -> Any:
        """GET a REST resource (``path`` under the origin, e.g. ``/api/am/admin/v4/...``)."""
        target = path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        if self.conn.tenant:
            headers[TENANT_HEADER] = self.conn.tenant
        status, raw = self._send("GET", target, headers)
        return self._json("GET", target, status, raw)

    def paged(
        self, path: str, params: dict[str, str | int] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a WSO2 list (``{count, list, pagination}``), page after page."""
        offset = 0
        for _ in range(MAX_PAGES):
            query: dict[str, str | int] = {**(params or {}), "offset": offset, "limit": PAGE_SIZE}
            doc = self.get(path, query)
            where = f"GET {path}?{urllib.parse.urlencode(query)}"
            items = doc.get("list") if isinstance(doc, dict) else None
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise Wso2Error(f"{where}: the answer has no list of objects")
            yield from items
            offset += len(items)
            page = doc.get("pagination")
            if not items:
                return
            if isinstance(page, dict):
                total = page.get("total")
                if not page.get("next") or (isinstance(total, int) and offset >= total):
                    return
            elif len(items) < PAGE_SIZE:
                return
        raise Wso2Error(f"GET {path}: more than {MAX_PAGES} pages; refusing to go on")
