"""Throwaway PostgreSQL databases on the server at ASSETPROOF_TEST_PG.

PostgreSQL is required, not optional: when no server answers there (default
postgresql://postgres@127.0.0.1:5432/postgres) the PostgreSQL-backed tests fail with a message
saying so. ``scripts/test`` installs and starts PostgreSQL where the machine lacks it.
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import Engine, create_engine, text

PG_ADMIN_URL = os.environ.get("ASSETPROOF_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def connect_admin() -> Engine:
    """An AUTOCOMMIT engine on the server's maintenance database; fails the test if none answers."""
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
    return engine


def new_pg_database(pg_admin: Engine) -> str:
    name = f"assetproof_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return pg_admin.url.set(database=name).render_as_string(hide_password=False)


def drop_pg_database(pg_admin: Engine, url: str) -> None:
    name = url.rsplit("/", 1)[-1]
    with pg_admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
