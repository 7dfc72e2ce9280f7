"""The simulated secure-element manufacturer CA, for local infrastructure (the demo, tests,
benchmarks): a root and an intermediate that issue device certificates binding a device's
Ed25519 or P-256 key to its id (subject CN).

The implementation is :mod:`device_sim.manufacturer`, because provisioning issues the
certificates and ``device_sim`` may not import ``devstack``; this module is the local stack's
name for it, plus :func:`keystore_manufacturer`, the CA a keystore's provisioning uses.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from device_sim.keystore import Keystore
from device_sim.manufacturer import (
    DEFAULT_MANUFACTURER,
    NO_EXPIRY,
    ManufacturerCA,
    ManufacturerError,
    device_public_key,
)
from device_sim.provision import manufacturer_ca

__all__ = [
    "DEFAULT_MANUFACTURER",
    "NO_EXPIRY",
    "ManufacturerCA",
    "ManufacturerError",
    "device_public_key",
    "keystore_manufacturer",
]


def keystore_manufacturer(keystore: Path | Keystore, *, now: dt.datetime) -> tuple[ManufacturerCA, Path]:
    """The manufacturer CA kept in the keystore directory (created on first use) and the path of
    its root certificate PEM (``<keystore>/manufacturer-root.pem``)."""
    store = keystore if isinstance(keystore, Keystore) else Keystore(keystore)
    return manufacturer_ca(store, now=now), store.manufacturer_root_path
