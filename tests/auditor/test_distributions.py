"""The whole path of issue 15 through the CLI, on anvil: devices -> anchored per-asset totals ->
a token funded with exactly its cap -> claimed -> audited from the chain alone; and the CLI's bad
inputs (above the cap, an epoch twice, not anchored, a transfer off the allowlist), each refused
with a one-line error."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from attestor.epochs import EpochBuilder, EpochPolicy, metadata_of
from chain.deployment import read_deployment
from chain.token_types import tokens_section
from chain.tokens import TokenReader
from store.tables import Epoch
from tests.auditor.conftest import EPOCH_LEAVES, Case, cli, key_arg
from tests.support.chain import funded_account

POD = "hydro-pod"
ROOF = "hk-rooftops"
BPS = 4_000


@dataclass
class Market:
    case: Case
    deployment: Path
    issuer: LocalAccount
    alice: LocalAccount
    bob: LocalAccount
    stranger: LocalAccount

    def run(self, *args: str, key: LocalAccount | None = None) -> subprocess.CompletedProcess[str]:
        return cli(
            *args,
            "--rpc",
            self.case.pipeline.rpc,
            "--deployment",
            str(self.deployment),
            "--key",
            key_arg(key or self.issuer),
            check=False,
        )

    def read(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A command that signs nothing (no --key)."""
        return cli(*args, "--rpc", self.case.pipeline.rpc, "--deployment", str(self.deployment), check=False)

    def distribute(self, asset: str, epochs: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run("distribute", "--asset", asset, "--epochs", epochs, "--database", self.case.db_url, *extra)

    def reader(self) -> TokenReader:
        return TokenReader(self.case.pipeline.node.web3(), deployment=read_deployment(self.deployment))

    def token(self, asset: str) -> str:
        return tokens_section(read_deployment(self.deployment)).token(asset).address

    def nets(self, asset: str) -> list[int]:
        with self.case.engine.connect() as conn:
            rows = conn.execute(select(Epoch).where(Epoch.status == "anchored").order_by(Epoch.number)).all()
        return [metadata_of(row).assets[asset].net for row in rows]


def _ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout


def _refused(out: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert out.returncode == code, out.stdout[-2000:] + out.stderr[-2000:]
    line = out.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert "Traceback" not in line
    for needle in needles:
        assert needle.lower() in line.lower(), line
    return line


def _market(case: Case) -> Market:
    """A copy of the deployment file (each test writes its own tokens section) and funded keys."""
    deployment = case.tmp / "deployment.json"
    shutil.copy(case.pipeline.deployment_path, deployment)
    w3 = case.pipeline.node.web3()
    issuer, alice, bob, stranger = (funded_account(w3) for _ in range(4))
    return Market(case=case, deployment=deployment, issuer=issuer, alice=alice, bob=bob, stranger=stranger)


def _deploy(m: Market, asset: str, *extra: str) -> str:
    _ok(m.run("token", "deploy", "--asset", asset, "--investor-share-bps", str(BPS), *extra))
    _ok(m.run("token", "allow", m.alice.address, m.bob.address, "--asset", asset))
    return m.token(asset)


def _entitled(nets: list[int]) -> int:
    """What funding each epoch with its cap adds up to: the running maximum of the investors'
    share of the cumulative net (a loss lowers the cap until later gains make it good)."""
    cumulative = best = 0
    for net in nets:
        cumulative += net
        best = max(best, cumulative * BPS // 10_000 if cumulative > 0 else 0)
    return best


def test_devices_to_audited_distributions(case: Case) -> None:
    m = _market(case)
    anchored = case.anchored_epochs()
    last = anchored[-1]

    # The pod's hashrate token: one token per TH/s registered in the DeviceRegistry.
    pod = _deploy(m, POD, "--kind", "hashrate", "--demo-stablecoin")
    info = m.reader().token_info(pod)
    assert info.kind == "hashrate"
    assert info.max_supply >= 234  # the simulated miners are rated 234..335 TH/s
    _ok(m.run("token", "issue", "--asset", POD, "--to", m.alice.address, "--amount", str(info.max_supply - 100)))
    _ok(m.run("token", "issue", "--asset", POD, "--to", m.bob.address, "--amount", "100"))
    # The rooftops' share token reuses the settlement coin recorded in the deployment file.
    roof = _deploy(m, ROOF, "--supply", "1000")
    assert m.reader().token_info(roof).settlement == info.settlement
    _ok(m.run("token", "issue", "--asset", ROOF, "--to", m.alice.address, "--amount", "750"))
    _ok(m.run("token", "issue", "--asset", ROOF, "--to", m.bob.address, "--amount", "250"))

    # Funded with exactly the attested cap, epoch by epoch, from the store's metadata proven
    # against the anchored checkpoints.
    for asset, token in ((POD, pod), (ROOF, roof)):
        out = _ok(m.distribute(asset, f"0..{last}"))
        assert out.count(f"funded {asset} epoch") == len(anchored)
        expected = _entitled(m.nets(asset))
        assert m.reader().token_info(token).total_funded == expected
        assert m.reader().token_info(token).cap == 0

    # The pod earned; bob sells part of his terahashes before claiming: what he was owed stays his.
    pod_info = m.reader().token_info(pod)
    assert pod_info.total_funded > 0, "the simulated pod should have earned a net"
    owed = {a.address: m.reader().claimable(pod, a.address) for a in (m.alice, m.bob)}
    assert owed[m.bob.address] == pod_info.total_funded * 100 // pod_info.total_supply
    _ok(m.run("token", "transfer", "--asset", POD, "--to", m.alice.address, "--amount", "50", key=m.bob))
    for holder in (m.alice, m.bob):
        out = _ok(m.run("claim", "--asset", POD, key=holder))
        assert f"claimed {owed[holder.address]} " in out
    pod_info = m.reader().token_info(pod)
    assert pod_info.total_claimed == sum(owed.values()) <= pod_info.total_funded
    # Rounding leaves at most a unit per holder per funding in the contract, never pays more.
    assert pod_info.total_funded - pod_info.total_claimed <= 2 * len(anchored)
    # The rooftops earned nothing in these epochs: funded 0, nothing to claim.
    assert m.reader().token_info(roof).total_funded == 0
    _refused(m.run("claim", "--asset", ROOF, key=m.alice), 1, "NothingToClaim")

    holders = json.loads(_ok(m.read("token", "holders", "--asset", POD, "--json")))
    by_address = {h["address"]: h for h in holders["holders"]}
    assert by_address[m.bob.address]["balance"] == 50
    assert by_address[m.alice.address]["balance"] == pod_info.total_supply - 50
    assert by_address[m.bob.address]["claimed"] == owed[m.bob.address]

    # Audited from the chain alone: every distribution of the window against its recomputed cap.
    export = case.export(f"0..{last}")
    out = case.audit(f"0..{last}", export, "--json", deployment=m.deployment)
    report = json.loads(out.stdout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert report["ok"] is True
    checked = report["distributions"]
    assert {(d["asset"], d["epoch"]) for d in checked} == {(a, e) for a in (POD, ROOF) for e in anchored}
    assert all(d["excess"] == 0 and d["funded"] == d["cap"] for d in checked)
    assert sum(d["funded"] for d in checked if d["asset"] == POD) == pod_info.total_funded
    text = case.audit(f"0..{last}", export, deployment=m.deployment)
    assert text.returncode == 0, text.stdout[-2000:]
    assert "distributions funded in the window" in text.stdout


def test_bad_inputs_are_refused_in_one_line(case: Case) -> None:
    m = _market(case)
    anchored = case.anchored_epochs()
    _deploy(m, POD, "--kind", "hashrate", "--demo-stablecoin")
    _ok(m.run("token", "issue", "--asset", POD, "--to", m.alice.address, "--amount", "10"))
    first = anchored[0]

    # Above the cap: the contract's CapExceeded, with its cap and the amount.
    nets = m.nets(POD)
    cap0 = max(nets[0], 0) * BPS // 10_000
    _refused(
        m.distribute(POD, str(first), "--amount", str(cap0 + 1)),
        1,
        "CapExceeded",
        f"cap={cap0}",
        f"amount={cap0 + 1}",
    )
    # An epoch twice.
    _ok(m.distribute(POD, str(first)))
    _refused(m.distribute(POD, str(first)), 1, "EpochAlreadyFunded")
    # An epoch closed but not anchored yet, and one not even closed.
    builder = EpochBuilder(case.engine, policy=EpochPolicy(window_ms=1, max_leaves=EPOCH_LEAVES), tariffs=case.chain())
    builder.append_pending()
    assert builder.close_due_epoch(now_ms=time.time_ns() // 1_000_000 + 1)
    closed = anchored[-1] + 1
    _refused(m.distribute(POD, str(closed)), 2, f"epoch {closed} is not anchored")
    _refused(m.distribute(POD, str(closed + 5)), 2, f"epoch {closed + 5} is not closed")
    # A transfer to an account off the allowlist.
    _refused(
        m.run("token", "transfer", "--asset", POD, "--to", m.stranger.address, "--amount", "1", key=m.alice),
        1,
        "NotAllowlisted",
        m.stranger.address,
    )
    # A claim by a non-holder, and a distribution for an asset without a token.
    _refused(m.run("claim", "--asset", POD, key=m.stranger), 1, "NothingToClaim")
    _refused(m.distribute(ROOF, str(first)), 2, "no token for asset")
