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
from chain.types import Checkpoint, DeviceRegistration, OnchainReason, OnchainVerdict
from chain.writer import ChainClient
from devstack.anvil import AnvilNode
from protocol.envelope import GENESIS_PREV, Body, DeviceKind, decode_message, sign_body
from protocol.errors import VerificationError
from protocol.merkle.log import MerkleLog
from protocol.signing import P256_ORDER, DeviceKey, verify_signature
from tests.support.chain import Chain, deploy_chain, flip, meta, reverts

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
    """Devices with a history (registered, rotated, revoked) and readings anchored in two epochs."""

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
    checkpoints: list[Checkpoint] = field(default_factory=list)

    def add(self, name: str, message: bytes) -> None:
        self.index[name] = self.log.size
        self.messages[name] = message
        self.log.append(message)

    def verify(
        self,
        name: str,
        *,
        device_id: str,
        epoch: int = 1,
        index: int | None = None,
        tree_size: int | None = None,
        proof: Sequence[bytes] | None = None,
        checkpoint: Checkpoint | None = None,
        message: bytes | None = None,
    ) -> OnchainVerdict:
        cp = self.checkpoints[epoch]
        leaf_index = self.index[name] if index is None else index
        size = cp.tree_size if tree_size is None else tree_size
        return self.reader.verify_reading_onchain(
            message=self.messages[name] if message is None else message,
            device_id=device_id,
            leaf_index=leaf_index,
            tree_size=size,
            proof=self.log.inclusion_proof(self.index[name], cp.tree_size) if proof is None else proof,
            checkpoint=cp if checkpoint is None else checkpoint,
        )

    def args(self, name: str, *, device_id: str, epoch: int = 1) -> tuple[Any, ...]:
        """The raw ``verifyReading`` arguments of a reading."""
        cp = self.checkpoints[epoch]
        return (
            self.messages[name],
            device_id,
            self.index[name],
            cp.tree_size,
            self.log.inclusion_proof(self.index[name], cp.tree_size),
            (cp.epoch, cp.tree_size, cp.root, cp.meta_hash, cp.block_number, cp.timestamp),
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
    keys = {
        "chg-0001": DeviceKey.generate("es256"),
        "chg-0002": DeviceKey.generate("es256"),
        "sol-0003": DeviceKey.generate("ed25519"),
        "chg-0004": DeviceKey.generate("es256"),  # rotated to chg-0004-new
        "chg-0005": DeviceKey.generate("es256"),  # revoked
        "chg-0004-new": DeviceKey.generate("es256"),
    }
    chain.admin.register_devices(
        DeviceRegistration(device_id=device, asset=ASSET, alg=key.alg, public_key=key.public_key)
        for device, key in keys.items()
        if device != "chg-0004-new"
    )
    reader = chain.reader()
    t0 = reader.device_keys("chg-0001")[0].from_time
    set_next_block_timestamp(w3, t0 + 100)
    chain.admin.rotate(device_id="chg-0004", public_key=keys["chg-0004-new"].public_key)
    set_next_block_timestamp(w3, t0 + 200)
    chain.admin.revoke(device_id="chg-0005")
    t_rotate = reader.device_keys("chg-0004")[1].from_time
    t_revoke = reader.device("chg-0005").revoked_time
    assert t_revoke is not None
    assert (t_rotate, t_revoke) == (t0 + 100, t0 + 200)

    scene = Scene(chain=chain, reader=reader, log=MerkleLog(), keys=keys, t0=t0, t_rotate=t_rotate, t_revoke=t_revoke)
    k = keys
    at = (t0 + 10) * 1000 + 999  # the contract takes ts_ms // 1000
    genuine = charger_reading(k["chg-0001"], "chg-0001", at)
    scene.add("genuine", genuine)
    scene.add("high_s", high_s(charger_reading(k["chg-0001"], "chg-0001", at + 60_000, seq=2)))
    scene.add("ed25519", charger_reading(k["sol-0003"], "sol-0003", at))
    scene.add("forged", charger_reading(DeviceKey.generate("es256"), "chg-0001", at + 120_000, seq=3))
    scene.add("tampered", genuine.replace(b'"energy_wh":500', b'"energy_wh":900'))
    scene.add("unknown_device", charger_reading(k["chg-0001"], "chg-0099", at))
    scene.add("before_registration", charger_reading(k["chg-0001"], "chg-0001", (t0 - 1) * 1000 + 999))
    scene.add("es256_on_ed25519_device", charger_reading(k["chg-0001"], "sol-0003", at))
    scene.add("old_key_before_rotation", charger_reading(k["chg-0004"], "chg-0004", t_rotate * 1000 - 1))
    scene.add("old_key_after_rotation", charger_reading(k["chg-0004"], "chg-0004", t_rotate * 1000))
    scene.add("new_key_after_rotation", charger_reading(k["chg-0004-new"], "chg-0004", t_rotate * 1000))
    scene.add("new_key_before_rotation", charger_reading(k["chg-0004-new"], "chg-0004", t_rotate * 1000 - 1))
    scene.add("before_revocation", charger_reading(k["chg-0005"], "chg-0005", t_revoke * 1000 - 1))
    scene.add("after_revocation", charger_reading(k["chg-0005"], "chg-0005", t_revoke * 1000))
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
        scene.add(f"malformed/{name}", message)
    first_epoch = scene.log.size
    scene.add("late", charger_reading(k["chg-0002"], "chg-0002", at))
    for position, mutated in mutations(genuine, count=40, seed=7):
        scene.add(f"mutated/{position}", mutated)

    for epoch, (previous, size) in enumerate(((0, first_epoch), (first_epoch, scene.log.size))):
        chain.attestor.anchor(
            epoch=epoch,
            tree_size=size,
            root=scene.log.root(size),
            meta_hash=meta(epoch),
            proof=scene.log.consistency_proof(previous, size),
        )
        scene.checkpoints.append(reader.checkpoint(epoch))
    return scene


def verifier(chain: Chain) -> Contract:
    assert chain.deployment.reading_verifier is not None
    return chain.w3.eth.contract(
        address=Web3.to_checksum_address(chain.deployment.reading_verifier.address),
        abi=load_artifact("ReadingVerifier").abi,
    )


# --- genuine readings --------------------------------------------------------------------------------


def test_a_genuine_es256_reading_in_an_anchored_checkpoint_is_valid(scene: Scene) -> None:
    for epoch in (0, 1):  # the same reading, proved in either checkpoint
        verdict = scene.verify("genuine", device_id="chg-0001", epoch=epoch)
        assert verdict == OnchainVerdict(valid=True, reason=R.VALID)
        assert "genuine" in verdict.message
    assert scene.verify("late", device_id="chg-0002").valid
    assert off_chain_valid(scene.messages["genuine"], scene.keys["chg-0001"].public_key)
    contract = verifier(scene.chain)
    args = scene.args("genuine", device_id="chg-0001")
    assert contract.functions.verifyReading(*args).call() == 0
    assert contract.functions.isValidReading(*args).call() is True
    assert contract.functions.isValidReading(*scene.args("forged", device_id="chg-0001")).call() is False


def test_a_high_s_signature_is_accepted_as_the_protocol_does(scene: Scene) -> None:
    message = scene.messages["high_s"]
    assert int(message[-66:-2], 16) > P256_ORDER // 2
    assert off_chain_valid(message, scene.keys["chg-0001"].public_key)
    assert scene.verify("high_s", device_id="chg-0001").reason == R.VALID


def test_gas_of_the_eth_call(scene: Scene) -> None:
    """What one verification costs (README figure): the P-256 precompile is 6,900 of it."""
    gas = verifier(scene.chain).functions.verifyReading(*scene.args("genuine", device_id="chg-0001")).estimate_gas()
    assert 60_000 < gas < 95_000, gas  # 86,165 with 8 proof elements, when measured


# --- each check ---------------------------------------------------------------------------------------


def test_a_checkpoint_that_is_not_the_anchored_one(scene: Scene) -> None:
    cp = scene.checkpoints[1]
    altered = [
        replace(cp, tree_size=cp.tree_size + 1),
        replace(cp, root=flip(cp.root)),
        replace(cp, meta_hash=flip(cp.meta_hash)),
        replace(cp, block_number=cp.block_number + 1),
        replace(cp, timestamp=cp.timestamp - 1),
        replace(cp, epoch=0),  # epoch 1's fields under epoch 0's number
    ]
    for checkpoint in altered:
        verdict = scene.verify("genuine", device_id="chg-0001", checkpoint=checkpoint)
        assert verdict.reason == R.CHECKPOINT_MISMATCH, checkpoint
        assert not verdict.valid
    assert scene.verify("genuine", device_id="chg-0001", checkpoint=replace(cp, epoch=2)).reason == R.UNKNOWN_EPOCH


def test_a_reading_not_included_where_the_proof_says(scene: Scene) -> None:
    index, (cp0, cp1) = scene.index["genuine"], scene.checkpoints
    proof_at_0 = scene.log.inclusion_proof(index, cp0.tree_size)
    cases: dict[str, dict[str, Any]] = {
        "wrong leaf index": {"index": index + 1},
        "index past the tree": {"index": cp1.tree_size},
        "proof for another tree size": {"proof": proof_at_0},
        "tree size not the checkpoint's": {"proof": proof_at_0, "tree_size": cp0.tree_size},
        "element flipped": {"proof": [flip(p) for p in scene.log.inclusion_proof(index, cp1.tree_size)]},
        "element dropped": {"proof": scene.log.inclusion_proof(index, cp1.tree_size)[:-1]},
        "another reading's bytes": {"message": scene.messages["late"]},
        "a tampered byte": {"message": scene.messages["genuine"].replace(b'"seq":1', b'"seq":2')},
    }
    for case, overrides in cases.items():
        assert scene.verify("genuine", device_id="chg-0001", **overrides).reason == R.INCLUSION, case
    # The epoch-0 proof is right for epoch 0's checkpoint.
    assert scene.verify("genuine", device_id="chg-0001", epoch=0, proof=proof_at_0).valid


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


def test_a_key_used_outside_its_validity(scene: Scene) -> None:
    expected = {
        # Keys are valid from their block's time (inclusive) until the next key's (exclusive).
        "old_key_before_rotation": R.VALID,
        "old_key_after_rotation": R.KEY_NOT_VALID,  # rotated out before the reading's time
        "new_key_after_rotation": R.VALID,
        "new_key_before_rotation": R.KEY_NOT_VALID,  # not yet in force
        "before_registration": R.VALID,  # the first key signs for what came before it
    }
    for name, reason in expected.items():
        device = "chg-0001" if name == "before_registration" else "chg-0004"
        assert scene.verify(name, device_id=device).reason == reason, name


def test_a_revoked_device_keeps_its_earlier_readings(scene: Scene) -> None:
    assert scene.verify("before_revocation", device_id="chg-0005").reason == R.VALID
    assert scene.verify("after_revocation", device_id="chg-0005").reason == R.KEY_NOT_VALID


def test_an_es256_message_for_an_ed25519_device(scene: Scene) -> None:
    assert scene.verify("es256_on_ed25519_device", device_id="sol-0003").reason == R.SIGNATURE


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
    chain.admin.register(DeviceRegistration(device_id="chg-0001", asset=ASSET, alg="es256", public_key=key.public_key))
    reader = chain.reader()
    at = reader.device_keys("chg-0001")[0].from_time * 1000
    message = charger_reading(key, "chg-0001", at)
    log = MerkleLog()
    log.append(message)
    chain.attestor.anchor(epoch=0, tree_size=1, root=log.root(), meta_hash=meta(0), proof=[])
    checkpoint = reader.checkpoint(0)
    assert reader.p256_available() is False
    with pytest.raises(P256UnavailableError, match=r"no P-256 precompile \(0x100\).*anvil or a chain with EIP-7951"):
        reader.verify_reading_onchain(
            message=message, device_id="chg-0001", leaf_index=0, tree_size=1, proof=[], checkpoint=checkpoint
        )
    # The contract itself, asked directly, refuses to call the genuine signature bad.
    fields = (0, 1, checkpoint.root, checkpoint.meta_hash, checkpoint.block_number, checkpoint.timestamp)
    args: tuple[Any, ...] = (message, "chg-0001", 0, 1, [], fields)
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
            tree_size=scene.checkpoints[1].tree_size,
            proof=scene.log.inclusion_proof(scene.index["genuine"], scene.checkpoints[1].tree_size),
            checkpoint=scene.checkpoints[1],
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
    checkpoint = Checkpoint(epoch=0, tree_size=1, root=bytes(32), meta_hash=bytes(32), block_number=1, timestamp=1)
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
    for args in ((chain.admin.address, registries[1]), (registries[0], chain.admin.address)):
        with reverts("NoCode", account=chain.registrar.address):
            chain.stranger._deploy_contract("ReadingVerifier", *args)
