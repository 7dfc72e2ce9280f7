"""DeviceRegistry on anvil and eth-tester: registration, batches, rotation, revocation, validity."""

from __future__ import annotations

import hashlib

import pytest
from eth_utils.crypto import keccak

from chain.devchain import set_next_block_timestamp
from chain.errors import RegistrationConflictError
from chain.ids import asset_id_hash, device_id_hash, key_to_chain
from chain.types import DeviceRegistration, KeyEnd
from chain.writer import ChainClient
from protocol.errors import InvalidKeyError, MalformedError
from protocol.signing import DeviceKey, verify_signature
from tests.support.chain import Chain, reverts

ASSET = "HK Rooftops #2"


def ed_key(n: int) -> bytes:
    return DeviceKey.from_private_bytes("ed25519", hashlib.sha256(b"device key %d" % n).digest()).public_key


def device(n: int, *, alg: str = "ed25519", asset: str = ASSET) -> DeviceRegistration:
    key = ed_key(n) if alg == "ed25519" else DeviceKey.generate("es256").public_key
    return DeviceRegistration(device_id=f"sol-hk-{n:04d}", asset=asset, alg=alg, public_key=key)


def now(chain: Chain) -> int:
    return int(chain.w3.eth.get_block("latest")["timestamp"])


def test_ids_are_keccak_of_the_utf8_strings() -> None:
    assert device_id_hash("sol-hk-0001") == keccak(b"sol-hk-0001")
    assert asset_id_hash("HK Rooftops #2") == keccak(b"HK Rooftops #2")
    with pytest.raises(MalformedError):
        device_id_hash("Not A Device Id")


def test_register_both_algorithms_and_read_back(chain: Chain) -> None:
    ed, es = device(1), device(2, alg="es256")
    receipt = chain.admin.register(ed)
    chain.admin.register(es)
    reader = chain.reader()
    for registration in (ed, es):
        info = reader.device(registration.device_id)
        assert (info.alg, info.key_count, info.revoked) == (registration.alg, 1, False)
        assert info.asset_id == asset_id_hash(ASSET)
        [key] = reader.device_keys(registration.device_id)
        assert key.public_key == registration.public_key  # the protocol form comes back (es256: 65-byte SEC1)
        assert (key.index, key.end, key.until_block, key.until_time) == (0, KeyEnd.ACTIVE, None, None)
        assert reader.current_key(registration.device_id) == key
    assert reader.device_keys(ed.device_id)[0].from_block == receipt.block_number
    # A key read from the chain verifies the device's signatures.
    signer = DeviceKey.generate("es256")
    chain.admin.register(
        DeviceRegistration(device_id="evc-hk-0001", asset=ASSET, alg="es256", public_key=signer.public_key)
    )
    onchain = reader.current_key("evc-hk-0001").public_key
    verify_signature(alg="es256", public_key=onchain, message=b"reading", signature=signer.sign(b"reading"))


def test_es256_keys_are_stored_as_x_and_y() -> None:
    key = DeviceKey.generate("es256").public_key
    assert len(key) == 65
    assert key_to_chain("es256", key) == key[1:]
    compressed = bytes([2 + (key[-1] & 1)]) + key[1:33]
    assert key_to_chain("es256", compressed) == key[1:]
    with pytest.raises(InvalidKeyError):
        key_to_chain("es256", b"\x04" + bytes(64))  # not on the curve
    with pytest.raises(InvalidKeyError):
        key_to_chain("ed25519", bytes(31))


def test_register_many_in_batches_and_again(chain: Chain) -> None:
    devices = [device(n, alg="es256" if n % 5 == 0 else "ed25519") for n in range(23)]
    receipts = chain.admin.register_devices(devices, batch_size=10)
    assert len(receipts) == 3
    reader = chain.reader()
    for registration in devices:
        assert reader.current_key(registration.device_id).public_key == registration.public_key
    # Provisioning run again after a crash: what is on chain is skipped ...
    more = [*devices, device(100)]
    assert len(chain.admin.register_devices(more, batch_size=10)) == 1
    assert reader.key_count(device(100).device_id) == 1
    assert chain.admin.register_devices(more) == []
    # ... but a device on chain with another key is a conflict, not a skip.
    changed = DeviceRegistration(device_id=devices[0].device_id, asset=ASSET, alg="ed25519", public_key=ed_key(999))
    with pytest.raises(RegistrationConflictError):
        chain.admin.register_devices([changed])
    with reverts("AlreadyRegistered", deviceId=device_id_hash(devices[0].device_id)):
        chain.admin.register_devices([changed], skip_registered=False)


