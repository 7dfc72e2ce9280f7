"""Devices, assets, readings, epochs, checkpoints, quarantine and fleet health over the realistic
store, on SQLite and PostgreSQL: contents, filters, pagination, 404s and 422s."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from store.tables import Epoch, Quarantine, Reading
from tests.api.dataset import API_NOW_MS, EPOCH_LEAVES, NEVER_SEEN, REVOKED, SILENT, T0, Dataset, pages


def _count(dataset: Dataset, *where: object) -> int:
    with dataset.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Reading).where(*where)).scalar_one())  # type: ignore[arg-type]


# --- devices and assets ------------------------------------------------------------------------


def test_devices_list_status_keys_and_online(client: TestClient, dataset: Dataset) -> None:
    devices = {d["id"]: d for d in pages(client, "/v1/devices", limit=3)}
    assert set(devices) == set(dataset.devices)
    solar = devices["sol-hk-rooftops-0001"]
    sim = dataset.devices["sol-hk-rooftops-0001"]
    assert (solar["kind"], solar["asset"], solar["alg"], solar["status"]) == (
        "solar",
        "hk-rooftops",
        "ed25519",
        "active",
    )
    assert solar["public_key"] == sim.key.public_key.hex()
    # quarantined: the forged reading and the junk, both published on its topic (filed by publisher)
    assert (solar["last_seq"], solar["readings"], solar["quarantined"]) == (180, 180, 2)
    assert devices["evc-kowloon-hub-0001"]["alg"] == "es256"
    assert devices[REVOKED]["status"] == "revoked"
    assert devices[REVOKED]["revoked_ms"] is not None
    online = {i for i, d in devices.items() if d["online"]}
    assert online == set(dataset.devices) - {SILENT, NEVER_SEEN, REVOKED}
    assert devices[NEVER_SEEN]["last_seen_ms"] is None


def test_devices_filters(client: TestClient) -> None:
    chargers = client.get("/v1/devices", params={"kind": "charger"}).json()["items"]
    assert [d["id"] for d in chargers] == ["evc-kowloon-hub-0001", "evc-kowloon-hub-0002"]
    pod = client.get("/v1/devices", params={"asset": "hydro-pod", "status": "revoked"}).json()["items"]
    assert [d["id"] for d in pod] == [REVOKED]
    assert client.get("/v1/devices", params={"asset": "nowhere"}).json() == {"items": [], "next_cursor": None}
    bad = client.get("/v1/devices", params={"kind": "windmill"})
    assert bad.status_code == 422
    assert "query parameter 'kind'" in bad.json()["detail"]


def test_one_device_with_key_history(client: TestClient, dataset: Dataset) -> None:
    body = client.get(f"/v1/devices/{REVOKED}").json()
    assert body["rating"] == dataset.devices[REVOKED].model.rating_json()
    (key,) = body["keys"]
    assert key["ended_by"] == "revoked"
    assert key["valid_until_ms"] == body["revoked_ms"]
    missing = client.get("/v1/devices/sol-nowhere-0001")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "device 'sol-nowhere-0001' not found", "reason": "not_found"}


def test_assets_with_counts_and_kind_mix(client: TestClient) -> None:
    body = client.get("/v1/assets").json()
    assets = {a["name"]: a for a in body["items"]}
    assert {n: (a["kind"], a["devices"], a["active_devices"], a["revoked_devices"]) for n, a in assets.items()} == {
        "hk-rooftops": ("solar", 4, 4, 0),
        "kowloon-hub": ("charger", 2, 2, 0),
        "hydro-pod": ("miner", 2, 1, 1),
    }
    assert body["kinds"] == [
        {"kind": "charger", "assets": 1, "devices": 2},
        {"kind": "miner", "assets": 1, "devices": 2},
        {"kind": "solar", "assets": 1, "devices": 4},
    ]
    assert client.get("/v1/assets/hydro-pod").json()["revoked_devices"] == 1
    assert client.get("/v1/assets/atlantis").status_code == 404


# --- readings ----------------------------------------------------------------------------------


def test_readings_pagination_is_complete_ordered_and_stable(client: TestClient, dataset: Dataset) -> None:
    seen = list(pages(client, "/v1/readings", limit=97))
    assert len(seen) == _count(dataset)
    assert len({r["id"] for r in seen}) == len(seen)
    keys = [(r["ts_ms"], r["id"]) for r in seen]
    assert keys == sorted(keys)
    statuses = {r["epoch_status"] for r in seen}
    assert statuses == {"anchored", "closed", None}
    assert sum(r["epoch_status"] == "anchored" for r in seen) == 2 * EPOCH_LEAVES


def test_readings_filters(client: TestClient, dataset: Dataset) -> None:
    device = "evc-kowloon-hub-0002"
    mine = list(pages(client, "/v1/readings", device=device, limit=50))
    assert [r["seq"] for r in mine] == list(range(1, 181))
    assert all(r["device_id"] == device and r["kind"] == "charger" for r in mine)
    assert mine[0]["metrics"] == dict(dataset.devices[device].sent[0].body.metrics)
    assert mine[0]["net"] == mine[0]["revenue"] - mine[0]["cost"]

    pod = list(pages(client, "/v1/readings", asset="hydro-pod", limit=200))
    assert {r["asset"] for r in pod} == {"hydro-pod"}
    assert len(pod) == 180 + 150  # the revoked rig's last 30 were quarantined

    start, end = T0 + 30 * 60_000, T0 + 60 * 60_000
    window = list(pages(client, "/v1/readings", asset="hk-rooftops", **{"from": start, "to": end}))
    assert len(window) == 3 * 30
    assert all(start <= r["ts_ms"] < end for r in window)


def test_one_reading_carries_its_signed_bytes(client: TestClient, dataset: Dataset) -> None:
    sim = dataset.devices["rig-hydro-pod-0001"]
    body = client.get(f"/v1/devices/{sim.id}/readings/7").json()
    assert bytes.fromhex(body["message"]) == sim.sent[6].raw
    assert body["leaf_hash"] == sim.sent[6].leaf_hash.hex()
    assert client.get(f"/v1/devices/{sim.id}/readings/999").status_code == 404
    assert client.get(f"/v1/devices/{sim.id}/readings/0").status_code == 422


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"limit": 0}, "query parameter 'limit'"),
        ({"limit": 1001}, "less than or equal to 1000"),
        ({"from": -5}, "query parameter 'from'"),
        ({"from": 10, "to": 10}, "'to' (10) must be after 'from' (10)"),
        ({"from": "yesterday"}, "valid integer"),
        ({"cursor": "not-a-cursor"}, "cursor is not a cursor of this readings list"),
    ],
)
def test_readings_bad_parameters(client: TestClient, params: dict[str, object], words: str) -> None:
    response = client.get("/v1/readings", params=params)
    assert response.status_code == 422
    assert response.json()["reason"] == "invalid_parameter"
    assert words in response.json()["detail"]


def test_a_cursor_of_another_list_is_refused(client: TestClient) -> None:
    devices_cursor = client.get("/v1/devices", params={"limit": 1}).json()["next_cursor"]
    response = client.get("/v1/readings", params={"cursor": devices_cursor})
    assert response.status_code == 422


# --- epochs and checkpoints ----------------------------------------------------------------------


def test_epochs_with_anchoring_details(client: TestClient, dataset: Dataset) -> None:
    epochs = list(pages(client, "/v1/epochs", limit=2))
    assert [e["number"] for e in epochs] == [2, 1, 0]
    by_number = {e["number"]: e for e in epochs}
    with dataset.engine.connect() as conn:
        rows = {r.number: r for r in conn.execute(select(Epoch))}
    for number in dataset.anchored_epochs:
        epoch, row = by_number[number], rows[number]
        assert epoch["status"] == "anchored"
        assert epoch["tx_hash"] == "0x" + bytes(row.tx_hash).hex()
        assert (epoch["block_number"], epoch["block_timestamp"], epoch["gas_used"]) == (
            row.block_number,
            row.block_timestamp,
            row.gas_used,
        )
        assert epoch["gas_used"] > 0
        assert epoch["anchor"] == {
            "chain_id": dataset.chain.chain_id,
            "contract": dataset.chain.anchor_registry,
            "tx_hash": epoch["tx_hash"],
            "block_number": row.block_number,
            "block_timestamp": row.block_timestamp,
        }
        assert epoch["root"] == bytes(row.root).hex()
        assert epoch["readings"] == EPOCH_LEAVES
        assert epoch["metadata"]["epoch"] == number
    pending = by_number[2]
    assert (pending["status"], pending["tx_hash"], pending["anchor"]) == ("closed", None, None)
    assert pending["metadata"]["quarantine"]["count"] == 3

    assert [e["number"] for e in client.get("/v1/epochs", params={"status": "anchored"}).json()["items"]] == [1, 0]
    assert client.get("/v1/epochs/1").json() == by_number[1]
    assert client.get("/v1/epochs/3").status_code == 404
    assert client.get("/v1/epochs/-1").status_code == 422
    assert client.get("/v1/epochs", params={"status": "lost"}).status_code == 422


def test_checkpoints_are_the_anchored_epochs(client: TestClient) -> None:
    items = client.get("/v1/checkpoints").json()["items"]
    assert [c["epoch"] for c in items] == [1, 0]
    assert [c["tree_size"] for c in items] == [2 * EPOCH_LEAVES, EPOCH_LEAVES]
    assert all(c["anchor"]["tx_hash"].startswith("0x") for c in items)


# --- quarantine ----------------------------------------------------------------------------------


def test_quarantine_by_reason_device_and_time(client: TestClient, dataset: Dataset) -> None:
    everything = list(pages(client, "/v1/quarantine", limit=7))
    assert len(everything) == sum(dataset.quarantined.values())
    ids = [q["id"] for q in everything]
    assert ids == sorted(ids, reverse=True)  # newest first

    revoked = list(pages(client, "/v1/quarantine", reason="revoked_device", limit=10))
    assert len(revoked) == 30
    assert {q["device_id"] for q in revoked} == {REVOKED}
    rooftop = client.get("/v1/quarantine", params={"device": "sol-hk-rooftops-0001"}).json()["items"]
    # Filed under the device whose topic carried it: the junk is the rooftop's too (newest first).
    assert [q["reason"] for q in rooftop] == ["bad_signature", "malformed"]
    received = T0 + 150 * 60_000
    early = client.get("/v1/quarantine", params={"from": received, "to": received + 10}).json()["items"]
    assert sorted(q["reason"] for q in early) == ["bad_signature", "malformed", "unknown_device"]
    assert all(q["epoch"] == 2 for q in early)

    junk = next(q for q in early if q["reason"] == "malformed")
    detail = client.get(f"/v1/quarantine/{junk['id']}").json()
    assert bytes.fromhex(detail["raw"]) == b"not json at all"
    assert detail["raw_truncated"] is False
    assert client.get("/v1/quarantine/999999").status_code == 404


def test_quarantine_counts_by_reason(client: TestClient, dataset: Dataset) -> None:
    body = client.get("/v1/quarantine/reasons").json()
    assert {r["reason"]: r["count"] for r in body["reasons"]} == dataset.quarantined
    assert body["reasons"][0] == {"reason": "revoked_device", "count": 30}
    assert body["total"] == sum(dataset.quarantined.values())
    with dataset.engine.connect() as conn:
        assert body["total"] == conn.execute(select(func.count()).select_from(Quarantine)).scalar_one()
    device = client.get("/v1/quarantine/reasons", params={"device": REVOKED}).json()
    assert device["reasons"] == [{"reason": "revoked_device", "count": 30}]


# --- fleet and system --------------------------------------------------------------------------


def test_fleet_health(client: TestClient) -> None:
    body = client.get("/v1/fleet/health", params={"minutes": 10, "devices": 3}).json()
    assert body["now_ms"] == API_NOW_MS
    assert body["devices"] == {
        "total": 8,
        "active": 7,
        "revoked": 1,
        "online": 5,
        "never_seen": 1,
        "stalled": 0,
        "silent": 2,
    }
    # Active and quiet for more than three windows: a finding each, stalest first; revoked is not.
    assert [(d["device_id"], d["state"]) for d in body["loss"]] == [(NEVER_SEEN, "silent"), (SILENT, "silent")]
    # In the last ten minutes of device time the five online devices reported once a minute each.
    assert body["readings_per_minute_avg"] == pytest.approx(5.0, abs=0.6)
    assert all(m["readings"] == 5 for m in body["readings_per_minute"])
    assert body["rejects"] == [{"reason": "revoked_device", "count": 10}]
    stalest = [d["device_id"] for d in body["last_seen"]]
    assert stalest[0] == NEVER_SEEN
    assert set(stalest[1:]) == {SILENT, REVOKED}  # both last reported at minute 150
    assert not any(d["online"] for d in body["last_seen"])
    assert client.get("/v1/fleet/health", params={"minutes": 0}).status_code == 422


def test_healthz(client: TestClient, dataset: Dataset) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["database"] == dataset.engine.dialect.name
    assert body["log_size"] == 1050


def test_openapi_documents_every_endpoint_with_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    for path in (
        "/v1/devices",
        "/v1/assets/{name}/cashflow",
        "/v1/readings/{log_index}/bundle",
        "/v1/devices/{device_id}/readings/{seq}/bundle",
        "/v1/consistency",
        "/v1/export/{directory}/{name}",
        "/v1/quarantine/reasons",
        "/v1/fleet/health",
        "/v1/admin/devices",
        "/metrics",
        "/healthz",
    ):
        assert path in paths
    device = schema["components"]["schemas"]["DeviceOut"]["properties"]
    assert device["public_key"]["description"]
    assert device["id"]["examples"] == ["sol-hk-rooftops-0001"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
