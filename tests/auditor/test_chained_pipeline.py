"""Chained rejections through the real store, attestor and export (tests/auditor/conftest.py): the
quarantine.json the attestor writes carries them whole, and the audit follows the device's chain
through them, passes and lists them."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from typing import Any

from sqlalchemy import insert

from device_sim.keystore import Keystore
from protocol.envelope import Message, sign_body
from protocol.signing import DeviceKey
from store.tables import QUARANTINE
from tests.auditor.conftest import Case
from tests.auditor.test_red_team import _insert_reading, _last_epoch, _next_body

DEVICE = "sol-hk-rooftops-0001"


def _quarantine_chained(case: Case, message: Message, reason: str) -> None:
    """As the gateway files a genuine, linked reading rejected for its content."""
    body = message.body
    with case.engine.begin() as conn:
        conn.execute(
            insert(QUARANTINE).values(
                received_ms=time.time_ns() // 1_000_000,
                reason=reason,
                detail="rejected for its content; the chain advanced",
                topic=f"assetproof/v1/devices/{body.device}/telemetry",
                device_id=body.device,
                body_device=body.device,
                seq=body.seq,
                raw=message.raw,
                raw_size=len(message.raw),
                raw_sha256=hashlib.sha256(message.raw).digest(),
                chained=True,
            )
        )


def _next(case: Case, key: DeviceKey, after: Message | None, **metrics: int) -> tuple[Message, Any]:
    body, like = _next_body(case.engine, DEVICE)
    if after is not None:
        body = replace(
            body, seq=after.body.seq + 1, ts_ms=after.body.ts_ms + body.window_s * 1000, prev=after.chain_hash
        )
    if metrics:
        body = replace(body, metrics={**body.metrics, **metrics})
    return sign_body(body, key), like


def test_genuine_implausible_and_skewed_rejections_mid_stream(case: Case) -> None:
    key = Keystore(case.pipeline.keystore).load(DEVICE).key
    implausible, like = _next(case, key, None, energy_wh=90_000_000)
    _quarantine_chained(case, implausible, "implausible")
    accepted, _ = _next(case, key, implausible)
    _insert_reading(case.engine, accepted, like=like)
    skewed, _ = _next(case, key, accepted)
    _quarantine_chained(case, skewed, "clock_skew")
    later, _ = _next(case, key, skewed)
    _insert_reading(case.engine, later, like=like)
    case.attest()

    window = f"0..{_last_epoch(case)}"
    folder = case.export(window)
    out = case.audit(window, folder, "--json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    report = json.loads(out.stdout)
    assert report["findings"] == []
    listed = [(r["device"], r["seq"], r["reason"]) for r in report["rejections"]]
    assert listed == [(DEVICE, implausible.body.seq, "implausible"), (DEVICE, skewed.body.seq, "clock_skew")]
    assert report["devices"][DEVICE]["last_seq"] == later.body.seq

    text = case.audit(window, folder).stdout
    assert "PASSED" in text.splitlines()[0]
    assert f"{DEVICE}#{implausible.body.seq}  implausible" in text
