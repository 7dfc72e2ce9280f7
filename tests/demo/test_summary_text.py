"""The demo summary's quarantined row names what the broker refused: every injected fault is
either quarantined by the gateway or refused by the broker before it got there."""

from __future__ import annotations

from demo.snapshot import Summary
from demo.view import quarantined_line


def _summary(*, quarantined: dict[str, int], injected: int, refused: int) -> Summary:
    return Summary(
        devices=12,
        signed=720,
        accepted=717,
        quarantined=quarantined,
        faults_injected=injected,
        lost=0,
        epochs_anchored=12,
        epochs_not_anchored=0,
        unanchored_readings=0,
        gas_total=1,
        first_anchor_s=6.9,
        seconds=60.0,
        chain="anvil",
        broker="Mosquitto",
        dashboard="http://127.0.0.1:8000/",
        refused_by_broker=refused,
    )


def test_the_broker_refusals_are_named() -> None:
    summary = _summary(quarantined={"bad_signature": 4, "replay": 5}, injected=10, refused=1)
    assert quarantined_line(summary) == "9 (10 faulty injected; 1 refused by the broker)"
    assert summary.to_json()["refused_by_broker"] == 1


def test_without_refusals_the_row_says_only_what_was_injected() -> None:
    summary = _summary(quarantined={"gap": 2, "implausible": 1}, injected=3, refused=0)
    assert quarantined_line(summary) == "3 (3 faulty injected)"
