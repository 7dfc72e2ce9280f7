"""ReadingVerifier: one reading checked end to end by the chain, in one eth_call.

The verdicts need the P-256 precompile, so they run on anvil; on eth-tester (which has none) the
client must refuse to answer rather than call every signature forged.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract

from chain._artifacts import load_artifact
from chain.deployment import Deployment, read_deployment, write_deployment
from chain.devchain import eth_tester_web3, set_next_block_timestamp
from chain.errors import DeploymentError, NotDeployedError, P256UnavailableError
from chain.reader import ChainReader
from chain.types import Checkpoint, OnchainReason, OnchainVerdict
from chain.writer import ChainClient
from devstack.anvil import AnvilNode
from protocol.envelope import GENESIS_PREV, Body, DeviceKind, decode_message, sign_body
from protocol.errors import VerificationError
from protocol.key_validity import KeyVerdict, judge_key
from protocol.merkle.log import MerkleLog
from protocol.signing import P256_ORDER, DeviceKey, verify_signature
from tests.support.chain import Chain, assets, deploy_chain, flip, meta, registration, reverts

ASSET = "HK Chargers #1"
R = OnchainReason


def charger_reading(key: DeviceKey, device: str, ts_ms: int, *, seq: int = 1, energy_wh: int = 500) -> bytes:
    body = Body(
        device=device,
        seq=seq,
        ts_ms=ts_ms,
        kind=DeviceKind.CHARGER,
        window_s=60,
        metrics={
            "energy_wh": energy_wh,
            "grid_wh": energy_wh + 20,
            "sessions_started": 1,
            "sessions_ended": 0,
            "active_s": 60,
            "power_w": energy_wh * 60,
        },
        prev=GENESIS_PREV,
    )
    return sign_body(body, key).raw


def with_signature(message: bytes, signature_hex: str) -> bytes:
    """``message`` with its 128 hex characters of signature replaced."""
    return message[:-130] + signature_hex.encode() + b'"}'


def high_s(message: bytes) -> bytes:
    sig = bytes.fromhex(message[-130:-2].decode())
    s = int.from_bytes(sig[32:], "big")
    return with_signature(message, (sig[:32] + (P256_ORDER - s).to_bytes(32, "big")).hex())


def off_chain_valid(message: bytes, public_key: bytes) -> bool:
    try:
        decoded = decode_message(message)
        verify_signature(alg="es256", public_key=public_key, message=decoded.signed_bytes, signature=decoded.signature)
    except VerificationError:
        return False
    return True


@dataclass
class Scene:
    """Devices with a history (registered, rotated, revoked) and readings anchored in three
    epochs: epoch 0 before the rotation and the revocation, epoch 1 after both (in the rotation's
    grace), epoch 2 after the grace."""

    chain: Chain
    reader: ChainReader
    log: MerkleLog
    keys: dict[str, DeviceKey]
    t0: int
    """Block time (s) of the registrations."""
    t_rotate: int
    t_revoke: int
    index: dict[str, int] = field(default_factory=dict)
    messages: dict[str, bytes] = field(default_factory=dict)
    first_epoch: dict[str, int] = field(default_factory=dict)
    checkpoints: list[Checkpoint] = field(default_factory=list)

    def add(self, name: str, message: bytes, *, epoch: int) -> None:
        self.index[name] = self.log.size
        self.messages[name] = message
        self.first_epoch[name] = epoch
        self.log.append(message)

    def verify(
        self,
        name: str,
        *,
        device_id: str,
        epoch: int | None = None,
        index: int | None = None,
        tree_size: int | None = None,
        proof: Sequence[bytes] | None = None,
        checkpoint: Checkpoint | None = None,
        previous: Checkpoint | None = None,
        message: bytes | None = None,
    ) -> OnchainVerdict:
        """Verify reading ``name`` in the checkpoint of ``epoch`` (default: the first to include
        it), with the previous epoch's checkpoint as anchored unless ``previous`` is given."""
        epoch = self.first_epoch[name] if epoch is None else epoch
        cp = self.checkpoints[epoch]
        leaf_index = self.index[name] if index is None else index
        size = cp.tree_size if tree_size is None else tree_size
        if previous is None and epoch > 0:
            previous = self.checkpoints[epoch - 1]
        return self.reader.verify_reading_onchain(
            message=self.messages[name] if message is None else message,
            device_id=device_id,
            leaf_index=leaf_index,
            tree_size=size,
            proof=self.log.inclusion_proof(self.index[name], cp.tree_size) if proof is None else proof,
            checkpoint=cp if checkpoint is None else checkpoint,
            previous=previous,
        )

    def args(self, name: str, *, device_id: str) -> tuple[Any, ...]:
        """The raw ``verifyReading`` arguments of a reading, in the first checkpoint to include it."""
        epoch = self.first_epoch[name]
        cp = self.checkpoints[epoch]
        p = (
            self.checkpoints[epoch - 1]
            if epoch > 0
            else Checkpoint(
                epoch=0,
                tree_size=0,
                root=bytes(32),
                meta_hash=bytes(32),
                assets_root=bytes(32),
                block_number=0,
                timestamp=0,
            )
        )
        return (
            self.messages[name],
            device_id,
            self.index[name],
            cp.tree_size,
            self.log.inclusion_proof(self.index[name], cp.tree_size),
            (cp.epoch, cp.tree_size, cp.root, cp.meta_hash, cp.assets_root, cp.block_number, cp.timestamp),
            (p.epoch, p.tree_size, p.root, p.meta_hash, p.assets_root, p.block_number, p.timestamp),
        )


