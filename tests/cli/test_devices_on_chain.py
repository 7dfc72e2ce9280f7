"""``assetproof devices`` keeps the chain's DeviceRegistry in step: provision registers keys in
batches, rotate and revoke end them, so auditors learn keys from the chain."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chain.deployment import read_deployment
from chain.reader import ChainReader
from device_sim.keystore import Keystore
from devstack.anvil import start_anvil
from tests.support.chain import require_anvil
from tests.support.processes import REPO


def cli(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_provision_rotate_revoke_on_chain(tmp_path: Path) -> None:
    require_anvil()
    with start_anvil() as anvil:
        deployment = tmp_path / "deployment.json"
        registry = ["--database", f"sqlite:///{tmp_path / 'a.db'}", "--deployment", str(deployment), "--rpc", anvil.url]
        common = [*registry, "--keystore", str(tmp_path / "keys")]
        cli("chain", "deploy", "--rpc", anvil.url, "--deployment", str(deployment))
        cli(
            "devices",
            "provision",
            "--kind",
            "miner",
            "--count",
            "3",
            "--asset",
            "hydro-pod",
            "--alg",
            "es256",
            "--broker-auth",
            str(tmp_path / "auth"),
            *common,
        )
        keystore = Keystore(tmp_path / "keys")
        chain = ChainReader(anvil.web3(), deployment=read_deployment(deployment))
        ids = keystore.ids()
        assert len(ids) == 3
        for device_id in ids:
            assert chain.current_key(device_id).public_key == keystore.load(device_id).public_key

        old = keystore.load(ids[0]).public_key
        cli("devices", "rotate", ids[0], *common)
        keys = chain.device_keys(ids[0])
        assert [k.public_key for k in keys] == [old, keystore.load(ids[0]).public_key]
        assert keys[0].until_block is not None
        assert keys[1].until_block is None

        cli("devices", "revoke", ids[1], *registry)
        assert chain.device(ids[1]).revoked
