"""Reading the DeviceRegistry: devices, their profiles, their keys over chain time, and its events."""

from __future__ import annotations

from typing import Any, Final

from chain._args import as_bytes
from chain._contracts import ContractAccess
from chain.errors import ChainError, ContractRevert
from chain.ids import ALG_NAMES, KIND_NAMES, cert_hash_from_chain, device_id_hash, key_from_chain
from chain.types import (
    KEY_ENDS,
    DeviceInfo,
    DeviceProfile,
    DeviceRegisteredEvent,
    DeviceRevokedEvent,
    KeyRecord,
    KeyRotatedEvent,
    RegisteredDevice,
    RegistryEvent,
)
from protocol.key_validity import KeyVerdict
from protocol.signing import Algorithm

__all__ = ["DeviceReader"]

# DeviceRegistry.KeyVerdict, by code. UnknownDevice (1) and NoSuchKey (2) are not verdicts on a
# reading but on the question: accepts_reading raises for them, as the other views do.
_KEY_VERDICTS: Final[dict[int, KeyVerdict]] = {
    0: KeyVerdict.VALID,
    3: KeyVerdict.ANCHORED_BEFORE_KEY,
    4: KeyVerdict.ANCHORED_AFTER_KEY,
    5: KeyVerdict.DATED_AFTER_KEY_END,
    6: KeyVerdict.DATED_BEFORE_BACKFILL,
}