def mutations(message: bytes, *, count: int, seed: int) -> list[tuple[int, bytes]]:
    """``message`` with one byte changed: every position of its fixed head and around the body's
    end and the signature's start, and ``count`` positions drawn at random elsewhere."""
    rng = random.Random(seed)
    tail = len(message) - 138
    fixed = set(range(40)) | set(range(tail - 40, tail + 12)) | {len(message) - 2, len(message) - 1}
    positions = sorted(fixed | set(rng.sample(range(len(message)), count)))
    found = []
    for position in positions:
        changed = bytearray(message)
        changed[position] ^= rng.randrange(1, 256)
        found.append((position, bytes(changed)))
    return found


@pytest.fixture(scope="module")
def scene(anvil_node: AnvilNode) -> Scene:
    chain = deploy_chain(anvil_node.web3())
    w3 = chain.w3
    grace = chain.deployment.params.rotation_grace
    backfill = chain.deployment.params.max_backfill
    keys = {
        "chg-0001": DeviceKey.generate("es256"),
        "chg-0002": DeviceKey.generate("es256"),
        "sol-0003": DeviceKey.generate("ed25519"),
        "chg-0004": DeviceKey.generate("es256"),  # rotated to chg-0004-new
        "chg-0005": DeviceKey.generate("es256"),  # revoked
        "chg-0006": DeviceKey.generate("es256"),  # registered with a 300 s window
        "sol-0007": DeviceKey.generate("es256"),  # a solar panel's es256 key
        "chg-0008": DeviceKey.generate("ed25519"),  # an ed25519 charger
        "chg-0004-new": DeviceKey.generate("es256"),
    }
    kinds = {"sol-0003": DeviceKind.SOLAR, "sol-0007": DeviceKind.SOLAR}
    t0 = int(w3.eth.get_block("latest")["timestamp"]) + 100
    set_next_block_timestamp(w3, t0)
    chain.registrar.register_devices(
        registration(
            device,
            key.public_key,
            asset=ASSET,
            alg=key.alg,
            kind=kinds.get(device, DeviceKind.CHARGER),
            window_s=300 if device == "chg-0006" else 60,
            rated_power_w=22_000,
        )
        for device, key in keys.items()
        if device != "chg-0004-new"
    )
    reader = chain.reader()
    assert reader.device_keys("chg-0001")[0].from_time == t0
    t_rotate, t_revoke = t0 + 100, t0 + 200
    anchor_times = (t0 + 50, t0 + 300, t_rotate + grace + 10)

    scene = Scene(chain=chain, reader=reader, log=MerkleLog(), keys=keys, t0=t0, t_rotate=t_rotate, t_revoke=t_revoke)
    k = keys
    at = (t0 + 10) * 1000 + 999
    genuine = charger_reading(k["chg-0001"], "chg-0001", at)
    # Epoch 0, anchored at t0 + 50: before the rotation and the revocation.
    scene.add("genuine", genuine, epoch=0)
    scene.add("high_s", high_s(charger_reading(k["chg-0001"], "chg-0001", at + 60_000, seq=2)), epoch=0)
    scene.add("ed25519", charger_reading(k["sol-0003"], "sol-0003", at), epoch=0)
    scene.add("forged", charger_reading(DeviceKey.generate("es256"), "chg-0001", at + 120_000, seq=3), epoch=0)
    scene.add("tampered", genuine.replace(b'"energy_wh":500', b'"energy_wh":900'), epoch=0)
    scene.add("unknown_device", charger_reading(k["chg-0001"], "chg-0099", at), epoch=0)
    scene.add("before_registration", charger_reading(k["chg-0001"], "chg-0001", (t0 - 1) * 1000 + 999), epoch=0)
    scene.add("backfill_edge", charger_reading(k["chg-0001"], "chg-0001", (t0 - backfill) * 1000), epoch=0)
    scene.add("before_backfill", charger_reading(k["chg-0001"], "chg-0001", (t0 - backfill) * 1000 - 1), epoch=0)
    scene.add("es256_on_ed25519_device", charger_reading(k["chg-0001"], "chg-0008", at), epoch=0)
    scene.add("wrong_kind", charger_reading(k["sol-0007"], "sol-0007", at), epoch=0)
    scene.add("wrong_window", charger_reading(k["chg-0006"], "chg-0006", at), epoch=0)
    scene.add("new_key_too_early", charger_reading(k["chg-0004-new"], "chg-0004", at), epoch=0)
    scene.add("revoked_key_in_time", charger_reading(k["chg-0005"], "chg-0005", at), epoch=0)
    sig = genuine[-130:-2].decode()
    for name, message in {
        "empty": b"",
        "not_json": b"reading",
        "truncated": genuine[:-1],
        "head_only": genuine[:40],
        "uppercase_sig": with_signature(genuine, sig.upper()),
        "non_hex_sig": with_signature(genuine, "g" + sig[1:]),
        "other_alg": genuine.replace(b'"es256"', b'"es384"', 1),
        "uppercase_device": genuine.replace(b'"chg-0001"', b'"CHG-0001"', 1),
        "device_starting_with_dash": genuine.replace(b'"chg-0001"', b'"-hg-0001"', 1),
        "device_too_long": genuine.replace(b'"chg-0001"', b'"' + b"c" * 64 + b'"', 1),
        "empty_device": genuine.replace(b'"chg-0001"', b'""', 1),
        "ts_leading_zero": genuine.replace(b'"ts_ms":', b'"ts_ms":0', 1),
        "ts_negative": genuine.replace(b'"ts_ms":', b'"ts_ms":-', 1),
        "ts_too_long": genuine.replace(b'"ts_ms":', b'"ts_ms":1' + b"0" * 16, 1),
        "version_2": genuine.replace(b'"v":1', b'"v":2', 1),
        "no_window": genuine.replace(b',"window_s":60}', b"}", 1),
        "spaces": genuine.replace(b'"sig":"', b'"sig": "', 1),
    }.items():
        scene.add(f"malformed/{name}", message, epoch=0)
    # Epoch 1, anchored at t0 + 300: after the rotation (in its grace) and the revocation.
    old, new = k["chg-0004"], k["chg-0004-new"]
    scene.add("late", charger_reading(k["chg-0002"], "chg-0002", at), epoch=1)
    scene.add("old_key_in_grace", charger_reading(old, "chg-0004", t_rotate * 1000, seq=2), epoch=1)
    scene.add("old_key_dated_after_its_end", charger_reading(old, "chg-0004", t_rotate * 1000 + 1, seq=3), epoch=1)
    scene.add("new_key_after_rotation", charger_reading(new, "chg-0004", t_rotate * 1000, seq=4), epoch=1)
    scene.add("revoked_key_anchored_late", charger_reading(k["chg-0005"], "chg-0005", t_revoke * 1000 - 1), epoch=1)
    for position, mutated in mutations(genuine, count=40, seed=7):
        scene.add(f"mutated/{position}", mutated, epoch=1)
    # Epoch 2, anchored after the rotation's grace.
    scene.add("old_key_after_grace", charger_reading(old, "chg-0004", t_rotate * 1000 - 1, seq=5), epoch=2)

    ends = [max(i for n, i in scene.index.items() if scene.first_epoch[n] == e) + 1 for e in range(3)]
    previous = 0
    for epoch, size in enumerate(ends):
        if epoch == 1:
            set_next_block_timestamp(w3, t_rotate)
            chain.registrar.rotate(device_id="chg-0004", public_key=new.public_key)
            set_next_block_timestamp(w3, t_revoke)
            chain.registrar.revoke(device_id="chg-0005")
        set_next_block_timestamp(w3, anchor_times[epoch])
        chain.attestor.anchor(
            epoch=epoch,
            tree_size=size,
            root=scene.log.root(size),
            meta_hash=meta(epoch),
            assets_root=assets(epoch),
            proof=scene.log.consistency_proof(previous, size),
        )
        previous = size
        scene.checkpoints.append(reader.checkpoint(epoch))
    assert [c.timestamp for c in scene.checkpoints] == list(anchor_times)
    return scene


