"""The red team: everything the operator's side could do to the data, each caught by the auditor
(``assetproof verify`` on a bundle, ``assetproof audit`` on an export) with a message that says
what was wrong. The pipeline behind them is real: devices provisioned on anvil, Mosquitto, a
gateway process, the simulator, the attestor (tests/auditor/conftest.py)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import pytest
import rfc8785
from sqlalchemy import Engine, delete, func, insert, select, update

from attestor.anchoring import Anchorer
from attestor.epochs import EpochBuilder, EpochPolicy, metadata_of
from chain.errors import ContractRevert
from device_sim.keystore import Keystore
from protocol.envelope import Body, Message, decode_message, sign_body
from protocol.epoch import AssetTotals, EpochMetadata
from protocol.merkle.log import MerkleLog
from protocol.signing import DeviceKey
from store.tables import DEVICE, DEVICE_KEY, EPOCH, READING
from tests.auditor.conftest import EPOCH_LEAVES, Case, cli, key_arg

# --- helpers ---------------------------------------------------------------------------------------


def _row(engine: Engine, **where: Any) -> Any:
    query = select(READING)
    for name, value in where.items():
        query = query.where(READING.c[name] == value)
    with engine.connect() as conn:
        return conn.execute(query.order_by(READING.c.id)).first()


def _anchored_reading(case: Case, *, kind: str = "sol") -> Any:
    with case.engine.connect() as conn:
        return conn.execute(
            select(READING)
            .where(READING.c.epoch == 1, READING.c.device_id.like(f"{kind}-%"))
            .order_by(READING.c.log_index)
            .limit(1)
        ).one()


def _edited(raw: bytes, *, metric: str, delta: int) -> bytes:
    """The same message with one metric changed and the signature left as it was: what an
    operator can do to a stored reading without the device's key."""
    obj = json.loads(raw)
    obj["body"]["metrics"][metric] += delta
    return bytes(rfc8785.dumps(obj))


def _audit_findings(case: Case, epochs: str) -> tuple[int, dict[str, Any], str]:
    out = case.audit(epochs, case.export(epochs), "--json")
    assert "Traceback" not in out.stderr
    return out.returncode, json.loads(out.stdout), out.stdout


def _checks(report: dict[str, Any]) -> set[str]:
    return {f["check"] for f in report["findings"]}


def _verify_json(case: Case, log_index: int) -> tuple[int, dict[str, Any]]:
    out = case.verify(case.bundle(log_index=log_index), "--json")
    assert "Traceback" not in out.stderr
    return out.returncode, json.loads(out.stdout)


def _insert_reading(engine: Engine, message: Message, *, like: Any) -> None:
    """Store ``message`` as a pending reading, as a compromised gateway would."""
    body = message.body
    values = {c.name: like._mapping[c.name] for c in READING.c if c.name not in ("id", "log_index", "epoch")}
    values |= {
        "device_id": body.device,
        "seq": body.seq,
        "ts_ms": body.ts_ms,
        "metrics": dict(body.metrics),
        "raw": message.raw,
        "leaf_hash": message.leaf_hash,
    }
    with engine.begin() as conn:
        conn.execute(insert(READING).values(**values))


def _next_body(engine: Engine, device: str, *, ts_ms: int | None = None) -> tuple[Body, Any]:
    """The body that would follow the device's newest stored reading."""
    with engine.connect() as conn:
        last = conn.execute(
            select(READING).where(READING.c.device_id == device).order_by(READING.c.seq.desc()).limit(1)
        ).one()
    previous = decode_message(bytes(last.raw)).body
    body = replace(
        previous,
        seq=previous.seq + 1,
        ts_ms=ts_ms if ts_ms is not None else previous.ts_ms + previous.window_s * 1000,
        prev=decode_message(bytes(last.raw)).chain_hash,
    )
    return body, last


def _last_epoch(case: Case) -> int:
    return case.anchored_epochs()[-1]


# --- after anchoring: the database is edited ---------------------------------------------------