class DeviceReader(ContractAccess):
    """The registered devices, their profiles and their keys."""

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

    def device_profile(self, device_id: str) -> DeviceProfile:
        """The kind, reporting window and ratings the registrar declared for the device;
        ``ContractRevert('UnknownDevice')`` if not registered."""
        kind, window_s, power, hashrate = self._call("DeviceRegistry", "profile", device_id_hash(device_id))
        return DeviceProfile(kind=KIND_NAMES[kind], window_s=window_s, rated_power_w=power, rated_hashrate_ghs=hashrate)

    def key_count(self, device_id: str) -> int:
        """How many keys the device has had (0 if it is not registered)."""
        return int(self._call("DeviceRegistry", "keyCount", device_id_hash(device_id)))

    def key_cert_hash(self, device_id: str, index: int) -> bytes:
        """The SHA-256 of key ``index``'s manufacturer certificate as registered, ``b""`` when it
        came without one; ``ContractRevert('UnknownDevice')`` / ``('KeyIndexOutOfRange')``."""
        raw = self._call("DeviceRegistry", "keyCertificate", device_id_hash(device_id), index)
        return cert_hash_from_chain(as_bytes(raw))

    def device_key(self, device_id: str, index: int) -> KeyRecord:
        info = self.device(device_id)
        return self._key_record(info, index)

    def _key_record(self, info: DeviceInfo, index: int) -> KeyRecord:
        key, from_block, from_time, until_block, until_time, end = self._call(
            "DeviceRegistry", "keyAt", info.device_id, index
        )
        ended = end != 0
        return KeyRecord(
            index=index,
            alg=info.alg,
            public_key=key_from_chain(info.alg, as_bytes(key)),
            from_block=from_block,
            from_time=from_time,
            until_block=until_block if ended else None,
            until_time=until_time if ended else None,
            end=KEY_ENDS[end],
            device_revoked_time=info.revoked_time,
        )

    def device_keys(self, device_id: str) -> list[KeyRecord]:
        """Every key the device has had, oldest first, with its validity."""
        info = self.device(device_id)
        return [self._key_record(info, i) for i in range(info.key_count)]

    def current_key(self, device_id: str) -> KeyRecord:
        """The key in force now; ``ContractRevert('Revoked')`` for a revoked device."""
        _, index = self._call("DeviceRegistry", "currentKey", device_id_hash(device_id))
        return self._key_record(self.device(device_id), index)

    def key_in_force_at(self, device_id: str, timestamp: int) -> KeyRecord | None:
        """The key that was in force at block time ``timestamp`` (seconds), with no grace, or
        None when no key was (before registration, or from the revocation on). Which key signs
        for a reading is :meth:`accepts_reading`'s question, not this one's."""
        valid, index = self._call("DeviceRegistry", "keyInForceAt", device_id_hash(device_id), timestamp)
        if not valid:
            return None
        return self._key_record(self.device(device_id), index)

    def accepts_reading(self, device_id: str, *, index: int, anchored_at: int, ts_ms: int) -> KeyVerdict:
        """The registry's own verdict (one ``eth_call`` of ``acceptsReading``) on a reading
        signed with key ``index``, dated ``ts_ms`` and first anchored at block time
        ``anchored_at``: the rule of :func:`protocol.key_validity.judge_key`, with the chain's
        grace and backfill. ``ContractRevert('UnknownDevice')`` for a device not registered and
        ``ContractRevert('KeyIndexOutOfRange')`` for a key it never had, as the other views."""
        hashed = device_id_hash(device_id)
        code = int(self._call("DeviceRegistry", "acceptsReading", hashed, index, anchored_at, ts_ms))
        if code == 1:
            raise ContractRevert("UnknownDevice", {"deviceId": hashed})
        if code == 2:
            count = self.key_count(device_id)
            raise ContractRevert("KeyIndexOutOfRange", {"deviceId": hashed, "index": index, "keyCount": count})
        verdict = _KEY_VERDICTS.get(code)
        if verdict is None:
            raise ChainError(f"the DeviceRegistry answered an unknown key verdict {code}")
        return verdict

    def registered_devices(self, *, to_block: int | None = None) -> list[RegisteredDevice]:
        """Every device registered up to ``to_block`` (inclusive; default: the latest block), from
        the DeviceRegistry's ``DeviceRegistered`` and ``DeviceRevoked`` events (an auditor's list
        of who should speak)."""
        first = self.deployment.device_registry.block
        registered = self._logs("DeviceRegistry", "DeviceRegistered", from_block=first, to_block=to_block)
        revoked: dict[bytes, int] = {}
        for log in self._logs("DeviceRegistry", "DeviceRevoked", from_block=first, to_block=to_block):
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

    def registry_events(self, *, from_block: int | None = None, to_block: int | None = None) -> list[RegistryEvent]:
        """Registrations (with profile and certificate hash), rotations (with the new key's index
        and certificate hash) and revocations in ``from_block..to_block`` (inclusive; defaults:
        the registry's deployment block and the latest block), in chain order, each with its
        block number and the block's time: what an auditor reports for a window."""
        first = self.deployment.device_registry.block if from_block is None else from_block
        last = self.block_number() if to_block is None else to_block
        logs = {
            name: self._logs("DeviceRegistry", name, from_block=first, to_block=last)
            for name in ("DeviceRegistered", "KeyRotated", "DeviceRevoked")
        }
        times = self._timestamps(log["blockNumber"] for found in logs.values() for log in found)
        # A rotated key's algorithm is its device's: from the registration if it is in range.
        algs: dict[bytes, Algorithm] = {
            as_bytes(log["args"]["deviceId"]): ALG_NAMES[log["args"]["alg"]] for log in logs["DeviceRegistered"]
        }
        events: list[tuple[int, int, RegistryEvent]] = []
        for log in logs["DeviceRegistered"]:
            args = log["args"]
            alg = ALG_NAMES[args["alg"]]
            event: RegistryEvent = DeviceRegisteredEvent(
                device_hash=as_bytes(args["deviceId"]),
                asset_id=as_bytes(args["asset"]),
                alg=alg,
                public_key=key_from_chain(alg, as_bytes(args["key"])),
                profile=DeviceProfile(
                    kind=KIND_NAMES[args["kind"]],
                    window_s=args["windowS"],
                    rated_power_w=args["ratedPowerW"],
                    rated_hashrate_ghs=args["ratedHashrateGhs"],
                ),
                cert_hash=cert_hash_from_chain(as_bytes(args["certHash"])),
                **_where(log, times),
            )
            events.append((log["blockNumber"], log["logIndex"], event))
        for log in logs["KeyRotated"]:
            args = log["args"]
            hashed = as_bytes(args["deviceId"])
            if hashed not in algs:
                algs[hashed] = self._alg_of(hashed)
            events.append(
                (
                    log["blockNumber"],
                    log["logIndex"],
                    KeyRotatedEvent(
                        device_hash=hashed,
                        key_index=args["keyIndex"],
                        public_key=key_from_chain(algs[hashed], as_bytes(args["key"])),
                        cert_hash=cert_hash_from_chain(as_bytes(args["certHash"])),
                        **_where(log, times),
                    ),
                )
            )
        for log in logs["DeviceRevoked"]:
            args = log["args"]
            events.append(
                (
                    log["blockNumber"],
                    log["logIndex"],
                    DeviceRevokedEvent(
                        device_hash=as_bytes(args["deviceId"]), key_count=args["keyCount"], **_where(log, times)
                    ),
                )
            )
        events.sort(key=lambda item: (item[0], item[1]))
        return [event for _, _, event in events]

    def _alg_of(self, hashed: bytes) -> Algorithm:
        _, alg, *_ = self._call("DeviceRegistry", "device", hashed)
        return ALG_NAMES[alg]


def _where(log: Any, times: dict[int, int]) -> dict[str, int]:
    block = int(log["blockNumber"])
    return {"block_number": block, "timestamp": times[block], "log_index": int(log["logIndex"])}
