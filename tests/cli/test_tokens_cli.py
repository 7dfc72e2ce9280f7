"""``assetproof token ...`` on a fresh anvil deployment: the issuer's key setting, the tokens
section written to the deployment file, and each refusal as one line with exit 1 (the contract
refused, its error named) or 2 (unusable input, caught before any transaction). The whole path
with anchored epochs is tests/auditor/test_distributions.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from chain.deployment import read_deployment, write_deployment
from chain.token_types import tokens_section
from config import ANVIL_DEV_KEY, SettingsError, load_settings
from devstack.anvil import AnvilNode
from tests.support.chain import Chain, funded_account
from tests.support.processes import REPO

ASSET = "tsim-wan-chai-roof"


def _key(account: LocalAccount) -> str:
    return "0x" + bytes(account.key).hex()


def test_the_issuer_key_defaults_to_the_chain_key_in_development_only() -> None:
    assert load_settings(environ={}).require_issuer_key() == ANVIL_DEV_KEY
    mine = "0x" + "ab" * 32
    assert load_settings(environ={"ASSETPROOF_CHAIN_KEY": mine}).require_issuer_key() == mine
    with pytest.raises(SettingsError, match="ASSETPROOF_ISSUER_KEY is required in production mode"):
        load_settings(
            environ={"ASSETPROOF_MODE": "production", "ASSETPROOF_ADMIN_TOKEN": "x" * 32}
        ).require_issuer_key()


class Cli:
    def __init__(self, rpc: str, deployment: Path, issuer: LocalAccount) -> None:
        self.rpc = rpc
        self.deployment = deployment
        self.issuer = issuer

    def __call__(self, *args: str, key: LocalAccount | None = None) -> subprocess.CompletedProcess[str]:
        signer = ["--key", _key(key or self.issuer)]
        command = [sys.executable, "-m", "cli", *args, "--rpc", self.rpc, "--deployment", str(self.deployment)]
        return subprocess.run(command + signer, cwd=REPO, capture_output=True, text=True, check=False)


def _one_line(out: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert out.returncode == code, out.stdout[-2000:] + out.stderr[-2000:]
    line = out.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert "Traceback" not in line
    assert needle.lower() in line.lower(), line


def test_token_commands_and_their_refusals(anvil_node: AnvilNode, anvil_chain: Chain, tmp_path: Path) -> None:
    deployment = tmp_path / "deployment.json"
    write_deployment(deployment, anvil_chain.deployment)
    issuer, holder, stranger = (funded_account(anvil_chain.w3) for _ in range(3))
    run = Cli(anvil_node.url, deployment, issuer)

    # Unusable input: exit 2 before any transaction.
    _one_line(run("token", "deploy", "--asset", ASSET, "--investor-share-bps", "5000", "--kind", "bond"), 2, "--kind")
    _one_line(run("token", "deploy", "--asset", ASSET, "--investor-share-bps", "5000"), 2, "--supply is required")
    _one_line(
        run("token", "deploy", "--asset", ASSET, "--investor-share-bps", "5000", "--kind", "hashrate"),
        2,
        "no registered hashrate",
    )
    _one_line(
        run("token", "deploy", "--asset", ASSET, "--investor-share-bps", "5000", "--supply", "10"),
        2,
        "no settlement token",
    )
    _one_line(run("token", "issue", "--asset", ASSET, "--to", holder.address, "--amount", "1"), 2, "no token for asset")

    out = run(
        "token", "deploy", "--asset", ASSET, "--investor-share-bps", "2500", "--supply", "100", "--demo-stablecoin"
    )
    assert out.returncode == 0, out.stderr
    section = tokens_section(read_deployment(deployment))
    token = section.token(ASSET)
    assert section.settlement is not None
    assert section.settlement.decimals == 2
    assert (token.kind, token.investor_share_bps, token.max_supply) == ("share", 2500, 100)
    assert token.address in out.stdout
    _one_line(
        run("token", "deploy", "--asset", ASSET, "--investor-share-bps", "5000", "--supply", "10"),
        2,
        "already has a token",
    )

    # The contract's refusals: exit 1 with the error and its arguments.
    _one_line(run("token", "issue", "--asset", ASSET, "--to", holder.address, "--amount", "5"), 1, "NotAllowlisted")
    assert run("token", "allow", holder.address, "--asset", ASSET).returncode == 0
    assert run("token", "issue", "--asset", ASSET, "--to", holder.address, "--amount", "60").returncode == 0
    _one_line(
        run("token", "issue", "--asset", ASSET, "--to", holder.address, "--amount", "41"),
        1,
        "SupplyCapExceeded(maxSupply=100, supplyAfter=101)",
    )
    _one_line(
        run("token", "transfer", "--asset", ASSET, "--to", stranger.address, "--amount", "1", key=holder),
        1,
        "NotAllowlisted",
    )
    _one_line(
        run("token", "allow", stranger.address, "--asset", ASSET, key=holder), 1, "AccessControlUnauthorizedAccount"
    )
    _one_line(run("claim", "--asset", ASSET, key=holder), 1, "NothingToClaim")
    _one_line(run("distribute", "--asset", ASSET, "--epochs", "3..1"), 2, "ends before it starts")

    listing = run("token", "holders", "--asset", ASSET, "--json", key=holder)
    # holders signs nothing: --key is not one of its options.
    assert listing.returncode == 2
    command = [sys.executable, "-m", "cli", "token", "holders", "--asset", ASSET, "--json"]
    shown = subprocess.run(
        [*command, "--rpc", run.rpc, "--deployment", str(deployment)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["totalSupply"] == 60
    assert doc["investorShareBps"] == 2500
    assert [(h["address"], h["balance"]) for h in doc["holders"]] == [(holder.address, 60)]
