"""``assetproof verify`` and ``assetproof audit`` at their edges: unusable input is exit 2 with
one line and no traceback; the on-chain check; confirmations."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from sqlalchemy import select

from store.tables import Reading
from tests.auditor.conftest import Case, cli
from tests.auditor.test_sources import huge_http_source


def _one_line_exit_2(out: object) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)  # type: ignore[attr-defined]
    message = out.stderr.strip()  # type: ignore[attr-defined]
    assert message
    assert "\n" not in message
    assert "Traceback" not in message


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _index_of(case: Case, prefix: str) -> int:
    with case.engine.connect() as conn:
        return int(
            conn.execute(
                select(Reading.log_index)
                .where(Reading.epoch == 0, Reading.device_id.like(f"{prefix}-%"))
                .order_by(Reading.log_index)
                .limit(1)
            ).scalar_one()
        )


def test_unusable_inputs_exit_2_with_one_line(case: Case, tmp_path: Path) -> None:
    bundle = case.bundle(log_index=0)
    _one_line_exit_2(case.verify(tmp_path / "missing.json"))
    (tmp_path / "junk.json").write_text('{"format": "something else"}')
    _one_line_exit_2(case.verify(tmp_path / "junk.json"))
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    _one_line_exit_2(case.verify(tmp_path / "binary.json"))
    unreachable = cli(
        "verify",
        str(bundle),
        "--rpc",
        f"http://127.0.0.1:{_closed_port()}",
        "--deployment",
        str(case.pipeline.deployment_path),
        check=False,
    )
    _one_line_exit_2(unreachable)
    assert "unreachable" in unreachable.stderr
    # A deployment file naming addresses where the contracts are not: unknown contracts.
    wrong = json.loads(case.pipeline.deployment_path.read_text())
    registries = wrong["contracts"]
    registries["AnchorRegistry"]["address"], registries["DeviceRegistry"]["address"] = (
        registries["DeviceRegistry"]["address"],
        registries["AnchorRegistry"]["address"],
    )
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    unknown = cli(
        "verify", str(bundle), "--rpc", case.pipeline.rpc, "--deployment", str(tmp_path / "wrong.json"), check=False
    )
    _one_line_exit_2(unknown)
    assert "is not the committed" in unknown.stderr
    _one_line_exit_2(case.verify(bundle, "--deployment", str(tmp_path / "none.json")))
    _one_line_exit_2(case.audit("0", tmp_path / "no-export"))


def test_confirmations_are_required(case: Case) -> None:
    out = case.verify(case.bundle(log_index=0), "--confirmations", "1000000", "--json")
    assert out.returncode == 1
    assert json.loads(out.stdout)["reason"] == "unconfirmed"


def test_onchain_verification_of_a_p256_reading(case: Case) -> None:
    out = case.verify(case.bundle(log_index=_index_of(case, "evc")), "--onchain", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    onchain = json.loads(out.stdout)["onchain"]
    assert onchain["checked"] is True
    assert onchain["valid"] is True
    human = case.verify(case.bundle(log_index=_index_of(case, "evc")), "--onchain")
    assert "verified by the ReadingVerifier contract" in human.stdout


def test_onchain_says_plainly_that_ed25519_is_not_verifiable_there(case: Case) -> None:
    out = case.verify(case.bundle(log_index=_index_of(case, "sol")), "--onchain")
    assert out.returncode == 0, out.stderr
    assert "not verifiable on chain" in out.stdout


def test_a_pending_reading_has_no_bundle_yet(case: Case) -> None:
    with case.engine.connect() as conn:
        pending = conn.execute(select(Reading.device_id, Reading.seq).where(Reading.log_index.is_(None)).limit(1)).one()
    out = cli("bundle", "--device", pending.device_id, "--seq", str(pending.seq), *case.db_args(), check=False)
    assert out.returncode == 1
    assert "pending" in out.stderr


def test_audit_refuses_a_huge_response_from_the_operators_api(case: Case) -> None:
    with huge_http_source() as url:
        out = case.audit("0", url + "/streamed", "--max-bytes", "100000")
    _one_line_exit_2(out)
    assert "larger than the limit of 100000 bytes" in out.stderr
