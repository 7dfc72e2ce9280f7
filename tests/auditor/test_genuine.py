"""A genuine pipeline passes every auditor check: bundles verify against the chain, audits pass."""

from __future__ import annotations

import json

from sqlalchemy import select

from store.tables import Reading
from tests.auditor.conftest import Case


def test_every_kind_of_reading_verifies_against_the_chain(case: Case) -> None:
    with case.engine.connect() as conn:
        rows = conn.execute(
            select(Reading.log_index, Reading.device_id).where(Reading.epoch.is_not(None)).order_by(Reading.log_index)
        ).all()
    first_per_device = {}
    for index, device in rows:
        first_per_device.setdefault(device, index)
    for device, index in first_per_device.items():
        out = case.verify(case.bundle(log_index=index), "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        verdict = json.loads(out.stdout)
        assert verdict["valid"] is True
        assert verdict["reading"]["device"] == device
        assert verdict["checkpoint"]["confirmations"] >= 1
        assert verdict["cash_flow"]["currency"]


def test_human_output_says_valid_and_what_it_is_worth(case: Case) -> None:
    out = case.verify(case.bundle(log_index=0))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("VALID: ")
    assert "anchored: block" in out.stdout
    assert "cash flow" in out.stdout


def test_audit_of_every_anchored_epoch_passes(case: Case) -> None:
    epochs = case.anchored_epochs()
    window = f"{epochs[0]}..{epochs[-1]}"
    export = case.export(window)
    out = case.audit(window, export, "--json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] is True
    assert report["findings"] == []
    assert report["leaves"] == report["signatures_checked"] > 0
    assert all(not d["gaps"] and not d["forks"] for d in report["devices"].values())
    # What the registrar and the pricing authority did on chain in the window, for the auditor to read.
    registered = sorted(e["subject"] for e in report["registry_events"] if e["kind"] == "registered")
    assert registered == sorted(report["devices"])
    assert [t["subject"].split()[0] for t in report["tariff_changes"]] == ["#0"]
    assert all(e["tariff"] and "#0 on chain" in e["tariff"] for e in report["epochs"])

    text = case.audit(window, export).stdout
    assert "device registry in the window: registered 5" in text
    assert "tariffs published in the window: tariff 1" in text


def test_audit_of_a_later_window_seeds_from_the_exported_frontier(case: Case) -> None:
    epochs = case.anchored_epochs()
    window = f"{epochs[1]}..{epochs[-1]}"
    out = case.audit(window, case.export(window))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    assert "PASSED" in out.stdout
