"""A local stand-in for WSO2 API Manager's DCR, token endpoint, Publisher, DevPortal and Admin
REST APIs, serving a generated platform (``Platform``: 600 APIs, 2,500 subscriptions by default).

Every request is checked against WSO2's own specs (``wso2_spec.Spec``): the operation must be in
the spec, its query parameters declared there, the bearer token one this server issued with a
scope the operation accepts, and ``X-WSO2-Tenant`` exactly the tenant it serves (absent when it
serves the super tenant). What does not conform is answered as WSO2 would (400/401/403/404) and
recorded in ``violations``; every response body is validated against the operation's response
schema too, and a response off-spec is a violation as well. A test asserts there are none.

Collections are paged as WSO2 pages them (``limit`` default 25, ``offset``, ``pagination.next``
a relative link, empty on the last page). ``slow`` makes calls under a path prefix answer late
(a timeout); ``tokens_valid_for`` makes tokens stop working after that many REST calls (a 401);
``canned`` answers a path with a given status and body (off-spec on purpose, not checked).
``aliases`` maps the bases of older APIM versions (Admin v2/v3, ...) onto the specs, whose
payloads are the same.
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from tests.support.wso2_spec import Spec

ENVIRONMENTS: Final = ("Default", "mobile", "partners")
ATTRIBUTE_CHANNELS: Final = ("web", "batch", "branch")
TIERS: Final = ("Unlimited", "Gold", "Silver", "Bronze")
LIFECYCLES: Final = ("PUBLISHED",) * 7 + ("DEPRECATED", "RETIRED", "CREATED")
INVALID_TOKEN: Final = {
    "code": 900901,
    "message": "Invalid Credentials",
    "description": "Invalid Credentials. Make sure you have provided the correct security "
    "credentials",
}


@dataclass
class FakeApi:
    id: str
    name: str
    version: str
    context: str  # as the Publisher lists it: the context template without a final /{version}
    lifecycle: str
    environments: tuple[str, ...]  # APPROVED deployments (a REJECTED one may be served too)
    gateway_context: str = ""  # what the gateway serves (by construction, for the tests)


@dataclass
class FakeApp:
    id: str
    name: str
    owner: str
    attributes: dict[str, str]
    expected_channel: str  # by construction: the attribute, the one environment, or ""


@dataclass
class FakeSub:
    id: str
    app: FakeApp
    api: FakeApi
    tier: str


@dataclass
class Platform:
    apis: list[FakeApi]
    apps: list[FakeApp]
    subs: list[FakeSub]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def generate_platform(
    apis: int = 600,
    subscriptions: int = 2500,
    apps: int = 400,
    channel_attribute: str = "channel",
    seed: int = 14,
) -> Platform:
    """APIs deployed to one gateway environment (every tenth to two), their contexts listed as
    WSO2 lists them; applications of three
    kinds in turn: with the channel attribute (each subscribed to Api000, whose subscriptions
    span several pages), subscribed only to APIs of one environment, or subscribed to APIs of
    several (no channel)."""
    rng = random.Random(seed)
    api_list = []
    for k in range(apis):
        version = f"{1 + k % 3}.0.0"
        envs = ENVIRONMENTS[k % 3], ENVIRONMENTS[(k + 1) % 3]
        # every 50th API has its version inside the context template: WSO2 lists it as is
        listed, served = (
            (f"/{{version}}/api{k:03d}", f"/{version}/api{k:03d}")
            if k % 50 == 7
            else (f"/api{k:03d}", f"/api{k:03d}/{version}")
        )
        lifecycle = LIFECYCLES[k % len(LIFECYCLES)]
        deployed = envs if k % 10 == 9 else envs[:1]
        api_list.append(
            FakeApi(_uuid(rng), f"Api{k:03d}", version, listed, lifecycle, deployed, served)
        )
    single = {e: [a for a in api_list if a.environments == (e,)] for e in ENVIRONMENTS}
    app_list: list[FakeApp] = []
    sub_list: list[FakeSub] = []
    per_app, extra = divmod(subscriptions, apps)
    for i in range(apps):
        n = per_app + (i < extra)
        kind = i % 3
        owner = f"user{i % 50:02d}"
        if kind == 0:
            channel = ATTRIBUTE_CHANNELS[i % len(ATTRIBUTE_CHANNELS)]
            attrs = {channel_attribute: channel, "External Reference ID": f"ref-{i}"}
            chosen = [api_list[0], *rng.sample(api_list[1:], n - 1)]  # Api000: many pages
        elif kind == 1:
            channel = ENVIRONMENTS[i % 3]
            attrs = {"External Reference ID": f"ref-{i}"} if i % 2 else {}
            chosen = rng.sample(single[channel], n)
        else:
            channel = ""
            attrs = {}
            first = rng.choice(single[ENVIRONMENTS[i % 3]])
            second = rng.choice(single[ENVIRONMENTS[(i + 1) % 3]])
            rest = [a for a in api_list if a not in (first, second)]
            chosen = [first, second, *rng.sample(rest, n - 2)]
        app = FakeApp(_uuid(rng), f"app-{i:03d}", owner, attrs, channel)
        app_list.append(app)
        sub_list.extend(FakeSub(_uuid(rng), app, a, rng.choice(TIERS)) for a in chosen)
    return Platform(api_list, app_list, sub_list)


def _page(items: list[Any], query: dict[str, str], rel: str) -> dict[str, Any]:
    offset = int(query.get("offset", 0))
    limit = int(query.get("limit", 25))
    chunk = items[offset : offset + limit]
    rest = {k: v for k, v in query.items() if k not in ("offset", "limit")}
    extra = "".join(f"&{k}={v}" for k, v in rest.items())
    more = offset + limit < len(items)
    return {
        "count": len(chunk),
        "list": chunk,
        "pagination": {
            "offset": offset,
            "limit": limit,
            "total": len(items),
            "next": f"{rel}?limit={limit}&offset={offset + limit}{extra}" if more else "",
            "previous": f"{rel}?limit={limit}&offset={max(0, offset - limit)}{extra}"
            if offset
            else "",
        },
    }


@dataclass
class FakeApim:
    specs: list[Spec]  # Publisher v4, DevPortal v3, Admin v4
    platform: Platform
    client_id: str = "vigie-inventory"
    client_secret: str = "s3cret-client"
    users: dict[str, str] = field(default_factory=lambda: {"admin": "admin-pass"})
    tenant: str = ""  # "" serves the super tenant: no X-WSO2-Tenant expected
    aliases: dict[str, str] = field(default_factory=dict)  # /api/am/admin/v3 -> /api/am/admin/v4
    slow: dict[str, float] = field(default_factory=dict)  # path prefix -> seconds late
    tokens_valid_for: int | None = None  # REST calls a token works for
    canned: dict[str, tuple[int, Any]] = field(default_factory=dict)  # path -> a broken answer
    created: dict[str, str] = field(default_factory=dict)  # API id -> its createdTime
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # lower-case names
    violations: list[str] = field(default_factory=list)
    tokens: dict[str, set[str]] = field(default_factory=dict)
    clients: dict[str, str] = field(default_factory=dict)  # registered through DCR
    rest_calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _tls: bool = False

    def __post_init__(self) -> None:
        self.clients[self.client_id] = self.client_secret

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"{'https' if self._tls else 'http'}://{host!s}:{port}"

    def start(self, tls: tuple[Path, Path] | None = None) -> FakeApim:
        """Serve on a free loopback port; with ``tls`` (certificate, key) over HTTPS."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:  # quiet
                pass

            def _handle(self, method: str) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                path = urlsplit(self.path).path
                delay = max((s for p, s in fake.slow.items() if path.startswith(p)), default=0)
                if delay:
                    time.sleep(delay)
                with fake.lock:
                    status, doc = fake.handle(
                        method, self.path, {k.lower(): v for k, v in self.headers.items()}, raw
                    )
                body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (a timeout test)
                    pass

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
            self._tls = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ---- the server's logic ----
    def _violation(self, status: int, message: str) -> tuple[int, dict[str, Any]]:
        self.violations.append(message)
        return status, {"code": status, "message": message, "description": message}

    def _basic(self, headers: dict[str, str]) -> tuple[str, str] | None:
        auth = headers.get("authorization", "")
        if not auth.startswith("Basic "):
            return None
        user, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        return user, secret

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        u = urlsplit(raw_path)
        path = u.path
        query = {k: v[-1] for k, v in parse_qs(u.query).items()}
        self.seen.append((method, raw_path, headers))
        if path == "/client-registration/v0.17/register":
            return self.register(method, headers, raw)
        if path == "/oauth2/token":
            return self.token(method, headers, raw)
        for old, new in self.aliases.items():
            if path.startswith(old + "/"):
                path = new + path[len(old) :]
        spec = next((s for s in self.specs if path.startswith(s.base + "/")), None)
        found = spec.operation(method, path) if spec else None
        if spec is None or found is None:
            return self._violation(404, f"{method} {path}: not an operation of the specs")
        template, op = found
        self.rest_calls += 1
        auth = headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        expired = self.tokens_valid_for is not None and self.rest_calls > self.tokens_valid_for
        if token not in self.tokens or expired:
            return 401, INVALID_TOKEN
        if not (self.tokens[token] & spec.scopes(op)):
            return self._violation(403, f"{method} {path}: token lacks the operation's scopes")
        if headers.get("x-wso2-tenant", "") != self.tenant:
            return self._violation(
                400, f"{method} {path}: X-WSO2-Tenant {headers.get('x-wso2-tenant')!r}"
            )
        problems = spec.query_errors(op, query)
        if problems:
            return self._violation(400, f"{method} {raw_path}: {problems}")
        if path in self.canned:  # what a broken WSO2 or a proxy in front of it answers
            return self.canned[path]
        status, body = self.serve(spec, template, path[len(spec.base) :], query)
        problems = spec.response_errors(op, status, body)
        if problems:
            self.violations.append(f"the fake's answer to {method} {raw_path}: {problems[:3]}")
        return status, body

    def register(self, method: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        basic = self._basic(headers)
        if basic is None or self.users.get(basic[0]) != basic[1]:
            return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
        body = json.loads(raw)
        if method != "POST" or not {"clientName", "owner", "grantType"} <= set(body):
            return self._violation(400, f"DCR: bad request {body}")
        cid, secret = secrets.token_hex(8), secrets.token_hex(12)
        self.clients[cid] = secret
        return 200, {"clientId": cid, "clientName": body["clientName"], "clientSecret": secret,
                     "callBackURL": body.get("callbackUrl", ""), "isSaasApplication": True,
                     "appOwner": body["owner"]}  # fmt: skip

    def token(self, method: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        if method != "POST":
            return self._violation(405, "token endpoint: POST only")
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return self._violation(400, "token endpoint: form body expected")
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        basic = self._basic(headers)
        if basic is None or self.clients.get(basic[0]) != basic[1]:
            return 401, {"error": "invalid_client", "error_description": "Client Authentication"
                         " failed."}  # fmt: skip
        grant = form.get("grant_type")
        if grant == "password":
            if self.users.get(form.get("username", "")) != form.get("password"):
                return 400, {"error": "invalid_grant", "error_description": "Authentication "
                             "failed for " + form.get("username", "")}  # fmt: skip
        elif grant != "client_credentials":
            return self._violation(400, f"token endpoint: grant_type {grant}")
        token = secrets.token_hex(16)
        self.tokens[token] = set(form.get("scope", "").split())
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600,
                     "scope": form.get("scope", "")}  # fmt: skip

    # ---- the platform, as the REST APIs show it ----
    def serve(self, spec: Spec, template: str, rel: str, query: dict[str, str]) -> tuple[int, Any]:
        p = self.platform
        if spec.name.startswith("publisher") and template == "/apis":
            infos = [self.api_info(a) | self._created(a) for a in p.apis]
            return 200, _page(infos, query, "/apis")
        if spec.name.startswith("publisher") and template == "/apis/{apiId}/deployments":
            api = next((a for a in p.apis if a.id == rel.split("/")[2]), None)
            if api is None:
                return 404, {"code": 404, "message": "Not Found", "description": "no such API"}
            return 200, {"list": self.deployments(api)}
        if spec.name.startswith("publisher") and template == "/subscriptions":
            subs = [s for s in p.subs if s.api.id == query.get("apiId", s.api.id)]
            return 200, _page([self.subscription(s) for s in subs], query, "/subscriptions")
        if spec.name.startswith("admin") and template == "/applications":
            if query.get("tenantDomain", self.tenant) != self.tenant:
                return 200, _page([], query, "/applications")
            infos = [
                {
                    "applicationId": a.id,
                    "name": a.name,
                    "owner": a.owner,
                    "status": "APPROVED",
                    "groupId": "",
                }
                for a in p.apps
            ]
            return 200, _page(infos, query, "/applications")
        if spec.name.startswith("admin") and template == "/applications/{applicationId}":
            app = next((a for a in p.apps if a.id == rel.split("/")[2]), None)
            if app is None:
                return 404, {"code": 404, "message": "Not Found", "description": "no such app"}
            count = sum(s.app is app for s in p.subs)
            return 200, {"applicationId": app.id, "name": app.name, "throttlingPolicy": "10PerMin",
                         "description": "", "tokenType": "JWT", "status": "APPROVED",
                         "groups": [], "subscriptionCount": count, "attributes": app.attributes,
                         "subscriptionScopes": [], "owner": app.owner}  # fmt: skip
        return self._violation(501, f"GET {spec.base}{rel}: the fake does not implement it")

    def _created(self, a: FakeApi) -> dict[str, Any]:
        return {"createdTime": self.created[a.id]} if a.id in self.created else {}

    @staticmethod
    def api_info(a: FakeApi) -> dict[str, Any]:
        return {"id": a.id, "name": a.name, "context": a.context, "version": a.version,
                "provider": "admin", "type": "HTTP", "lifeCycleStatus": a.lifecycle,
                "hasThumbnail": False, "securityScheme": ["oauth2"], "gatewayVendor": "wso2",
                "gatewayType": "wso2/synapse", "advertiseOnly": False,
                "createdTime": "1700000000000", "updatedTime": "1700000000000"}  # fmt: skip

    @staticmethod
    def deployments(a: FakeApi) -> list[dict[str, Any]]:
        out = [
            {
                "revisionUuid": str(uuid.uuid5(uuid.NAMESPACE_URL, a.id + e)),
                "name": e,
                "status": "APPROVED",
                "vhost": "localhost",
                "displayOnDevportal": True,
                "deployedTime": "2026-11-30T10:00:00Z",
            }
            for e in a.environments
        ]
        if a.lifecycle == "CREATED":  # a deployment WSO2 refused: no environment
            out.append({"revisionUuid": str(uuid.uuid5(uuid.NAMESPACE_URL, a.id)),
                        "name": "staging", "status": "REJECTED", "vhost": "localhost",
                        "displayOnDevportal": False})  # fmt: skip
        return out

    @staticmethod
    def subscription(s: FakeSub) -> dict[str, Any]:
        return {"subscriptionId": s.id, "throttlingPolicy": s.tier,
                "subscriptionStatus": "UNBLOCKED",
                "applicationInfo": {"applicationId": s.app.id, "name": s.app.name,
                                    "subscriber": s.app.owner, "description": "",
                                    "subscriptionCount": 1}}  # fmt: skip
