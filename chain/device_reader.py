"""Reading the DeviceRegistry: devices, their keys and when each was valid, the registration events."""

from __future__ import annotations

from typing import Any

from chain._args import as_bytes
from chain._contracts import LOG_CHUNK, ContractAccess
from chain.ids import ALG_NAMES, device_id_hash, key_from_chain
from chain.reverts import edge
from chain.types import KEY_ENDS, DeviceInfo, KeyRecord, RegisteredDevice
from protocol.signing import Algorithm

__all__ = ["DeviceReader"]


class DeviceReader(ContractAccess):
    """The registered devices and their keys."""

    def device(self, device_id: str) -> DeviceInfo:
        """The device's registry entry; ``ContractRevert('UnknownDevice')`` if not registered."""
        hashed = device_id_hash(device_id)
        asset, alg, count, revoked, revoked_block, revoked_time = self._call("DeviceRegistry", "device", hashed)
        return DeviceInfo(
            device_id=hashed,
            asset_id=as_bytes(asset),
            alg=ALG_NAMES[alg],
            key_count=count,
            revoked=revoked,
            revoked_block=revoked_block if revoked else None,
            revoked_time=revoked_time if revoked else None,
        )

    def key_count(self, device_id: str) -> int:
        """How many keys the device has had (0 if it is not registered)."""
        return int(self._call("DeviceRegistry", "keyCount", device_id_hash(device_id)))

    def device_key(self, device_id: str, index: int) -> KeyRecord:
        hashed = device_id_hash(device_id)
        info = self.device(device_id)
        return self._key_record(hashed, info.alg, index)

    def _key_record(self, hashed: bytes, alg: Algorithm, index: int) -> KeyRecord:
        key, from_block, from_time, until_block, until_time, end = self._call("DeviceRegistry", "keyAt", hashed, index)
        ended = end != 0
        return KeyRecord(
            index=index,
            alg=alg,
            public_key=key_from_chain(alg, as_bytes(key)),
            from_block=from_block,
            from_time=from_time,
            until_block=until_block if ended else None,
            until_time=until_time if ended else None,
            end=KEY_ENDS[end],
        )

    def device_keys(self, device_id: str) -> list[KeyRecord]:
        """Every key the device has had, oldest first, with its validity."""
        info = self.device(device_id)
        return [self._key_record(info.device_id, info.alg, i) for i in range(info.key_count)]

    def current_key(self, device_id: str) -> KeyRecord:
        """The key in force now; ``ContractRevert('Revoked')`` for a revoked device."""
        hashed = device_id_hash(device_id)
        _, index = self._call("DeviceRegistry", "currentKey", hashed)
        return self._key_record(hashed, self.device(device_id).alg, index)

    def key_valid_at(self, device_id: str, timestamp: int) -> KeyRecord | None:
        """The key that was in force at block time ``timestamp`` (seconds), or None when no key
        was (before registration, or after revocation)."""
        hashed = device_id_hash(device_id)
        valid, index = self._call("DeviceRegistry", "keyValidAt", hashed, timestamp)
        if not valid:
            return None
        return self._key_record(hashed, self.device(device_id).alg, index)

    def registered_devices(self, *, to_block: int | None = None) -> list[RegisteredDevice]:
        """Every device registered up to ``to_block`` (inclusive; default: the latest block), from
        the DeviceRegistry's ``DeviceRegistered`` and ``DeviceRevoked`` events (an auditor's list
        of who should speak)."""
        events = self._contract("DeviceRegistry").events
        last = self.block_number() if to_block is None else to_block
        registered: list[Any] = []
        revoked: dict[bytes, int] = {}
        for start in range(self.deployment.device_registry.block, last + 1, LOG_CHUNK):
            end = min(last, start + LOG_CHUNK - 1)
            with edge():
                registered.extend(events.DeviceRegistered.get_logs(from_block=start, to_block=end))
                for log in events.DeviceRevoked.get_logs(from_block=start, to_block=end):
                    revoked.setdefault(as_bytes(log["args"]["deviceId"]), log["blockNumber"])
        return [
            RegisteredDevice(
                device_hash=as_bytes(log["args"]["deviceId"]),
                asset_id=as_bytes(log["args"]["asset"]),
                block_number=log["blockNumber"],
                revoked_block=revoked.get(as_bytes(log["args"]["deviceId"])),
            )
            for log in registered
        ]