def verifier(chain: Chain) -> Contract:
    assert chain.deployment.reading_verifier is not None
    return chain.w3.eth.contract(
        address=Web3.to_checksum_address(chain.deployment.reading_verifier.address),
        abi=load_artifact("ReadingVerifier").abi,
    )


# --- genuine readings --------------------------------------------------------------------------------


def test_a_genuine_es256_reading_in_its_first_checkpoint_is_valid(scene: Scene) -> None:
    verdict = scene.verify("genuine", device_id="chg-0001")
    assert verdict == OnchainVerdict(valid=True, reason=R.VALID)
    assert "genuine" in verdict.message
    assert scene.verify("late", device_id="chg-0002").valid
    # The previous checkpoint read from the chain when not given.
    cp = scene.checkpoints[1]
    index = scene.index["late"]
    assert scene.reader.verify_reading_onchain(
        message=scene.messages["late"],
        device_id="chg-0002",
        leaf_index=index,
        tree_size=cp.tree_size,
        proof=scene.log.inclusion_proof(index, cp.tree_size),
        checkpoint=cp,
    ).valid
    assert off_chain_valid(scene.messages["genuine"], scene.keys["chg-0001"].public_key)
    contract = verifier(scene.chain)
    args = scene.args("genuine", device_id="chg-0001")
    assert contract.functions.verifyReading(*args).call() == 0
    assert contract.functions.isValidReading(*args).call() is True
    assert contract.functions.isValidReading(*scene.args("forged", device_id="chg-0001")).call() is False
    assert contract.functions.isValidReading(*scene.args("late", device_id="chg-0002")).call() is True


