"""Admin endpoints: the bearer token (none configured, missing, wrong, right), registering,
revoking and rotating, and the registry's refusals; against a real empty database of each kind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.batch import BatchProcessor
from gateway.records import Incoming
from gateway.tariff import record_tariff
from protocol.envelope import GENESIS_PREV, Body, DeviceKind, sign_body
from protocol.signing import DeviceKey
from protocol.topics import telemetry_topic
from store.db import make_engine
from tests.api.conftest import make_client
from tests.api.dataset import ADMIN_TOKEN, API_NOW_MS
from tests.support.devices import TARIFF

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ADMIN_ENDPOINTS = [
    ("post", "/v1/admin/devices"),
    ("post", "/v1/admin/devices/sol-x-0001/revoke"),
    ("post", "/v1/admin/devices/sol-x-0001/rotate"),
]


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(db_url, deployment=tmp_path / "none.json") as test_client:
        yield test_client


def _registration(keys: list[DeviceKey], *, asset: str = "hk-rooftops", kind: str = "solar") -> dict[str, Any]:
    rating = {"rated_power_w": 5000} if kind != "miner" else {"rated_power_w": 5000, "rated_hashrate_ghs": 288_000}
    return {
        "asset": asset,
        "kind": kind,
        "asset_description": "Rooftop solar, Kowloon",
        "devices": [
            {
                "id": f"sol-x-{i + 1:04d}",
                "alg": k.alg,
                "public_key": k.public_key.hex(),
                "rating": rating,
                "window_s": 60,
            }
            for i, k in enumerate(keys)
        ],
    }


def test_admin_is_disabled_without_a_configured_token(db_url: str, tmp_path: Path) -> None:
    with make_client(db_url, deployment=tmp_path / "none.json", admin_token=None) as client:
        for method, path in ADMIN_ENDPOINTS:
            response = client.request(method, path, headers=AUTH, json={})
            assert response.status_code == 503, path
            assert response.json() == {
                "detail": "admin API disabled: no ASSETPROOF_ADMIN_TOKEN is configured",
                "reason": "admin_disabled",
            }


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({}, "need the header 'Authorization: Bearer"),
        ({"Authorization": "Bearer not-the-token-at-all-0000"}, "wrong admin token"),
        ({"Authorization": f"Bearer {ADMIN_TOKEN}x"}, "wrong admin token"),
        ({"Authorization": f"Basic {ADMIN_TOKEN}"}, "need the header"),
        ({"Authorization": ADMIN_TOKEN}, "need the header"),
    ],
)
def test_a_missing_or_wrong_token_is_refused(client: TestClient, headers: dict[str, str], words: str) -> None:
    for method, path in ADMIN_ENDPOINTS:
        response = client.request(method, path, headers=headers, json=_registration([DeviceKey.generate("ed25519")]))
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert words in response.json()["detail"]
    assert client.get("/v1/devices").json()["items"] == []  # nothing was registered


def test_register_revoke_rotate(client: TestClient, db_url: str) -> None:
    keys = [DeviceKey.generate("ed25519"), DeviceKey.generate("ed25519")]
    created = client.post("/v1/admin/devices", headers=AUTH, json=_registration(keys))
    assert created.status_code == 201, created.text
    assert [(d["id"], d["public_key"], d["status"]) for d in created.json()] == [
        ("sol-x-0001", keys[0].public_key.hex(), "active"),
        ("sol-x-0002", keys[1].public_key.hex(), "active"),
    ]
    asset = client.get("/v1/assets/hk-rooftops").json()
    assert (asset["kind"], asset["devices"], asset["description"]) == ("solar", 2, "Rooftop solar, Kowloon")

    # The gateway accepts what the device signs with the registered key.
    engine, reader = make_engine(db_url), make_engine(db_url, writer=False)
    record_tariff(engine, TARIFF)
    processor = BatchProcessor(engine=engine, reader=reader, tariff=TARIFF, clock_ms=lambda: API_NOW_MS)

    def send(key: DeviceKey, seq: int, prev: bytes) -> str:
        body = Body(
            device="sol-x-0001",
            seq=seq,
            ts_ms=API_NOW_MS - 60_000 + seq,
            kind=DeviceKind.SOLAR,
            window_s=60,
            metrics={"energy_wh": 50, "power_w": 3000, "irradiance_wm2": 600, "temp_dc": 300},
            prev=prev,
        )
        message = sign_body(body, key)
        result = processor.process([Incoming(telemetry_topic("sol-x-0001"), message.raw, API_NOW_MS)])
        return "accepted" if result.accepted else next(iter(result.quarantined))

    assert send(keys[0], 1, GENESIS_PREV) == "accepted"

    new_key = DeviceKey.generate("es256")
    rotated = client.post(
        "/v1/admin/devices/sol-x-0001/rotate",
        headers=AUTH,
        json={"alg": "es256", "public_key": new_key.public_key.hex()},
    )
    assert rotated.status_code == 200, rotated.text
    assert (rotated.json()["alg"], rotated.json()["public_key"]) == ("es256", new_key.public_key.hex())
    history = client.get("/v1/devices/sol-x-0001").json()["keys"]
    assert [(k["alg"], k["ended_by"]) for k in history] == [("ed25519", "rotated"), ("es256", None)]

    revoked = client.post("/v1/admin/devices/sol-x-0002/revoke", headers=AUTH)
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    again = client.post("/v1/admin/devices/sol-x-0002/revoke", headers=AUTH)
    assert (again.status_code, again.json()["reason"]) == (409, "conflict")
    rotate_revoked = client.post(
        "/v1/admin/devices/sol-x-0002/rotate",
        headers=AUTH,
        json={"alg": "es256", "public_key": new_key.public_key.hex()},
    )
    assert rotate_revoked.status_code == 409
    processor.close()
    engine.dispose()
    reader.dispose()


def test_registry_refusals(client: TestClient) -> None:
    key = DeviceKey.generate("ed25519")
    assert client.post("/v1/admin/devices", headers=AUTH, json=_registration([key])).status_code == 201
    twice = client.post("/v1/admin/devices", headers=AUTH, json=_registration([key]))
    assert (twice.status_code, twice.json()["reason"]) == (409, "conflict")
    assert "already registered" in twice.json()["detail"]
    other_kind = client.post("/v1/admin/devices", headers=AUTH, json=_registration([key], kind="charger"))
    assert other_kind.status_code == 409
    assert "holds solar devices" in other_kind.json()["detail"]
    for method, path in ADMIN_ENDPOINTS[1:]:
        unknown = client.request(
            method,
            path.replace("sol-x-0001", "sol-nobody-0001"),
            headers=AUTH,
            json={"alg": "ed25519", "public_key": key.public_key.hex()},
        )
        assert unknown.status_code == 404, path


def _mutate(change: Any) -> dict[str, Any]:
    body = _registration([DeviceKey.generate("ed25519")])
    change(body)
    return body


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (_mutate(lambda b: b["devices"][0].update(public_key="ab" * 31)), "devices[0]"),
        (_mutate(lambda b: b["devices"][0].update(public_key="zz")), "public_key is not hex"),
        (_mutate(lambda b: b["devices"][0].update(id="Bad_Id")), "devices[0].id"),
        (_mutate(lambda b: b["devices"][0].update(rating={})), "needs a positive rated_power_w"),
        (_mutate(lambda b: b["devices"][0].update(alg="rsa")), "body field 'devices.0.alg'"),
        (_mutate(lambda b: b["devices"][0].update(window_s=0)), "body field 'devices.0.window_s'"),
        (_mutate(lambda b: b.update(asset="Not An Asset!")), "asset"),
        (_mutate(lambda b: b.update(devices=[])), "body field 'devices'"),
        (_mutate(lambda b: b["devices"].append(dict(b["devices"][0]))), "the same id appears twice"),
        (_mutate(lambda b: b.update(kind="windmill")), "body field 'kind'"),
        (_mutate(lambda b: b.update(extra=1)), "body field 'extra'"),
    ],
)
def test_invalid_registrations_are_422(client: TestClient, body: dict[str, Any], words: str) -> None:
    response = client.post("/v1/admin/devices", headers=AUTH, json=body)
    assert response.status_code == 422, response.text
    assert words in response.json()["detail"]
    assert client.get("/v1/devices").json()["items"] == []


def test_a_miner_needs_its_hashrate_rating(client: TestClient) -> None:
    body = _registration([DeviceKey.generate("ed25519")], asset="hydro-pod", kind="miner")
    body["devices"][0]["rating"] = {"rated_power_w": 5000}
    response = client.post("/v1/admin/devices", headers=AUTH, json=body)
    assert response.status_code == 422
    assert "rated_hashrate_ghs" in response.json()["detail"]
