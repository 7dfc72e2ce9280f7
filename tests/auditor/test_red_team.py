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
from chain.deployment import write_deployment
from chain.devchain import mine, set_next_block_timestamp
from chain.errors import ContractRevert
from chain.types import DeviceRegistration
from device_sim.keystore import Keystore
from protocol.envelope import Body, DeviceKind, Message, decode_message, sign_body
from protocol.epoch import AssetTotals, EpochMetadata
from protocol.merkle.log import MerkleLog
from protocol.signing import DeviceKey
from store.tables import DEVICE, DEVICE_KEY, EPOCH, READING
from tests.auditor.conftest import EPOCH_LEAVES, Case, attest, cli, key_arg
from tests.support.chain import funded_account

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
    # The attestor's key recomputes the assets root over the inflated totals (b"" = compute), so
    # the metadata is self-consistent and only the leaves can tell.
    return replace(meta, assets={**meta.assets, name: richer}, assets_root=b"")


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
    body, last = _next_body(case.engine, device)
    body = replace(body, ts_ms=max(body.ts_ms, (revoked_at + 5) * 1000))  # dated after the revocation
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
    # The inflated totals' tree was anchored too: a contract would believe them; the audit
    # recomputes the tree from the leaves and names both roots that disagree with it.
    (tree,) = [f for f in report["findings"] if f["check"] == "assets_root_mismatch"]
    assert f"the metadata says {meta.assets_root.hex()}" in tree["message"]
    assert f"the anchor says {meta.assets_root.hex()}" in tree["message"]


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
            assets_root=b"\x02" * 32,
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


# --- trust roots on chain: keys judged by chain time, profiles, tariffs, roles (issue 14) -----------


def _advance_chain_to(case: Case, timestamp: int) -> None:
    """The next block is mined at ``timestamp`` (chain time control: no sleeping)."""
    w3 = case.pipeline.node.web3()
    set_next_block_timestamp(w3, timestamp)
    mine(w3)


def _chain_now(case: Case) -> int:
    reader = case.reader()
    return reader.block_timestamp(reader.block_number())