def test_only_the_first_checkpoint_to_include_a_reading_judges_it(scene: Scene) -> None:
    """A leaf already in epoch 0 proved in epoch 1's checkpoint: its key must be judged at epoch
    0's block time, so the verifier refuses the later checkpoint (a revoked key's reading could
    otherwise borrow an old checkpoint's time, or a valid one be refused for a late one's)."""
    for epoch in (1, 2):
        verdict = scene.verify("genuine", device_id="chg-0001", epoch=epoch)
        assert verdict.reason == R.NOT_FIRST_CHECKPOINT
        assert "first checkpoint" in verdict.message
    # The previous checkpoint must be the one anchored for epoch - 1.
    cp0, cp1 = scene.checkpoints[:2]
    for wrong in (
        replace(cp0, tree_size=cp0.tree_size - 1),
        replace(cp0, root=flip(cp0.root)),
        replace(cp0, timestamp=cp0.timestamp + 1),
        replace(cp1, epoch=0),
        cp1,  # not epoch - 1 at all
    ):
        assert scene.verify("late", device_id="chg-0002", previous=wrong).reason == R.CHECKPOINT_MISMATCH, wrong


def test_a_high_s_signature_is_accepted_as_the_protocol_does(scene: Scene) -> None:
    message = scene.messages["high_s"]
    assert int(message[-66:-2], 16) > P256_ORDER // 2
    assert off_chain_valid(message, scene.keys["chg-0001"].public_key)
    assert scene.verify("high_s", device_id="chg-0001").reason == R.VALID


