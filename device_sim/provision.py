"""Provision simulated devices: ids, keys, broker passwords and nameplate ratings.

No database here: the CLI registers the returned devices (``store.devices.register_devices``)
and writes the broker's files (:mod:`devstack.broker_auth`). The keystore keeps each device's
kind, asset, rating and window as metadata, so a simulator can be restarted from the keystore
alone (:meth:`device_sim.fleet.FleetDevice.from_credentials`).

Each device also gets the certificate chain its secure element would ship with: issued by a
simulated manufacturer CA (:mod:`device_sim.manufacturer`) kept in the keystore directory
(``manufacturer-ca/``, created on first use), stored beside the device's key as
``{device_id}.chain.pem`` (:meth:`Keystore.certificate_chain_path`), with the manufacturer's
root at ``manufacturer-root.pem`` (:attr:`Keystore.manufacturer_root_path`) for the registrar
to trust (:func:`registrar.attestation.verify_device_certificate`).
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Final

from config.clock import wall_ms
from device_sim.keystore import Keystore, write_private_file
from device_sim.manufacturer import ManufacturerCA
from device_sim.models import ChargerRating, MinerRating, SolarRating, build_model
from protocol.envelope import DeviceKind, validate_device_id
from protocol.errors import AssetproofError, MalformedError

__all__ = ["KIND_PREFIX", "ProvisionError", "ProvisionedDevice", "asset_short", "manufacturer_ca", "provision"]

KIND_PREFIX: Final[Mapping[DeviceKind, str]] = {
    DeviceKind.SOLAR: "sol",
    DeviceKind.CHARGER: "evc",
    DeviceKind.MINER: "rig",
}
_MIN_DIGITS: Final = 4  # numbers are zero-padded to at least this, wider when a fleet needs it
_MAX_ID: Final = 63


class ProvisionError(AssetproofError, ValueError):
    """The devices asked for cannot be provisioned (bad count, prefix or window)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisionedDevice:
    id: str
    kind: DeviceKind
    alg: str
    public_key: bytes
    rating: dict[str, int]
    window_s: int
    asset: str
    mqtt_password: str = field(repr=False)
    certificate_chain: bytes | None = field(default=None, repr=False)
    """The manufacturer's certificate chain PEM for the key (device certificate, intermediate),
    also stored at :meth:`Keystore.certificate_chain_path`; None if provisioned without one."""


def asset_short(asset: str, *, max_len: int = 24) -> str:
    """A lowercase, id-safe short form of an asset name ("HK Rooftops #2" -> "hk-rooftops-2")."""
    slug = re.sub(r"[^a-z0-9]+", "-", asset.lower()).strip("-")[:max_len].strip("-")
    return slug or "asset"


def _rating(kind: DeviceKind, rng: random.Random) -> dict[str, int]:
    """A nameplate typical of the kind, varied per device so a fleet is not a thousand clones."""
    if kind is DeviceKind.SOLAR:
        rating: SolarRating | ChargerRating | MinerRating = SolarRating(
            rated_power_w=rng.randrange(4_000, 10_001, 500), tilt_deg=rng.randrange(10, 26)
        )
    elif kind is DeviceKind.CHARGER:
        rating = ChargerRating.for_power_kw(rng.choice([7, 7, 7, 22, 60, 120]))
    else:
        rating = MinerRating.for_efficiency(
            rated_hashrate_ghs=rng.choice([234_000, 270_000, 288_000, 335_000]), j_per_th=rng.choice([16.0, 17.5, 19.0])
        )
    # Normalised through the model, so the stored rating is exactly what the model runs with.
    return build_model(kind, seed=0, rating=asdict(rating)).rating_json()


def provision(
    keystore: Keystore,
    *,
    kind: DeviceKind | str,
    count: int,
    asset: str,
    alg: str,
    id_prefix: str | None = None,
    seed: int = 0,
    window_s: int = 60,
    rating: Mapping[str, int] | None = None,
    attest: bool = True,
    now: dt.datetime | None = None,
) -> list[ProvisionedDevice]:
    """Create ``count`` devices in ``keystore`` named ``<prefix>-0001``... (numbering continues
    after ids the keystore already has with that prefix). The prefix defaults to
    ``<kind short>-<asset short>``, e.g. ``sol-hk-rooftops-0001``. Ratings are drawn per device
    from ``seed`` unless ``rating`` is given for all. With ``attest`` each key gets a
    manufacturer certificate chain issued at ``now`` (default: the wall clock); see the module
    docstring for where it is kept."""
    kind = DeviceKind(kind)
    if count < 1:
        raise ProvisionError("count must be at least 1")
    if not 1 <= window_s <= 86_400:
        raise ProvisionError("window_s must be in 1..86400")
    prefix = id_prefix if id_prefix is not None else f"{KIND_PREFIX[kind]}-{asset_short(asset)}"
    try:
        validate_device_id(prefix, field_name="id_prefix")
    except MalformedError as exc:
        raise ProvisionError(str(exc)) from None
    if len(prefix) > _MAX_ID - 1 - _MIN_DIGITS:
        raise ProvisionError(f"id prefix {prefix!r} is longer than {_MAX_ID - 1 - _MIN_DIGITS} characters")
    numbered = re.compile(re.escape(prefix) + r"-(\d+)")
    taken = [int(m.group(1)) for i in keystore.ids() if (m := numbered.fullmatch(i))]
    first = max(taken, default=0) + 1
    digits = max(_MIN_DIGITS, len(str(first + count - 1)))
    if len(prefix) + 1 + digits > _MAX_ID:
        raise ProvisionError(f"prefix {prefix!r} leaves no room to number {count} more devices")
    fixed = None if rating is None else build_model(kind, seed=0, rating=rating).rating_json()
    issued_at = now if now is not None else dt.datetime.fromtimestamp(wall_ms() / 1000, tz=dt.UTC)
    manufacturer = manufacturer_ca(keystore, now=issued_at) if attest else None
    devices = []
    for n in range(first, first + count):
        device_id = f"{prefix}-{n:0{digits}d}"
        rng = random.Random(f"{seed}:{device_id}")  # noqa: S311 - nameplates, not secrets
        device_rating = fixed if fixed is not None else _rating(kind, rng)
        credentials = keystore.create(
            device_id,
            alg,
            metadata={"kind": kind.value, "asset": asset, "rating": device_rating, "window_s": window_s},
        )
        chain = None
        if manufacturer is not None:
            chain = manufacturer.issue(
                device_id=device_id, alg=credentials.alg, public_key=credentials.public_key, now=issued_at
            )
            keystore.write_certificate_chain(device_id, chain)
        devices.append(
            ProvisionedDevice(
                id=device_id,
                kind=kind,
                alg=credentials.alg,
                public_key=credentials.public_key,
                rating=dict(device_rating),
                window_s=window_s,
                asset=asset,
                mqtt_password=credentials.mqtt_password,
                certificate_chain=chain,
            )
        )
    return devices


def manufacturer_ca(keystore: Keystore, *, now: dt.datetime) -> ManufacturerCA:
    """The simulated manufacturer CA kept in ``keystore``'s directory, created on first use,
    with its root certificate written to :attr:`Keystore.manufacturer_root_path`."""
    ca = ManufacturerCA.load_or_create(keystore.manufacturer_ca_directory, now=now)
    root = keystore.manufacturer_root_path
    if not root.exists() or root.read_bytes() != ca.root_pem:
        write_private_file(root, ca.root_pem, overwrite=True)
        root.chmod(0o644)  # public: whoever configures the registrar may copy it
    return ca
