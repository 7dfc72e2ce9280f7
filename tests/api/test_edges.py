"""The API's edges: integers beyond what the store holds, forged cursors, on SQLite and
PostgreSQL. Each is a 422 (or a 404 where the resource cannot exist), never a 500."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient

from api.params import MAX_STORE_INT
from tests.api.dataset import REVOKED

TOO_BIG = MAX_STORE_INT + 1

# Every integer path or query parameter the API takes, each with a value the store cannot hold.
OUT_OF_RANGE = [
    f"/v1/epochs/{TOO_BIG}",
    "/v1/epochs/-1",
    f"/v1/readings/{TOO_BIG}/bundle",
    "/v1/readings/-1/bundle",
    f"/v1/devices/{REVOKED}/readings/{TOO_BIG}",
    f"/v1/devices/{REVOKED}/readings/{TOO_BIG}/bundle",
    f"/v1/devices/{REVOKED}/readings/-3",
    f"/v1/quarantine/{TOO_BIG}",
    "/v1/quarantine/-1",
    f"/v1/readings?to={TOO_BIG}",
    f"/v1/readings?from={TOO_BIG}",
    f"/v1/readings?limit={TOO_BIG}",
    f"/v1/quarantine?to={TOO_BIG}",
    "/v1/quarantine?from=-1",
    f"/v1/quarantine/reasons?to={TOO_BIG}",
    f"/v1/assets/hk-rooftops/cashflow?to={TOO_BIG}",
    f"/v1/devices/{REVOKED}/cashflow?from={TOO_BIG}",
    f"/v1/consistency?from=0&to={TOO_BIG}",
    f"/v1/consistency?from_size=0&to_size={TOO_BIG}",
    "/v1/consistency?from_size=-1&to_size=3",
    f"/v1/fleet/health?devices={TOO_BIG}",
    f"/v1/epochs?limit={TOO_BIG}",
    f"/v1/checkpoints?limit={TOO_BIG}",
]


@pytest.mark.parametrize("url", OUT_OF_RANGE)
def test_integers_beyond_the_store_are_422(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 422, response.text
    assert response.json()["reason"] == "invalid_parameter"
    assert "parameter" in response.json()["detail"]


@pytest.mark.parametrize(
    "url",
    [
        f"/v1/epochs/{MAX_STORE_INT}",
        f"/v1/readings/{MAX_STORE_INT}/bundle",
        f"/v1/devices/{REVOKED}/readings/{MAX_STORE_INT}",
        f"/v1/devices/{REVOKED}/readings/{MAX_STORE_INT}/bundle",
        f"/v1/quarantine/{MAX_STORE_INT}",
        # An epoch folder whose number the store cannot hold names no epoch at all.
        f"/v1/export/epoch-{10**25}/checkpoint.json",
    ],
)
def test_the_largest_ids_are_simply_not_found(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404, response.text
    assert response.json()["reason"] == "not_found"


def test_the_largest_times_are_an_empty_answer(client: TestClient) -> None:
    assert client.get("/v1/readings", params={"from": MAX_STORE_INT - 1}).json()["items"] == []
    reasons = client.get("/v1/quarantine/reasons", params={"from": MAX_STORE_INT - 1, "to": MAX_STORE_INT})
    assert reasons.status_code == 200
    assert reasons.json()["total"] == 0


def _forge(*key: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("path", "cursor"),
    [
        ("/v1/readings", _forge("readings", TOO_BIG, 1)),
        ("/v1/readings", _forge("readings", 5, -1)),
        ("/v1/readings", _forge("readings", 1.5e30, 1)),
        ("/v1/readings", _forge("readings", True, 1)),
        ("/v1/epochs", _forge("epochs", TOO_BIG)),
        ("/v1/epochs", _forge("epochs", -1)),
        ("/v1/checkpoints", _forge("checkpoints", 2**64)),
        ("/v1/quarantine", _forge("quarantine", TOO_BIG)),
        ("/v1/quarantine", _forge("quarantine", "7")),
        ("/v1/devices", _forge("devices", 7)),
        ("/v1/devices", "%%%"),
    ],
)
def test_forged_cursors_are_422(client: TestClient, path: str, cursor: str) -> None:
    response = client.get(path, params={"cursor": cursor})
    assert response.status_code == 422, response.text
    assert response.json()["reason"] == "invalid_parameter"
    assert "cursor is not a cursor" in response.json()["detail"]
