"""The CLI closes the loop on a real pipeline (tests/auditor/conftest.py: provisioned devices on a
real anvil, Mosquitto, a gateway process, the simulator, anchored epochs and pending readings):
``cashflow`` with currency, attested/pending and totals; ``export`` of a range past the last
closed epoch; ``bundle`` saying what it wrote; ``devices list`` never cutting an id; ``verify``
taking its confirmations from the one setting, and a hint toward ``--offline``; no value
placeholder beside a flag in any ``--help``."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import subprocess
import sys

import typer.main
from typer.testing import CliRunner

from cli.main import app
from tests.auditor import conftest as auditor_fixtures
from tests.auditor.conftest import Case
from tests.support.processes import REPO

# The auditor tests' pipeline, shared here (pytest registers them under their own names).
pipeline = auditor_fixtures.pipeline
loop = auditor_fixtures.case


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _one_line(text: str) -> str:
    assert "\n" not in text.strip(), text
    assert "Traceback" not in text
    return text.strip()


def test_cashflow_has_currency_attested_pending_and_totals(loop: Case) -> None:
    db = ["--database", loop.db_url]
    out = _cli("cashflow", "--by", "hour", "--json", *db)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["currency"] == "HKD"
    totals = doc["totals"]
    assert totals["readings"] == sum(b["readings"] for b in doc["buckets"]) > 0
    assert totals["attested"]["readings"] > 0, "the pipeline anchors a few epochs"
    assert totals["pending"]["readings"] > 0, "and leaves readings pending"
    for row in [*doc["buckets"], totals]:
        for name in ("readings", "energy_wh", "revenue", "cost", "net"):
            assert row["attested"][name] + row["pending"][name] == row[name]
        assert row["net"] == row["revenue"] - row["cost"]

    table = _cli("cashflow", "--asset", "hydro-pod", *db, env={"COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    for header in ("currency", "attested net", "pending net", "coverage"):
        assert header in table.stdout
    assert re.search(r"│ total\s+│ HKD", table.stdout), table.stdout

    as_csv = _cli("cashflow", "--asset", "hk-rooftops", "--csv", *db)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert rows[-1]["start_utc"] == "total"
    assert {r["currency"] for r in rows} == {"HKD"}
    assert int(rows[-1]["readings"]) == sum(int(r["readings"]) for r in rows[:-1])
    assert int(rows[-1]["attested_net"]) + int(rows[-1]["pending_net"]) == int(rows[-1]["net"])

    unknown = _cli("cashflow", "--asset", "no-such-pool", *db)
    assert unknown.returncode == 2
    assert _one_line(unknown.stderr) == (
        "error: unknown asset 'no-such-pool' (known: hk-rooftops, hydro-pod, kowloon-hub)"
    )
    assert unknown.stdout == ""
    assert _cli("cashflow", "--device", "nope", *db).returncode == 2


def test_export_past_the_last_closed_epoch_exports_what_is_closed(loop: Case) -> None:
    last = loop.anchored_epochs()[-1]
    folder = loop.tmp / "export"
    out = _cli("export", str(folder), "--epochs", "0..99", *loop.db_args())
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert re.fullmatch(rf"exported epochs 0..{last} \(\d+ leaves\) to {re.escape(str(folder))}", lines[0])
    assert lines[1] == (
        f"epochs {last + 1}..99 are not closed yet (the last closed epoch is {last}):"
        f" once they are, run `assetproof export {folder} --epochs {last + 1}..99`"
    )
    assert sorted(p.name for p in folder.iterdir()) == [f"epoch-{n:06d}" for n in range(last + 1)]
    none = _cli("export", str(loop.tmp / "none"), "--epochs", f"{last + 1}..{last + 5}", *loop.db_args())
    assert none.returncode == 2
    assert _one_line(none.stderr) == (
        f"error: none of epochs {last + 1}..{last + 5} is closed yet (the last is {last}): nothing exported;"
        " run the attestor, then export again"
    )


def test_bundle_says_what_it_wrote(loop: Case) -> None:
    path = loop.tmp / "b.json"
    out = _cli("bundle", "--log-index", "0", "--out", str(path), *loop.db_args())
    assert out.returncode == 0, out.stderr
    bundle = json.loads(path.read_text())
    assert re.fullmatch(
        rf"wrote the proof bundle of [a-z0-9-]+ seq \d+: leaf 0 of epoch 0's checkpoint \(tree size"
        rf" {bundle['tree_size']}, anchored\) to {re.escape(str(path))}; check it with `assetproof verify"
        rf" {re.escape(str(path))}`\n",
        out.stdout,
    )
    to_stdout = _cli("bundle", "--log-index", "0", *loop.db_args())
    assert json.loads(to_stdout.stdout) == bundle
    assert to_stdout.stderr.startswith("wrote the proof bundle of ")


def test_devices_list_never_cuts_an_id(loop: Case) -> None:
    ids = [d["id"] for d in json.loads(_cli("devices", "list", "--json", "--database", loop.db_url).stdout)]
    assert ids
    for columns in ("60", "80"):
        out = _cli("devices", "list", "--database", loop.db_url, env={"COLUMNS": columns})
        assert out.returncode == 0, out.stderr
        assert "…" not in out.stdout
        listed = [line.split("│")[1].strip() for line in out.stdout.splitlines() if line.startswith("│")]
        for device in ids:
            assert device in listed, (device, out.stdout)


def test_verify_confirmations_come_from_the_one_setting(loop: Case) -> None:
    bundle = loop.bundle(log_index=0)
    chain = ["--rpc", loop.pipeline.rpc, "--deployment", str(loop.pipeline.deployment_path)]
    ok = _cli("verify", str(bundle), *chain)
    assert ok.returncode == 0, ok.stderr
    assert re.search(r"anchored: block \d+ at .*, \d+ block\(s\) on top", ok.stdout)
    deep = _cli("verify", str(bundle), *chain, "--json", env={"ASSETPROOF_CONFIRMATIONS": "1000000"})
    assert deep.returncode == 1
    assert json.loads(deep.stdout)["reason"] == "unconfirmed"
    help_text = _cli("verify", "--help", env={"COLUMNS": "300"}).stdout
    assert "($ASSETPROOF_CONFIRMATIONS, else 0)" in help_text

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    down = _cli("verify", str(bundle), "--rpc", closed, "--deployment", str(loop.pipeline.deployment_path))
    assert down.returncode == 2
    assert _one_line(down.stderr) == (
        f"cannot check against the chain: the chain node at {closed} is unreachable (set --rpc or"
        f" ASSETPROOF_RPC); or check without the chain: assetproof verify {bundle} --offline"
    )


def test_no_flag_shows_a_value_placeholder_in_help() -> None:
    runner = CliRunner()
    root = typer.main.get_command(app)
    paths: list[list[str]] = [[]]
    commands = getattr(root, "commands", {})
    for name, command in commands.items():
        paths.append([name])
        paths.extend([name, sub] for sub in getattr(command, "commands", {}))
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, (path, result.output)
    assert len(paths) > 15
