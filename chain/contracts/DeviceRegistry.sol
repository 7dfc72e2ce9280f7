// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title DeviceRegistry: device public keys and their validity over time.
/// @notice A device is keyed by `deviceId = keccak256(UTF-8 bytes of the device id string)`; its
/// asset by `keccak256(UTF-8 bytes of the asset name)`. Algorithms: 1 = ed25519 (32-byte public
/// key), 2 = es256 (ECDSA P-256; the 64-byte x || y of the point, the form the P-256
/// precompile takes; SEC1's 0x04 prefix is dropped). Each key is valid from the block (number
/// and timestamp) that registered or rotated it in, until the block that rotated it out or
/// revoked the device (exclusive). A revoked device stays revoked: its id cannot be registered
/// again. Only the admin changes anything.
/// @dev Gas: the current key's start (block, time) lives in the device's header slot, so
/// registering an ed25519 device writes three slots (asset, header, key). A rotation moves
/// that start into the history (`_keyFrom`) and writes the new key. Blocks are stored as
/// uint48 and timestamps as uint40 (both last far beyond any real chain).
contract DeviceRegistry {
    uint8 internal constant ED25519 = 1;
    uint8 internal constant ES256 = 2;

    uint8 public constant ACTIVE = 0;
    uint8 public constant ROTATED = 1;
    uint8 public constant REVOKED = 2;

    struct Header {
        uint8 alg;
        uint32 keyCount;
        uint48 fromBlock; // the current key's start
        uint40 fromTime;
        uint48 revokedBlock; // 0 = not revoked
        uint40 revokedTime;
    }

    struct Device {
        bytes32 asset;
        Header header;
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
    }

    address public immutable admin;

    mapping(bytes32 deviceId => Device) private _devices;
    mapping(bytes32 deviceId => mapping(uint256 index => Key)) private _keys;
    /// @dev (block << 40 | time) of every key but the current one.
    mapping(bytes32 deviceId => mapping(uint256 index => uint256)) private _keyFrom;

    event DeviceRegistered(bytes32 indexed deviceId, bytes32 indexed asset, uint8 alg, bytes key);
    event KeyRotated(bytes32 indexed deviceId, uint32 keyIndex, bytes key);
    event DeviceRevoked(bytes32 indexed deviceId, uint32 keyCount);

    error NotAdmin();
    error ZeroDeviceId();
    error AlreadyRegistered(bytes32 deviceId);
    error UnknownDevice(bytes32 deviceId);
    error Revoked(bytes32 deviceId);
    error BadAlgorithm(uint8 alg);
    error BadKeyLength(uint8 alg, uint256 length);
    error SameKey(bytes32 deviceId);
    error KeyIndexOutOfRange(bytes32 deviceId, uint256 index, uint256 keyCount);

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin();
        _;
    }

    constructor(address admin_) {
        admin = admin_;
    }

    // --- changes ---------------------------------------------------------------------------

    function register(bytes32 deviceId, bytes32 asset, uint8 alg, bytes calldata key) external onlyAdmin {
        _register(deviceId, asset, alg, key);
    }

    function registerMany(Registration[] calldata devices) external onlyAdmin {
        for (uint256 i = 0; i < devices.length; ++i) {
            Registration calldata r = devices[i];
            _register(r.deviceId, r.asset, r.alg, r.key);
        }
    }

    /// @notice Replace the device's key from this block on; the old key stays in the history.
    function rotate(bytes32 deviceId, bytes calldata newKey) external onlyAdmin {
        Header memory h = _live(deviceId);
        uint256 index = h.keyCount;
        Key memory current = _keys[deviceId][index - 1];
        Key memory next = _keyOf(h.alg, newKey);
        if (next.a == current.a && next.b == current.b) revert SameKey(deviceId);
        _keyFrom[deviceId][index - 1] = (uint256(h.fromBlock) << 40) | h.fromTime;
        _store(deviceId, index, next);
        h.keyCount = uint32(index + 1);
        h.fromBlock = uint48(block.number);
        h.fromTime = uint40(block.timestamp);
        _devices[deviceId].header = h;
        emit KeyRotated(deviceId, uint32(index), newKey);
    }

    /// @notice End the device's current key from this block on, for good.
    function revoke(bytes32 deviceId) external onlyAdmin {
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

    /// @notice How many keys the device has had (0 for an unknown device).
    function keyCount(bytes32 deviceId) external view returns (uint256) {
        return _devices[deviceId].header.keyCount;
    }

    /// @notice The key in force now and its index; reverts for an unknown or revoked device.
    function currentKey(bytes32 deviceId) external view returns (bytes memory key, uint32 keyIndex) {
        Header memory h = _live(deviceId);
        keyIndex = h.keyCount - 1;
        key = _bytesOf(h.alg, _keys[deviceId][keyIndex]);
    }

    /// @notice Key `index` with its validity [from, until). `until` is zero while the key is in
    /// force; `endReason` is ACTIVE, ROTATED or REVOKED.
    function keyAt(
        bytes32 deviceId,
        uint256 index
    )
        external
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

    /// @notice Which key was in force at block time `timestamp` (seconds): `valid` is false
    /// before the first key and from the revocation on. A key is valid from its block's
    /// timestamp (inclusive) until the next key's or the revocation's (exclusive); a key rotated
    /// out within the same second it came in was never valid. Reverts for an unknown device.
    function keyValidAt(bytes32 deviceId, uint64 timestamp) external view returns (bool valid, uint32 keyIndex) {
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

    // --- internals -------------------------------------------------------------------------

    function _register(bytes32 deviceId, bytes32 asset, uint8 alg, bytes calldata key) private {
        if (deviceId == bytes32(0)) revert ZeroDeviceId();
        Device storage d = _devices[deviceId];
        if (d.header.keyCount != 0) revert AlreadyRegistered(deviceId);
        Key memory k = _keyOf(alg, key);
        d.asset = asset;
        d.header = Header({
            alg: alg,
            keyCount: 1,
            fromBlock: uint48(block.number),
            fromTime: uint40(block.timestamp),
            revokedBlock: 0,
            revokedTime: 0
        });
        _store(deviceId, 0, k);
        emit DeviceRegistered(deviceId, asset, alg, key);
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

    function _store(bytes32 deviceId, uint256 index, Key memory k) private {
        Key storage slot = _keys[deviceId][index];
        slot.a = k.a;
        if (k.b != bytes32(0)) slot.b = k.b;
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
}