def test_gas_of_the_eth_call(scene: Scene) -> None:
    """What one verification costs (README figure): the P-256 precompile is 6,900 of it."""
    contract = verifier(scene.chain)
    gas = contract.functions.verifyReading(*scene.args("genuine", device_id="chg-0001")).estimate_gas()
    assert 60_000 < gas < 115_000, gas
    # Epoch 1: the previous checkpoint is checked too (one more commitment read).
    later = contract.functions.verifyReading(*scene.args("late", device_id="chg-0002")).estimate_gas()
    assert gas < later < 125_000, later


# --- each check ---------------------------------------------------------------------------------------


def test_a_checkpoint_that_is_not_the_anchored_one(scene: Scene) -> None:
    cp = scene.checkpoints[scene.first_epoch["genuine"]]
    altered = [
        replace(cp, tree_size=cp.tree_size + 1),
        replace(cp, root=flip(cp.root)),
        replace(cp, meta_hash=flip(cp.meta_hash)),
        replace(cp, assets_root=flip(cp.assets_root)),
        replace(cp, block_number=cp.block_number + 1),
        replace(cp, timestamp=cp.timestamp - 1),
        replace(cp, epoch=1),  # epoch 0's fields under epoch 1's number
    ]
    for checkpoint in altered:
        verdict = scene.verify("genuine", device_id="chg-0001", checkpoint=checkpoint)
        assert verdict.reason == R.CHECKPOINT_MISMATCH, checkpoint
        assert not verdict.valid
    unknown = replace(cp, epoch=3)
    assert scene.verify("genuine", device_id="chg-0001", checkpoint=unknown).reason == R.UNKNOWN_EPOCH


def test_a_reading_not_included_where_the_proof_says(scene: Scene) -> None:
    index, (cp0, cp1, _) = scene.index["late"], scene.checkpoints
    proof_at_2 = scene.log.inclusion_proof(index, scene.checkpoints[2].tree_size)
    cases: dict[str, dict[str, Any]] = {
        "wrong leaf index": {"index": index + 1},
        "index past the tree": {"index": cp1.tree_size},
        "proof for another tree size": {"proof": proof_at_2},
        "tree size not the checkpoint's": {"proof": proof_at_2, "tree_size": scene.checkpoints[2].tree_size},
        "element flipped": {"proof": [flip(p) for p in scene.log.inclusion_proof(index, cp1.tree_size)]},
        "element dropped": {"proof": scene.log.inclusion_proof(index, cp1.tree_size)[:-1]},
        "another reading's bytes": {"message": scene.messages["genuine"]},
        "a tampered byte": {"message": scene.messages["late"].replace(b'"seq":1', b'"seq":2')},
    }
    for case, overrides in cases.items():
        assert scene.verify("late", device_id="chg-0002", **overrides).reason == R.INCLUSION, case
    assert cp0.tree_size <= index  # epoch 1 is the first to hold it


