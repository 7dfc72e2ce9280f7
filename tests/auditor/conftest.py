"""One real pipeline per module, as an operator runs it, then tampered with per test.

A deployment whose roles are held by distinct keys, as in production: the operator's key is the
attestor and nothing else; a registrar registers the devices (``assetproof devices provision``
with the registrar's key, on the DeviceRegistry of a real anvil); a pricing authority publishes
the tariff on the TariffRegistry; a governor may replace any of them after the governance delay.
Then Mosquitto with the generated dynamic-security config, a gateway process, ``assetproof
simulate``, and the attestor (with the operator's key) anchoring a few epochs, each priced with the
tariff published on chain. A second simulator run leaves readings stored but not yet in the log, so
a test can also tamper *before* the attestor anchors. Each test gets its own copy of the
database and an anvil snapshot that is reverted afterwards.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, func, select

from attestor.anchoring import Anchorer
from attestor.epochs import EpochBuilder, EpochPolicy
from chain.deployment import Deployment, write_deployment
from chain.reader import ChainReader
from chain.types import Roles
from chain.writer import ChainClient
from device_sim.outbox import Outbox
from devstack.anvil import AnvilNode
from devstack.mosquitto import Mosquitto
from gateway.tariff import load_tariff
from store.db import make_engine
from store.tables import Epoch, Reading
from tests.support.chain import funded_account
from tests.support.processes import REPO, count_rows, start_gateway, stop_process, wait_for, wait_subscribed

EPOCH_LEAVES = 60


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True, check=False)
    if check:
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out


@dataclass
class Pipeline:
    home: Path
    database: Path
    deployment_path: Path
    deployment: Deployment
    keystore: Path
    node: AnvilNode
    operator: LocalAccount
    """The operator's chain key: the attestor, and nothing else."""
    registrar: LocalAccount
    pricing: LocalAccount
    """The pricing authority."""
    governor: LocalAccount

    @property
    def rpc(self) -> str:
        return self.node.url


def _simulate(keys: Path, outbox: Path, port: int, seconds: float) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "simulate",
            "--keystore",
            str(keys),
            "--broker",
            f"127.0.0.1:{port}",
            "--outbox",
            str(outbox),
            "--accelerate",
            "600",
            "--seconds",
            str(seconds),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def _signed(outbox: Path) -> int:
    return sum(state.seq for state in Outbox(outbox).device_states().values())


def key_arg(account: LocalAccount) -> str:
    return "0x" + bytes(account.key).hex()


