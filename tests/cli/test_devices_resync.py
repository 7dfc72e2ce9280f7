"""``assetproof devices resync``: a key rotation whose new key starts a new chain, recorded in the
store (the key row, the pending restart) and on chain (the rotation auditors see)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from chain.deployment import read_deployment
from chain.reader import ChainReader
from device_sim.keystore import Keystore
from devstack.anvil import start_anvil
from store.db import make_engine
from store.tables import DeviceKey, DeviceState
from tests.support.chain import require_anvil
from tests.support.processes import REPO


def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True, check=False)
    assert (out.returncode == 0) == ok, out.stderr[-2000:]
    return out


def test_resync_rotates_the_key_on_chain_and_opens_a_new_chain(tmp_path: Path) -> None:
    require_anvil()
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with start_anvil() as anvil:
        deployment = tmp_path / "deployment.json"
        registry = ["--database", db, "--deployment", str(deployment), "--rpc", anvil.url]
        common = [*registry, "--keystore", str(tmp_path / "keys")]
        cli("chain", "deploy", "--rpc", anvil.url, "--deployment", str(deployment))
        cli(
            "devices",
            "provision",
            "--kind",
            "solar",
            "--count",
            "1",
            "--asset",
            "roof",
            "--broker-auth",
            str(tmp_path / "auth"),
            *common,
        )
        keystore = Keystore(tmp_path / "keys")
        (device_id,) = keystore.ids()
        old = keystore.load(device_id).public_key

        out = cli("devices", "resync", device_id, *common)
        assert "seq > 0 and prev = 32 zero bytes" in out.stdout
        new = keystore.load(device_id).public_key
        assert new != old
        chain = ChainReader(anvil.web3(), deployment=read_deployment(deployment))
        assert [k.public_key for k in chain.device_keys(device_id)] == [old, new]

        refused = cli("devices", "resync", "sol-nobody", *common, ok=False)
        assert "sol-nobody" in refused.stderr + refused.stdout

    engine = make_engine(db)
    with engine.connect() as conn:
        keys = conn.execute(select(DeviceKey.public_key, DeviceKey.ended_by, DeviceKey.new_chain)).all()
        pending = conn.execute(select(DeviceState.resync_pending)).scalar_one()
    engine.dispose()
    assert [(bytes(k), e, n) for k, e, n in keys] == [(old, "rotated", False), (new, None, True)]
    assert pending
