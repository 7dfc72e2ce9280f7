"""The audit report people read: a summary first, then findings grouped by device and check with
the first few seq numbers and a count; ``--json`` keeps every finding. And an audit whose range
runs past what is anchored or exported: it audits what it can and says what to run next.

Exports are built from real signed readings and anchored on a real anvil
(tests/auditor/exports.py), tampered with as a red team would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from auditor.audit import audit_epochs
from auditor.sources import DirectorySource
from chain.deployment import write_deployment
from devstack.anvil import AnvilNode
from protocol.envelope import decode_message
from protocol.export import epoch_dir_name
from tests.auditor.exports import Epoch, Fleet, edited
from tests.support.processes import REPO


def _cli_audit(
    fleet: Fleet, folder: Path, tmp_path: Path, epochs: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    deployment = tmp_path / "deployment.json"
    write_deployment(deployment, fleet.client.deployment)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "audit",
            "--epochs",
            epochs,
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


def _red_team(fleet: Fleet) -> list[Epoch]:
    """sol-a: 41 readings, every fourth withheld (10 gaps); sol-b: 10 readings, seq 2 and 5 edited
    after signing (bad signatures, and the next links no longer follow); sol-quiet: silent."""
    a = [fleet.sign("sol-a") for _ in range(41)]
    b = [fleet.sign("sol-b") for _ in range(10)]
    for i in (1, 4):
        b[i] = decode_message(edited(b[i], energy_wh=9_000))
    kept_a = [m for m in a if m.body.seq % 4 != 0]
    return [Epoch(leaves=kept_a[:15] + b[:5]), Epoch(leaves=kept_a[15:] + b[5:])]


def test_the_report_summarises_then_groups_by_device_and_check(anvil_node: AnvilNode, tmp_path: Path) -> None:
    fleet = Fleet.deploy(anvil_node, ["sol-a", "sol-b", "sol-quiet"])
    folder = fleet.export(tmp_path / "export", _red_team(fleet))
    report = audit_epochs(DirectorySource(folder), chain=fleet.reader(), first=0, last=1, threads=1)
    by_device = report.by_device()
    assert by_device["sol-a"] == {"gap": 10}
    assert by_device["sol-b"]["bad_signature"] == 2
    gap_seqs = [f.seq for f in report.findings if f.device == "sol-a" and f.check == "gap"]
    bad_seqs = [f.seq for f in report.findings if f.device == "sol-b" and f.check == "bad_signature"]
    assert bad_seqs == [2, 5]

    out = _cli_audit(fleet, folder, tmp_path, "0..1")
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    # The summary first: verdict, counts, findings per check, findings per device.
    assert lines[0] == f"audit of epochs 0..1 from {folder}: FAILED"
    assert lines[1].startswith(f"2 epochs, {report.leaves} leaves, 0 quarantined, {report.leaves} signatures")
    assert lines[2] == f"{len(report.findings)} finding(s): " + ", ".join(
        f"{check} {count}" for check, count in report.by_check().items()
    )
    assert lines[3] == "by device (3):"
    summary = lines[: lines.index("findings by device and check (3 device(s)):")]
    assert any(line.split() == ["sol-a", "gap", "10"] for line in summary)
    # Then the groups: device, then check with its count and its first five seqs.
    groups = lines[lines.index("findings by device and check (3 device(s)):") :]
    a_at = groups.index("  sol-a")
    assert groups[a_at + 1] == "    gap 10: seq " + ", ".join(map(str, gap_seqs[:5])) + " (first 5 of 10)"
    assert groups[a_at + 2].startswith("      e.g. epoch 0 sol-a#")
    assert groups[a_at + 3] == "      (--all or --json lists all 10)"
    b_at = groups.index("  sol-b")
    assert "    bad_signature 2: seq 2, 5" in groups[b_at:]
    quiet = next(line for line in groups if line.startswith("  0x"))
    assert groups[groups.index(quiet) + 1] == "    silent 1"
    assert len(lines) < 60, out.stdout

    every = _cli_audit(fleet, folder, tmp_path, "0..1", "--all")
    assert sum(" sol-a#" in line and "neither in the log" in line for line in every.stdout.splitlines()) == 10

    as_json = json.loads(_cli_audit(fleet, folder, tmp_path, "0..1", "--json").stdout)
    assert len(as_json["findings"]) == len(report.findings)
    assert as_json["summary"]["by_device"]["sol-a"] == {"gap": 10}
    assert as_json["requested"] == "0..1"
    assert as_json["notes"] == []


def test_a_range_past_what_is_anchored_or_exported(anvil_node: AnvilNode, tmp_path: Path) -> None:
    fleet = Fleet.deploy(anvil_node, ["sol-a"])
    epochs = [Epoch(leaves=[fleet.sign("sol-a") for _ in range(3)]) for _ in range(3)]
    folder = fleet.export(tmp_path / "export", epochs)  # epochs 0..2 anchored
    shutil.rmtree(folder / epoch_dir_name(2))  # and only 0..1 exported

    out = _cli_audit(fleet, folder, tmp_path, "0..9")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[0] == f"audit of epochs 0..1 from {folder}: PASSED"
    notes = out.stderr.splitlines()
    assert notes == [
        "note: epochs 3..9 are not anchored on chain yet (the last anchored epoch is 2): audited 0..1;"
        " audit --epochs 3..9 once they are anchored (and exported)",
        f"note: epoch 2 is anchored on chain but not in {folder}: audited 0..1; export it"
        " (`assetproof export DIR --epochs 2`) and audit --epochs 2 from DIR",
    ]
    as_json = json.loads(_cli_audit(fleet, folder, tmp_path, "0..9", "--json").stdout)
    assert (as_json["requested"], as_json["epochs_audited"], as_json["ok"]) == ("0..9", "0..1", True)
    assert len(as_json["notes"]) == 2

    none_anchored = _cli_audit(fleet, folder, tmp_path, "5..9")
    assert none_anchored.returncode == 2
    assert none_anchored.stderr.strip().splitlines() == [
        "none of epochs 5..9 is anchored on chain yet (the last anchored epoch is 2):"
        " nothing to audit; audit again once the attestor has anchored them"
    ]
    none_exported = _cli_audit(fleet, folder, tmp_path, "2..4")
    assert none_exported.returncode == 2
    assert "holds none of epoch 2: export it first (`assetproof export DIR --epochs 2`)" in none_exported.stderr
