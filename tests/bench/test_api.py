"""``python -m bench.api`` at its smallest sizes: a store too small to close an epoch is refused
with a clear message (it crashed on ``max(leaves_to)`` being NULL); one epoch is enough to run."""

from __future__ import annotations

import json

import pytest

from bench.api import main


def test_too_small_to_close_an_epoch(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--json", "--devices", "3", "--days", "31", "--proofs", "5", "--cashflows", "2", "--databases", "sqlite"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "8,928 readings" in err
    assert "need a closed epoch, so at least 13,000" in err


def test_smallest_run_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--json", "--devices", "5", "--days", "31", "--proofs", "4", "--cashflows", "2", "--databases", "sqlite"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    sqlite = result["databases"]["sqlite"]
    assert (sqlite["epochs"], sqlite["anchored_epochs"]) == (1, 0)
    assert sqlite["proofs_verified"] == 4
    assert result["proof_p99_ms"]["sqlite"] > 0
    assert result["cashflow_p99_ms"]["sqlite"] > 0
