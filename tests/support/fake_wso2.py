"""A local stand-in for WSO2 API Manager's token endpoint and Admin REST API v4.

Every request is checked against WSO2's own spec (``admin-v4.yaml``): the path and method must
be an operation of the spec, the bearer token one this server issued with a scope the operation
accepts, and the body valid for the operation's schema (``wso2_spec.AdminSpec``). What does not
conform is answered as WSO2 would (400/401/403/404) and recorded in ``violations``; a test that
applies policies asserts there are none. Throttling policies are kept by name (a second POST of
a name answers 409, as WSO2 does) and deny policies by condition.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.wso2_spec import BASE, AdminSpec


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeWso2:
    spec: AdminSpec
    client_id: str
    client_secret: str
    requests: list[Seen] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    tokens: dict[str, set[str]] = field(default_factory=dict)
    policies: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # path -> id ->
    denies: dict[str, dict[str, Any]] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeWso2:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:  # quiet
                pass

            def _reply(self, status: int, doc: Any) -> None:
                raw = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _handle(self, method: str) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                with fake.lock:
                    status, doc = fake.handle(method, self.path, dict(self.headers), raw)
                self._reply(status, doc)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        path = urlsplit(raw_path).path
        body: Any = None
        if raw:
            try:
                body = json.loads(raw) if "json" in headers.get("Content-Type", "") else raw
            except ValueError:
                return self._violation(400, f"{method} {path}: body is not JSON")
        self.requests.append(Seen(method, path, headers, body))
        if path == "/oauth2/token":
            return self.token(method, headers, raw)
        found = self.spec.operation(method, path)
        if found is None:
            return self._violation(404, f"{method} {path}: not an operation of the spec")
        template, op = found
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return self._violation(401, f"{method} {path}: no valid bearer token")
        if not (self.tokens[auth[7:]] & self.spec.scopes(op)):
            return self._violation(403, f"{method} {path}: token lacks the operation's scopes")
        schema = self.spec.body_schema(op)
        if schema is not None:
            if not headers.get("Content-Type", "").startswith("application/json"):
                return self._violation(415, f"{method} {path}: Content-Type is not JSON")
            errors = self.spec.errors(schema, body)
            if errors:
                return self._violation(400, f"{method} {path} as {schema}: {errors}")
        return self.admin(method, path[len(BASE) :], template, body)

    def token(self, method: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        if method != "POST":
            return self._violation(405, "token endpoint: POST only")
        if not headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return self._violation(400, "token endpoint: form body expected")
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return self._violation(400, f"token endpoint: grant_type {form.get('grant_type')}")
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if headers.get("Authorization") != f"Basic {expected}":
            return 401, {"error": "invalid_client", "error_description": "Client Authentication"
                         " failed."}  # fmt: skip
        token = secrets.token_hex(16)
        scopes = set(form.get("scope", "").split())
        self.tokens[token] = scopes
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600,
                     "scope": " ".join(sorted(scopes))}  # fmt: skip

    def admin(self, method: str, rel: str, template: str, body: Any) -> tuple[int, Any]:
        if template == "/throttling/deny-policies" and method == "POST":
            key = f"{body['conditionType']}:{body['conditionValue']}"
            if key in self.denies:
                return 409, {"code": 409, "message": "Resource Already Exists"}
            self.denies[key] = body | {"conditionId": str(uuid.uuid4())}
            return 201, self.denies[key]
        if template.startswith("/throttling/policies/") and template.count("/") == 3:
            store = self.policies.setdefault(template, {})
            if method == "GET":
                items = list(store.values())
                return 200, {"count": len(items), "list": items}
            if method == "POST":
                if any(p["policyName"] == body["policyName"] for p in store.values()):
                    return 409, {"code": 409, "message": "Resource Already Exists",
                                 "description": f"{body['policyName']} already exists"}  # fmt: skip
                pid = str(uuid.uuid4())
                store[pid] = body | {"policyId": pid, "isDeployed": True}
                return 201, store[pid]
        if template.endswith("/{policyId}") and method == "PUT":
            store = self.policies.get(template.rsplit("/", 1)[0], {})
            pid = rel.rsplit("/", 1)[1]
            if pid not in store:
                return 404, {"code": 404, "message": "Not Found"}
            store[pid] = body | {"policyId": pid, "isDeployed": True}
            return 200, store[pid]
        return self._violation(501, f"{method} {rel}: the fake does not implement it")
