"""The registrar's side of registration: from a provisioned device to what goes on chain.

A device is registered with its profile (kind, reporting window, rated power and hashrate: what
the auditor later judges its readings by) and, when it ships with one, the hash of its
manufacturer certificate, checked here against the manufacturer roots the registrar trusts
(:func:`registrar.attestation.verify_device_certificate`). A chain that does not verify stops the
registration: a key the registrar cannot attribute to a part is not one it should vouch for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chain.types import DeviceRegistration
from protocol.envelope import DeviceKind
from registrar.attestation import ForeignRootError, verify_device_certificate

__all__ = ["read_roots", "registration"]


def read_roots(path: Path) -> list[bytes]:
    """The manufacturer roots in the PEM file ``path`` (one or more certificates)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ForeignRootError(f"cannot read the manufacturer roots {path}: {exc.strerror or exc}") from None
    return [data]


def registration(
    *,
    device_id: str,
    asset: str,
    alg: str,
    public_key: bytes,
    kind: DeviceKind | str,
    rating: Mapping[str, Any],
    window_s: int,
    certificate_chain: bytes | None,
    roots: Sequence[bytes],
    at: dt.datetime,
) -> DeviceRegistration:
    """The registration of one device; its certificate chain (when it has one) must verify
    against ``roots`` at ``at``, and its hash goes on chain with the key."""
    cert_hash = b""
    if certificate_chain is not None:
        cert_hash = verify_device_certificate(
            chain_pem=certificate_chain, roots=roots, device_id=device_id, alg=alg, public_key=public_key, at=at
        )
    return DeviceRegistration.from_rating(
        device_id=device_id,
        asset=asset,
        alg=alg,
        public_key=public_key,
        kind=DeviceKind(kind),
        rating=rating,
        window_s=window_s,
        cert_hash=cert_hash,
    )
