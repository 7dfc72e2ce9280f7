"""Fixtures every package's tests share (real databases, real chains), the markers that say
which services a test needs (tests/support/markers.py), and the fake wall clock.

Helpers these fixtures build on, and those tests import directly, live in tests/support/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from web3 import Web3

from chain.devchain import eth_tester_web3
from devstack.anvil import AnvilNode, start_anvil
from store.db import make_engine, migrate
from tests.support import markers
from tests.support.chain import Chain, deploy_chain, require_anvil
from tests.support.postgres import connect_admin, drop_pg_database, new_pg_database


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    markers.apply(items)


# --- databases: each test runs on SQLite and on PostgreSQL ----------------------------------------


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    engine = connect_admin()
    yield engine
    engine.dispose()


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


# --- chains: every contract test runs on anvil AND on eth-tester ----------------------------------
# anvil is required, not optional: when ``npm ci --prefix chain`` has not installed it, the anvil
# half of the suite fails with a message saying so (nothing is skipped). One anvil serves the whole
# session; each test deploys its own contracts on it, which costs a few milliseconds. eth-tester
# chains are created per test.


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[AnvilNode]:
    require_anvil()
    node = start_anvil()
    yield node
    node.stop()


@pytest.fixture(params=["anvil", "eth-tester"])
def w3(request: pytest.FixtureRequest) -> Web3:
    if request.param == "anvil":
        node: AnvilNode = request.getfixturevalue("anvil_node")
        return node.web3()
    return eth_tester_web3()


@pytest.fixture
def chain(w3: Web3) -> Chain:
    return deploy_chain(w3)


@pytest.fixture
def anvil_chain(anvil_node: AnvilNode) -> Chain:
    """A fresh deployment on anvil only (for what eth-tester lacks, such as the P-256 precompile)."""
    return deploy_chain(anvil_node.web3())


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
