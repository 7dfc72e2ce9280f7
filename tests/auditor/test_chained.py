"""The auditor follows every device's chain through accepted readings AND chained rejections
(quarantined messages that advanced the chain), reports loss per device and silent devices, and
accepts a chain restart only at a key rotation. Exports are built here from real signed readings
and anchored on a real anvil (tests/auditor/exports.py)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from auditor.audit import audit_epochs
from auditor.report import AuditReport
from auditor.sources import DirectorySource
from chain.deployment import write_deployment
from chain.ids import device_id_hash
from devstack.anvil import AnvilNode
from protocol.envelope import GENESIS_PREV
from tests.auditor.exports import Epoch, Fleet, Quarantined, edited, rejected
from tests.support.processes import REPO


def _audit(fleet: Fleet, folder: Path, epochs: int) -> AuditReport:
    return audit_epochs(DirectorySource(folder), chain=fleet.reader(), first=0, last=epochs - 1, threads=1)


def _checks(report: AuditReport) -> dict[str, list[tuple[str | None, int | None]]]:
    found: dict[str, list[tuple[str | None, int | None]]] = {}
    for f in report.findings:
        found.setdefault(f.check, []).append((f.device, f.seq))
    return found


def _stream_with_rejections(fleet: Fleet) -> list[Epoch]:
    """sol-a: 1 2 [3 implausible] 4 | 5 [6 clock_skew] 7; sol-b: four plain readings; one junk
    message on sol-b's topic (not chained)."""
    a = [fleet.sign("sol-a", energy_wh=9_999_999 if seq == 3 else 120) for seq in range(1, 8)]
    b = [fleet.sign("sol-b") for _ in range(4)]
    junk = Quarantined(raw=b"\x00not json", reason="malformed", chained=False, device=None, seq=None, publisher="sol-b")
    return [
        Epoch(leaves=[a[0], b[0], a[1], a[3], b[1]], quarantine=[rejected(a[2], "implausible"), junk]),
        Epoch(leaves=[a[4], b[2], a[6], b[3]], quarantine=[rejected(a[5], "clock_skew")]),
    ]


def test_chained_rejections_bridge_the_chain_and_are_listed(anvil_node: AnvilNode, tmp_path: Path) -> None:
    fleet = Fleet.deploy(anvil_node, ["sol-a", "sol-b"])
    report = _audit(fleet, fleet.export(tmp_path, _stream_with_rejections(fleet)), 2)
    assert report.findings == [], report.render()
    assert [(r.epoch, r.device, r.seq, r.reason) for r in report.rejections] == [
        (0, "sol-a", 3, "implausible"),
        (1, "sol-a", 6, "clock_skew"),
    ]
    chain = report.devices["sol-a"]
    assert (chain.first_seq, chain.last_seq, chain.readings, chain.lost) == (1, 7, 7, 0)
    assert report.signatures_checked == 9 + 2  # every leaf and both chained rejections
    assert report.quarantined == 3
    text = report.render()
    assert "PASSED" in text
    assert "chained rejections: 2" in text
    assert "sol-a#3  implausible" in text
    assert "sol-a#6  clock_skew" in text


def _tamper(fleet: Fleet, how: str) -> tuple[list[Epoch], str]:
    a = [fleet.sign("sol-a") for _ in range(2)]
    if how == "listed_elsewhere":
        third = fleet.sign("sol-a", energy_wh=9_999_999)
        entry, check = rejected(third, "implausible"), "bad_chained"
        entry.seq = 30  # the operator files it under another seq than the payload's
    elif how == "not_linked":
        third = fleet.sign("sol-a", energy_wh=9_999_999, prev=hashlib.sha256(b"elsewhere").digest())
        entry, check = rejected(third, "implausible"), "fork"
    else:
        third = fleet.sign("sol-a", energy_wh=9_999_999)
        entry = rejected(third, "implausible")
        if how == "bad_digest":
            entry.digest, check = hashlib.sha256(b"another payload").digest(), "quarantine_digest"
        else:
            entry.raw, check = edited(third, energy_wh=120), "bad_signature"
    a += [fleet.sign("sol-a") for _ in range(2)]
    return [Epoch(leaves=a, quarantine=[entry])], check


@pytest.mark.parametrize("how", ["bad_digest", "bad_signature", "not_linked", "listed_elsewhere"])
def test_a_tampered_chained_rejection_is_caught(anvil_node: AnvilNode, tmp_path: Path, how: str) -> None:
    fleet = Fleet.deploy(anvil_node, ["sol-a"])
    epochs, check = _tamper(fleet, how)
    report = _audit(fleet, fleet.export(tmp_path, epochs), 1)
    found = _checks(report)
    assert ("sol-a", 30 if how == "listed_elsewhere" else 3) in found[check], report.render()
    assert report.rejections == []
    assert not report.ok


def test_a_withheld_reading_shows_in_the_devices_loss(anvil_node: AnvilNode, tmp_path: Path) -> None:
    fleet = Fleet.deploy(anvil_node, ["sol-a"])
    a = [fleet.sign("sol-a") for _ in range(8)]
    withheld = {3, 6, 7}
    epochs = [Epoch(leaves=[m for m in a if m.body.seq not in withheld])]
    report = _audit(fleet, fleet.export(tmp_path, epochs), 1)
    chain = report.devices["sol-a"]
    assert chain.lost == 3
    assert chain.gaps == [(3, 3), (6, 7)]
    assert _checks(report) == {"gap": [("sol-a", 4), ("sol-a", 8)]}
    text = report.render()
    assert "FAILED" in text
    assert "sol-a                    lost 3: seq 3, 6..7" in text