def test_a_tampered_reading_that_was_anchored_fails_its_signature(scene: Scene) -> None:
    # A compromised gateway anchors altered bytes: the log proves them, the device's key does not.
    assert scene.verify("tampered", device_id="chg-0001").reason == R.SIGNATURE
    verdict = scene.verify("forged", device_id="chg-0001")
    assert verdict.reason == R.SIGNATURE
    assert "signature" in verdict.message


def test_ed25519_readings_are_not_verifiable_on_chain(scene: Scene) -> None:
    verdict = scene.verify("ed25519", device_id="sol-0003")
    assert verdict == OnchainVerdict(valid=False, reason=R.UNSUPPORTED_ALG)
    assert "ed25519 readings are not verifiable on chain" in verdict.message


@pytest.mark.parametrize(
    "name",
    [
        "empty",
        "not_json",
        "truncated",
        "head_only",
        "uppercase_sig",
        "non_hex_sig",
        "other_alg",
        "uppercase_device",
        "device_starting_with_dash",
        "device_too_long",
        "empty_device",
        "ts_leading_zero",
        "ts_negative",
        "ts_too_long",
        "version_2",
        "no_window",
        "spaces",
    ],
)
def test_malformed_messages_are_named_so_and_never_panic(scene: Scene, name: str) -> None:
    message = scene.messages[f"malformed/{name}"]
    assert scene.verify(f"malformed/{name}", device_id="chg-0001").reason == R.MALFORMED
    with pytest.raises(VerificationError):  # the protocol refuses them too
        decode_message(message)


def test_the_device_named_must_be_the_messages(scene: Scene) -> None:
    for other in ("chg-0002", "chg-000", "chg-00011", 'chg-0001"', "CHG-0001", ""):
        assert scene.verify("genuine", device_id=other).reason == R.DEVICE_MISMATCH, other


def test_an_unregistered_device(scene: Scene) -> None:
    assert scene.verify("unknown_device", device_id="chg-0099").reason == R.UNKNOWN_DEVICE


def test_a_key_judged_by_the_checkpoints_block_time(scene: Scene) -> None:
    """Which key counts is decided by when the first checkpoint holding the reading was anchored
    (chain time), never by the time the reading claims."""
    expected = {
        # chg-0004: key 0 rotated out at t0 + 100 for key 1; epoch 1 is anchored at t0 + 300, in
        # the rotation's grace, epoch 2 after it.
        "old_key_in_grace": R.VALID,  # dated at the rotation, anchored in the grace
        "old_key_dated_after_its_end": R.DATED_OUTSIDE_KEY,  # one millisecond after the rotation
        "old_key_after_grace": R.KEY_NOT_VALID,  # dated in its time, but anchored too late
        "new_key_after_rotation": R.VALID,
        "new_key_too_early": R.KEY_NOT_VALID,  # anchored before the key was registered
    }
    for name, reason in expected.items():
        verdict = scene.verify(name, device_id="chg-0004")
        assert verdict.reason == reason, name
    assert "chain time" in scene.verify("old_key_after_grace", device_id="chg-0004").message
    # Off chain the same: the rule in protocol.key_validity.
    grace = scene.chain.deployment.params.rotation_grace
    old_key = scene.reader.device_keys("chg-0004")[0]
    assert (
        judge_key(
            old_key.span,
            anchored_at=scene.checkpoints[2].timestamp,
            ts_ms=scene.t_rotate * 1000 - 1,
            rotation_grace=grace,
            max_backfill=scene.chain.deployment.params.max_backfill,
        )
        is KeyVerdict.ANCHORED_AFTER_KEY
    )


