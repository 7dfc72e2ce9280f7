"""``assetproof attestor`` as a process against a real anvil: the chain goes down and comes back,
the attestor is killed with -9, a second attestor waits and takes over. No epoch is anchored
twice, no reading is left out, the log has no gap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, func, select

from devstack.anvil import start_anvil
from protocol.merkle.log import tree_root
from store.db import make_engine
from store.tables import Epoch, Reading
from tests.attestor.test_epochs import _ingest
from tests.support.chain import require_anvil
from tests.support.devices import register
from tests.support.processes import REPO, stop_process, wait_for


def _start_attestor(db_url: str, rpc: str, deployment: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli",
            "attestor",
            "--database",
            db_url,
            "--rpc",
            rpc,
            "--deployment",
            str(deployment),
            "--epoch-seconds",
            "0.3",
        ],
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _epochs(engine: Engine) -> list[tuple[int, str, int]]:
    with engine.connect() as conn:
        return [
            tuple(r) for r in conn.execute(select(Epoch.number, Epoch.status, Epoch.leaves_to).order_by(Epoch.number))
        ]


def _all_anchored(engine: Engine, readings: int) -> bool:
    epochs = _epochs(engine)
    return bool(epochs) and all(status == "anchored" for _, status, _ in epochs) and epochs[-1][2] == readings


def test_chain_outage_kill_9_and_failover(db_url: str, tmp_path: Path) -> None:
    require_anvil()
    anvil = start_anvil(state_file=tmp_path / "anvil-state.json")
    rpc = anvil.url
    deployment = tmp_path / "deployment.json"
    out = subprocess.run(
        [sys.executable, "-m", "cli", "chain", "deploy", "--rpc", rpc, "--deployment", str(deployment)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    engine = make_engine(db_url)
    (dev,) = register(engine)
    logs = [tmp_path / "attestor-1.log", tmp_path / "attestor-2.log"]
    first = _start_attestor(db_url, rpc, deployment, logs[0])
    second = _start_attestor(db_url, rpc, deployment, logs[1])  # waits: only one leads
    try:
        _ingest(db_url, engine, [(dev.topic, dev.next().raw) for _ in range(20)])
        wait_for(lambda: _all_anchored(engine, 20), what="first epochs anchored")

        anvil.stop()  # the chain goes away; ingest and epochs go on
        _ingest(db_url, engine, [(dev.topic, dev.next().raw) for _ in range(15)])
        wait_for(lambda: _epochs(engine)[-1][2] == 35, what="epochs closed while the chain is down")
        assert _epochs(engine)[-1][1] != "anchored"
        anvil.start()
        wait_for(lambda: _all_anchored(engine, 35), what="catch-up after the chain returned")

        leader = first if "leading" in logs[0].read_text() else second
        follower = second if leader is first else first
        assert "leading" not in (logs[1] if follower is second else logs[0]).read_text()
        _ingest(db_url, engine, [(dev.topic, dev.next().raw) for _ in range(10)])
        leader.send_signal(signal.SIGKILL)  # at whatever point it was
        leader.wait()
        wait_for(lambda: _all_anchored(engine, 45), timeout_s=90, what="the follower takes over")
    finally:
        for process in (first, second):
            stop_process(process)
        anvil.stop()

    epochs = _epochs(engine)
    reader = json.loads(deployment.read_text())
    assert reader["chainId"] == 31337
    from chain.deployment import read_deployment
    from chain.reader import ChainReader
    from devstack.anvil import start_anvil as restart

    anvil = restart(port=anvil.port, state_file=tmp_path / "anvil-state.json")
    try:
        chain = ChainReader(anvil.web3(), deployment=read_deployment(deployment))
        assert chain.epoch_count() == len(epochs)  # none twice, none missing
        with engine.connect() as conn:
            leaves = [bytes(r) for r in conn.execute(select(Reading.leaf_hash).order_by(Reading.log_index)).scalars()]
            assert conn.execute(select(func.count()).where(Reading.log_index.is_(None))).scalar_one() == 0
        assert len(leaves) == 45
        for number, _, size in epochs:
            assert chain.checkpoint(number).root == tree_root(leaves[:size])  # no gap, no reordering
    finally:
        anvil.stop()
        engine.dispose()
