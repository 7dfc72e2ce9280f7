"""Provisioning: ids, keys in the keystore, ratings from the models, numbering that continues."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_sim.fleet import FleetDevice
from device_sim.keystore import Keystore
from device_sim.models import build_model
from device_sim.provision import ProvisionError, asset_short, provision
from protocol.envelope import DeviceKind, validate_device_id


def test_ids_keys_and_ratings(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    devices = provision(store, kind="solar", count=3, asset="HK Rooftops #2", alg="ed25519", seed=7)
    assert [d.id for d in devices] == ["sol-hk-rooftops-2-0001", "sol-hk-rooftops-2-0002", "sol-hk-rooftops-2-0003"]
    for d in devices:
        validate_device_id(d.id)
        creds = store.load(d.id)
        assert creds.public_key == d.public_key
        assert creds.mqtt_password == d.mqtt_password
        assert d.mqtt_password not in repr(d)
        assert d.kind is DeviceKind.SOLAR
        assert d.window_s == 60
        assert d.rating == build_model(DeviceKind.SOLAR, seed=0, rating=d.rating).rating_json()
        assert 4_000 <= d.rating["rated_power_w"] <= 10_000
        fleet_device = FleetDevice.from_credentials(creds)
        assert (fleet_device.kind, dict(fleet_device.rating)) == (d.kind, d.rating)
    again = provision(
        Keystore(tmp_path / "other"), kind="solar", count=3, asset="HK Rooftops #2", alg="ed25519", seed=7
    )
    assert [d.rating for d in again] == [d.rating for d in devices]


@pytest.mark.parametrize(("kind", "key"), [("charger", "rated_power_w"), ("miner", "rated_hashrate_ghs")])
def test_every_kind_gets_a_model_rating(tmp_path: Path, kind: str, key: str) -> None:
    (device,) = provision(Keystore(tmp_path), kind=kind, count=1, asset="hub", alg="es256")
    assert device.rating[key] > 0
    assert device.alg == "es256"
    assert len(device.public_key) == 65


def test_numbering_continues_and_prefix_can_be_given(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    provision(store, kind="miner", count=2, asset="pod", alg="ed25519")
    more = provision(store, kind="miner", count=2, asset="pod", alg="ed25519")
    assert [d.id for d in more] == ["rig-pod-0003", "rig-pod-0004"]
    custom = provision(store, kind="charger", count=1, asset="pod", alg="ed25519", id_prefix="ev", window_s=30)
    assert custom[0].id == "ev-0001"
    assert custom[0].window_s == 30
    store.create("rig-pod-9999", "ed25519")
    wide = provision(store, kind="miner", count=2, asset="pod", alg="ed25519")
    assert [d.id for d in wide] == ["rig-pod-10000", "rig-pod-10001"]  # numbers widen past 9999
    fixed = provision(store, kind="solar", count=2, asset="x", alg="ed25519", rating={"rated_power_w": 6000})
    assert all(d.rating["rated_power_w"] == 6000 for d in fixed)


def test_bad_requests(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    with pytest.raises(ProvisionError):
        provision(store, kind="solar", count=0, asset="x", alg="ed25519")
    with pytest.raises(ProvisionError):
        provision(store, kind="solar", count=1, asset="x", alg="ed25519", id_prefix="a" * 60)
    with pytest.raises(ValueError, match="id_prefix"):
        provision(store, kind="solar", count=1, asset="x", alg="ed25519", id_prefix="Bad Prefix")


def test_asset_short() -> None:
    assert asset_short("  Tsing Yi -- Mining Pod  ") == "tsing-yi-mining-pod"
    assert asset_short("???") == "asset"
    assert len(asset_short("x" * 100)) == 24