def test_a_reading_dated_before_its_key_within_the_backfill_bound(scene: Scene) -> None:
    assert scene.verify("before_registration", device_id="chg-0001").reason == R.VALID
    assert scene.verify("backfill_edge", device_id="chg-0001").reason == R.VALID
    verdict = scene.verify("before_backfill", device_id="chg-0001")
    assert verdict.reason == R.DATED_OUTSIDE_KEY
    assert "backfill" in verdict.message


def test_a_revoked_key_counts_only_for_checkpoints_anchored_before_the_revocation(scene: Scene) -> None:
    assert scene.verify("revoked_key_in_time", device_id="chg-0005").reason == R.VALID
    # Dated before the revocation, but anchored after it: a stolen key's backdated reading.
    assert scene.verify("revoked_key_anchored_late", device_id="chg-0005").reason == R.KEY_NOT_VALID


def test_the_registered_kind_and_window(scene: Scene) -> None:
    kind = scene.verify("wrong_kind", device_id="sol-0007")  # a charger reading by a solar panel's key
    assert kind.reason == R.WRONG_KIND
    assert "kind" in kind.message
    window = scene.verify("wrong_window", device_id="chg-0006")  # window_s 60, registered 300
    assert window.reason == R.WRONG_WINDOW
    assert "window" in window.message


def test_an_es256_message_for_an_ed25519_device(scene: Scene) -> None:
    assert scene.verify("es256_on_ed25519_device", device_id="chg-0008").reason == R.SIGNATURE


def test_no_single_byte_change_passes_and_none_reverts(scene: Scene) -> None:
    names = [name for name in scene.messages if name.startswith("mutated/")]
    assert len(names) > 100
    for name in names:
        verdict = scene.verify(name, device_id="chg-0001")
        assert not verdict.valid, name
        assert not off_chain_valid(scene.messages[name], scene.keys["chg-0001"].public_key)


def test_bad_arguments_raise_before_any_call(scene: Scene) -> None:
    with pytest.raises(ValueError, match="leaf_index"):
        scene.verify("genuine", device_id="chg-0001", index=-1)
    with pytest.raises(ValueError, match="tree_size"):
        scene.verify("genuine", device_id="chg-0001", tree_size=2**64)
    with pytest.raises(ValueError, match="proof element"):
        scene.verify("genuine", device_id="chg-0001", proof=[b"\x00" * 31])


# --- where it cannot answer -----------------------------------------------------------------------------


def test_eth_tester_has_no_p256_precompile_and_says_so() -> None:
    chain = deploy_chain(eth_tester_web3())
    key = DeviceKey.generate("es256")
    chain.registrar.register(
        registration("chg-0001", key.public_key, asset=ASSET, alg="es256", kind=DeviceKind.CHARGER)
    )
    reader = chain.reader()
    at = reader.device_keys("chg-0001")[0].from_time * 1000
    message = charger_reading(key, "chg-0001", at)
    log = MerkleLog()
    log.append(message)
    chain.attestor.anchor(epoch=0, tree_size=1, root=log.root(), meta_hash=meta(0), assets_root=assets(0), proof=[])
    checkpoint = reader.checkpoint(0)
    assert reader.p256_available() is False
    with pytest.raises(P256UnavailableError, match=r"no P-256 precompile \(0x100\).*anvil or a chain with EIP-7951"):
        reader.verify_reading_onchain(
            message=message, device_id="chg-0001", leaf_index=0, tree_size=1, proof=[], checkpoint=checkpoint
        )
    # The contract itself, asked directly, refuses to call the genuine signature bad.
    fields = (
        0,
        1,
        checkpoint.root,
        checkpoint.meta_hash,
        checkpoint.assets_root,
        checkpoint.block_number,
        checkpoint.timestamp,
    )
    args: tuple[Any, ...] = (message, "chg-0001", 0, 1, [], fields, (0, 0, bytes(32), bytes(32), bytes(32), 0, 0))
    with reverts("P256PrecompileMissing"):
        reader._call("ReadingVerifier", "verifyReading", *args)


