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
from typing import Any

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


_TRAVELLER: pytest.StashKey[Any] = pytest.StashKey()


# --- a fake wall clock for the whole session ------------------------------------------------------
# ``--fake-now=2026-06-15T23:59:50Z`` moves this process's wall clock (time.time, datetime.now, ...)
# to that instant for the session, ticking on from there, so a test whose result depends on the
# hour or the date fails here on purpose rather than in CI at some hour. Monotonic clocks and the
# processes the tests start (brokers, gateways, anvil) keep the real time: tests/test_any_hour.py
# runs only modules whose clock-dependent parts live in this process.


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fake-now", default=None, help="ISO 8601 instant with offset: travel the wall clock there.")


def pytest_configure(config: pytest.Config) -> None:
    fake = config.getoption("--fake-now")
    if fake is None:
        return
    from datetime import datetime

    import time_machine

    moment = datetime.fromisoformat(fake.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise pytest.UsageError(f"--fake-now {fake!r} needs a UTC offset (Z or +08:00)")
    traveller = time_machine.travel(moment, tick=True)
    traveller.start()
    config.stash[_TRAVELLER] = traveller


def pytest_unconfigure(config: pytest.Config) -> None:
    traveller = config.stash.get(_TRAVELLER, None)
    if traveller is not None:
        traveller.stop()


def pytest_report_header(config: pytest.Config) -> str | None:
    fake = config.getoption("--fake-now")
    return None if fake is None else f"fake wall clock from {fake}"
