// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {AnchorRegistry} from "./AnchorRegistry.sol";
import {DeviceRegistry} from "./DeviceRegistry.sol";

/// @title ReadingVerifier: one signed reading checked end to end on chain, in one view call.
/// @notice `verifyReading` answers, from the chain alone, whether a reading (the exact message
/// bytes anchored as a Merkle leaf) is genuine: its checkpoint is the one anchored for its
/// epoch and the first to include the leaf (the previous epoch's checkpoint, also checked, ends
/// before it), the leaf is in that checkpoint's tree, the message is an es256 message of the
/// device named, of the kind and reporting window the DeviceRegistry holds for it, signed with
/// a key that the DeviceRegistry accepts for a reading of that date anchored at that
/// checkpoint's block time (chain time, not the reading's word: `DeviceRegistry.acceptsReading`),
/// verified by the P-256 precompile at address 0x100 (EIP-7951 / RIP-7212). It returns a
/// `Status`, naming the first check that failed, in this order: the checkpoint, the inclusion,
/// the previous checkpoint, the message's form and algorithm, the device, its kind and window,
/// the signature, the key's validity.
/// `isValidReading` is the same as a bool.
/// Ed25519 readings are not verifiable here (the EVM has no Ed25519 precompile):
/// `UnsupportedAlgorithm`, so a caller can say so rather than "bad signature".
/// @dev The message is the RFC 8785 (canonical JSON) encoding of {alg, body, sig}, which puts
/// everything at places this contract finds without a JSON parser:
/// `{"alg":"es256","body":{"device":"<id>",...,"ts_ms":<int>,"v":1,"window_s":<int>},"sig":"<128 hex>"}`.
/// The body's keys are sorted, so `device` opens it and `ts_ms`, `v`, `window_s` close it; the
/// signed bytes are the body object itself, cut out between the fixed prefix and the fixed
/// 138-byte tail `,"sig":"<r||s in lowercase hex>"}`. Every piece is checked exactly (bounds
/// first: no input makes this contract panic); anything else is `Malformed`.
/// The precompile answers a bad signature and its own absence alike (empty output), so before
/// reporting `BadSignature` the contract checks it with a known-good vector and reverts with
/// `P256PrecompileMissing` when it fails: on a chain without it, no reading is called forged.
contract ReadingVerifier {
    /// @notice The result of `verifyReading`: `Valid`, or the first check that failed.
    enum Status {
        /// Every check passed.
        Valid,
        /// No checkpoint is anchored for the epoch given.
        UnknownEpoch,
        /// A field of the checkpoint given differs from the one anchored for its epoch.
        CheckpointMismatch,
        /// The proof does not put SHA-256(0x00 || message) at the index in the checkpoint's
        /// tree, or it is for another tree size than the checkpoint's.
        NotIncluded,
        /// The bytes are not an es256 message of the canonical form above.
        Malformed,
        /// An ed25519 message: not verifiable on chain.
        UnsupportedAlgorithm,
        /// The message is another device's than the one named (or that name is not a device id).
        DeviceMismatch,
        /// No device is registered under keccak256(device id).
        UnknownDevice,
        /// The signing key was not in force when the checkpoint was anchored (chain time): the
        /// checkpoint came before the key, or after its rotation's grace or its revocation.
        KeyNotValid,
        /// The signature does not verify under any key of the device (also: a device whose
        /// registered key is not a P-256 key).
        BadSignature,
        /// The leaf was already in the previous epoch's checkpoint: key validity is judged at the
        /// first checkpoint that included it, so that one must be given.
        NotFirstCheckpoint,
        /// The message's kind is not the one registered for the device.
        WrongKind,
        /// The message's window_s is not the reporting window registered for the device.
        WrongWindow,
        /// The reading is dated after its key's end, or further before its key's start than the
        /// registry's backfill bound.
        DatedOutsideKey
    }

    /// @notice The checkpoint of an epoch, every field as anchored (`AnchorRegistry` keeps only a
    /// commitment to them: the `Anchored` event and its block give them).
    struct Checkpoint {
        uint64 epoch;
        uint64 treeSize;
        bytes32 root;
        bytes32 metaHash;
        bytes32 assetsRoot;
        uint64 blockNumber;
        uint64 timestamp;
    }

    /// @notice The P-256 verification precompile (EIP-7951; RIP-7212 on L2s).
    address public constant P256_VERIFIER = address(0x100);
    /// @notice How many keys of a device, besides the one in force at the anchor's time, are
    /// tried to find the signing key (one rotated out, or in later); the newest first.
    uint256 public constant MAX_OTHER_KEYS = 16;

    AnchorRegistry public immutable anchorRegistry;
    DeviceRegistry public immutable deviceRegistry;

    /// @notice A constructor argument is not a contract.
    error NoCode(address account);
    /// @notice The chain has no P-256 precompile at 0x100 (a known-good signature fails there):
    /// no signature can be checked on this chain.
    error P256PrecompileMissing();

    // `{"alg":"es256","body":{"device":"` and where the body and the device id start in it.
    bytes32 private constant _ES256_HEAD = keccak256('{"alg":"es256","body":{"device":"');
    uint256 private constant _ES256_HEAD_LENGTH = 33;
    uint256 private constant _BODY_START = 22;
    // `{"alg":"ed25519",`
    bytes32 private constant _ED25519_HEAD = keccak256('{"alg":"ed25519",');
    uint256 private constant _ED25519_HEAD_LENGTH = 17;
    // `,"sig":"` 128 hex `"}`
    uint256 private constant _TAIL_LENGTH = 138;
    bytes8 private constant _SIG_OPEN = ',"sig":"';
    bytes2 private constant _SIG_CLOSE = '"}';
    // `,"v":1,"window_s":` and `,"ts_ms":`, read backwards from the body's closing brace.
    bytes18 private constant _V_WINDOW = ',"v":1,"window_s":';
    bytes9 private constant _TS_MS = ',"ts_ms":';
    uint256 private constant _MAX_DEVICE_ID = 63;
    // 2^53 - 1, the largest integer the message schema admits, has 16 digits.
    uint256 private constant _MAX_DIGITS = 16;

    // RFC 6979 A.2.5, P-256 / SHA-256, message "test": the probe for the precompile.
    bytes32 private constant _PROBE_HASH = 0x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08;
    bytes32 private constant _PROBE_R = 0xf1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367;
    bytes32 private constant _PROBE_S = 0x019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083;
    bytes32 private constant _PROBE_X = 0x60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6;
    bytes32 private constant _PROBE_Y = 0x7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299;

    /// @dev What the message says, once its form is checked.
    struct Reading {
        uint256 bodyEnd; // the signed body is message[_BODY_START:bodyEnd]
        uint64 tsMs;
        uint64 windowS;
        uint256 idEnd; // the index of the device id's closing quote
        bytes32 r;
        bytes32 s;
    }

    // `,"kind":"` right after the device id's closing quote (the body's keys are sorted).
    bytes9 private constant _KIND = ',"kind":"';

    constructor(AnchorRegistry anchorRegistry_, DeviceRegistry deviceRegistry_) {
        if (address(anchorRegistry_).code.length == 0) revert NoCode(address(anchorRegistry_));
        if (address(deviceRegistry_).code.length == 0) revert NoCode(address(deviceRegistry_));
        anchorRegistry = anchorRegistry_;
        deviceRegistry = deviceRegistry_;
    }

    /// @notice Check one reading against the chain: `Status.Valid` or the first check that
    /// failed (see `Status`; the checks run in its order).
    /// @param message The message bytes exactly as anchored (the Merkle leaf).
    /// @param deviceId The device id string; the device is registered under its keccak256.
    /// @param leafIndex The leaf's index in the log.
    /// @param treeSize The tree size the proof is for: must be the checkpoint's.
    /// @param proof The RFC 9162 inclusion proof of the leaf in that tree.
    /// @param checkpoint Every field of the epoch's checkpoint, as anchored: the first to include
    /// the leaf.
    /// @param previous The checkpoint of the epoch before, as anchored (ignored for epoch 0): it
    /// shows the leaf was not in the log before `checkpoint`.
    /// @dev Reverts only with P256PrecompileMissing (see the contract's notes) or when a registry
    /// call fails for want of gas.
    function verifyReading(
        bytes calldata message,
        string calldata deviceId,
        uint64 leafIndex,
        uint64 treeSize,
        bytes32[] calldata proof,
        Checkpoint calldata checkpoint,
        Checkpoint calldata previous
    ) public view returns (Status) {
        Status status = _anchored(message, leafIndex, treeSize, proof, checkpoint);
        if (status != Status.Valid) return status;
        status = _first(leafIndex, checkpoint.epoch, previous);
        if (status != Status.Valid) return status;
        Reading memory reading;
        (status, reading) = _parse(message, deviceId);
        if (status != Status.Valid) return status;
        bytes32 device = keccak256(bytes(deviceId));
        status = _profiled(message, device, reading);
        if (status != Status.Valid) return status;
        return _signedInTime(message, device, reading, checkpoint.timestamp);
    }

    /// @notice Whether `verifyReading` says `Status.Valid`.
    function isValidReading(
        bytes calldata message,
        string calldata deviceId,
        uint64 leafIndex,
        uint64 treeSize,
        bytes32[] calldata proof,
        Checkpoint calldata checkpoint,
        Checkpoint calldata previous
    ) external view returns (bool) {
        return verifyReading(message, deviceId, leafIndex, treeSize, proof, checkpoint, previous) == Status.Valid;
    }

    /// @notice Whether this chain's P-256 precompile accepts a known-good signature (RFC 6979
    /// A.2.5): false on a chain without it.
    function p256Available() public view returns (bool) {
        return _p256(_PROBE_HASH, _PROBE_R, _PROBE_S, _PROBE_X, _PROBE_Y);
    }

    // --- the log ---------------------------------------------------------------------------

    /// @dev The AnchorRegistry checks the checkpoint against its commitment and the proof in one
    /// call; its two view errors become statuses, anything else (out of gas) is passed on.
    function _anchored(
        bytes calldata message,
        uint64 leafIndex,
        uint64 treeSize,
        bytes32[] calldata proof,
        Checkpoint calldata c
    ) private view returns (Status) {
        bytes32 leafHash = sha256(abi.encodePacked(bytes1(0x00), message));
        try
            anchorRegistry.verifyInclusion(
                c.epoch,
                c.treeSize,
                c.root,
                c.metaHash,
                c.assetsRoot,
                c.blockNumber,
                c.timestamp,
                leafIndex,
                leafHash,
                proof
            )
        returns (bool included) {
            return included && treeSize == c.treeSize ? Status.Valid : Status.NotIncluded;
        } catch (bytes memory reason) {
            bytes4 selector;
            if (reason.length >= 4) {
                assembly ("memory-safe") {
                    selector := mload(add(reason, 0x20))
                }
            }
            if (selector == AnchorRegistry.UnknownEpoch.selector) return Status.UnknownEpoch;
            if (selector == AnchorRegistry.CheckpointMismatch.selector) return Status.CheckpointMismatch;
            assembly ("memory-safe") {
                revert(add(reason, 0x20), mload(reason))
            }
        }
    }

    /// @dev For epoch e > 0: `previous` is epoch e - 1's anchored checkpoint and ends before the
    /// leaf, so `checkpoint` is the first to include it.
    function _first(uint64 leafIndex, uint64 epoch, Checkpoint calldata p) private view returns (Status) {
        if (epoch == 0) return Status.Valid;
        if (p.epoch != epoch - 1) return Status.CheckpointMismatch;
        bool same = anchorRegistry.verifyCheckpoint(
            p.epoch,
            p.treeSize,
            p.root,
            p.metaHash,
            p.assetsRoot,
            p.blockNumber,
            p.timestamp
        );
        if (!same) return Status.CheckpointMismatch;
        return leafIndex < p.treeSize ? Status.NotFirstCheckpoint : Status.Valid;
    }

    // --- the message -----------------------------------------------------------------------

    /// @dev Check the message's form piece by piece, each index bounded before it is read. The
    /// scans are in assembly: in Solidity, with a bounds check per byte, they cost about 51,000
    /// gas, more than all the rest of the verification.
    function _parse(
        bytes calldata message,
        string calldata deviceId
    ) private pure returns (Status, Reading memory reading) {
        uint256 n = message.length;
        if (n >= _ED25519_HEAD_LENGTH && keccak256(message[:_ED25519_HEAD_LENGTH]) == _ED25519_HEAD) {
            return (Status.UnsupportedAlgorithm, reading);
        }
        // The shortest conceivable message: the head, a one-character id and its quote, the
        // body's ts_ms / v / window_s and brace, the tail.
        if (n < _ES256_HEAD_LENGTH + 2 + 9 + 1 + 18 + 1 + 1 + _TAIL_LENGTH) return (Status.Malformed, reading);
        if (keccak256(message[:_ES256_HEAD_LENGTH]) != _ES256_HEAD) return (Status.Malformed, reading);

        uint256 tail = n - _TAIL_LENGTH;
        if (bytes8(message[tail:tail + 8]) != _SIG_OPEN || bytes2(message[n - 2:]) != _SIG_CLOSE) {
            return (Status.Malformed, reading);
        }
        bool ok;
        (ok, reading.r, reading.s) = _signature(message[tail + 8:n - 2]);
        if (!ok) return (Status.Malformed, reading);

        uint256 idEnd = _deviceIdEnd(message[:tail]);
        if (idEnd == 0) return (Status.Malformed, reading);

        // The body's end, backwards: `,"ts_ms":<digits>,"v":1,"window_s":<digits>}`.
        uint256 pos = tail - 1;
        if (message[pos] != "}") return (Status.Malformed, reading);
        uint256 start;
        uint256 windowS;
        (ok, start, windowS) = _digitsBefore(message, pos, idEnd + 1);
        if (!ok || start < idEnd + 1 + 18 || bytes18(message[start - 18:start]) != _V_WINDOW) {
            return (Status.Malformed, reading);
        }
        uint256 tsMs;
        (ok, pos, tsMs) = _digitsBefore(message, start - 18, idEnd + 1);
        if (!ok || pos < idEnd + 1 + 9 || bytes9(message[pos - 9:pos]) != _TS_MS) return (Status.Malformed, reading);

        if (keccak256(bytes(deviceId)) != keccak256(message[_ES256_HEAD_LENGTH:idEnd])) {
            return (Status.DeviceMismatch, reading);
        }
        reading.bodyEnd = tail;
        reading.tsMs = uint64(tsMs);
        reading.windowS = uint64(windowS);
        reading.idEnd = idEnd;
        return (Status.Valid, reading);
    }

    /// @dev Where the device id that starts at `_ES256_HEAD_LENGTH` ends (the index of its closing
    /// quote), or 0 unless it is `[a-z0-9][a-z0-9-]{0,62}` closed by a quote within `head`: the
    /// protocol's ids, so the quote found is the string's end, not an escaped one.
    function _deviceIdEnd(bytes calldata head) private pure returns (uint256 end) {
        uint256 first = _ES256_HEAD_LENGTH;
        uint256 limit = first + _MAX_DEVICE_ID + 1; // the quote's last possible index, + 1
        if (limit > head.length) limit = head.length;
        assembly ("memory-safe") {
            for {
                let i := first
            } lt(i, limit) {
                i := add(i, 1)
            } {
                let c := byte(0, calldataload(add(head.offset, i)))
                if eq(c, 0x22) {
                    if gt(i, first) {
                        end := i
                    }
                    break
                }
                let letterOrDigit := or(and(gt(c, 0x60), lt(c, 0x7b)), and(gt(c, 0x2f), lt(c, 0x3a)))
                if iszero(or(letterOrDigit, and(eq(c, 0x2d), gt(i, first)))) {
                    break
                }
            }
        }
    }

    /// @dev The canonical non-negative integer (1 to 16 digits, no leading zero) that ends just
    /// before `end`, not reaching below `floor`: whether there is one, where it starts, its value.
    function _digitsBefore(
        bytes calldata data,
        uint256 end,
        uint256 floor
    ) private pure returns (bool ok, uint256 start, uint256 value) {
        uint256 maxDigits = _MAX_DIGITS;
        assembly ("memory-safe") {
            start := end
            for {} gt(start, floor) {} {
                let c := byte(0, calldataload(add(data.offset, sub(start, 1))))
                if or(lt(c, 0x30), gt(c, 0x39)) {
                    break
                }
                start := sub(start, 1)
            }
            let count := sub(end, start)
            let leadingZero := and(gt(count, 1), eq(byte(0, calldataload(add(data.offset, start))), 0x30))
            ok := and(and(gt(count, 0), iszero(gt(count, maxDigits))), iszero(leadingZero))
            if ok {
                for {
                    let i := start
                } lt(i, end) {
                    i := add(i, 1)
                } {
                    value := add(mul(value, 10), sub(byte(0, calldataload(add(data.offset, i))), 0x30))
                }
            }
        }
    }

    /// @dev r and s from their 128 lowercase hex characters; false for any other character.
    /// Each half word of 32 characters is checked and decoded at once, byte lanes side by side.
    function _signature(bytes calldata hex128) private pure returns (bool ok, bytes32 r, bytes32 s) {
        bool okR;
        bool okS;
        (okR, r) = _hexWord(hex128[:64]);
        (okS, s) = _hexWord(hex128[64:128]);
        ok = okR && okS;
    }

    function _hexWord(bytes calldata hex64) private pure returns (bool ok, bytes32 word) {
        (bool okHigh, uint256 high) = _hexHalf(bytes32(hex64[:32]));
        (bool okLow, uint256 low) = _hexHalf(bytes32(hex64[32:64]));
        return (okHigh && okLow, bytes32((high << 128) | low));
    }

    /// @dev 32 ASCII characters, one per byte: whether all are in [0-9a-f], and their value.
    /// With no byte's top bit set, ((b | 0x80) - lo) keeps the top bit iff b >= lo, and
    /// ((hi | 0x80) - b) keeps it iff b <= hi, without borrows between bytes. A character's
    /// value is its low nibble, plus 9 for a letter (bit 6); the nibbles are then packed pairwise
    /// into bytes, bytes into 16-bit words, and so on up to the 128-bit result.
    function _hexHalf(bytes32 chars) private pure returns (bool ok, uint256 value) {
        assembly ("memory-safe") {
            let high := 0x8080808080808080808080808080808080808080808080808080808080808080
            let ones := 0x0101010101010101010101010101010101010101010101010101010101010101
            let w := chars
            let raised := or(w, high)
            let digit := and(and(sub(raised, mul(ones, 0x30)), sub(mul(ones, 0xb9), w)), high)
            let letter := and(and(sub(raised, mul(ones, 0x61)), sub(mul(ones, 0xe6), w)), high)
            ok := and(iszero(and(w, high)), eq(or(digit, letter), high))
            let x := add(and(w, mul(ones, 0x0f)), mul(and(shr(6, w), ones), 9))
            x := or(
                and(shr(4, x), 0x00f000f000f000f000f000f000f000f000f000f000f000f000f000f000f000f0),
                and(x, 0x000f000f000f000f000f000f000f000f000f000f000f000f000f000f000f000f)
            )
            x := or(
                and(shr(8, x), 0x0000ff000000ff000000ff000000ff000000ff000000ff000000ff000000ff00),
                and(x, 0x000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000ff)
            )
            x := or(
                and(shr(16, x), 0x00000000ffff000000000000ffff000000000000ffff000000000000ffff0000),
                and(x, 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff)
            )
            x := or(
                and(shr(32, x), 0x0000000000000000ffffffff000000000000000000000000ffffffff00000000),
                and(x, 0x000000000000000000000000ffffffff000000000000000000000000ffffffff)
            )
            value := or(and(shr(64, x), 0xffffffffffffffff0000000000000000), and(x, 0xffffffffffffffff))
        }
    }

    // --- the device and its key --------------------------------------------------------------

    /// @dev The registered kind and window: the kind is the string right after the device id.
    function _profiled(bytes calldata message, bytes32 device, Reading memory reading) private view returns (Status) {
        if (deviceRegistry.keyCount(device) == 0) return Status.UnknownDevice;
        (uint8 kind, uint32 windowS, , ) = deviceRegistry.profile(device);
        bytes memory name = kind == 1 ? bytes("solar") : kind == 2 ? bytes("charger") : bytes("miner");
        uint256 kindAt = reading.idEnd + 1;
        uint256 end = kindAt + 9 + name.length;
        if (
            end >= reading.bodyEnd ||
            bytes9(message[kindAt:kindAt + 9]) != _KIND ||
            keccak256(message[kindAt + 9:end]) != keccak256(name) ||
            message[end] != '"'
        ) return Status.WrongKind;
        if (reading.windowS != windowS) return Status.WrongWindow;
        return Status.Valid;
    }

    /// @dev Find the signing key (first the one in force at the anchor's time, then the others,
    /// newest first), then ask the registry whether it counts for this date and anchor time.
    function _signedInTime(
        bytes calldata message,
        bytes32 device,
        Reading memory reading,
        uint64 anchoredAt
    ) private view returns (Status) {
        uint256 keys = deviceRegistry.keyCount(device);
        bytes32 digest = sha256(message[_BODY_START:reading.bodyEnd]);
        (bool inForce, uint32 first) = deviceRegistry.keyInForceAt(device, anchoredAt);
        uint256 signer = type(uint256).max;
        if (inForce && _signedBy(digest, reading, device, first)) {
            signer = first;
        } else {
            uint256 tried;
            for (uint256 i = keys; i > 0 && tried < MAX_OTHER_KEYS; --i) {
                if (inForce && i - 1 == first) continue;
                ++tried;
                if (_signedBy(digest, reading, device, i - 1)) {
                    signer = i - 1;
                    break;
                }
            }
        }
        if (signer == type(uint256).max) {
            if (!p256Available()) revert P256PrecompileMissing();
            return Status.BadSignature;
        }
        DeviceRegistry.KeyVerdict verdict = deviceRegistry.acceptsReading(device, signer, anchoredAt, reading.tsMs);
        if (verdict == DeviceRegistry.KeyVerdict.Valid) return Status.Valid;
        if (
            verdict == DeviceRegistry.KeyVerdict.DatedAfterKeyEnd ||
            verdict == DeviceRegistry.KeyVerdict.DatedBeforeBackfill
        ) return Status.DatedOutsideKey;
        return Status.KeyNotValid;
    }

    function _signedBy(
        bytes32 digest,
        Reading memory reading,
        bytes32 device,
        uint256 keyIndex
    ) private view returns (bool) {
        (bytes memory key, , , , , ) = deviceRegistry.keyAt(device, keyIndex);
        if (key.length != 64) return false; // an ed25519 device's key
        bytes32 x;
        bytes32 y;
        assembly ("memory-safe") {
            x := mload(add(key, 0x20))
            y := mload(add(key, 0x40))
        }
        return _p256(digest, reading.r, reading.s, x, y);
    }

    /// @dev The precompile returns 32 bytes ending in 1 for a valid signature and nothing
    /// otherwise (so does an address without code: see p256Available).
    function _p256(bytes32 digest, bytes32 r, bytes32 s, bytes32 x, bytes32 y) private view returns (bool valid) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, digest)
            mstore(add(p, 0x20), r)
            mstore(add(p, 0x40), s)
            mstore(add(p, 0x60), x)
            mstore(add(p, 0x80), y)
            let ok := staticcall(gas(), 0x100, p, 0xa0, 0x00, 0x20)
            valid := and(ok, and(eq(returndatasize(), 0x20), eq(mload(0x00), 1)))
        }
    }
}
