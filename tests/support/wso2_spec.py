"""WSO2's REST API specs (../shared/conformance: admin-v4.yaml, publisher-v4.yaml,
devportal-v3.yaml) as validators.

Bodies are checked with ``openapi-schema-validator`` (OpenAPI 3.0 schema semantics) against the
spec's own components: request bodies (``errors``), response bodies (``response_errors``) and
query parameters (``query_errors``: only the parameters the operation declares). For the Admin
API the ``type`` discriminator, which JSON-schema validators ignore, is checked here. One
deviation is allowed, and only that one: ``BlockingCondition.conditionValue`` as a string for
API, APPLICATION and USER conditions — what WSO2's implementation reads
(``(String) body.getConditionValue()`` in carbon-apimgt) although the spec types it as an
object. Any other error, including any other error on ``conditionValue``, fails.

The specs are read with YAML timestamps left as strings (the Publisher spec's examples hold
dates such as ``2019-02-31`` that a date parser refuses).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

BASE: Final = "/api/am/admin/v4"
DISCRIMINATED: Final = (
    "ApplicationThrottlePolicy",
    "SubscriptionThrottlePolicy",
    "AdvancedThrottlePolicy",
)
STRING_CONDITIONS: Final = ("API", "APPLICATION", "USER")


class _NoDates(yaml.SafeLoader):
    pass


_NoDates.yaml_implicit_resolvers = {
    k: [r for r in v if r[0] != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class Spec:
    """One WSO2 REST API spec; ``base`` is its server path (``/api/am/publisher/v4``)."""

    def __init__(self, path: Path) -> None:
        self.doc: dict[str, Any] = yaml.load(path.read_text(), _NoDates)
        self.name = path.stem
        self.base = urlsplit(self.doc["servers"][0]["url"]).path
        resource = Resource.from_contents(self.doc, default_specification=DRAFT4)
        self._registry: Registry[Any] = Registry().with_resource(f"urn:{self.name}", resource)
        self._validators: dict[str, OAS30Validator] = {}
        self._templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$"), p)
            for p in sorted(self.doc["paths"], key=lambda p: p.count("{"))  # literal paths first
        ]

    @property
    def schemas(self) -> dict[str, Any]:
        return self.doc["components"]["schemas"]  # type: ignore[no-any-return]

    def validator(self, schema: str) -> OAS30Validator:
        if schema not in self._validators:
            self._validators[schema] = OAS30Validator(
                {"$ref": f"urn:{self.name}#/components/schemas/{schema}"}, registry=self._registry
            )
        return self._validators[schema]

    def errors(self, schema: str, body: Any) -> list[str]:
        """Every problem of ``body`` as ``schema``."""
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
            for e in self.validator(schema).iter_errors(body)
        ]

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """The spec's (path template, operation) for a request path under the API base."""
        if not path.startswith(self.base):
            return None
        rel = path[len(self.base) :] or "/"
        for rx, template in self._templates:
            if rx.match(rel):
                op = self.doc["paths"][template].get(method.lower())
                return (template, op) if op else None
        return None

    def _deref(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            *_, section, name = node["$ref"].split("/")
            node = self.doc["components"][section][name]
        return node

    def parameters(self, op: dict[str, Any]) -> list[dict[str, Any]]:
        return [self._deref(p) for p in op.get("parameters", [])]

    def query_errors(self, op: dict[str, Any], query: dict[str, str]) -> list[str]:
        """Query parameters the operation does not declare, or whose value is not its type."""
        declared = {p["name"]: p for p in self.parameters(op) if p.get("in") == "query"}
        problems = []
        for name, value in query.items():
            if name not in declared:
                problems.append(f"query parameter {name!r} is not in the spec")
            elif declared[name].get("schema", {}).get("type") == "integer" and not re.fullmatch(
                r"\d+", value
            ):
                problems.append(f"query parameter {name}={value!r} is not an integer")
        return problems

    def response_schema(self, op: dict[str, Any], status: int) -> str | None:
        responses = op.get("responses", {})
        answer = responses.get(status, responses.get(str(status)))
        if answer is None:
            return None
        content = self._deref(answer).get("content", {})
        ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
        return ref.rsplit("/", 1)[-1] or None

    def response_errors(self, op: dict[str, Any], status: int, body: Any) -> list[str]:
        """Problems of a response: a status the operation does not list, or a body off-schema."""
        schema = self.response_schema(op, status)
        responses = op.get("responses", {})
        if status not in responses and str(status) not in responses:
            return [f"status {status} is not a response of the operation"]
        return self.errors(schema, body) if schema else []

    @staticmethod
    def body_schema(op: dict[str, Any]) -> str | None:
        content = op.get("requestBody", {}).get("content", {})
        ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
        return ref.rsplit("/", 1)[-1] or None

    @staticmethod
    def scopes(op: dict[str, Any]) -> set[str]:
        out: set[str] = set()
        for sec in op.get("security", []):
            for scopes in sec.values():
                out |= set(scopes)
        return out


class AdminSpec(Spec):
    """The Admin REST API v4, with its discriminator and its one documented deviation."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        assert self.base == BASE

    def errors(self, schema: str, body: Any) -> list[str]:
        """Every problem of ``body`` as ``schema``: spec errors, then the discriminator."""
        problems = []
        for e in self.validator(schema).iter_errors(body):
            where = list(e.absolute_path)
            if (
                schema == "BlockingCondition"
                and where == ["conditionValue"]
                and e.validator == "type"
                and isinstance(body, dict)
                and body.get("conditionType") in STRING_CONDITIONS
                and isinstance(body.get("conditionValue"), str)
            ):
                continue  # the one documented deviation (see the module docstring)
            problems.append(f"{'/'.join(map(str, where)) or '(body)'}: {e.message}")
        if schema in DISCRIMINATED and isinstance(body, dict) and body.get("type") != schema:
            problems.append(f"type: discriminator is {body.get('type')!r}, expected {schema!r}")
        return problems