def test_register_many_gas_per_device(chain: Chain) -> None:
    one = chain.admin.register_devices([device(0)])[0].gas_used
    hundred = chain.admin.register_devices([device(n) for n in range(1, 101)], batch_size=100)[0].gas_used
    per_device = hundred / 100
    # Three fresh storage slots (66,300) plus the event and calldata per ed25519 device.
    assert per_device < 76_000
    assert one - per_device > 15_000  # the batch shares the intrinsic 21,000


def test_admin_only(chain: Chain) -> None:
    chain.admin.register(device(1))
    for call in (
        lambda: chain.stranger.register(device(2)),
        lambda: chain.stranger.register_devices([device(3)]),
        lambda: chain.attestor.register_devices([device(3)]),
        lambda: chain.stranger.rotate(device_id=device(1).device_id, public_key=ed_key(50)),
        lambda: chain.stranger.revoke(device_id=device(1).device_id),
    ):
        with reverts("NotAdmin"):
            call()


def test_registration_errors(chain: Chain) -> None:
    admin = chain.admin
    asset = asset_id_hash(ASSET)
    with reverts("ZeroDeviceId"):
        admin.transact("DeviceRegistry", "register", bytes(32), asset, 1, ed_key(1))
    with reverts("BadAlgorithm", alg=3):
        admin.transact("DeviceRegistry", "register", device_id_hash("x-1"), asset, 3, ed_key(1))
    with reverts("BadAlgorithm", alg=0):
        admin.transact("DeviceRegistry", "registerMany", [(device_id_hash("x-1"), asset, 0, ed_key(1))])
    for alg, length in ((1, 31), (1, 33), (1, 64), (2, 32), (2, 65), (2, 33)):
        with reverts("BadKeyLength", alg=alg, length=length):
            admin.transact("DeviceRegistry", "register", device_id_hash("x-1"), asset, alg, bytes(length))
    admin.register(device(1))
    with reverts("AlreadyRegistered", deviceId=device_id_hash(device(1).device_id)):
        admin.register(device(1))
    # A batch is all or nothing: one duplicate, nothing registered.
    with reverts("AlreadyRegistered"):
        admin.register_devices([device(2), device(1, asset="other")], skip_registered=False)
    assert chain.reader().key_count(device(2).device_id) == 0
    with reverts("AlreadyRegistered", deviceId=device_id_hash(device(3).device_id)):
        admin.register_devices([device(3), device(3)], skip_registered=False)


def test_unknown_devices(chain: Chain) -> None:
    reader, unknown = chain.reader(), "sol-hk-9999"
    hashed = device_id_hash(unknown)
    assert reader.key_count(unknown) == 0
    for call in (
        lambda: reader.device(unknown),
        lambda: reader.current_key(unknown),
        lambda: reader.device_keys(unknown),
        lambda: reader.key_valid_at(unknown, now(chain)),
        lambda: chain.admin.revoke(device_id=unknown),
        lambda: chain.admin.transact("DeviceRegistry", "rotate", hashed, ed_key(1)),
        lambda: reader.device_key(unknown, 0),
    ):
        with reverts("UnknownDevice", deviceId=hashed):
            call()


