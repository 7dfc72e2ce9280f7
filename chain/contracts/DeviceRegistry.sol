// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {Governed} from "./Governed.sol";

/// @title DeviceRegistry: devices as their registrar declares them, and their keys over chain time.
/// @notice A device is keyed by `deviceId = keccak256(UTF-8 bytes of the device id string)`; its
/// asset by `keccak256(UTF-8 bytes of the asset name)`. Algorithms: 1 = ed25519 (32-byte public
/// key), 2 = es256 (ECDSA P-256; the 64-byte x || y of the point, the form the P-256
/// precompile takes; SEC1's 0x04 prefix is dropped). Kinds: 1 = solar, 2 = charger, 3 = miner.
/// Only the registrar (an installer, certifier or the issuer's trustee: not the operator who
/// runs the gateway and attestor) registers devices, rotates and revokes their keys; the
/// governor may replace the registrar after the governance delay (`Governed`).
///
/// A device's profile (kind, reporting window, rated power, rated hashrate) is fixed at
/// registration: the auditor judges plausibility against it, so nobody may re-rate a device
/// in place (a re-rated device is registered anew under a new id). A key may carry the hash of
/// its manufacturer certificate (SHA-256 of the leaf certificate's DER; zero when none).
///
/// Key validity is judged by chain time, never by the time a reading claims (see
/// `acceptsReading`): key K signs for the device from the block that registered or rotated it
/// in; a checkpoint must anchor the reading while K is in force, or within `rotationGrace`
/// seconds after a rotation ended K (for readings already in flight); a revocation ends K at
/// once, with no grace. A reading may not be dated after K's end, nor more than `maxBackfill`
/// seconds before K's start. A revoked device stays revoked: its id cannot be registered again.
/// @dev Gas: the current key's start (block, time) lives in the device's header slot, so
/// registering an ed25519 device writes four slots (asset, header, profile, key; a certificate
/// hash one more). A rotation moves that start into the history (`_keyFrom`) and writes the new
/// key. Blocks are stored as uint48 and timestamps as uint40 (both last far beyond any real
/// chain).
contract DeviceRegistry is Governed {
    bytes32 public constant REGISTRAR_ROLE = keccak256("assetproof.role.registrar");

    uint8 internal constant ED25519 = 1;
    uint8 internal constant ES256 = 2;

    uint8 public constant SOLAR = 1;
    uint8 public constant CHARGER = 2;
    uint8 public constant MINER = 3;

    uint8 public constant ACTIVE = 0;
    uint8 public constant ROTATED = 1;
    uint8 public constant REVOKED = 2;

    /// @notice Why `acceptsReading` refused a reading under a key (or `Valid`).
    enum KeyVerdict {
        Valid,
        UnknownDevice,
        /// The device has no key of that index.
        NoSuchKey,
        /// The checkpoint was anchored before the key came in force.
        AnchoredBeforeKey,
        /// The checkpoint was anchored after the key's end (a rotation's grace included; a
        /// revocation has none).
        AnchoredAfterKey,
        /// The reading is dated after the key's end.
        DatedAfterKeyEnd,
        /// The reading is dated more than `maxBackfill` seconds before the key's start.
        DatedBeforeBackfill
    }

    struct Header {
        uint8 alg;
        uint32 keyCount;
        uint48 fromBlock; // the current key's start
        uint40 fromTime;
        uint48 revokedBlock; // 0 = not revoked
        uint40 revokedTime;
    }

    struct Profile {
        uint8 kind;
        uint32 windowS;
        uint64 ratedPowerW;
        uint64 ratedHashrateGhs; // miners only; 0 otherwise
    }

    struct Device {
        bytes32 asset;
        Header header;
        Profile profile;
    }

    struct Key {
        bytes32 a; // ed25519: the key; es256: x
        bytes32 b; // es256: y; ed25519: unused
    }

    struct Registration {
        bytes32 deviceId;
        bytes32 asset;
        uint8 alg;
        bytes key;
        uint8 kind;
        uint32 windowS;
        uint64 ratedPowerW;
        uint64 ratedHashrateGhs;
        bytes32 certHash;
    }

    /// @notice Seconds after a rotation during which checkpoints may still anchor readings signed
    /// with the rotated-out key (readings in flight when it was replaced).
    uint64 public immutable rotationGrace;
    /// @notice How many seconds before its key's start a reading may be dated (a device may
    /// deliver readings it measured before it was registered, within this bound).
    uint64 public immutable maxBackfill;

    mapping(bytes32 deviceId => Device) private _devices;
    mapping(bytes32 deviceId => mapping(uint256 index => Key)) private _keys;
    /// @dev (block << 40 | time) of every key but the current one.
    mapping(bytes32 deviceId => mapping(uint256 index => uint256)) private _keyFrom;
    mapping(bytes32 deviceId => mapping(uint256 index => bytes32)) private _certHashes;

    event DeviceRegistered(
        bytes32 indexed deviceId,
        bytes32 indexed asset,
        uint8 alg,
        bytes key,
        uint8 kind,
        uint32 windowS,
        uint64 ratedPowerW,
        uint64 ratedHashrateGhs,
        bytes32 certHash
    );
    event KeyRotated(bytes32 indexed deviceId, uint32 keyIndex, bytes key, bytes32 certHash);
    event DeviceRevoked(bytes32 indexed deviceId, uint32 keyCount);

    error NotRegistrar(address caller);
    error ZeroDeviceId();
    error AlreadyRegistered(bytes32 deviceId);
    error UnknownDevice(bytes32 deviceId);
    error Revoked(bytes32 deviceId);
    error BadAlgorithm(uint8 alg);
    error BadKeyLength(uint8 alg, uint256 length);
    error BadKind(uint8 kind);
    error BadWindow(uint32 windowS);
    /// @notice A rated figure the kind needs is zero (power for all kinds, hashrate for miners),
    /// or a hashrate is given for a kind that has none.
    error BadRating(uint8 kind, uint64 ratedPowerW, uint64 ratedHashrateGhs);
    error SameKey(bytes32 deviceId);
    error KeyIndexOutOfRange(bytes32 deviceId, uint256 index, uint256 keyCount);

    modifier onlyRegistrar() {
        if (msg.sender != _holder(REGISTRAR_ROLE)) revert NotRegistrar(msg.sender);
        _;
    }

    constructor(
        address registrar_,
        address governor_,
        uint64 governanceDelay_,
        uint64 rotationGrace_,
        uint64 maxBackfill_
    ) Governed(governor_, governanceDelay_) {
        rotationGrace = rotationGrace_;
        maxBackfill = maxBackfill_;
        _set(REGISTRAR_ROLE, registrar_);
    }

    /// @notice The only address allowed to register, rotate and revoke now.
    function registrar() external view returns (address) {
        return _holder(REGISTRAR_ROLE);
    }

    // --- changes ---------------------------------------------------------------------------

    function register(Registration calldata r) external onlyRegistrar {
        _register(r);
    }

    function registerMany(Registration[] calldata devices) external onlyRegistrar {
        for (uint256 i = 0; i < devices.length; ++i) {
            _register(devices[i]);
        }
    }

    /// @notice Replace the device's key from this block on; the old key stays in the history
    /// (and may still be anchored for `rotationGrace` seconds).
    function rotate(bytes32 deviceId, bytes calldata newKey, bytes32 certHash) external onlyRegistrar {
        Header memory h = _live(deviceId);
        uint256 index = h.keyCount;
        Key memory current = _keys[deviceId][index - 1];
        Key memory next = _keyOf(h.alg, newKey);
        if (next.a == current.a && next.b == current.b) revert SameKey(deviceId);
        _keyFrom[deviceId][index - 1] = (uint256(h.fromBlock) << 40) | h.fromTime;
        _store(deviceId, index, next, certHash);
        h.keyCount = uint32(index + 1);
        h.fromBlock = uint48(block.number);
        h.fromTime = uint40(block.timestamp);
        _devices[deviceId].header = h;
        emit KeyRotated(deviceId, uint32(index), newKey, certHash);
    }

    /// @notice End the device's current key from this block on, for good, with no grace.
    function revoke(bytes32 deviceId) external onlyRegistrar {
        Header memory h = _live(deviceId);
        h.revokedBlock = uint48(block.number);
        h.revokedTime = uint40(block.timestamp);
        _devices[deviceId].header = h;
        emit DeviceRevoked(deviceId, h.keyCount);
    }

    // --- views -----------------------------------------------------------------------------

    /// @notice The device's asset, algorithm, number of keys, and revocation (block 0 if not).
    function device(
        bytes32 deviceId
    )
        external
        view
        returns (bytes32 asset, uint8 alg, uint32 keyTotal, bool revoked, uint64 revokedBlock, uint64 revokedTime)
    {
        Device storage d = _devices[deviceId];
        Header memory h = d.header;
        if (h.keyCount == 0) revert UnknownDevice(deviceId);
        return (d.asset, h.alg, h.keyCount, h.revokedBlock != 0, h.revokedBlock, h.revokedTime);
    }

    /// @notice The device's kind, reporting window (seconds) and ratings, as registered.
    function profile(
        bytes32 deviceId
    ) external view returns (uint8 kind, uint32 windowS, uint64 ratedPowerW, uint64 ratedHashrateGhs) {
        Device storage d = _devices[deviceId];
        if (d.header.keyCount == 0) revert UnknownDevice(deviceId);
        Profile memory p = d.profile;
        return (p.kind, p.windowS, p.ratedPowerW, p.ratedHashrateGhs);
    }

    /// @notice How many keys the device has had (0 for an unknown device).
    function keyCount(bytes32 deviceId) external view returns (uint256) {
        return _devices[deviceId].header.keyCount;
    }

    /// @notice The hash of key `index`'s manufacturer certificate (zero when none was given).
    function keyCertificate(bytes32 deviceId, uint256 index) external view returns (bytes32) {
        Header memory h = _devices[deviceId].header;
        if (h.keyCount == 0) revert UnknownDevice(deviceId);
        if (index >= h.keyCount) revert KeyIndexOutOfRange(deviceId, index, h.keyCount);
        return _certHashes[deviceId][index];
    }

    /// @notice The key in force now and its index; reverts for an unknown or revoked device.
    function currentKey(bytes32 deviceId) external view returns (bytes memory key, uint32 keyIndex) {
        Header memory h = _live(deviceId);
        keyIndex = h.keyCount - 1;
        key = _bytesOf(h.alg, _keys[deviceId][keyIndex]);
    }

    /// @notice Key `index` with its validity [from, until). `until` is zero while the key is in
    /// force; `endReason` is ACTIVE, ROTATED or REVOKED. (A key rotated out and then revoked
    /// keeps ROTATED: its grace ends at the revocation.)
    function keyAt(
        bytes32 deviceId,
        uint256 index
    )
        public
        view
        returns (
            bytes memory key,
            uint64 fromBlock,
            uint64 fromTime,
            uint64 untilBlock,
            uint64 untilTime,
            uint8 endReason
        )
    {
        Header memory h = _devices[deviceId].header;
        if (h.keyCount == 0) revert UnknownDevice(deviceId);
        if (index >= h.keyCount) revert KeyIndexOutOfRange(deviceId, index, h.keyCount);
        key = _bytesOf(h.alg, _keys[deviceId][index]);
        (fromBlock, fromTime) = _from(deviceId, h, index);
        if (index + 1 < h.keyCount) {
            (untilBlock, untilTime) = _from(deviceId, h, index + 1);
            endReason = ROTATED;
        } else if (h.revokedBlock != 0) {
            (untilBlock, untilTime) = (h.revokedBlock, h.revokedTime);
            endReason = REVOKED;
        }
    }

    /// @notice Which key was in force at block time `timestamp` (seconds), with no grace: `valid`
    /// is false before the first key and from the revocation on. Reverts for an unknown device.
    function keyInForceAt(bytes32 deviceId, uint64 timestamp) public view returns (bool valid, uint32 keyIndex) {
        Header memory h = _devices[deviceId].header;
        if (h.keyCount == 0) revert UnknownDevice(deviceId);
        if (h.revokedBlock != 0 && timestamp >= h.revokedTime) return (false, 0);
        // The last key whose start is <= timestamp: starts never decrease.
        uint256 last = h.keyCount - 1;
        if (timestamp >= h.fromTime) return (true, uint32(last));
        if (last == 0 || _fromTime(deviceId, 0) > timestamp) return (false, 0);
        uint256 low = 0; // starts at or before timestamp
        uint256 high = last; // starts after it
        while (high - low > 1) {
            uint256 mid = (low + high) >> 1;
            if (_fromTime(deviceId, mid) <= timestamp) low = mid;
            else high = mid;
        }
        return (true, uint32(low));
    }

    /// @notice Whether a reading signed with key `index`, dated `readingTimeMs` (the reading's
    /// own ts_ms) and first anchored by a checkpoint in a block with time `anchoredAt`
    /// (seconds), counts for the device. The rule, in this order:
    /// from <= anchoredAt; anchoredAt < until + rotationGrace for a rotated key (and before the
    /// revocation, if the device was revoked since), anchoredAt < until for a revoked one;
    /// readingTimeMs <= until * 1000 for an ended key; readingTimeMs >= (from - maxBackfill) * 1000.
    function acceptsReading(
        bytes32 deviceId,
        uint256 index,
        uint64 anchoredAt,
        uint64 readingTimeMs
    ) external view returns (KeyVerdict) {
        Header memory h = _devices[deviceId].header;
        if (h.keyCount == 0) return KeyVerdict.UnknownDevice;
        if (index >= h.keyCount) return KeyVerdict.NoSuchKey;
        (, uint64 fromTime) = _from(deviceId, h, index);
        if (anchoredAt < fromTime) return KeyVerdict.AnchoredBeforeKey;
        uint256 endTime = type(uint256).max; // the key's end, for the reading's date
        uint256 anchorLimit = type(uint256).max; // the anchor's limit, grace included
        if (index + 1 < h.keyCount) {
            (, uint64 untilTime) = _from(deviceId, h, index + 1);
            endTime = untilTime;
            anchorLimit = uint256(untilTime) + rotationGrace;
        }
        if (h.revokedBlock != 0) {
            if (h.revokedTime < endTime) endTime = h.revokedTime;
            if (h.revokedTime < anchorLimit) anchorLimit = h.revokedTime;
        }
        if (anchoredAt >= anchorLimit) return KeyVerdict.AnchoredAfterKey;
        if (endTime != type(uint256).max && uint256(readingTimeMs) > endTime * 1000) {
            return KeyVerdict.DatedAfterKeyEnd;
        }
        if (uint256(readingTimeMs) + uint256(maxBackfill) * 1000 < uint256(fromTime) * 1000) {
            return KeyVerdict.DatedBeforeBackfill;
        }
        return KeyVerdict.Valid;
    }

    // --- internals -------------------------------------------------------------------------

    function _register(Registration calldata r) private {
        if (r.deviceId == bytes32(0)) revert ZeroDeviceId();
        Device storage d = _devices[r.deviceId];
        if (d.header.keyCount != 0) revert AlreadyRegistered(r.deviceId);
        if (r.kind < SOLAR || r.kind > MINER) revert BadKind(r.kind);
        if (r.windowS == 0 || r.windowS > 86_400) revert BadWindow(r.windowS);
        if (r.ratedPowerW == 0 || (r.kind == MINER) != (r.ratedHashrateGhs != 0)) {
            revert BadRating(r.kind, r.ratedPowerW, r.ratedHashrateGhs);
        }
        Key memory k = _keyOf(r.alg, r.key);
        d.asset = r.asset;
        d.header = Header({
            alg: r.alg,
            keyCount: 1,
            fromBlock: uint48(block.number),
            fromTime: uint40(block.timestamp),
            revokedBlock: 0,
            revokedTime: 0
        });
        d.profile = Profile({
            kind: r.kind,
            windowS: r.windowS,
            ratedPowerW: r.ratedPowerW,
            ratedHashrateGhs: r.ratedHashrateGhs
        });
        _store(r.deviceId, 0, k, r.certHash);
        emit DeviceRegistered(
            r.deviceId,
            r.asset,
            r.alg,
            r.key,
            r.kind,
            r.windowS,
            r.ratedPowerW,
            r.ratedHashrateGhs,
            r.certHash
        );
    }

    function _live(bytes32 deviceId) private view returns (Header memory h) {
        h = _devices[deviceId].header;
        if (h.keyCount == 0) revert UnknownDevice(deviceId);
        if (h.revokedBlock != 0) revert Revoked(deviceId);
    }

    function _keyOf(uint8 alg, bytes calldata key) private pure returns (Key memory k) {
        if (alg == ED25519) {
            if (key.length != 32) revert BadKeyLength(alg, key.length);
            k.a = bytes32(key);
        } else if (alg == ES256) {
            if (key.length != 64) revert BadKeyLength(alg, key.length);
            k.a = bytes32(key[0:32]);
            k.b = bytes32(key[32:64]);
        } else {
            revert BadAlgorithm(alg);
        }
    }

    function _store(bytes32 deviceId, uint256 index, Key memory k, bytes32 certHash) private {
        Key storage slot = _keys[deviceId][index];
        slot.a = k.a;
        if (k.b != bytes32(0)) slot.b = k.b;
        if (certHash != bytes32(0)) _certHashes[deviceId][index] = certHash;
    }

    function _bytesOf(uint8 alg, Key storage k) private view returns (bytes memory) {
        return alg == ED25519 ? abi.encodePacked(k.a) : abi.encodePacked(k.a, k.b);
    }

    function _from(bytes32 deviceId, Header memory h, uint256 index) private view returns (uint64, uint64) {
        if (index + 1 == h.keyCount) return (h.fromBlock, h.fromTime);
        uint256 packed = _keyFrom[deviceId][index];
        return (uint64(packed >> 40), uint64(packed & 0xffffffffff));
    }

    function _fromTime(bytes32 deviceId, uint256 index) private view returns (uint64) {
        return uint64(_keyFrom[deviceId][index] & 0xffffffffff);
    }

    function _isRole(bytes32 role) internal pure override returns (bool) {
        return role == REGISTRAR_ROLE || role == GOVERNOR_ROLE;
    }
}
