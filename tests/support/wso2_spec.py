"""WSO2's Admin REST API v4 spec (../shared/conformance/admin-v4.yaml) as a validator.

Bodies are checked with ``openapi-schema-validator`` (OpenAPI 3.0 schema semantics) against the
spec's own components; the ``type`` discriminator, which JSON-schema validators ignore, is
checked here. One deviation is allowed, and only that one: ``BlockingCondition.conditionValue``
as a string for API, APPLICATION and USER conditions — what WSO2's implementation reads
(``(String) body.getConditionValue()`` in carbon-apimgt) although the spec types it as an
object. Any other error, including any other error on ``conditionValue``, fails.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

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


class AdminSpec:
    def __init__(self, path: Path) -> None:
        self.doc: dict[str, Any] = yaml.safe_load(path.read_text())
        resource = Resource.from_contents(self.doc, default_specification=DRAFT4)
        self._registry: Registry[Any] = Registry().with_resource("urn:admin-v4", resource)
        self._templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$"), p) for p in self.doc["paths"]
        ]
        assert self.doc["servers"][0]["url"].endswith(BASE)

    @property
    def schemas(self) -> dict[str, Any]:
        return self.doc["components"]["schemas"]  # type: ignore[no-any-return]

    def validator(self, schema: str) -> OAS30Validator:
        return OAS30Validator(
            {"$ref": f"urn:admin-v4#/components/schemas/{schema}"}, registry=self._registry
        )

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

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """The spec's (path template, operation) for a request path under the API base."""
        if not path.startswith(BASE):
            return None
        rel = path[len(BASE) :] or "/"
        for rx, template in self._templates:
            if rx.match(rel):
                op = self.doc["paths"][template].get(method.lower())
                return (template, op) if op else None
        return None

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
