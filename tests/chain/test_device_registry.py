"""DeviceRegistry on anvil and eth-tester: registration with profiles and certificate hashes,
batches, rotation, revocation, keys in force, the registry's key verdicts by chain time (the same
as protocol.key_validity), and its events."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from eth_utils.crypto import keccak

from chain.devchain import set_next_block_timestamp
from chain.errors import RegistrationConflictError
from chain.ids import asset_id_hash, device_id_hash, key_to_chain
from chain.types import (
    DeviceProfile,
    DeviceRegisteredEvent,
    DeviceRegistration,
    DeviceRevokedEvent,
    KeyEnd,
    KeyRotatedEvent,
)
from chain.writer import ChainClient
from protocol.envelope import DeviceKind
from protocol.errors import InvalidKeyError, MalformedError
from protocol.key_validity import KeySpan, KeyVerdict, judge_key
from protocol.signing import DeviceKey, verify_signature
from tests.support.chain import Chain, registration, reverts

ASSET = "HK Rooftops #2"
CERT = hashlib.sha256(b"manufacturer certificate").digest()


def ed_key(n: int) -> bytes:
    return DeviceKey.from_private_bytes("ed25519", hashlib.sha256(b"device key %d" % n).digest()).public_key


def device(n: int, *, alg: str = "ed25519", asset: str = ASSET, **profile: object) -> DeviceRegistration:
    key = ed_key(n) if alg == "ed25519" else DeviceKey.generate("es256").public_key
    return registration(f"sol-hk-{n:04d}", key, asset=asset, alg=alg, **profile)  # type: ignore[arg-type]


def now(chain: Chain) -> int:
    return int(chain.w3.eth.get_block("latest")["timestamp"])


def raw_row(r: DeviceRegistration, **changes: object) -> tuple[object, ...]:
    """The ``Registration`` struct of ``r`` with fields replaced by name (bypassing the client's checks)."""
    fields = {
        "deviceId": device_id_hash(r.device_id),
        "asset": asset_id_hash(r.asset),
        "alg": 1 if r.alg == "ed25519" else 2,
        "key": key_to_chain(r.alg, r.public_key),
        "kind": {DeviceKind.SOLAR: 1, DeviceKind.CHARGER: 2, DeviceKind.MINER: 3}[r.kind],
        "windowS": r.window_s,
        "ratedPowerW": r.rated_power_w,
        "ratedHashrateGhs": r.rated_hashrate_ghs,
        "certHash": r.cert_hash or bytes(32),
    }
    fields.update(changes)
    return tuple(fields.values())


def test_ids_are_keccak_of_the_utf8_strings() -> None:
    assert device_id_hash("sol-hk-0001") == keccak(b"sol-hk-0001")
    assert asset_id_hash("HK Rooftops #2") == keccak(b"HK Rooftops #2")
    with pytest.raises(MalformedError):
        device_id_hash("Not A Device Id")


def test_register_both_algorithms_with_profiles_and_read_back(chain: Chain) -> None:
    ed = device(1, cert_hash=CERT)
    es = device(2, alg="es256", kind=DeviceKind.MINER, window_s=600, rated_power_w=5_400)
    receipt = chain.registrar.register(ed)
    chain.registrar.register(es)
    reader = chain.reader()
    for r in (ed, es):
        info = reader.device(r.device_id)
        assert (info.alg, info.key_count, info.revoked) == (r.alg, 1, False)
        assert info.asset_id == asset_id_hash(ASSET)
        assert reader.device_profile(r.device_id) == r.profile
        [key] = reader.device_keys(r.device_id)
        assert key.public_key == r.public_key  # the protocol form comes back (es256: 65-byte SEC1)
        assert (key.index, key.end, key.until_block, key.until_time) == (0, KeyEnd.ACTIVE, None, None)
        assert reader.current_key(r.device_id) == key
        assert key.span == KeySpan(from_time=key.from_time)
    assert reader.device_profile(es.device_id) == DeviceProfile(
        kind=DeviceKind.MINER, window_s=600, rated_power_w=5_400, rated_hashrate_ghs=288_000
    )
    assert reader.key_cert_hash(ed.device_id, 0) == CERT
    assert reader.key_cert_hash(es.device_id, 0) == b""  # none given
    assert reader.device_keys(ed.device_id)[0].from_block == receipt.block_number
    # A key read from the chain verifies the device's signatures.
    signer = DeviceKey.generate("es256")
    chain.registrar.register(registration("evc-hk-0001", signer.public_key, alg="es256", kind=DeviceKind.CHARGER))
    onchain = reader.current_key("evc-hk-0001").public_key
    verify_signature(alg="es256", public_key=onchain, message=b"reading", signature=signer.sign(b"reading"))


def test_a_registration_states_its_profile_in_full() -> None:
    good = device(1)
    for changes, message in (
        ({"window_s": 0}, "window_s"),
        ({"window_s": 86_401}, "window_s"),
        ({"rated_power_w": 0}, "rated_power_w"),
        ({"rated_hashrate_ghs": 5}, "rated_hashrate_ghs"),  # a solar panel has no hashrate
        ({"kind": DeviceKind.MINER}, "rated_hashrate_ghs"),  # a miner must have one
        ({"kind": "solar"}, "DeviceKind"),
        ({"cert_hash": b"short"}, "cert_hash"),
    ):
        with pytest.raises(ValueError, match=message):
            replace(good, **changes)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        DeviceRegistration(device_id="sol-1", asset=ASSET, alg="ed25519", public_key=ed_key(1))  # type: ignore[call-arg]


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
    receipts = chain.registrar.register_devices(devices, batch_size=10)
    assert len(receipts) == 3
    reader = chain.reader()
    for r in devices:
        assert reader.current_key(r.device_id).public_key == r.public_key
    # Provisioning run again after a crash: what is on chain is skipped ...
    more = [*devices, device(100)]
    assert len(chain.registrar.register_devices(more, batch_size=10)) == 1
    assert reader.key_count(device(100).device_id) == 1
    assert chain.registrar.register_devices(more) == []
    # ... but a device on chain with another key or profile is a conflict, not a skip.
    for changed, what in (
        (replace(devices[1], public_key=ed_key(999)), "key"),
        (replace(devices[1], rated_power_w=50_000), "profile"),
        (replace(devices[1], window_s=30), "profile"),
        (replace(devices[1], asset="elsewhere"), "asset"),
    ):
        with pytest.raises(RegistrationConflictError, match=what):
            chain.registrar.register_devices([changed])
    with reverts("AlreadyRegistered", deviceId=device_id_hash(devices[0].device_id)):
        chain.registrar.register_devices([devices[0]], skip_registered=False)


def test_register_gas_per_device(chain: Chain) -> None:
    one = chain.registrar.register_devices([device(0)])[0].gas_used
    hundred = chain.registrar.register_devices([device(n) for n in range(1, 101)], batch_size=100)[0].gas_used
    per_device = hundred / 100
    # Four fresh storage slots (asset, header, profile, key: 88,400) plus the event and calldata
    # (measured about 100,500 per ed25519 device).
    assert per_device < 103_000
    assert one - per_device > 15_000  # the batch shares the intrinsic 21,000
    certified = chain.registrar.register(device(200, cert_hash=CERT)).gas_used
    plain = chain.registrar.register(device(201)).gas_used
    assert 20_000 < certified - plain < 26_000  # one more fresh slot


def test_only_the_registrar_changes_the_registry(chain: Chain) -> None:
    chain.registrar.register(device(1))
    for client in (chain.stranger, chain.attestor, chain.governor, chain.pricing):
        for call in (
            lambda c=client: c.register(device(2)),
            lambda c=client: c.register_devices([device(3)]),
            lambda c=client: c.rotate(device_id=device(1).device_id, public_key=ed_key(50)),
            lambda c=client: c.revoke(device_id=device(1).device_id),
        ):
            with reverts("NotRegistrar", caller=client.address):
                call()
    assert chain.reader().key_count(device(2).device_id) == 0


def test_registration_errors(chain: Chain) -> None:
    registrar = chain.registrar
    r = device(1)

    def register(**changes: object) -> None:
        registrar.transact("DeviceRegistry", "register", raw_row(r, **changes))

    with reverts("ZeroDeviceId"):
        register(deviceId=bytes(32))
    with reverts("BadAlgorithm", alg=3):
        register(alg=3)
    with reverts("BadAlgorithm", alg=0):
        registrar.transact("DeviceRegistry", "registerMany", [raw_row(r, alg=0)])
    for alg, length in ((1, 31), (1, 33), (1, 64), (2, 32), (2, 65), (2, 33)):
        with reverts("BadKeyLength", alg=alg, length=length):
            register(alg=alg, key=bytes(length))
    for kind in (0, 4):
        with reverts("BadKind", kind=kind):
            register(kind=kind)
    for window in (0, 86_401):
        with reverts("BadWindow", windowS=window):
            register(windowS=window)
    for kind, power, hashrate in ((1, 0, 0), (1, 5_000, 7), (3, 5_000, 0), (2, 0, 0)):
        with reverts("BadRating", kind=kind, ratedPowerW=power, ratedHashrateGhs=hashrate):
            register(kind=kind, ratedPowerW=power, ratedHashrateGhs=hashrate)
    registrar.register(r)
    with reverts("AlreadyRegistered", deviceId=device_id_hash(r.device_id)):
        registrar.register(r)
    # A batch is all or nothing: one duplicate, nothing registered.
    with reverts("AlreadyRegistered"):
        registrar.register_devices([device(2), device(1, asset="other")], skip_registered=False)
    assert chain.reader().key_count(device(2).device_id) == 0
    with reverts("AlreadyRegistered", deviceId=device_id_hash(device(3).device_id)):
        registrar.register_devices([device(3), device(3)], skip_registered=False)


def test_unknown_devices(chain: Chain) -> None:
    reader, unknown = chain.reader(), "sol-hk-9999"
    hashed = device_id_hash(unknown)
    assert reader.key_count(unknown) == 0
    for call in (
        lambda: reader.device(unknown),
        lambda: reader.device_profile(unknown),
        lambda: reader.current_key(unknown),
        lambda: reader.device_keys(unknown),
        lambda: reader.key_in_force_at(unknown, now(chain)),
        lambda: reader.key_cert_hash(unknown, 0),
        lambda: reader.accepts_reading(unknown, index=0, anchored_at=now(chain), ts_ms=0),
        lambda: chain.registrar.revoke(device_id=unknown),
        lambda: chain.registrar.transact("DeviceRegistry", "rotate", hashed, ed_key(1), bytes(32)),
        lambda: reader.device_key(unknown, 0),
    ):
        with reverts("UnknownDevice", deviceId=hashed):
            call()


def test_rotate_and_revoke_errors(chain: Chain) -> None:
    registrar, reader = chain.registrar, chain.reader()
    r = device(1)
    hashed = device_id_hash(r.device_id)
    registrar.register(r)
    with reverts("SameKey", deviceId=hashed):
        registrar.rotate(device_id=r.device_id, public_key=r.public_key)
    with reverts("BadKeyLength", alg=1, length=64):
        registrar.transact("DeviceRegistry", "rotate", hashed, bytes(64), bytes(32))
    with reverts("KeyIndexOutOfRange", deviceId=hashed, index=1, keyCount=1):
        registrar.transact("DeviceRegistry", "keyAt", hashed, 1)  # a view, sent as a transaction: still checked
    with reverts("KeyIndexOutOfRange", index=5):
        reader.device_key(r.device_id, 5)
    with reverts("KeyIndexOutOfRange", index=1, keyCount=1):
        reader.key_cert_hash(r.device_id, 1)
    with reverts("KeyIndexOutOfRange", index=1, keyCount=1):
        reader.accepts_reading(r.device_id, index=1, anchored_at=now(chain), ts_ms=0)
    with pytest.raises(ValueError, match="cert_hash"):
        registrar.rotate(device_id=r.device_id, public_key=ed_key(2), cert_hash=bytes(32))
    registrar.revoke(device_id=r.device_id)
    for call in (
        lambda: registrar.revoke(device_id=r.device_id),
        lambda: registrar.rotate(device_id=r.device_id, public_key=ed_key(2)),
        lambda: reader.current_key(r.device_id),
    ):
        with reverts("Revoked", deviceId=hashed):
            call()
    # A revoked id stays taken.
    with reverts("AlreadyRegistered"):
        registrar.register(r)


def test_keys_in_force_over_time(chain: Chain) -> None:
    registrar, reader, w3 = chain.registrar, chain.reader(), chain.w3
    r = device(7)
    name = r.device_id
    t0 = now(chain) + 100
    set_next_block_timestamp(w3, t0)
    registrar.register(r)
    set_next_block_timestamp(w3, t0 + 60)
    registrar.rotate(device_id=name, public_key=ed_key(8), cert_hash=CERT)
    set_next_block_timestamp(w3, t0 + 120)
    registrar.rotate(device_id=name, public_key=ed_key(9))
    set_next_block_timestamp(w3, t0 + 600)
    revoked = registrar.revoke(device_id=name)

    keys = reader.device_keys(name)
    assert [k.public_key for k in keys] == [ed_key(7), ed_key(8), ed_key(9)]
    assert [(k.from_time, k.until_time, k.end) for k in keys] == [
        (t0, t0 + 60, KeyEnd.ROTATED),
        (t0 + 60, t0 + 120, KeyEnd.ROTATED),
        (t0 + 120, t0 + 600, KeyEnd.REVOKED),
    ]
    assert [k.span for k in keys] == [
        KeySpan(from_time=t0, rotated_at=t0 + 60, revoked_at=t0 + 600),
        KeySpan(from_time=t0 + 60, rotated_at=t0 + 120, revoked_at=t0 + 600),
        KeySpan(from_time=t0 + 120, rotated_at=None, revoked_at=t0 + 600),
    ]
    assert [reader.key_cert_hash(name, i) for i in range(3)] == [b"", CERT, b""]
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
        found = reader.key_in_force_at(name, timestamp)
        assert (found.index if found else None) == index, timestamp
        if found is not None:
            assert found.valid_at(timestamp)
            assert found == keys[found.index]


def test_a_single_key_and_many_rotations(chain: Chain) -> None:
    registrar, reader, w3 = chain.registrar, chain.reader(), chain.w3
    t0 = now(chain) + 100
    set_next_block_timestamp(w3, t0)
    registrar.register(device(1))
    name = device(1).device_id
    assert reader.key_in_force_at(name, t0 - 1) is None
    assert reader.key_in_force_at(name, t0).index == 0  # type: ignore[union-attr]
    assert reader.key_in_force_at(name, 2**64 - 1).index == 0  # type: ignore[union-attr]
    # Many rotations: the binary search over the history.
    for n in range(2, 12):
        set_next_block_timestamp(w3, t0 + 10 * n)
        registrar.rotate(device_id=name, public_key=ed_key(n))
    assert reader.key_in_force_at(name, t0 + 5).index == 0  # type: ignore[union-attr]
    for n in range(2, 12):
        for offset in (0, 9):
            assert reader.key_in_force_at(name, t0 + 10 * n + offset).index == n - 1  # type: ignore[union-attr]


def test_rotation_lands_in_the_history(chain: Chain) -> None:
    client: ChainClient = chain.registrar
    r = device(1, alg="es256")
    client.register(r)
    new_key = DeviceKey.generate("es256").public_key
    receipt = client.rotate(device_id=r.device_id, public_key=new_key, cert_hash=CERT)
    old, new = chain.reader().device_keys(r.device_id)
    assert (old.public_key, old.end, old.until_block) == (r.public_key, KeyEnd.ROTATED, receipt.block_number)
    assert (new.public_key, new.end, new.from_block) == (new_key, KeyEnd.ACTIVE, receipt.block_number)
    assert chain.reader().key_cert_hash(r.device_id, 1) == CERT


# --- the registry's verdicts are protocol.key_validity's ------------------------------------------


def test_accepts_reading_agrees_with_judge_key(chain: Chain) -> None:
    """One device rotated twice and then revoked, one rotated and left live, one never changed:
    for a table of (key, anchor time, reading time) cases around every edge, the registry's
    ``acceptsReading`` and ``protocol.key_validity.judge_key`` give the same verdict."""
    registrar, reader, w3 = chain.registrar, chain.reader(), chain.w3
    params = chain.deployment.params
    grace, backfill = params.rotation_grace, params.max_backfill
    t0 = now(chain) + 1_000
    revoked, live, still = device(1), device(2), device(3)
    set_next_block_timestamp(w3, t0)
    registrar.register_devices([revoked, live, still])
    # revoked: key 0 rotated out at t0 + 1000, key 1 at t0 + 1300 (its grace cut short by the
    # revocation at t0 + 1500, before t0 + 1300 + 600), key 2 revoked at t0 + 1500.
    set_next_block_timestamp(w3, t0 + 1_000)
    registrar.rotate(device_id=revoked.device_id, public_key=ed_key(11))
    set_next_block_timestamp(w3, t0 + 1_001)
    registrar.rotate(device_id=live.device_id, public_key=ed_key(21))
    set_next_block_timestamp(w3, t0 + 1_300)
    registrar.rotate(device_id=revoked.device_id, public_key=ed_key(12))
    set_next_block_timestamp(w3, t0 + 1_500)
    registrar.revoke(device_id=revoked.device_id)

    cases: list[tuple[str, int, int, int]] = []
    for r in (revoked, live, still):
        for key in reader.device_keys(r.device_id):
            span = key.span
            start = span.from_time
            anchors = {start - 1, start, start + 1, t0 + 5_000}
            for edge in (span.end, span.anchor_limit(rotation_grace=grace)):
                if edge is not None:
                    anchors |= {edge - 1, edge, edge + 1}
            dates_s = {start, start - backfill, start - backfill - 1, start + 10}
            if span.end is not None:
                dates_s |= {span.end, span.end + 1}
            for anchored_at in sorted(anchors):
                for date_s in sorted(dates_s):
                    for ts_ms in (date_s * 1000 - 1, date_s * 1000, date_s * 1000 + 1):
                        cases.append((r.device_id, key.index, anchored_at, ts_ms))
    verdicts: set[KeyVerdict] = set()
    spans = {(r.device_id, k.index): k.span for r in (revoked, live, still) for k in reader.device_keys(r.device_id)}
    for device_id, index, anchored_at, ts_ms in cases:
        expected = judge_key(
            spans[(device_id, index)], anchored_at=anchored_at, ts_ms=ts_ms, rotation_grace=grace, max_backfill=backfill
        )
        got = reader.accepts_reading(device_id, index=index, anchored_at=anchored_at, ts_ms=ts_ms)
        assert got == expected, (device_id, index, anchored_at, ts_ms)
        verdicts.add(got)
    assert verdicts == set(KeyVerdict)  # every verdict was reached
    # The named edges, spelled out.
    judge = reader.accepts_reading
    name = revoked.device_id
    date = (t0 + 900) * 1000
    # The live device's key 0, rotated out at t0 + 1001: anchored in the grace, or just after it.
    rotated_at = t0 + 1_001
    assert judge(live.device_id, index=0, anchored_at=rotated_at + grace - 1, ts_ms=date) is KeyVerdict.VALID
    assert judge(live.device_id, index=0, anchored_at=rotated_at + grace, ts_ms=date) is KeyVerdict.ANCHORED_AFTER_KEY
    assert judge(name, index=0, anchored_at=t0 + 1_400, ts_ms=date) is KeyVerdict.VALID  # in its grace
    assert judge(name, index=1, anchored_at=t0 + 1_499, ts_ms=date + 200_000) is KeyVerdict.VALID
    # key 1's grace would last until t0 + 1900; the revocation at t0 + 1500 cuts it short.
    assert judge(name, index=1, anchored_at=t0 + 1_500, ts_ms=date + 200_000) is KeyVerdict.ANCHORED_AFTER_KEY
    assert judge(name, index=2, anchored_at=t0 + 1_500, ts_ms=date + 500_000) is KeyVerdict.ANCHORED_AFTER_KEY
    # Dated after the key's end (by one millisecond), anchored in the grace.
    assert judge(name, index=0, anchored_at=t0 + 1_100, ts_ms=(t0 + 1_000) * 1000) is KeyVerdict.VALID
    assert judge(name, index=0, anchored_at=t0 + 1_100, ts_ms=(t0 + 1_000) * 1000 + 1) is KeyVerdict.DATED_AFTER_KEY_END
    # Backfill: exactly max_backfill before the key's start is in, one millisecond more is out.
    assert judge(name, index=0, anchored_at=t0, ts_ms=(t0 - backfill) * 1000) is KeyVerdict.VALID
    assert judge(name, index=0, anchored_at=t0, ts_ms=(t0 - backfill) * 1000 - 1) is KeyVerdict.DATED_BEFORE_BACKFILL
    assert judge(name, index=0, anchored_at=t0 - 1, ts_ms=date) is KeyVerdict.ANCHORED_BEFORE_KEY


# --- events -----------------------------------------------------------------------------------------


def test_registry_events_for_auditors(chain: Chain) -> None:
    registrar, reader, w3 = chain.registrar, chain.reader(), chain.w3
    t0 = now(chain) + 100
    a, b = device(1, cert_hash=CERT), device(2, alg="es256", kind=DeviceKind.CHARGER, window_s=300)
    set_next_block_timestamp(w3, t0)
    first = registrar.register_devices([a, b])[0]
    set_next_block_timestamp(w3, t0 + 50)
    rotated = registrar.rotate(device_id=a.device_id, public_key=ed_key(5), cert_hash=CERT)
    es_key = DeviceKey.generate("es256").public_key
    set_next_block_timestamp(w3, t0 + 60)
    registrar.rotate(device_id=b.device_id, public_key=es_key)
    set_next_block_timestamp(w3, t0 + 70)
    gone = registrar.revoke(device_id=a.device_id)

    events = reader.registry_events()
    assert [type(e) for e in events] == [
        DeviceRegisteredEvent,
        DeviceRegisteredEvent,
        KeyRotatedEvent,
        KeyRotatedEvent,
        DeviceRevokedEvent,
    ]
    reg_a, reg_b, rot_a, rot_b, rev_a = events
    assert isinstance(reg_a, DeviceRegisteredEvent)
    assert isinstance(reg_b, DeviceRegisteredEvent)
    assert (reg_a.device_hash, reg_a.asset_id, reg_a.alg, reg_a.public_key) == (
        device_id_hash(a.device_id),
        asset_id_hash(ASSET),
        "ed25519",
        a.public_key,
    )
    assert (reg_a.profile, reg_a.cert_hash, reg_a.block_number, reg_a.timestamp) == (
        a.profile,
        CERT,
        first.block_number,
        t0,
    )
    assert (reg_b.profile, reg_b.cert_hash, reg_b.public_key) == (b.profile, b"", b.public_key)
    assert isinstance(rot_a, KeyRotatedEvent)
    assert isinstance(rot_b, KeyRotatedEvent)
    assert (rot_a.key_index, rot_a.public_key, rot_a.cert_hash, rot_a.block_number, rot_a.timestamp) == (
        1,
        ed_key(5),
        CERT,
        rotated.block_number,
        t0 + 50,
    )
    assert (rot_b.key_index, rot_b.public_key, rot_b.cert_hash, rot_b.timestamp) == (1, es_key, b"", t0 + 60)
    assert isinstance(rev_a, DeviceRevokedEvent)
    assert (rev_a.device_hash, rev_a.key_count, rev_a.block_number, rev_a.timestamp) == (
        device_id_hash(a.device_id),
        2,
        gone.block_number,
        t0 + 70,
    )
    # A window: only what happened in it (a rotation's key form still comes out right).
    window = reader.registry_events(from_block=rotated.block_number + 1, to_block=gone.block_number - 1)
    assert window == [rot_b]
    # registered_devices keeps working.
    listed = reader.registered_devices()
    assert [(d.device_hash, d.revoked_block) for d in listed] == [
        (device_id_hash(a.device_id), gone.block_number),
        (device_id_hash(b.device_id), None),
    ]


def test_a_registration_from_a_keystore_rating() -> None:
    miner = DeviceRegistration.from_rating(
        device_id="min-pod-0001",
        asset="hydro-pod",
        alg="ed25519",
        public_key=ed_key(1),
        kind=DeviceKind.MINER,
        rating={"rated_power_w": 5_400, "rated_hashrate_ghs": 288_000, "efficiency_jth": 19},
        window_s=600,
        cert_hash=CERT,
    )
    assert miner.profile == DeviceProfile(
        kind=DeviceKind.MINER, window_s=600, rated_power_w=5_400, rated_hashrate_ghs=288_000
    )
    assert miner.cert_hash == CERT
    solar = DeviceRegistration.from_rating(
        device_id="sol-hk-0001",
        asset=ASSET,
        alg="ed25519",
        public_key=ed_key(2),
        kind=DeviceKind.SOLAR,
        rating={"rated_power_w": 6_000, "panel_area_dm2": 3_000},
        window_s=60,
        cert_hash=b"",
    )
    assert (solar.rated_power_w, solar.rated_hashrate_ghs) == (6_000, 0)
    with pytest.raises(ValueError, match="rating has no rated_hashrate_ghs"):
        DeviceRegistration.from_rating(
            device_id="min-pod-0002",
            asset="hydro-pod",
            alg="ed25519",
            public_key=ed_key(3),
            kind=DeviceKind.MINER,
            rating={"rated_power_w": 5_400},
            window_s=600,
            cert_hash=b"",
        )