def test_rotate_and_revoke_errors(chain: Chain) -> None:
    admin, reader = chain.admin, chain.reader()
    registration = device(1)
    hashed = device_id_hash(registration.device_id)
    admin.register(registration)
    with reverts("SameKey", deviceId=hashed):
        admin.rotate(device_id=registration.device_id, public_key=registration.public_key)
    with reverts("BadKeyLength", alg=1, length=64):
        admin.transact("DeviceRegistry", "rotate", hashed, bytes(64))
    with reverts("KeyIndexOutOfRange", deviceId=hashed, index=1, keyCount=1):
        admin.transact("DeviceRegistry", "keyAt", hashed, 1)  # a view, sent as a transaction: still checked
    with reverts("KeyIndexOutOfRange", index=5):
        reader.device_key(registration.device_id, 5)
    admin.revoke(device_id=registration.device_id)
    for call in (
        lambda: admin.revoke(device_id=registration.device_id),
        lambda: admin.rotate(device_id=registration.device_id, public_key=ed_key(2)),
        lambda: reader.current_key(registration.device_id),
    ):
        with reverts("Revoked", deviceId=hashed):
            call()
    # A revoked id stays taken.
    with reverts("AlreadyRegistered"):
        admin.register(registration)


def test_key_validity_over_time(chain: Chain) -> None:
    admin, reader, w3 = chain.admin, chain.reader(), chain.w3
    registration = device(7)
    name = registration.device_id
    t0 = now(chain) + 100
    set_next_block_timestamp(w3, t0)
    admin.register(registration)
    set_next_block_timestamp(w3, t0 + 60)
    admin.rotate(device_id=name, public_key=ed_key(8))
    set_next_block_timestamp(w3, t0 + 120)
    admin.rotate(device_id=name, public_key=ed_key(9))
    set_next_block_timestamp(w3, t0 + 600)
    revoked = admin.revoke(device_id=name)

    keys = reader.device_keys(name)
    assert [k.public_key for k in keys] == [ed_key(7), ed_key(8), ed_key(9)]
    assert [(k.from_time, k.until_time, k.end) for k in keys] == [
        (t0, t0 + 60, KeyEnd.ROTATED),
        (t0 + 60, t0 + 120, KeyEnd.ROTATED),
        (t0 + 120, t0 + 600, KeyEnd.REVOKED),
    ]
    assert [k.until_block for k in keys[:-1]] == [k.from_block for k in keys[1:]]
    assert keys[-1].until_block == revoked.block_number
    info = reader.device(name)
    assert (info.revoked, info.revoked_time, info.key_count) == (True, t0 + 600, 3)

    expected = {
        t0 - 1: None,
        t0: 0,
        t0 + 59: 0,
        t0 + 60: 1,
        t0 + 119: 1,
        t0 + 120: 2,
        t0 + 599: 2,
        t0 + 600: None,
        t0 + 10**6: None,
        0: None,
    }
    for timestamp, index in expected.items():
        found = reader.key_valid_at(name, timestamp)
        assert (found.index if found else None) == index, timestamp
        if found is not None:
            assert found.valid_at(timestamp)
            assert found == keys[found.index]


def test_validity_of_a_single_key_and_a_live_device(chain: Chain) -> None:
    admin, reader, w3 = chain.admin, chain.reader(), chain.w3
    t0 = now(chain) + 100
    set_next_block_timestamp(w3, t0)
    admin.register(device(1))
    name = device(1).device_id
    assert reader.key_valid_at(name, t0 - 1) is None
    assert reader.key_valid_at(name, t0).index == 0  # type: ignore[union-attr]
    assert reader.key_valid_at(name, 2**64 - 1).index == 0  # type: ignore[union-attr]
    # Many rotations: the binary search over the history.
    for n in range(2, 12):
        set_next_block_timestamp(w3, t0 + 10 * n)
        admin.rotate(device_id=name, public_key=ed_key(n))
    assert reader.key_valid_at(name, t0 + 5).index == 0  # type: ignore[union-attr]
    for n in range(2, 12):
        for offset in (0, 9):
            assert reader.key_valid_at(name, t0 + 10 * n + offset).index == n - 1  # type: ignore[union-attr]


def test_rotation_lands_in_the_history(chain: Chain) -> None:
    client: ChainClient = chain.admin
    registration = device(1, alg="es256")
    client.register(registration)
    new_key = DeviceKey.generate("es256").public_key
    receipt = client.rotate(device_id=registration.device_id, public_key=new_key)
    old, new = chain.reader().device_keys(registration.device_id)
    assert (old.public_key, old.end, old.until_block) == (registration.public_key, KeyEnd.ROTATED, receipt.block_number)
    assert (new.public_key, new.end, new.from_block) == (new_key, KeyEnd.ACTIVE, receipt.block_number)