def test_the_precompile_probe_runs_once_per_reader(scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = scene.chain.reader()
    calls: list[str] = []
    original: Callable[..., Any] = reader._call

    def counting(name: str, fn_name: str, *args: Any) -> Any:
        calls.append(fn_name)
        return original(name, fn_name, *args)

    monkeypatch.setattr(reader, "_call", counting)
    for _ in range(3):
        assert reader.verify_reading_onchain(
            message=scene.messages["genuine"],
            device_id="chg-0001",
            leaf_index=scene.index["genuine"],
            tree_size=scene.checkpoints[0].tree_size,
            proof=scene.log.inclusion_proof(scene.index["genuine"], scene.checkpoints[0].tree_size),
            checkpoint=scene.checkpoints[0],
        ).valid
    assert calls == ["p256Available", "verifyReading", "verifyReading", "verifyReading"]


# --- deployment -------------------------------------------------------------------------------------------


def without_verifier(deployment: Deployment) -> Deployment:
    return replace(deployment, reading_verifier=None)


def test_deploy_records_the_verifier_over_its_own_registries(chain: Chain, tmp_path: Path) -> None:
    deployment = chain.deployment
    assert deployment.reading_verifier is not None
    path = tmp_path / "deployment.json"
    write_deployment(path, deployment)
    assert read_deployment(path) == deployment
    reader = chain.reader()
    reader.verify_deployment()
    contract = verifier(chain)
    assert contract.functions.anchorRegistry().call() == deployment.anchor_registry.address
    assert contract.functions.deviceRegistry().call() == deployment.device_registry.address


def test_a_deployment_file_from_before_the_verifier_still_loads(chain: Chain, tmp_path: Path) -> None:
    old = without_verifier(chain.deployment)
    text = old.to_json()
    assert "ReadingVerifier" not in text
    path = tmp_path / "deployment.json"
    path.write_text(text)
    loaded = read_deployment(path)
    assert loaded == old
    reader = ChainReader(chain.w3, deployment=loaded)
    reader.verify_deployment()
    checkpoint = Checkpoint(
        epoch=0, tree_size=1, root=bytes(32), meta_hash=bytes(32), assets_root=bytes(32), block_number=1, timestamp=1
    )
    with pytest.raises(NotDeployedError, match="no ReadingVerifier"):
        reader.verify_reading_onchain(
            message=b"{}", device_id="chg-0001", leaf_index=0, tree_size=1, proof=[], checkpoint=checkpoint
        )
    # Deployed later, over the same registries, by anyone.
    upgraded = ChainClient(chain.w3, account=chain.stranger.account, deployment=loaded).deploy_reading_verifier()
    assert upgraded.reading_verifier is not None
    assert (upgraded.anchor_registry, upgraded.device_registry) == (old.anchor_registry, old.device_registry)
    ChainReader(chain.w3, deployment=upgraded).verify_deployment()


def test_verify_deployment_checks_the_verifier(chain: Chain) -> None:
    deployment = chain.deployment
    assert deployment.reading_verifier is not None
    # Not a ReadingVerifier's code at its address.
    wrong_code = replace(deployment, reading_verifier=deployment.anchor_registry)
    with pytest.raises(DeploymentError, match="not the committed ReadingVerifier"):
        ChainReader(chain.w3, deployment=wrong_code).verify_deployment()
    # A genuine ReadingVerifier, but over another deployment's registries.
    other = deploy_chain(chain.w3).deployment
    foreign = replace(deployment, reading_verifier=other.reading_verifier)
    with pytest.raises(DeploymentError, match="reads anchorRegistry"):
        ChainReader(chain.w3, deployment=foreign).verify_deployment()


def test_the_constructor_wants_contracts(chain: Chain) -> None:
    registries = chain.deployment.anchor_registry.address, chain.deployment.device_registry.address
    for args in ((chain.registrar.address, registries[1]), (registries[0], chain.registrar.address)):
        with reverts("NoCode", account=chain.registrar.address):
            chain.stranger._deploy_contract("ReadingVerifier", *args)
