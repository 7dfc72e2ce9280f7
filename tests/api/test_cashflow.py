"""Cash flow per asset and device, split into attested and pending, against what the anchored
epochs' metadata and the readings themselves say."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from api.models import CashflowOut
from cli.main import app
from demo.snapshot import take_snapshot
from protocol.cashflow import HOUR_MS
from store.cashflow import DAY_MS
from store.coverage import selection_coverage
from store.tables import Device, Epoch, Reading
from tests.api.dataset import T0, Dataset

FIGURES = ("readings", "energy_wh", "revenue", "cost")


def _readings(dataset: Dataset) -> list[Any]:
    with dataset.engine.connect() as conn:
        return conn.execute(
            select(
                Reading.device_id,
                Reading.ts_ms,
                Reading.metrics,
                Reading.revenue,
                Reading.cost,
                Reading.epoch,
                Device.asset,
            ).join(Device, Device.id == Reading.device_id)  # type: ignore[arg-type]
        ).all()


def _expected_buckets(rows: list[Any], anchored: set[int], bucket_ms: int) -> dict[int, dict[str, dict[str, int]]]:
    """Per bucket, the figures of all readings and of those in anchored epochs, from the rows."""
    buckets: dict[int, dict[str, dict[str, int]]] = defaultdict(
        lambda: {"all": dict.fromkeys(FIGURES, 0), "attested": dict.fromkeys(FIGURES, 0)}
    )
    for r in rows:
        parts = ["all"] + (["attested"] if r.epoch in anchored else [])
        for part in parts:
            figures = buckets[r.ts_ms - r.ts_ms % bucket_ms][part]
            figures["readings"] += 1
            figures["energy_wh"] += r.metrics["energy_wh"]
            figures["revenue"] += r.revenue
            figures["cost"] += r.cost
    return buckets


def _figures(body: dict[str, Any]) -> dict[str, int]:
    return {name: body[name] for name in FIGURES}


@pytest.mark.parametrize("asset", ["hk-rooftops", "kowloon-hub", "hydro-pod"])
@pytest.mark.parametrize("granularity", ["hour", "day"])
def test_asset_buckets_split_attested_and_pending(
    client: TestClient, dataset: Dataset, asset: str, granularity: str
) -> None:
    body = client.get(f"/v1/assets/{asset}/cashflow", params={"granularity": granularity}).json()
    CashflowOut.model_validate(body)  # the documented shape
    assert (body["asset"], body["device"], body["granularity"], body["currency"]) == (asset, None, granularity, "HKD")
    rows = [r for r in _readings(dataset) if r.asset == asset]
    expected = _expected_buckets(rows, set(dataset.anchored_epochs), HOUR_MS if granularity == "hour" else DAY_MS)
    assert [b["start_ms"] for b in body["buckets"]] == sorted(expected)
    for bucket in body["buckets"]:
        want = expected[bucket["start_ms"]]
        assert _figures(bucket) == want["all"]
        assert _figures(bucket["attested"]) == want["attested"]
        assert _figures(bucket["pending"]) == {k: want["all"][k] - want["attested"][k] for k in FIGURES}
        assert bucket["net"] == bucket["revenue"] - bucket["cost"]
        assert bucket["attested"]["net"] + bucket["pending"]["net"] == bucket["net"]
        assert 0 < bucket["coverage"] <= 1
        assert 0 <= bucket["uptime"] <= 1
    assert body["totals"]["readings"] == len(rows)


def test_attested_totals_equal_the_anchored_epochs_metadata(client: TestClient, dataset: Dataset) -> None:
    with dataset.engine.connect() as conn:
        epochs = conn.execute(select(Epoch.number, Epoch.status)).all()
    assert {n for n, s in epochs if s == "anchored"} == set(dataset.anchored_epochs)
    committed: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FIGURES, 0))
    for number in dataset.anchored_epochs:
        metadata = client.get(f"/v1/epochs/{number}").json()["metadata"]
        for asset, totals in metadata["assets"].items():
            for name in FIGURES:
                committed[asset][name] += totals[name]
    for asset in ("hk-rooftops", "kowloon-hub", "hydro-pod"):
        totals = client.get(f"/v1/assets/{asset}/cashflow", params={"granularity": "day"}).json()["totals"]
        assert _figures(totals["attested"]) == committed[asset], asset
        assert totals["attested"]["readings"] > 0
        assert totals["pending"]["readings"] > 0  # epoch 2 (closed, not anchored) and the unlogged tail
    assert sum(c["readings"] for c in committed.values()) == 2 * 300


def test_device_cashflow(client: TestClient, dataset: Dataset) -> None:
    device = "evc-kowloon-hub-0001"
    body = client.get(f"/v1/devices/{device}/cashflow", params={"granularity": "hour"}).json()
    assert (body["asset"], body["device"]) == ("kowloon-hub", device)
    rows = [r for r in _readings(dataset) if r.device_id == device]
    expected = _expected_buckets(rows, set(dataset.anchored_epochs), HOUR_MS)
    assert {b["start_ms"]: _figures(b["attested"]) for b in body["buckets"]} == {
        start: e["attested"] for start, e in expected.items()
    }
    # Reporting every minute: full coverage in every whole hour after the first.
    assert [b["coverage"] for b in body["buckets"][1:3]] == [1.0, 1.0]
    assert body["buckets"][1]["expected_readings"] == 60


def test_time_range(client: TestClient) -> None:
    body = client.get(
        "/v1/assets/kowloon-hub/cashflow", params={"from": T0 + HOUR_MS + 5, "to": T0 + 2 * HOUR_MS}
    ).json()
    assert [b["start_ms"] for b in body["buckets"]] == [T0 + HOUR_MS]
    assert body["from_ms"] == T0 + HOUR_MS  # rounded down to its bucket
    assert body["buckets"][0]["readings"] == 2 * 60
    empty = client.get("/v1/assets/kowloon-hub/cashflow", params={"from": T0 - 10 * HOUR_MS, "to": T0 - HOUR_MS})
    assert empty.json()["buckets"] == []
    assert empty.json()["totals"]["readings"] == 0


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"granularity": "week"}, "query parameter 'granularity'"),
        ({"from": 2_000, "to": 1_000}, "'to' (1000) must be after 'from' (2000)"),
        ({"from": 0, "to": 10_001 * HOUR_MS}, "more than 10000 hours"),
    ],
)
def test_bad_parameters(client: TestClient, params: dict[str, object], words: str) -> None:
    response = client.get("/v1/assets/hk-rooftops/cashflow", params=params)
    assert response.status_code == 422
    assert words in response.json()["detail"]


def test_unknown_asset_or_device(client: TestClient) -> None:
    assert client.get("/v1/assets/atlantis/cashflow").status_code == 404
    assert client.get("/v1/devices/sol-nowhere-0001/cashflow").status_code == 404


@pytest.mark.parametrize("asset", ["hk-rooftops", "kowloon-hub", "hydro-pod"])
def test_one_coverage_in_cli_demo_and_api(client: TestClient, dataset: Dataset, asset: str) -> None:
    """The terminal, the demo's live view and the API (hence the dashboard) show one figure."""
    result = CliRunner().invoke(app, ["cashflow", "--database", dataset.url, "--asset", asset, "--json"])
    assert result.exit_code == 0, result.output
    cli = json.loads(result.output)["totals"]["coverage"]
    snapshot = take_snapshot(dataset.engine, elapsed_s=0.0, wall_started_s=0.0)
    api = {
        granularity: client.get(f"/v1/assets/{asset}/cashflow", params={"granularity": granularity}).json()["totals"]
        for granularity in ("hour", "day")
    }
    assert 0 < cli < 1  # the dataset's tail and gaps are not full coverage: a real figure
    assert cli == round(snapshot.coverage[asset], 4) == api["hour"]["coverage"] == api["day"]["coverage"]
    whole = selection_coverage(dataset.engine, asset=asset)
    assert api["hour"]["expected_readings"] == round(whole.expected_readings, 3)
