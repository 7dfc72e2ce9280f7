"""Provisioning issues each device a manufacturer certificate chain from a simulated CA kept in
the keystore directory; the registrar's check accepts it with the root the keystore exposes."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest

from device_sim.keystore import Keystore
from device_sim.manufacturer import ManufacturerCA, ManufacturerError
from device_sim.provision import provision
from devstack.manufacturer import keystore_manufacturer
from registrar.attestation import ForeignRootError, WrongKeyError, verify_device_certificate

NOW = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=400)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("alg", ["ed25519", "es256"])
def test_every_provisioned_device_has_a_chain_the_registrar_accepts(tmp_path: Path, alg: str) -> None:
    store = Keystore(tmp_path / "keys")
    devices = provision(store, kind="charger", count=3, asset="Kowloon Hub", alg=alg, now=NOW)
    root = (tmp_path / "keys" / "manufacturer-root.pem").read_bytes()
    assert store.manufacturer_root_path == tmp_path / "keys" / "manufacturer-root.pem"
    hashes = set()
    for d in devices:
        path = tmp_path / "keys" / f"{d.id}.chain.pem"
        assert store.certificate_chain_path(d.id) == path
        assert path.read_bytes() == d.certificate_chain == store.load_certificate_chain(d.id)
        hashes.add(
            verify_device_certificate(
                chain_pem=path.read_bytes(), roots=[root], device_id=d.id, alg=d.alg, public_key=d.public_key, at=LATER
            )
        )
    assert len(hashes) == 3
    # The chain files are not credentials: the keystore's device list is unchanged.
    assert store.ids() == sorted(d.id for d in devices)


def test_the_ca_is_created_once_and_kept_in_the_keystore(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    provision(store, kind="solar", count=1, asset="a", alg="ed25519", now=NOW)
    root = store.manufacturer_root_path.read_bytes()
    ca_dir = tmp_path / "manufacturer-ca"
    assert sorted(p.name for p in ca_dir.iterdir()) == ["intermediate.key", "intermediate.pem", "root.key", "root.pem"]
    assert mode(ca_dir) == 0o700
    assert mode(ca_dir / "root.key") == mode(ca_dir / "intermediate.key") == 0o600
    assert mode(store.manufacturer_root_path) == 0o644  # public
    later = provision(Keystore(tmp_path), kind="miner", count=1, asset="b", alg="es256", now=LATER)
    assert store.manufacturer_root_path.read_bytes() == root  # the same manufacturer
    verify_device_certificate(
        chain_pem=later[0].certificate_chain or b"",
        roots=[root],
        device_id=later[0].id,
        alg="es256",
        public_key=later[0].public_key,
        at=LATER,
    )
    ca, root_path = keystore_manufacturer(tmp_path, now=LATER)
    assert (ca.root_pem, root_path) == (root, store.manufacturer_root_path)


def test_another_keystores_manufacturer_is_a_foreign_root(tmp_path: Path) -> None:
    ours, theirs = Keystore(tmp_path / "ours"), Keystore(tmp_path / "theirs")
    provision(ours, kind="solar", count=1, asset="a", alg="ed25519", now=NOW)
    (device,) = provision(theirs, kind="solar", count=1, asset="a", alg="ed25519", now=NOW)
    with pytest.raises(ForeignRootError):
        verify_device_certificate(
            chain_pem=device.certificate_chain or b"",
            roots=[ours.manufacturer_root_path.read_bytes()],
            device_id=device.id,
            alg=device.alg,
            public_key=device.public_key,
            at=LATER,
        )


def test_a_rotated_key_leaves_its_certificate_with_the_archive(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    (device,) = provision(store, kind="solar", count=1, asset="a", alg="ed25519", now=NOW)
    new = store.rotate(device.id)
    assert store.load_certificate_chain(device.id) is None  # it certified the retired key
    archived = tmp_path / f"{device.id}.chain.pem.rotated-1"
    assert archived.read_bytes() == device.certificate_chain
    with pytest.raises(WrongKeyError):
        verify_device_certificate(
            chain_pem=archived.read_bytes(),
            roots=[store.manufacturer_root_path.read_bytes()],
            device_id=device.id,
            alg=new.alg,
            public_key=new.public_key,
            at=LATER,
        )


def test_provisioning_without_attestation_and_a_damaged_ca(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    (bare,) = provision(store, kind="solar", count=1, asset="a", alg="ed25519", attest=False, now=NOW)
    assert bare.certificate_chain is None
    assert store.load_certificate_chain(bare.id) is None
    assert not store.manufacturer_root_path.exists()
    provision(store, kind="solar", count=1, asset="a", alg="ed25519", now=NOW)
    (tmp_path / "manufacturer-ca" / "root.key").unlink()
    with pytest.raises(ManufacturerError, match="part of a manufacturer CA"):
        provision(store, kind="solar", count=1, asset="a", alg="ed25519", now=NOW)
    with pytest.raises(ManufacturerError, match="not a valid ed25519 public key"):
        ManufacturerCA.create(now=NOW).issue(device_id="x-1", alg="ed25519", public_key=b"short", now=NOW)
