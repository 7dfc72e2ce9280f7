"""Shared fixtures: real databases.

PostgreSQL is required, not optional: when no server answers at ASSETPROOF_TEST_PG (default
postgresql://postgres@127.0.0.1:5432/postgres) the PostgreSQL-backed tests fail with a message
saying so. ``scripts/test`` installs and starts PostgreSQL where the machine lacks it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from store.db import make_engine, migrate

PG_ADMIN_URL = os.environ.get("ASSETPROOF_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        pytest.fail(
            f"PostgreSQL is required by the test suite but is not reachable at {PG_ADMIN_URL}"
            f" ({exc.__class__.__name__}). Run scripts/test, which installs and starts it, or set ASSETPROOF_TEST_PG.",
            pytrace=False,
        )
    yield engine
    engine.dispose()


def new_pg_database(pg_admin: Engine) -> str:
    name = f"assetproof_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return pg_admin.url.set(database=name).render_as_string(hide_password=False)


def drop_pg_database(pg_admin: Engine, url: str) -> None:
    name = url.rsplit("/", 1)[-1]
    with pg_admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'assetproof.db'}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url
        return
    admin = request.getfixturevalue("pg_admin")
    url = new_pg_database(admin)
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    drop_pg_database(admin, url)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A writer engine on ``db_url``'s database."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()
