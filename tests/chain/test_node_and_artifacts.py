"""Nodes, artifacts and deployment files."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from web3 import Web3

from chain import compile as chain_compile
from chain._artifacts import load_artifact
from chain.deployment import Deployment, read_deployment, write_deployment
from chain.devchain import dev_fund
from chain.errors import ChainUnavailableError, DeploymentError, NodeError
from chain.reader import ChainReader
from chain.writer import ChainClient
from devstack.anvil import ANVIL_ENV, find_anvil, start_anvil
from protocol.merkle.log import MerkleLog
from tests.support.chain import Chain, assets, funded_account, grow, meta, require_anvil

REPO = Path(__file__).resolve().parents[2]


# --- artifacts --------------------------------------------------------------------------------------


def test_committed_artifacts_equal_a_fresh_compile() -> None:
    assert chain_compile.check_artifacts() == []


def test_compile_check_command_fails_on_a_changed_source(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chain.compile", "--check"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    changed = tmp_path / "contracts"
    changed.mkdir()
    for path in chain_compile.CONTRACTS_DIR.glob("*.sol"):  # the bases (Governed.sol) too
        source = path.read_text()
        if path.stem == "AnchorRegistry":
            source = source.replace("revert ZeroRoot();", "revert ZeroRoot(); // changed")
        (changed / path.name).write_text(source)
    differing = chain_compile.check_artifacts(contracts_dir=changed)
    # Every artifact records the hash of all the sources, so both differ.
    assert "AnchorRegistry.json: differs from a fresh compile" in differing


def test_artifacts_record_how_they_were_built() -> None:
    for name in chain_compile.CONTRACTS:
        data = json.loads((chain_compile.ARTIFACTS_DIR / f"{name}.json").read_text())
        assert data["compiler"]["version"].startswith("0.8.37+")
        assert data["settings"]["evmVersion"] == "cancun"
        assert data["settings"]["optimizer"]["enabled"] is True
        # Creation code opens by pushing the free-memory pointer: PUSH1, or PUSH2 when the
        # contract's immutables need more scratch (ShareToken).
        assert data["bytecode"].startswith(("0x60", "0x61"))
        assert len(data["sourceSha256"]) == 64
    package = json.loads((chain_compile.CHAIN_DIR / "package.json").read_text())
    assert package["dependencies"]["solc"] == "0.8.37"  # pinned exactly
    assert package["dependencies"]["@openzeppelin/contracts"] == "5.7.0"


# --- deployment files -------------------------------------------------------------------------------


def test_deployment_file_round_trip_and_code_check(chain: Chain, tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    write_deployment(path, chain.deployment)
    loaded = read_deployment(path)
    assert loaded == chain.deployment
    assert loaded.chain_id == chain.w3.eth.chain_id
    assert loaded.deployment_block >= 1
    data = json.loads(path.read_text())
    assert data["contracts"]["AnchorRegistry"]["artifactSha256"] == load_artifact("AnchorRegistry").sha256.hex()
    ChainReader(chain.w3, deployment=loaded).verify_deployment()
    assert data["format"] == "assetproof-deployment/2"
    assert data["roles"] == {
        "governor": chain.governor.address,
        "attestor": chain.attestor.address,
        "registrar": chain.registrar.address,
        "pricingAuthority": chain.pricing.address,
    }
    params = chain.deployment.params
    assert data["parameters"] == {
        "governanceDelay": params.governance_delay,
        "rotationGrace": params.rotation_grace,
        "maxBackfill": params.max_backfill,
        "maxGrowth": params.max_growth,
    }
    assert set(data["contracts"]) == {"AnchorRegistry", "DeviceRegistry", "TariffRegistry", "ReadingVerifier"}
    # Addresses swapped: the code at each is not what the file says.
    for swapped in (
        replace(loaded, anchor_registry=loaded.device_registry, device_registry=loaded.anchor_registry),
        replace(loaded, tariff_registry=loaded.device_registry),
    ):
        with pytest.raises(DeploymentError, match="not the committed"):
            ChainReader(chain.w3, deployment=swapped).verify_deployment()
    without_tariffs = json.loads(loaded.to_json())
    del without_tariffs["contracts"]["TariffRegistry"]
    with pytest.raises(DeploymentError, match="lists no TariffRegistry"):
        Deployment.from_json(json.dumps(without_tariffs))
    other_chain = Deployment.from_json(loaded.to_json().replace(f'"chainId": {loaded.chain_id}', '"chainId": 1'))
    with pytest.raises(DeploymentError, match="chain id"):
        ChainReader(chain.w3, deployment=other_chain).verify_deployment()


def test_verify_deployment_compares_roles_and_parameters(chain: Chain) -> None:
    """An auditor's own deployment file pins whom it trusts: a chain whose role holders or
    parameters differ from the file is refused, with the mismatch named."""
    loaded = chain.deployment
    impostor = chain.stranger.address
    for role in ("attestor", "registrar", "pricing_authority", "governor"):
        wrong = replace(loaded, roles=replace(loaded.roles, **{role: impostor}))
        with pytest.raises(DeploymentError, match=f"names {role} {impostor}, but the chain's is") as info:
            ChainReader(chain.w3, deployment=wrong).verify_deployment()
        actual = loaded.roles.holder(role)  # type: ignore[arg-type]
        assert actual in str(info.value)
    for name in ("governance_delay", "rotation_grace", "max_backfill", "max_growth"):
        wrong = replace(loaded, params=replace(loaded.params, **{name: getattr(loaded.params, name) + 1}))
        with pytest.raises(DeploymentError, match=f"says {name} .*, but the chain's is {getattr(loaded.params, name)}"):
            ChainReader(chain.w3, deployment=wrong).verify_deployment()


def test_a_version_1_deployment_file_says_to_redeploy(tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    old = {
        "format": "assetproof-deployment/1",
        "chainId": 31337,
        "deploymentBlock": 1,
        "attestor": "0x" + "11" * 20,
        "admin": "0x" + "22" * 20,
        "contracts": {},
    }
    path.write_text(json.dumps(old))
    with pytest.raises(DeploymentError, match=r"made before roles existed.*assetproof chain deploy"):
        read_deployment(path)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{}",
        '{"format": "assetproof-deployment/2"}',
        '{"format": "other"}',
        "[1]",
        '{"format": "assetproof-deployment/2", "chainId": -1}',
    ],
)
def test_bad_deployment_files(text: str, tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    path.write_text(text)
    with pytest.raises(DeploymentError):
        read_deployment(path)
    with pytest.raises(DeploymentError):
        read_deployment(tmp_path / "missing.json")


def test_a_client_without_contracts_says_so() -> None:
    client = ChainClient(Web3(), account=b"\x01" * 32)
    with pytest.raises(DeploymentError, match="deploy"):
        client.latest_checkpoint()


# --- anvil --------------------------------------------------------------------------------------------


def test_anvil_restart_with_state_keeps_the_checkpoints(tmp_path: Path) -> None:
    require_anvil()
    state = tmp_path / "anvil-state.json"
    log = grow(MerkleLog(), 40)
    with start_anvil(state_file=state) as node:
        w3 = node.web3()
        attestor = funded_account(w3)
        client = ChainClient(w3, account=attestor)
        deployment = client.deploy()
        previous = 0
        for epoch, size in enumerate((3, 10, 17)):
            client.anchor(
                epoch=epoch,
                tree_size=size,
                root=log.root(size),
                meta_hash=meta(epoch),
                assets_root=assets(epoch),
                proof=log.consistency_proof(previous, size),
            )
            previous = size
        pid = node.pid
        node.restart()
        assert node.pid != pid
        assert state.is_file()
        reader = ChainReader(node.web3(), deployment=deployment)
        reader.verify_deployment()
        latest = reader.latest_checkpoint()
        assert latest is not None
        assert (latest.epoch, latest.tree_size, latest.root) == (2, 17, log.root(17))
        assert [reader.checkpoint(e).tree_size for e in range(3)] == [3, 10, 17]
        # The log goes on from where the chain left it.
        again = ChainClient(node.web3(), account=attestor, deployment=deployment)
        again.anchor(
            epoch=3,
            tree_size=40,
            root=log.root(40),
            meta_hash=meta(3),
            assets_root=assets(3),
            proof=log.consistency_proof(17, 40),
        )
        assert reader.epoch_count() == 4
    assert not node.running


def test_a_stopped_node_is_reported_as_unavailable() -> None:
    require_anvil()
    node = start_anvil()
    w3 = node.web3()
    dev_fund(w3, funded_account(w3).address)
    deployment = ChainClient(w3, account=funded_account(w3)).deploy()
    node.kill()
    reader = ChainReader(w3, deployment=deployment)
    with pytest.raises(ChainUnavailableError):
        reader.latest_checkpoint()
    with pytest.raises(ChainUnavailableError):
        reader.block_number()


def test_find_anvil_and_a_missing_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    require_anvil()
    found = find_anvil()
    assert found is not None
    assert found.name == "anvil"
    assert "node_modules" in found.parts
    monkeypatch.setenv(ANVIL_ENV, str(tmp_path / "no-anvil-here"))
    assert find_anvil() is None
    with pytest.raises(NodeError, match="npm ci --prefix chain"):
        start_anvil()