def test_a_silent_registered_device_is_a_finding(anvil_node: AnvilNode, tmp_path: Path) -> None:
    fleet = Fleet.deploy(anvil_node, ["sol-a", "sol-quiet"])
    epochs = [Epoch(leaves=[fleet.sign("sol-a") for _ in range(3)])]
    report = _audit(fleet, fleet.export(tmp_path, epochs), 1)
    assert _checks(report) == {"silent": [("0x" + device_id_hash("sol-quiet").hex(), None)]}


def test_a_device_revoked_before_the_window_is_not_silent(anvil_node: AnvilNode, tmp_path: Path) -> None:
    fleet = Fleet.deploy(anvil_node, ["sol-a", "sol-gone"])
    epochs = [
        Epoch(leaves=[fleet.sign("sol-a"), fleet.sign("sol-gone")]),
        Epoch(leaves=[fleet.sign("sol-a")]),
        Epoch(leaves=[fleet.sign("sol-a")]),
    ]

    def revoke(epoch: int) -> None:
        if epoch == 0:
            fleet.client.revoke(device_id="sol-gone")

    folder = fleet.export(tmp_path, epochs, after_anchor=revoke)
    later = audit_epochs(DirectorySource(folder), chain=fleet.reader(), first=2, last=2, threads=1)
    assert later.findings == [], later.render()
    # Revoked inside the window (after epoch 0's checkpoint): silent is still a finding.
    window = audit_epochs(DirectorySource(folder), chain=fleet.reader(), first=1, last=2, threads=1)
    assert _checks(window) == {"silent": [("0x" + device_id_hash("sol-gone").hex(), None)]}


def test_a_device_that_only_sent_junk_is_not_silent(anvil_node: AnvilNode, tmp_path: Path) -> None:
    fleet = Fleet.deploy(anvil_node, ["sol-a", "sol-junk"])
    junk = Quarantined(raw=b"junk", reason="malformed", chained=False, device=None, seq=None, publisher="sol-junk")
    epochs = [Epoch(leaves=[fleet.sign("sol-a")], quarantine=[junk])]
    report = _audit(fleet, fleet.export(tmp_path, epochs), 1)
    assert report.findings == [], report.render()


def test_a_new_chain_at_a_key_rotation_passes(anvil_node: AnvilNode, tmp_path: Path) -> None:
    fleet = Fleet.deploy(anvil_node, ["sol-a"])
    before = [fleet.sign("sol-a") for _ in range(3)]
    fleet.rotate("sol-a")
    # The device lost its state: its new key starts a new chain above the old head.
    after = [fleet.sign("sol-a", prev=GENESIS_PREV, seq=10)] + [fleet.sign("sol-a") for _ in range(2)]
    report = _audit(fleet, fleet.export(tmp_path, [Epoch(leaves=before), Epoch(leaves=after)]), 2)
    assert report.findings == [], report.render()
    assert report.devices["sol-a"].restarts == [10]


def test_a_zero_prev_without_a_rotation_is_caught(anvil_node: AnvilNode, tmp_path: Path) -> None:
    fleet = Fleet.deploy(anvil_node, ["sol-a"])
    a = [fleet.sign("sol-a") for _ in range(3)]
    a.append(fleet.sign("sol-a", prev=GENESIS_PREV))
    a.append(fleet.sign("sol-a"))
    report = _audit(fleet, fleet.export(tmp_path, [Epoch(leaves=a)]), 1)
    assert _checks(report) == {"bad_restart": [("sol-a", 4)]}


def _cli_audit(fleet: Fleet, folder: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    deployment = tmp_path / "deployment.json"
    write_deployment(deployment, fleet.client.deployment)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "audit",
            "--epochs",
            "0..0",
            "--source",
            str(folder),
            "--rpc",
            fleet.node.url,
            "--deployment",
            str(deployment),
            *extra,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_report_summarises_first_and_shows_a_few_examples_per_kind(anvil_node: AnvilNode, tmp_path: Path) -> None:
    fleet = Fleet.deploy(anvil_node, ["sol-a", "sol-quiet"])
    a = [fleet.sign("sol-a") for _ in range(40)]
    folder = fleet.export(tmp_path / "export", [Epoch(leaves=a[::2])])  # every other reading withheld

    out = _cli_audit(fleet, folder, tmp_path)
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert "FAILED" in lines[0]
    assert lines[2] == "20 finding(s): gap 19, silent 1"
    assert "  sol-a                    gap 19" in lines
    assert "    gap 19: seq 3, 5, 7, 9, 11 (first 5 of 19)" in lines
    assert "      (--all or --json lists all 19)" in lines
    assert len(lines) < 40

    every = _cli_audit(fleet, folder, tmp_path, "--all")
    assert every.returncode == 1
    assert sum("are neither in the log nor in the quarantine" in line for line in every.stdout.splitlines()) == 19

    as_json = _cli_audit(fleet, folder, tmp_path, "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["summary"]["by_check"] == {"gap": 19, "silent": 1}
    assert report["devices"]["sol-a"]["lost"] == 19
    assert len(report["findings"]) == 20