def test_a_metric_edited_after_anchoring(case: Case) -> None:
    row = _anchored_reading(case)
    with case.engine.begin() as conn:
        conn.execute(
            update(READING)
            .where(READING.c.id == row.id)
            .values(raw=_edited(bytes(row.raw), metric="energy_wh", delta=5000))
        )
    code, verdict = _verify_json(case, row.log_index)
    assert code == 1
    assert verdict["reason"] == "bad_signature"
    assert row.device_id in verdict["error"]

    code, report, _ = _audit_findings(case, f"0..{_last_epoch(case)}")
    assert code == 1
    assert {"root_mismatch", "bad_signature"} <= _checks(report)
    bad = [f for f in report["findings"] if f["check"] == "bad_signature"]
    assert bad == [{**bad[0], "device": row.device_id, "seq": row.seq, "leaf_index": row.log_index}]


def test_a_reading_deleted(case: Case) -> None:
    row = _anchored_reading(case, kind="evc")
    with case.engine.begin() as conn:
        conn.execute(delete(READING).where(READING.c.id == row.id))
    code, report, _ = _audit_findings(case, f"0..{_last_epoch(case)}")
    assert code == 1
    assert {"root_mismatch", "leaf_count", "gap"} <= _checks(report)
    gap = next(f for f in report["findings"] if f["check"] == "gap")
    assert gap["device"] == row.device_id
    assert str(row.seq) in gap["message"]
    assert report["devices"][row.device_id]["gaps"] == [[row.seq, row.seq]]


def test_two_readings_swapped(case: Case) -> None:
    with case.engine.connect() as conn:
        a, b = conn.execute(select(READING).where(READING.c.epoch == 0).order_by(READING.c.log_index).limit(2)).all()
    with case.engine.begin() as conn:
        conn.execute(update(READING).where(READING.c.id == a.id).values(log_index=-1))
        conn.execute(update(READING).where(READING.c.id == b.id).values(log_index=a.log_index))
        conn.execute(update(READING).where(READING.c.id == a.id).values(log_index=b.log_index))
    code, verdict = _verify_json(case, a.log_index)
    assert code == 1
    assert verdict["reason"] == "not_included"
    code, report, _ = _audit_findings(case, f"0..{_last_epoch(case)}")
    assert code == 1
    assert "root_mismatch" in _checks(report)
    assert any(f.get("epoch") == 0 for f in report["findings"] if f["check"] == "root_mismatch")


def test_a_checkpoint_row_rewritten(case: Case) -> None:
    with case.engine.begin() as conn:
        conn.execute(update(EPOCH).where(EPOCH.c.number == 1).values(root=b"\x42" * 32))
    row = _anchored_reading(case)
    code, verdict = _verify_json(case, row.log_index)
    assert code == 1
    assert verdict["reason"] == "checkpoint_mismatch"
    assert "root" in verdict["error"]
    code, report, _ = _audit_findings(case, "1")
    assert code == 1
    assert [f["check"] for f in report["findings"]] == ["checkpoint_mismatch"]


def test_epoch_metadata_inflated_after_anchoring(case: Case) -> None:
    with case.engine.connect() as conn:
        epoch = conn.execute(select(EPOCH).where(EPOCH.c.number == 1)).one()
    meta = _inflated(metadata_of(epoch))
    with case.engine.begin() as conn:
        conn.execute(update(EPOCH).where(EPOCH.c.number == 1).values(metadata_json=meta.canonical_bytes()))
    code, verdict = _verify_json(case, _anchored_reading(case).log_index)
    assert code == 1
    assert verdict["reason"] == "meta_hash_mismatch"
    code, report, _ = _audit_findings(case, "1")
    assert code == 1
    assert "meta_hash_mismatch" in _checks(report)


def _inflated(meta: EpochMetadata) -> EpochMetadata:
    name, totals = next(iter(meta.assets.items()))
    richer = AssetTotals(
        readings=totals.readings, energy_wh=totals.energy_wh, revenue=totals.revenue * 3 + 1000, cost=totals.cost
    )
    return replace(meta, assets={**meta.assets, name: richer})


# --- the bundle is doctored -----------------------------------------------------------------------


