"""The fleet view's rate counts readings by when they arrived (the gateway's clock), not by the
time they carry: a replay or a drained backlog of old readings shows as what it is, a fleet
sending now. A copy of the realistic SQLite store (tests/api/dataset.py) whose oldest hour of
readings is made to have arrived 90 seconds before the API's clock, as a replay's would."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from store.db import make_engine, migrate
from store.tables import READING
from tests.api.conftest import make_client
from tests.api.dataset import API_NOW_MS, MINUTE_MS, T0, Dataset

ARRIVED_MS = API_NOW_MS - 90_000
OLD_MS = T0 + 60 * MINUTE_MS
"""Readings made before this (device time) arrive at ``ARRIVED_MS``: hours later."""


@pytest.fixture
def replayed(dataset: Dataset, tmp_path: Path) -> Iterator[tuple[TestClient, int]]:
    database = tmp_path / "replayed.db"
    shutil.copy(dataset.url.removeprefix("sqlite:///"), database)
    url = f"sqlite:///{database}"
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(update(READING).where(READING.c.ts_ms < OLD_MS).values(received_ms=ARRIVED_MS))
            count = int(conn.execute(select(func.count()).where(READING.c.ts_ms < OLD_MS)).scalar_one())
    finally:
        engine.dispose()
    with make_client(url, deployment=dataset.deployment_path) as client:
        yield client, count


@pytest.mark.parametrize("dataset", ["sqlite"], indirect=True)
def test_the_rate_counts_arrivals_by_arrival_time(replayed: tuple[TestClient, int]) -> None:
    client, count = replayed
    assert count > 100
    body = client.get("/v1/fleet/health", params={"minutes": 15}).json()
    arrived_minute = ARRIVED_MS - ARRIVED_MS % MINUTE_MS
    arrivals = {m["minute_ms"]: m["readings"] for m in body["arrivals_per_minute"]}
    assert arrivals[arrived_minute] == count
    # old device time: none of them in the device-time series of the last 15 minutes
    assert all(m["minute_ms"] >= API_NOW_MS - 15 * MINUTE_MS - MINUTE_MS for m in body["readings_per_minute"])
    # the rate runs from the first arrival in the window, not over all 15 minutes
    total = sum(arrivals.values())
    began = max(API_NOW_MS - 15 * MINUTE_MS, min(arrivals))
    assert body["arrivals_per_minute_avg"] == pytest.approx(
        total * MINUTE_MS / max(API_NOW_MS - began, MINUTE_MS), abs=0.01
    )
    assert body["arrivals_per_minute_avg"] > body["readings_per_minute_avg"]


def test_nothing_arrived_reads_zero(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    with make_client(url, deployment=tmp_path / "no-deployment.json") as client:
        body = client.get("/v1/fleet/health", params={"minutes": 15}).json()
    assert body["arrivals_per_minute"] == []
    assert body["arrivals_per_minute_avg"] == 0.0
