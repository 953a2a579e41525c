"""The OpenAPI document against the routes the app really registers, both ways."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import openapi_spec_validator  # type: ignore[import-untyped]
import pytest
from aiohttp import web
from pydantic import SecretStr

from herald.services.api.app import STATIC, create_app
from herald.services.api.openapi import build_spec
from herald.shared.infra.ops_server import Health
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings

OPEN = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/",
    *(f"/static/{p.name}" for p in STATIC.iterdir() if p.suffix in (".js", ".css")),
    "/publishing/connections/oauth/{platform}/callback",  # the browser, back from the platform
}


@pytest.fixture
async def app() -> AsyncIterator[web.Application]:
    # Building the app does no I/O: nothing here needs the stack.
    rt = Runtime.build(Settings(secret_key=SecretStr("unit-test")))
    yield create_app(rt, Health())
    await rt.close()


def registered(app: web.Application) -> set[tuple[str, str]]:
    # aiohttp adds HEAD beside the ops server's GET routes; HEAD is GET without a body.
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


def documented(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, ops in spec["paths"].items() for method in ops}


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]


async def test_every_route_is_documented_and_every_documented_route_exists(
    app: web.Application,
) -> None:
    spec = build_spec()
    assert registered(app) - documented(spec) == set(), "routes missing from the spec"
    assert documented(spec) - registered(app) == set(), "spec operations without a route"


def test_the_routes_of_the_design_are_all_there() -> None:
    expected = {
        ("post", "/publishing/jobs"),
        ("get", "/publishing/jobs"),
        ("get", "/publishing/jobs/{id}"),
        ("patch", "/publishing/jobs/{id}"),
        ("get", "/publishing/jobs/{id}/attempts"),
        ("post", "/publishing/jobs/{id}/retry"),
        ("post", "/publishing/jobs/{id}/cancel"),
        ("post", "/publishing/connections"),
        ("get", "/publishing/connections"),
        ("get", "/publishing/connections/{id}"),
        ("patch", "/publishing/connections/{id}"),
        ("delete", "/publishing/connections/{id}"),
        ("get", "/publishing/dlq"),
        ("post", "/publishing/dlq/redrive"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
        ("get", "/"),
    }
    assert expected <= documented(build_spec())


def test_every_api_operation_declares_its_error_statuses_with_the_error_body() -> None:
    spec = build_spec()
    for method, path, op in operations(spec):
        statuses = set(op["responses"])
        assert statuses, (method, path)
        for status, response in op["responses"].items():
            assert response["description"], (method, path, status)
            if status.startswith("3"):  # a redirect: where to, and no body
                assert "Location" in response["headers"], (method, path, status)
                continue
            assert response.get("content"), (method, path, status)
            if status.startswith(("4", "5")) and path not in OPEN:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
        if path in OPEN:
            assert op["security"] == [], (method, path)
            continue
        assert {"401", "500", "503"} <= statuses, (method, path)
        assert "Retry-After" in op["responses"]["503"]["headers"], (method, path)
        if "requestBody" in op:
            assert {"400", "422"} <= statuses, (method, path)
        if "{id}" in path:
            assert "404" in statuses, (method, path)
        if method == "get" and path.endswith(("jobs", "dlq", "connections")):
            assert "422" in statuses, (method, path)  # bad filter or limit


def test_specific_statuses_of_the_design() -> None:
    paths = build_spec()["paths"]
    assert {"200", "201", "409", "422"} <= set(paths["/publishing/jobs"]["post"]["responses"])
    for action in ("retry", "cancel"):
        assert "409" in paths[f"/publishing/jobs/{{id}}/{action}"]["post"]["responses"]
    assert "409" in paths["/publishing/jobs/{id}"]["patch"]["responses"]
    assert "201" in paths["/publishing/connections"]["post"]["responses"]
    post = paths["/publishing/jobs"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in post["parameters"])
    retry = paths["/publishing/jobs/{id}/retry"]["post"]
    assert retry["requestBody"]["required"] is False  # an empty body is allowed


def test_path_parameters_are_declared_and_refs_resolve() -> None:
    spec = build_spec()
    for method, path, op in operations(spec):
        names = set(re.findall(r"{(\w+)}", path))
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert names == declared, (method, path)
    schemas = spec["components"]["schemas"]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                assert node["$ref"].removeprefix("#/components/schemas/") in schemas, node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)


def test_connection_out_never_carries_a_token() -> None:
    schemas = build_spec()["components"]["schemas"]
    assert "access_token" not in schemas["Connection"]["properties"]
    assert schemas["ConnectionIn"]["properties"]["access_token"]["writeOnly"] is True


def test_the_document_is_valid_openapi_3_1() -> None:
    openapi_spec_validator.validate(build_spec())  # a dev dependency: never skipped