def attest(engine: Engine, chain: ChainClient, *, limit: int | None = None) -> None:
    """Run the attestor: append the pending readings (at most ``limit``), close all of them in
    epochs of at most ``EPOCH_LEAVES`` (priced with the tariff published on chain), and anchor them."""
    builder = EpochBuilder(engine, policy=EpochPolicy(window_ms=1, max_leaves=EPOCH_LEAVES), tariffs=chain)
    if limit is None:
        while builder.append_pending():
            pass
    else:
        builder.append_pending(limit=limit)
    while builder.close_due_epoch(now_ms=time.time_ns() // 1_000_000 + 1):
        pass
    anchorer = Anchorer(engine, chain)
    while anchorer.anchor_next():
        pass


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, anvil_node: AnvilNode) -> Pipeline:
    home = tmp_path_factory.mktemp("pipeline")
    w3 = anvil_node.web3()
    operator, registrar, pricing, governor = (funded_account(w3) for _ in range(4))
    roles = Roles(
        governor=governor.address,
        attestor=operator.address,
        registrar=registrar.address,
        pricing_authority=pricing.address,
    )
    deployment = ChainClient(w3, account=governor).deploy(roles=roles)
    # The pricing authority publishes the gateway's tariff, in force from the start of time.
    ChainClient(w3, account=pricing, deployment=deployment).publish_tariff(load_tariff(), effective_from=0)
    deployment_path = home / "deployment.json"
    write_deployment(deployment_path, deployment)
    database = home / "assetproof.db"
    db_url = f"sqlite:///{database}"
    keys, auth = home / "keys", home / "broker-auth"
    common = [
        "--database",
        db_url,
        "--keystore",
        str(keys),
        "--broker-auth",
        str(auth),
        "--deployment",
        str(deployment_path),
        "--rpc",
        anvil_node.url,
        "--key",
        key_arg(registrar),
    ]
    cli("devices", "provision", "--kind", "solar", "--count", "2", "--asset", "hk-rooftops", *common)
    cli(
        "devices", "provision", "--kind", "charger", "--count", "2", "--asset", "kowloon-hub", "--alg", "es256", *common
    )
    cli("devices", "provision", "--kind", "miner", "--count", "1", "--asset", "hydro-pod", *common)
    login = json.loads((auth / "gateway.json").read_text())

    broker = Mosquitto(home / "broker", dynsec_file=auth / "dynsec.json")
    broker.start()
    log = home / "gw.log"
    gateway = start_gateway(
        database_url=db_url,
        port=broker.port,
        log_path=log,
        extra=["--username", login["username"], "--password", login["password"]],
    )
    outbox = home / "outbox.sqlite"
    engine = make_engine(db_url)
    try:
        wait_subscribed(log)
        _simulate(keys, outbox, broker.port, 4)
        wait_for(lambda: count_rows(engine, Reading) == _signed(outbox), what="every signed reading stored")
    finally:
        assert stop_process(gateway) == 0, log.read_text()[-2000:]
        broker.stop()
    # The log takes the first readings; the rest stay pending (stored, not yet in the log), so a
    # test can also tamper before the attestor anchors.
    total = count_rows(engine, Reading)
    attest(engine, ChainClient(w3, account=operator, deployment=deployment), limit=total - 2 * EPOCH_LEAVES // 3)
    with engine.connect() as conn:
        anchored = conn.execute(select(func.count()).select_from(Epoch).where(Epoch.status == "anchored")).scalar()
        pending = conn.execute(select(func.count()).select_from(Reading).where(Reading.log_index.is_(None))).scalar()
    assert anchored is not None
    assert anchored >= 2, "the baseline should anchor a few epochs"
    assert pending, "the baseline should leave readings pending"
    engine.dispose()
    return Pipeline(
        home=home,
        database=database,
        deployment_path=deployment_path,
        deployment=deployment,
        keystore=keys,
        node=anvil_node,
        operator=operator,
        registrar=registrar,
        pricing=pricing,
        governor=governor,
    )


@dataclass
class Case:
    """One test's own copy of the pipeline's database, on a chain reverted after the test."""

    pipeline: Pipeline
    tmp: Path
    db_url: str
    engine: Engine

    def chain(self, account: LocalAccount | None = None) -> ChainClient:
        """A client with the operator's key (or ``account``'s)."""
        p = self.pipeline
        return ChainClient(p.node.web3(), account=account or p.operator, deployment=p.deployment)

    def reader(self) -> ChainReader:
        return ChainReader(self.pipeline.node.web3(), deployment=self.pipeline.deployment)

    def attest(self) -> None:
        attest(self.engine, self.chain())

    def bundle(self, *, log_index: int) -> Path:
        path = self.tmp / f"bundle-{log_index}.json"
        cli("bundle", "--log-index", str(log_index), "--out", str(path), *self.db_args())
        return path

    def db_args(self) -> list[str]:
        return ["--database", self.db_url, "--deployment", str(self.pipeline.deployment_path)]

    def verify(self, bundle: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return cli(
            "verify",
            str(bundle),
            "--rpc",
            self.pipeline.rpc,
            "--deployment",
            str(self.pipeline.deployment_path),
            *extra,
            check=False,
        )

    def export(self, epochs: str) -> Path:
        out = self.tmp / f"export-{epochs}"
        cli("export", "--epochs", epochs, str(out), *self.db_args())
        return out

    def audit(
        self, epochs: str, source: Path | str, *extra: str, deployment: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return cli(
            "audit",
            "--epochs",
            epochs,
            "--source",
            str(source),
            "--rpc",
            self.pipeline.rpc,
            "--deployment",
            str(deployment or self.pipeline.deployment_path),
            *extra,
            check=False,
        )

    def anchored_epochs(self) -> list[int]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(select(Epoch.number).where(Epoch.status == "anchored").order_by(Epoch.number)).scalars()
            )


@pytest.fixture
def case(pipeline: Pipeline, tmp_path: Path) -> Iterator[Case]:
    copy = tmp_path / "assetproof.db"
    with sqlite3.connect(pipeline.database) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    snapshot = pipeline.node.rpc("evm_snapshot")
    engine = make_engine(f"sqlite:///{copy}")
    try:
        yield Case(pipeline=pipeline, tmp=tmp_path, db_url=f"sqlite:///{copy}", engine=engine)
    finally:
        engine.dispose()
        assert pipeline.node.rpc("evm_revert", [snapshot]) is True
