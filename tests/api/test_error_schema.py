"""Every error the API answers has one shape, and the OpenAPI schema it publishes says so: each
4xx/5xx of each operation is documented as ``Problem``, and real error bodies (FastAPI's own
422s, the routes' 404/409/422, admin's 401/503, an unreadable deployment's 503, Starlette's
405) validate against the published schema of the operation and status that produced them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import make_client
from tests.api.dataset import ADMIN_TOKEN, Dataset

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _check(spec: dict[str, Any], path: str, method: str, response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    schema = spec["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    # Resolve "#/components/..." against the whole document.
    jsonschema.validate(response.json(), {**schema, "components": spec["components"]})


def test_every_error_status_is_documented_as_problem(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
            assert "422" in errors, (method, path)
            for status, response in errors.items():
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path, status)


def test_real_error_bodies_validate_against_the_published_schema(
    client: TestClient, dataset: Dataset, tmp_path: Path
) -> None:
    spec = client.get("/openapi.json").json()
    device = "sol-hk-rooftops-0001"
    cases: list[tuple[str, str, str, int, dict[str, Any]]] = [
        # FastAPI's own validation (query, path, body), rewritten by our handler.
        ("/v1/readings", "/v1/readings?limit=0", "get", 422, {}),
        ("/v1/epochs/{number}", "/v1/epochs/abc", "get", 422, {}),
        ("/v1/epochs/{number}", f"/v1/epochs/{2**63}", "get", 422, {}),
        ("/v1/admin/devices", "/v1/admin/devices", "post", 422, {"json": {"asset": 5}, "headers": AUTH}),
        ("/v1/admin/devices", "/v1/admin/devices", "post", 422, {"content": b"{not json", "headers": AUTH}),
        (
            "/v1/admin/devices",
            "/v1/admin/devices",
            "post",
            422,
            {"content": b"\xff\xfe\x00", "headers": {**AUTH, "content-type": "application/json"}},
        ),
        # The routes' own errors.
        ("/v1/readings", "/v1/readings?cursor=xyz", "get", 422, {}),
        ("/v1/consistency", "/v1/consistency?from=1", "get", 422, {}),
        ("/v1/devices/{device_id}", "/v1/devices/sol-nowhere-0001", "get", 404, {}),
        ("/v1/readings/{log_index}/bundle", "/v1/readings/1000/bundle", "get", 409, {}),
        ("/v1/export/{directory}/{name}", "/v1/export/epoch-1/leaves", "get", 404, {}),
        ("/v1/admin/devices/{device_id}/revoke", f"/v1/admin/devices/{device}/revoke", "post", 401, {}),
        (
            "/v1/admin/devices/{device_id}/revoke",
            "/v1/admin/devices/sol-nowhere-0001/revoke",
            "post",
            404,
            {"headers": AUTH},
        ),
    ]
    for path, url, method, status, kwargs in cases:
        _check(spec, path, method, client.request(method.upper(), url, **kwargs), status)

    with make_client(dataset.url, deployment=dataset.deployment_path, admin_token=None) as disabled:
        _check(spec, "/v1/admin/devices", "post", disabled.post("/v1/admin/devices", json={}), 503)
    broken = tmp_path / "deployment.json"
    broken.write_text('{"chainId": 1}')
    with make_client(dataset.url, deployment=broken) as unreadable:
        _check(spec, "/v1/epochs", "get", unreadable.get("/v1/epochs"), 503)
        _check(spec, "/v1/chain", "get", unreadable.get("/v1/chain"), 503)


@pytest.mark.parametrize(("method", "url"), [("DELETE", "/v1/devices"), ("GET", "/v1/admin/devices")])
def test_starlette_errors_have_the_same_shape(client: TestClient, method: str, url: str) -> None:
    spec = client.get("/openapi.json").json()
    response = client.request(method, url)
    assert response.status_code == 405
    assert response.json()["reason"] == "method_not_allowed"
    assert "GET" in response.headers["allow"] or "POST" in response.headers["allow"]
    jsonschema.validate(response.json(), {"$ref": "#/components/schemas/Problem", "components": spec["components"]})
    missing = client.get("/v1/no-such-thing")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found", "reason": "not_found"}
