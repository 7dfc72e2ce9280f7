"""Admin: register devices, revoke them, rotate their keys. Behind the admin bearer token.

These change the store only: the API may not talk to the chain, so a deployment with contracts
also needs the chain's DeviceRegistry updated (``assetproof devices ...`` does both), or
auditors will not accept the devices' readings.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from api import queries
from api.context import Admin, Ctx
from api.convert import device_out
from api.errors import ApiError, not_found
from api.models import DeviceOut, NewDeviceIn, Problem, RegisterIn, RotateIn
from api.routes import PREFIX
from protocol.envelope import validate_device_id
from protocol.epoch import validate_asset_name
from protocol.errors import AssetproofError, VerificationError
from protocol.signing import VerifyingKey
from store.devices import NewDevice, RegistryError, ensure_asset, register_devices, revoke_device, rotate_key

router = APIRouter(prefix=PREFIX + "/admin", tags=["admin"], dependencies=[Admin])

RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or wrong bearer token."},
    404: {"model": Problem},
    409: {"model": Problem, "description": "The registry refuses (already registered, already revoked, ...)."},
    422: {"model": Problem},
    503: {"model": Problem, "description": "No admin token is configured: admin is disabled."},
}
DeviceId = Annotated[str, Path(max_length=63, examples=["sol-hk-rooftops-0001"])]
_REQUIRED_RATING = {
    "solar": ("rated_power_w",),
    "charger": ("rated_power_w",),
    "miner": ("rated_power_w", "rated_hashrate_ghs"),
}


def _invalid(message: str) -> ApiError:
    return ApiError(422, message, reason="invalid_parameter")


def _public_key(alg: str, value: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(value)
        VerifyingKey.from_bytes(alg, key)
    except ValueError:
        raise _invalid(f"{where}: public_key is not hex") from None
    except VerificationError as exc:
        raise _invalid(f"{where}: {exc}") from None
    return key


def _new_device(kind: str, d: NewDeviceIn, where: str) -> NewDevice:
    try:
        validate_device_id(d.id, field_name=f"{where}.id")
    except VerificationError as exc:
        raise _invalid(str(exc)) from None
    for name in _REQUIRED_RATING[kind]:
        value = d.rating.get(name)
        if value is None or value <= 0:
            # The gateway bounds every reading by the rating: without it all would be implausible.
            raise _invalid(f"{where}.rating needs a positive {name} for a {kind}")
    return NewDevice(
        id=d.id,
        kind=kind,
        alg=d.alg,
        public_key=_public_key(d.alg, d.public_key, where),
        rating=dict(d.rating),
        window_s=d.window_s,
    )


def _registry_error(exc: AssetproofError) -> ApiError:
    message = str(exc)
    if message.startswith("unknown device"):
        return ApiError(404, message, reason="not_found")
    return ApiError(409, message, reason="conflict")


def _device(ctx: Ctx, device_id: str) -> DeviceOut:
    with ctx.reader.connect() as conn:
        row = queries.device(conn=conn, now_ms=ctx.clock_ms(), device_id=device_id)
    if row is None:
        raise not_found(f"device {device_id!r}")
    return device_out(row)


@router.post(
    "/devices", summary="Register devices", status_code=201, response_model=list[DeviceOut], responses=RESPONSES
)
def register(ctx: Ctx, body: RegisterIn) -> list[DeviceOut]:
    """Register devices whose keys were made on the devices (only public keys travel), creating
    the asset when it is new. All or none: one refused device refuses the request."""
    try:
        validate_asset_name(body.asset)
    except VerificationError as exc:
        raise _invalid(str(exc)) from None
    devices = [_new_device(body.kind, d, f"devices[{i}]") for i, d in enumerate(body.devices)]
    if len({d.id for d in devices}) != len(devices):
        raise _invalid("devices: the same id appears twice")
    try:
        ensure_asset(
            ctx.writer, name=body.asset, kind=body.kind, now_ms=ctx.clock_ms(), description=body.asset_description
        )
        register_devices(ctx.writer, asset=body.asset, devices=devices, now_ms=ctx.clock_ms())
    except RegistryError as exc:
        raise _registry_error(exc) from None
    return [_device(ctx, d.id) for d in devices]


@router.post("/devices/{device_id}/revoke", summary="Revoke a device", response_model=DeviceOut, responses=RESPONSES)
def revoke(ctx: Ctx, device_id: DeviceId) -> DeviceOut:
    """From now on every message the device sends is quarantined as revoked_device."""
    try:
        revoke_device(ctx.writer, device_id=device_id, now_ms=ctx.clock_ms())
    except RegistryError as exc:
        raise _registry_error(exc) from None
    return _device(ctx, device_id)


@router.post(
    "/devices/{device_id}/rotate", summary="Rotate a device's key", response_model=DeviceOut, responses=RESPONSES
)
def rotate(ctx: Ctx, device_id: DeviceId, body: RotateIn) -> DeviceOut:
    """Give an active device a new public key; the old one stops being accepted now."""
    key = _public_key(body.alg, body.public_key, "body")
    try:
        rotate_key(ctx.writer, device_id=device_id, alg=body.alg, public_key=key, now_ms=ctx.clock_ms())
    except RegistryError as exc:
        raise _registry_error(exc) from None
    return _device(ctx, device_id)