def test_a_bundle_with_a_proof_for_another_tree_size(case: Case) -> None:
    row = _anchored_reading(case)
    path = case.bundle(log_index=row.log_index)
    bundle = json.loads(path.read_text())
    with case.engine.connect() as conn:
        leaves = [
            bytes(r)
            for r in conn.execute(
                select(READING.c.raw).where(READING.c.log_index.is_not(None)).order_by(READING.c.log_index)
            ).scalars()
        ]
    log = MerkleLog()
    log.extend(leaves)
    other = bundle["tree_size"] - 1  # a genuine tree, just not the anchored one
    proof = [h.hex() for h in log.inclusion_proof(row.log_index, other)]

    # The proof alone: it is for another size than the checkpoint's.
    path.write_text(json.dumps({**bundle, "tree_size": other, "inclusion_proof": proof}))
    code, verdict = _verify_json_path(case, path)
    assert (code, verdict["reason"]) == (1, "wrong_tree_size")

    # The proof with a matching (self-consistent, never anchored) checkpoint.
    checkpoint = {**bundle["checkpoint"], "tree_size": other, "root": log.root(other).hex()}
    doctored = {**bundle, "tree_size": other, "inclusion_proof": proof, "checkpoint": checkpoint}
    path.write_text(json.dumps({**doctored, "metadata": None, "anchor": None}))
    assert cli("verify", str(path), "--offline").returncode == 0  # offline it all adds up...
    code, verdict = _verify_json_path(case, path)
    assert (code, verdict["reason"]) == (1, "checkpoint_mismatch")  # ...but it is not what the chain holds
    assert "tree_size" in verdict["error"]


def _verify_json_path(case: Case, path: Any) -> tuple[int, dict[str, Any]]:
    out = case.verify(path, "--json")
    assert "Traceback" not in out.stderr
    return out.returncode, json.loads(out.stdout)


# --- before anchoring: a compromised gateway or attestor -------------------------------------------


def test_a_forged_reading_inserted(case: Case) -> None:
    body, last = _next_body(case.engine, "sol-hk-rooftops-0002")
    forged = sign_body(body, DeviceKey.generate("ed25519"))
    _insert_reading(case.engine, forged, like=last)
    case.attest()
    index = _row(case.engine, device_id=body.device, seq=body.seq).log_index
    code, verdict = _verify_json(case, index)
    assert (code, verdict["reason"]) == (1, "bad_signature")
    code, report, _ = _audit_findings(case, f"0..{_last_epoch(case)}")
    assert code == 1
    bad = [f for f in report["findings"] if f["check"] == "bad_signature"]
    assert [(f["device"], f["seq"]) for f in bad] == [(body.device, body.seq)]
    assert _checks(report) == {"bad_signature"}  # the log itself is consistent: only the signature betrays it


def test_a_device_key_replaced_in_the_database(case: Case) -> None:
    device = "evc-kowloon-hub-0001"
    attacker = DeviceKey.generate("es256")
    with case.engine.begin() as conn:
        conn.execute(update(DEVICE).where(DEVICE.c.id == device).values(public_key=attacker.public_key))
        conn.execute(update(DEVICE_KEY).where(DEVICE_KEY.c.device_id == device).values(public_key=attacker.public_key))
    body, last = _next_body(case.engine, device)
    _insert_reading(case.engine, sign_body(body, attacker), like=last)
    case.attest()
    index = _row(case.engine, device_id=device, seq=body.seq).log_index
    bundle = case.bundle(log_index=index)
    assert json.loads(bundle.read_text())["device"]["public_key"] == attacker.public_key.hex()
    assert cli("verify", str(bundle), "--offline").returncode == 0  # consistent with the database's key...
    code, verdict = _verify_json_path(case, bundle)
    assert (code, verdict["reason"]) == (1, "bad_signature")  # ...not with the key on chain
    assert "registered on chain" in verdict["error"]


def test_a_reading_signed_after_its_key_was_revoked(case: Case) -> None:
    device = "sol-hk-rooftops-0001"
    cli(
        "devices",
        "revoke",
        device,
        "--database",
        case.db_url,
        "--deployment",
        str(case.pipeline.deployment_path),
        "--rpc",
        case.pipeline.rpc,
        "--key",
        key_arg(case.pipeline.registrar),
    )
    revoked_at = case.reader().device(device).revoked_time
    assert revoked_at is not None
    key = Keystore(case.pipeline.keystore).load(device).key  # the key still exists: stolen, say
    body, last = _next_body(case.engine, device, ts_ms=(revoked_at + 5) * 1000)
    _insert_reading(case.engine, sign_body(body, key), like=last)
    case.attest()
    index = _row(case.engine, device_id=device, seq=body.seq).log_index
    code, verdict = _verify_json(case, index)
    assert (code, verdict["reason"]) == (1, "key_revoked")
    code, report, _ = _audit_findings(case, f"0..{_last_epoch(case)}")
    assert code == 1
    found = [(f["check"], f["device"], f["seq"]) for f in report["findings"]]
    assert ("key_revoked", device, body.seq) in found
    # (a genuine pending reading the device made after the revocation block is flagged too)
    assert {(check, name) for check, name, _ in found} == {("key_revoked", device)}


