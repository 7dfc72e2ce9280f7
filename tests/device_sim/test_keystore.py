"""Keystore: file modes, atomic writes, refusal to overwrite, rotation, secrets kept out of reprs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from device_sim.keystore import Keystore, KeystoreError, write_private_file
from protocol.errors import AssetproofError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("alg", ["ed25519", "es256"])
def test_create_then_load_round_trips(tmp_path: Path, alg: str) -> None:
    store = Keystore(tmp_path / "keys")
    created = store.create("sol-roof-0001", alg, metadata={"kind": "solar", "rating": {"rated_power_w": 5000}})
    loaded = store.load("sol-roof-0001")
    assert loaded == created
    assert loaded.alg == alg
    assert loaded.key.private_bytes == created.key.private_bytes
    assert loaded.metadata["rating"] == {"rated_power_w": 5000}
    assert len(loaded.mqtt_password) >= 32
    on_disk = json.loads((tmp_path / "keys" / "sol-roof-0001.json").read_text())
    assert on_disk["public_key"] == created.public_key.hex()
    assert on_disk["private_key"] == created.key.private_bytes.hex()
    assert store.ids() == ["sol-roof-0001"]


def test_modes_are_owner_only_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        store = Keystore(tmp_path / "keys")
        store.create("dev-1", "ed25519")
    finally:
        os.umask(old)
    assert mode(tmp_path / "keys") == 0o700
    assert mode(tmp_path / "keys" / "dev-1.json") == 0o600


def test_existing_directory_is_tightened(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir(mode=0o755)
    os.chmod(tmp_path / "keys", 0o755)
    Keystore(tmp_path / "keys")
    assert mode(tmp_path / "keys") == 0o700


def test_refuses_to_overwrite_and_leaves_the_original(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    first = store.create("dev-1", "ed25519")
    with pytest.raises(KeystoreError, match="refusing to overwrite"):
        store.create("dev-1", "ed25519")
    assert store.load("dev-1") == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev-1.json"]  # no temporary files left


def test_rotation_keeps_password_and_archives_the_old_key(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    first = store.create("dev-1", "es256", metadata={"kind": "miner"})
    second = store.rotate("dev-1")
    third = store.rotate("dev-1")
    assert len({first.public_key, second.public_key, third.public_key}) == 3
    assert third.mqtt_password == first.mqtt_password
    assert third.metadata == first.metadata
    assert store.load("dev-1") == third
    assert json.loads((tmp_path / "dev-1.json.rotated-1").read_text())["public_key"] == first.public_key.hex()
    assert json.loads((tmp_path / "dev-1.json.rotated-2").read_text())["public_key"] == second.public_key.hex()
    assert mode(tmp_path / "dev-1.json.rotated-2") == 0o600
    assert store.ids() == ["dev-1"]
    assert store.retired_public_keys("dev-1") == [("es256", first.public_key), ("es256", second.public_key)]


def test_rotation_archives_only_the_public_key(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    first = store.create("dev-1", "ed25519")
    store.rotate("dev-1")
    archived = (tmp_path / "dev-1.json.rotated-1").read_bytes()
    assert json.loads(archived) == {
        "alg": "ed25519",
        "device_id": "dev-1",
        "public_key": first.public_key.hex(),
        "retired": True,
    }
    assert first.key.private_bytes.hex().encode() not in archived
    assert first.mqtt_password.encode() not in archived


def _old_style_archive(tmp_path: Path, device_id: str, n: int) -> bytes:
    """What rotate used to leave behind: the whole credential file, private key included."""
    current = (tmp_path / f"{device_id}.json").read_bytes()
    (tmp_path / f"{device_id}.json.rotated-{n}").write_bytes(current)
    os.chmod(tmp_path / f"{device_id}.json.rotated-{n}", 0o600)
    return current


def test_an_old_keystores_archived_private_keys_are_dropped_when_it_is_opened(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    first = store.create("dev-1", "es256")
    other = store.create("dev-2", "ed25519")
    _old_style_archive(tmp_path, "dev-1", 1)
    _old_style_archive(tmp_path, "dev-2", 7)
    assert first.key.private_bytes.hex() in (tmp_path / "dev-1.json.rotated-1").read_text()

    reopened = Keystore(tmp_path)
    for name, creds in (("dev-1.json.rotated-1", first), ("dev-2.json.rotated-7", other)):
        text = (tmp_path / name).read_text()
        assert creds.key.private_bytes.hex() not in text
        assert json.loads(text)["public_key"] == creds.public_key.hex()
        assert mode(tmp_path / name) == 0o600
    assert reopened.retired_public_keys("dev-1") == [("es256", first.public_key)]
    assert reopened.load("dev-1") == first  # the current key is untouched
    assert reopened.scrub_archives() == []  # nothing left to do
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_rotation_scrubs_archives_an_old_version_left(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    first = store.create("dev-1", "ed25519")
    _old_style_archive(tmp_path, "dev-1", 1)  # appears while this keystore object is open
    second = store.rotate("dev-1")
    assert [p.name for p in sorted(tmp_path.glob("dev-1.json.rotated-*"))] == [
        "dev-1.json.rotated-1",
        "dev-1.json.rotated-2",
    ]
    for archive in tmp_path.glob("dev-1.json.rotated-*"):
        assert first.key.private_bytes.hex() not in archive.read_text()
    assert store.retired_public_keys("dev-1") == [("ed25519", first.public_key), ("ed25519", first.public_key)]
    assert store.load("dev-1") == second


def test_a_corrupt_archive_is_reported_not_silently_kept(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    store.create("dev-1", "ed25519")
    (tmp_path / "dev-1.json.rotated-1").write_text('{"device_id": "dev-1", "alg": "ed25519", "private_key": "zz"}')
    with pytest.raises(KeystoreError, match="rotated-1"):
        Keystore(tmp_path)


def test_rotation_numbering_ignores_other_devices(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    store.create("dev-1", "ed25519")
    store.create("dev-10", "ed25519")
    store.rotate("dev-10")
    store.rotate("dev-10")
    store.rotate("dev-1")
    assert (tmp_path / "dev-1.json.rotated-1").exists()
    assert not (tmp_path / "dev-1.json.rotated-2").exists()


def test_secrets_stay_out_of_repr(tmp_path: Path) -> None:
    creds = Keystore(tmp_path).create("dev-1", "ed25519")
    text = repr(creds)
    assert creds.mqtt_password not in text
    assert creds.key.private_bytes.hex() not in text
    assert "dev-1" in text


def test_load_refuses_bad_files(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    with pytest.raises(KeystoreError, match="no credentials"):
        store.load("dev-1")
    creds = store.create("dev-1", "ed25519")
    path = tmp_path / "dev-1.json"
    os.chmod(path, 0o644)
    with pytest.raises(KeystoreError, match="readable by others"):
        store.load("dev-1")
    os.chmod(path, 0o600)
    obj = json.loads(path.read_text())
    obj["public_key"] = "00" * 32
    path.write_text(json.dumps(obj))
    with pytest.raises(KeystoreError, match="does not belong"):
        store.load("dev-1")
    obj["private_key"] = "zz"
    path.write_text(json.dumps(obj))
    with pytest.raises(KeystoreError) as info:
        store.load("dev-1")
    assert creds.key.private_bytes.hex() not in str(info.value)


def test_device_ids_are_validated_so_paths_cannot_escape(tmp_path: Path) -> None:
    store = Keystore(tmp_path / "keys")
    for bad in ["../evil", "Dev", "", "a/b"]:
        with pytest.raises(AssetproofError):
            store.create(bad, "ed25519")
    assert not (tmp_path / "evil.json").exists()


def test_atomic_write_leaves_no_partial_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.json"
    target.write_bytes(b"old")

    def boom(fd: int) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk on fire"):
        write_private_file(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]
