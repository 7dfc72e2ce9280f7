"""API test fixtures.

The realistic store (tests/api/dataset.py) takes a few seconds to build through the real
gateway, attestor and chain, so read-only tests share one per database per module: SQLite and
PostgreSQL, created and dropped with tests/conftest.py's helpers, with PostgreSQL required in the
same way (``pg_admin`` fails loudly when no server answers). Tests that write use ``db_url``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from config import Settings
from store.db import make_engine, migrate
from tests.api.dataset import ADMIN_TOKEN, API_NOW_MS, Dataset, build
from tests.support.postgres import drop_pg_database, new_pg_database


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def dataset(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dataset]:
    workdir = tmp_path_factory.mktemp("api-dataset")
    admin = None
    if request.param == "sqlite":
        url = f"sqlite:///{workdir / 'assetproof.db'}"
    else:
        admin = request.getfixturevalue("pg_admin")
        url = new_pg_database(admin)
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    data = build(url, workdir)
    yield data
    data.engine.dispose()
    if admin is not None:
        drop_pg_database(admin, url)


def make_client(
    url: str, *, deployment: Path, admin_token: str | None = ADMIN_TOKEN, static: Path | None = None
) -> TestClient:
    settings = Settings(database_url=url, admin_token=admin_token, deployment=deployment)
    static_dir = static or deployment.parent / "no-static-here"
    return TestClient(create_app(settings, static_dir=static_dir, clock_ms=lambda: API_NOW_MS))


@pytest.fixture(scope="module")
def client(dataset: Dataset) -> Iterator[TestClient]:
    with make_client(dataset.url, deployment=dataset.deployment_path) as test_client:
        yield test_client