def _past_the_readings(case: Case, device: str) -> None:
    """Move chain time an hour past the device's newest reading, so whatever the registrar does
    next happens after every reading it signed so far."""
    body, _ = _next_body(case.engine, device)
    _advance_chain_to(case, max(_chain_now(case), body.ts_ms // 1000) + 3600)


def _forge_and_anchor(case: Case, device: str, key: DeviceKey, **changes: Any) -> Body:
    """Sign the device's next reading (``changes`` applied) with ``key``, store it as a
    compromised gateway would, and have the attestor anchor it; its body."""
    body, last = _next_body(case.engine, device)
    body = replace(body, **changes)
    _insert_reading(case.engine, sign_body(body, key), like=last)
    case.attest()
    return body


def _leaf_of(case: Case, body: Body) -> int:
    return int(_row(case.engine, device_id=body.device, seq=body.seq).log_index)


def _findings_for(report: dict[str, Any], device: str) -> set[tuple[str, int | None]]:
    return {(f["check"], f.get("seq")) for f in report["findings"] if f.get("device") == device}


def test_a_rotated_out_key_signs_inside_its_old_window_anchored_after_the_grace(case: Case) -> None:
    """The registrar rotates a device's key; the operator kept the old one and signs a reading
    dated inside the old key's window. Anchored after the rotation's grace, it counts for nothing,
    whatever date it claims: the key is judged by the anchor's block time."""
    device = "sol-hk-rooftops-0002"
    old_key = Keystore(case.pipeline.keystore).load(device).key
    _past_the_readings(case, device)
    case.chain(case.pipeline.registrar).rotate(device_id=device, public_key=DeviceKey.generate("ed25519").public_key)
    keys = case.reader().device_keys(device)
    rotated_at = keys[0].until_time
    assert rotated_at is not None
    assert keys[1].from_time == rotated_at
    grace = case.reader().registry_params().rotation_grace
    body, _ = _next_body(case.engine, device)
    assert body.ts_ms < rotated_at * 1000  # dated inside the old key's window
    _advance_chain_to(case, rotated_at + grace)  # the anchor comes after the grace
    body = _forge_and_anchor(case, device, old_key)

    code, verdict = _verify_json(case, _leaf_of(case, body))
    assert (code, verdict["reason"]) == (1, "key_rotated_out")
    assert f"rotated out at block time {rotated_at}" in verdict["error"]
    code, report, _ = _audit_findings(case, f"0..{_last_epoch(case)}")
    assert code == 1
    assert ("key_rotated_out", body.seq) in _findings_for(report, device)
    # (the device's genuine readings still pending were signed with the old key too, and are
    # anchored just as late: the chain cannot tell them apart, so they are refused alike)
    assert {check for check, _ in _findings_for(report, device)} == {"key_rotated_out"}
    assert {f["device"] for f in report["findings"]} == {device}
    rotations = [e for e in report["registry_events"] if e["kind"] == "rotated"]
    assert [(e["subject"], e["detail"].split(",")[0]) for e in rotations] == [(device, "key #1 in force")]


def test_a_revoked_key_signs_inside_its_old_window(case: Case) -> None:
    """The same with a revocation: no grace at all."""
    device = "evc-kowloon-hub-0002"
    stolen = Keystore(case.pipeline.keystore).load(device).key
    _past_the_readings(case, device)
    case.chain(case.pipeline.registrar).revoke(device_id=device)
    revoked_at = case.reader().device(device).revoked_time
    assert revoked_at is not None
    body = _forge_and_anchor(case, device, stolen)
    assert body.ts_ms < revoked_at * 1000  # dated while the key was in force

    code, verdict = _verify_json(case, _leaf_of(case, body))
    assert (code, verdict["reason"]) == (1, "key_revoked")
    assert f"revoked at block time {revoked_at}" in verdict["error"]
    code, report, _ = _audit_findings(case, f"0..{_last_epoch(case)}")
    assert code == 1
    assert ("key_revoked", body.seq) in _findings_for(report, device)
    assert {check for check, _ in _findings_for(report, device)} == {"key_revoked"}
    assert [e["subject"] for e in report["registry_events"] if e["kind"] == "revoked"] == [device]


def test_readings_dated_before_registration_by_a_revoked_device(case: Case) -> None:
    """The old rule let a reading dated before registration fall back to the first key, even for
    a revoked device. Now the anchor's block time decides: after the revocation, nothing counts."""
    device = "sol-hk-rooftops-0001"
    stolen = Keystore(case.pipeline.keystore).load(device).key
    registered_at = case.reader().device_keys(device)[0].from_time
    case.chain(case.pipeline.registrar).revoke(device_id=device)
    body = _forge_and_anchor(case, device, stolen, ts_ms=(registered_at - 600) * 1000)

    code, verdict = _verify_json(case, _leaf_of(case, body))
    assert (code, verdict["reason"]) == (1, "key_revoked")
    code, report, _ = _audit_findings(case, f"0..{_last_epoch(case)}")
    assert code == 1
    found = _findings_for(report, device)
    assert ("key_revoked", body.seq) in found
    assert ("back_in_time", body.seq) in found  # and it goes back along the device's chain


def test_a_reading_that_goes_back_in_time_along_its_chain(case: Case) -> None:
    """Signed with the device's genuine key, linked correctly, but dated before the reading it
    follows: the device's own chain shows the clock running backwards."""
    device = "rig-hydro-pod-0001"
    key = Keystore(case.pipeline.keystore).load(device).key
    body, _ = _next_body(case.engine, device)
    body = _forge_and_anchor(case, device, key, ts_ms=body.ts_ms - 10 * body.window_s * 1000)
    code, report, _ = _audit_findings(case, f"0..{_last_epoch(case)}")
    assert code == 1
    assert [(f["check"], f["device"], f["seq"]) for f in report["findings"]] == [("back_in_time", device, body.seq)]
    message = report["findings"][0]["message"]
    assert "never go back in time" in message


def test_a_tariff_in_the_metadata_that_the_pricing_authority_did_not_publish(case: Case) -> None:
    """The operator prices an epoch with ten times the bitcoin price. Its totals are consistent
    with that tariff, so only the chain's TariffRegistry can say it is not the published one."""
    chain = case.chain()
    published = chain.tariff_in_force(_chain_now(case))
    assert published is not None
    inflated = replace(published.tariff, id="operator-rates", btc_price=published.tariff.btc_price * 10)

    class OperatorsWord:
        def tariff_in_force(self, time_s: int) -> Any:
            return replace(published, parsed=inflated)

        def tariff_count(self) -> int:
            return 0

        def tariff_at(self, index: int) -> Any:
            raise AssertionError("not needed")

    builder = EpochBuilder(
        case.engine, policy=EpochPolicy(window_ms=1, max_leaves=EPOCH_LEAVES), tariffs=OperatorsWord()
    )
    while builder.append_pending():
        pass
    closed = builder.close_due_epoch(now_ms=time.time_ns() // 1_000_000)
    assert closed is not None
    assert closed.metadata.tariff == inflated
    while Anchorer(case.engine, chain).anchor_next():
        pass
    with case.engine.connect() as conn:
        index = (
            conn.execute(
                select(READING.c.log_index).where(READING.c.epoch == closed.number).order_by(READING.c.log_index)
            )
            .scalars()
            .first()
        )
    assert index is not None

    code, verdict = _verify_json(case, index)
    assert (code, verdict["reason"]) == (1, "tariff_mismatch")
    assert f"btc_price {inflated.btc_price} (published {published.tariff.btc_price})" in verdict["error"]
    code, report, _ = _audit_findings(case, str(closed.number))
    assert code == 1
    assert [f["check"] for f in report["findings"]] == ["tariff_mismatch"]  # the totals themselves add up
    assert "operator-rates" in report["findings"][0]["message"]


def _registration(device: str, **changes: Any) -> DeviceRegistration:
    base = DeviceRegistration(
        device_id=device,
        asset="hydro-pod",
        alg="ed25519",
        public_key=DeviceKey.generate("ed25519").public_key,
        kind=DeviceKind.MINER,
        window_s=60,
        rated_power_w=3_500,
        rated_hashrate_ghs=200_000,
        cert_hash=b"",
    )
    return replace(base, **changes)


def test_a_phantom_device_registered_by_the_operator(case: Case) -> None:
    """The operator's key is the attestor only: the DeviceRegistry refuses it."""
    with pytest.raises(ContractRevert) as caught:
        case.chain().register(_registration("rig-hydro-pod-9999"))
    assert caught.value.name == "NotRegistrar"
    assert case.reader().key_count("rig-hydro-pod-9999") == 0


def test_a_device_rating_inflated_by_the_operator(case: Case) -> None:
    """The operator cannot re-register a device with a larger rating (nor can the registrar:
    a profile is fixed at registration), and editing the rating in its own database changes
    nothing: the audit judges readings against the rating on chain."""
    device = "rig-hydro-pod-0001"
    profile = case.reader().device_profile(device)
    richer = _registration(device, rated_power_w=profile.rated_power_w * 10, rated_hashrate_ghs=10**9)
    with pytest.raises(ContractRevert) as caught:
        case.chain().register(richer)
    assert caught.value.name == "NotRegistrar"
    with pytest.raises(ContractRevert) as caught:
        case.chain(case.pipeline.registrar).register(richer)
    assert caught.value.name == "AlreadyRegistered"

    with case.engine.begin() as conn:
        rating = conn.execute(select(DEVICE.c.rating).where(DEVICE.c.id == device)).scalar_one()
        inflated_rating = {name: value * 10 for name, value in rating.items()}
        conn.execute(update(DEVICE).where(DEVICE.c.id == device).values(rating=inflated_rating))
    key = Keystore(case.pipeline.keystore).load(device).key
    body, _ = _next_body(case.engine, device)
    metrics = {**body.metrics, "hashrate_ghs": profile.rated_hashrate_ghs * 5}
    body = _forge_and_anchor(case, device, key, metrics=metrics)

    code, verdict = _verify_json(case, _leaf_of(case, body))
    assert (code, verdict["reason"]) == (1, "implausible")
    assert "rating registered on chain" in verdict["error"]
    code, report, _ = _audit_findings(case, f"0..{_last_epoch(case)}")
    assert code == 1
    assert [(f["check"], f["device"], f["seq"]) for f in report["findings"]] == [("implausible", device, body.seq)]
    assert "hashrate_ghs" in report["findings"][0]["message"]


def test_a_window_larger_than_registered(case: Case) -> None:
    """A device key signs ``window_s = 86400`` to claim a day's output in one reading: the
    registered window says otherwise."""
    device = "sol-hk-rooftops-0002"
    key = Keystore(case.pipeline.keystore).load(device).key
    registered = case.reader().device_profile(device).window_s
    body = _forge_and_anchor(case, device, key, window_s=86_400)
    code, verdict = _verify_json(case, _leaf_of(case, body))
    assert (code, verdict["reason"]) == (1, "wrong_window")
    assert f"registered with a {registered} s reporting window (on chain)" in verdict["error"]
    code, report, _ = _audit_findings(case, f"0..{_last_epoch(case)}")
    assert code == 1
    assert ("wrong_window", body.seq) in _findings_for(report, device)


def test_a_leaked_attestor_key_and_the_governor_replacing_it(case: Case) -> None:
    """A leaked attestor key cannot brick the log with a huge phantom tree (the growth cap), and
    the governor replaces the attestor, only after the delay anyone can watch."""
    leaked = case.chain()
    latest = leaked.latest_checkpoint()
    assert latest is not None
    params = case.reader().registry_params()
    with pytest.raises(ContractRevert) as caught:
        leaked.anchor(
            epoch=latest.epoch + 1,
            tree_size=2**64 - 1,
            root=b"\x66" * 32,
            meta_hash=b"\x01" * 32,
            assets_root=b"\x02" * 32,
            proof=[],
            previous=latest,
        )
    assert caught.value.name == "GrowthTooLarge"
    assert caught.value.arguments["limit"] == params.max_growth
    assert caught.value.arguments["growth"] == 2**64 - 1 - latest.tree_size

    governor = case.chain(case.pipeline.governor)
    replacement = funded_account(case.pipeline.node.web3())
    governor.propose_role(contract="AnchorRegistry", role="attestor", account=replacement.address)
    with pytest.raises(ContractRevert) as caught:
        governor.execute_role(contract="AnchorRegistry", role="attestor")
    assert caught.value.name == "ChangeNotDue"
    _advance_chain_to(case, _chain_now(case) + params.governance_delay)
    governor.execute_role(contract="AnchorRegistry", role="attestor")
    assert case.reader().roles().attestor == replacement.address

    with pytest.raises(ContractRevert) as caught:  # the leaked key anchors nothing more
        case.attest()
    assert caught.value.name == "NotAttestor"
    attest(case.engine, case.chain(replacement))  # the operator's new key carries on

    # The auditor's deployment file still names the old attestor: the audit refuses to run on it...
    epochs = f"0..{_last_epoch(case)}"
    export = case.export(epochs)
    out = case.audit(epochs, export)
    assert out.returncode == 2
    assert "attestor" in out.stderr, out.stderr
    assert replacement.address in out.stderr, out.stderr
    # ...until the auditor, having watched the change on chain, updates it.
    d = case.pipeline.deployment
    updated = case.tmp / "deployment-after-governance.json"
    write_deployment(updated, replace(d, roles=replace(d.roles, attestor=replacement.address)))
    out = case.audit(epochs, export, "--json", deployment=updated)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


def test_a_bundle_naming_a_later_checkpoint_than_the_first_to_include_the_reading(case: Case) -> None:
    """A key is judged at the block time of the FIRST checkpoint that included the reading; a
    bundle that proves inclusion in a later one (genuinely anchored) is refused, as the
    ReadingVerifier refuses it, so nobody can pick the anchor time that suits them."""
    row = _anchored_reading(case)  # in epoch 1
    path = case.bundle(log_index=row.log_index)
    bundle = json.loads(path.read_text())
    later = case.reader().checkpoint(2)
    with case.engine.connect() as conn:
        leaves = [
            bytes(r)
            for r in conn.execute(
                select(READING.c.raw).where(READING.c.log_index.is_not(None)).order_by(READING.c.log_index)
            ).scalars()
        ]
    log = MerkleLog()
    log.extend(leaves[: later.tree_size])
    assert log.root() == later.root
    checkpoint = {
        "epoch": 2,
        "tree_size": later.tree_size,
        "root": later.root.hex(),
        "meta_hash": later.meta_hash.hex(),
    }
    proof = [h.hex() for h in log.inclusion_proof(row.log_index, later.tree_size)]
    path.write_text(
        json.dumps(
            {
                **bundle,
                "tree_size": later.tree_size,
                "inclusion_proof": proof,
                "checkpoint": checkpoint,
                "metadata": None,
                "anchor": None,
            }
        )
    )
    code, verdict = _verify_json_path(case, path)
    assert (code, verdict["reason"]) == (1, "not_first_checkpoint")
    assert "already in epoch 1's checkpoint" in verdict["error"]