def test_epoch_totals_inflated_by_the_attestor_and_anchored(case: Case) -> None:
    """The attestor's key anchors metadata whose totals do not add up: the chain accepts it
    (it cannot price readings), the audit recomputes them from the leaves and says which."""
    builder = EpochBuilder(case.engine, policy=EpochPolicy(window_ms=1, max_leaves=EPOCH_LEAVES), tariffs=case.chain())
    while builder.append_pending():
        pass
    closed = builder.close_due_epoch(now_ms=time.time_ns() // 1_000_000)
    assert closed is not None
    meta = _inflated(closed.metadata)
    with case.engine.begin() as conn:
        conn.execute(
            update(EPOCH)
            .where(EPOCH.c.number == closed.number)
            .values(metadata_json=meta.canonical_bytes(), meta_hash=meta.meta_hash)
        )
    while Anchorer(case.engine, case.chain()).anchor_next():
        pass
    code, report, _ = _audit_findings(case, str(closed.number))
    assert code == 1
    wrong = [f for f in report["findings"] if f["check"] == "totals_mismatch"]
    asset = next(iter(meta.assets))
    assert len(wrong) == 1
    assert asset in wrong[0]["message"]
    assert "revenue claimed" in wrong[0]["message"]


def test_a_reading_withheld(case: Case) -> None:
    """The operator leaves one of a device's readings out of the log (and out of every total):
    the log is consistent, but the device's own hash chain shows the hole."""
    with case.engine.connect() as conn:
        withheld = conn.execute(
            select(READING)
            .where(READING.c.log_index.is_(None), READING.c.device_id == "rig-hydro-pod-0001")
            .order_by(READING.c.seq)
        ).all()[0]
    with case.engine.begin() as conn:
        conn.execute(delete(READING).where(READING.c.id == withheld.id))
    case.attest()
    code, report, _ = _audit_findings(case, f"0..{_last_epoch(case)}")
    assert code == 1
    assert [(f["check"], f["device"]) for f in report["findings"]] == [("gap", withheld.device_id)]
    assert report["devices"][withheld.device_id]["gaps"] == [[withheld.seq, withheld.seq]]
    text = case.audit(f"0..{_last_epoch(case)}", case.export(f"0..{_last_epoch(case)}")).stdout
    assert f"  {withheld.device_id:<24} lost 1: seq {withheld.seq}" in text.splitlines()


def test_the_attestor_cannot_anchor_a_rewritten_history(case: Case) -> None:
    """Even with the attestor's key: a checkpoint whose tree changes an anchored leaf has no
    consistency proof from the anchored one, and the contract refuses it."""
    with case.engine.connect() as conn:
        leaves = [
            bytes(r)
            for r in conn.execute(
                select(READING.c.raw).where(READING.c.log_index.is_not(None)).order_by(READING.c.log_index)
            ).scalars()
        ]
        pending = [
            bytes(r)
            for r in conn.execute(
                select(READING.c.raw).where(READING.c.log_index.is_(None)).order_by(READING.c.id)
            ).scalars()
        ]
    rewritten = MerkleLog()
    rewritten.extend([_edited(leaves[0], metric="energy_wh", delta=1), *leaves[1:], *pending])
    chain = case.chain()
    latest = chain.latest_checkpoint()
    assert latest is not None
    assert latest.tree_size == len(leaves)
    with pytest.raises(ContractRevert) as caught:
        chain.anchor(
            epoch=latest.epoch + 1,
            tree_size=rewritten.size,
            root=rewritten.root(),
            meta_hash=b"\x01" * 32,
            proof=rewritten.consistency_proof(latest.tree_size, rewritten.size),
            previous=latest,
        )
    assert caught.value.name == "InconsistentProof"
    assert chain.epoch_count() == latest.epoch + 1


def test_nothing_is_pending_or_unaccounted_in_the_baseline(case: Case) -> None:
    """The cases above start from a clean pipeline: every stored reading in the log is anchored."""
    with case.engine.connect() as conn:
        unanchored = conn.execute(
            select(func.count())
            .select_from(READING)
            .join(EPOCH, EPOCH.c.number == READING.c.epoch)
            .where(EPOCH.c.status != "anchored")
        ).scalar()
    assert unanchored == 0
