"""The markers come from what a test uses (tests/support/markers.py), checked on tests themselves."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine


def _markers(request: pytest.FixtureRequest) -> set[str]:
    return {mark.name for mark in request.node.iter_markers()} & {"broker", "chain", "postgres", "browser", "e2e"}


def test_a_test_without_services_has_no_marker(request: pytest.FixtureRequest) -> None:
    assert _markers(request) == set()


def test_the_postgres_server_marks_postgres(pg_admin: Engine, request: pytest.FixtureRequest) -> None:
    assert _markers(request) == {"postgres"}


def test_only_the_postgresql_half_of_a_database_fixture_is_marked(db_url: str, request: pytest.FixtureRequest) -> None:
    expected = {"postgres"} if db_url.startswith("postgresql") else set()
    assert _markers(request) == expected
