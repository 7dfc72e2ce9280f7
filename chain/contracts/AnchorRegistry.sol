// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {Governed} from "./Governed.sol";

/// @title AnchorRegistry: append-only checkpoints of one RFC 6962 / RFC 9162 Merkle log.
/// @notice Epoch n is the checkpoint (tree size, root) of the log after epoch n, the SHA-256 of
/// that epoch's metadata, the root of its per-asset totals tree, and the block and time it was
/// anchored. Only the attestor may anchor,
/// epochs are numbered 0, 1, 2, ... with no gap, the tree must grow in every epoch (an epoch
/// with no new leaves is not anchored: the attestor skips it), and every checkpoint after the
/// first must carry an RFC 9162 consistency proof from the previous one, verified here with the
/// SHA-256 precompile (leaf prefix 0x00, node prefix 0x01). So the chain itself refuses a
/// rewritten history, whoever holds the attestor key.
/// @dev Storage, chosen for gas: per epoch ONE slot and nothing else (one fresh slot per epoch
/// is the floor of any registry that keeps every epoch verifiable on chain). The record:
/// `commitment (bytes24, high) | blockNumber (uint64, low)`, where commitment = the first 24
/// bytes of keccak256(abi.encode(epoch, treeSize, root, metaHash, assetsRoot, blockNumber,
/// timestamp)). The
/// fields themselves are in the epoch's `Anchored` event, which a reader finds by the block kept
/// next to the commitment (the timestamp is that block's), and checks with `verifyCheckpoint`.
/// 192 bits resist collisions to 2^96 work and second preimages to 2^192: nobody, the attestor
/// included, can find a second checkpoint with the same commitment. A record is never zero (no
/// transaction runs in block 0), so "epoch e exists" is "its record is non-zero", and the
/// anchored epochs are exactly 0 .. count - 1.
/// There is no latest-state slot: `anchor` takes the previous checkpoint's fields as calldata
/// and checks them against the previous epoch's record (cheaper than a head kept in storage:
/// one cold read, against two cold reads and two writes), then verifies the consistency proof
/// from them; the caller names the epoch, which must have no record while the one before has.
/// The assets tree (`assetsRoot`) is RFC 6962 over 83-byte per-asset totals (see `AssetTotals`
/// and `verifyAssetTotals`), ordered by asset key, every asset the attestor knows in every epoch:
/// committed inside the same record, so it costs no storage slot.
contract AnchorRegistry is Governed {
    /// @notice The previous checkpoint, as `anchor` takes it (its epoch is the anchored one - 1;
    /// all zero for epoch 0).
    struct Previous {
        uint64 treeSize;
        bytes32 root;
        bytes32 metaHash;
        bytes32 assetsRoot;
        uint64 blockNumber;
        uint64 timestamp;
    }

    /// @notice Every field of an anchored checkpoint (from its `Anchored` event and block).
    struct Checkpoint {
        uint64 epoch;
        uint64 treeSize;
        bytes32 root;
        bytes32 metaHash;
        bytes32 assetsRoot;
        uint64 blockNumber;
        uint64 timestamp;
    }

    /// @notice One asset's totals for one epoch, decoded from the 83-byte big-endian leaf
    /// assetKey (32) | epoch | readings | energyWh | revenue | cost (uint64 each) | net (int64) |
    /// currency (3 ASCII bytes). assetKey is the SHA-256 of the asset's UTF-8 name; amounts are in
    /// minor units of `currency`; net = revenue - cost.
    struct AssetTotals {
        bytes32 assetKey;
        uint64 epoch;
        uint64 readings;
        uint64 energyWh;
        uint64 revenue;
        uint64 cost;
        int64 net;
        bytes3 currency;
    }

    /// @notice The length of one encoded `AssetTotals` leaf.
    uint256 public constant ASSET_TOTALS_LENGTH = 83;

    bytes32 public constant ATTESTOR_ROLE = keccak256("assetproof.role.attestor");

    /// @notice The most leaves one anchor may add to the log.
    uint64 public immutable maxGrowth;

    mapping(uint256 epoch => bytes32 record) private _records;

    /// @notice Every field of the checkpoint but the block's own (number and time).
    event Anchored(uint64 indexed epoch, uint64 treeSize, bytes32 root, bytes32 metaHash, bytes32 assetsRoot);

    error NotAttestor();
    /// @notice The anchor would add `growth` leaves; at most `limit` may be added at once.
    error GrowthTooLarge(uint64 limit, uint64 growth);
    error ZeroMaxGrowth();
    error WrongEpoch(uint64 expected, uint64 got);
    error TreeSizeNotGrowing(uint64 previous, uint64 given);
    error ZeroRoot();
    error InconsistentProof();
    error UnknownEpoch(uint64 epoch);
    /// @notice The checkpoint given to `verifyInclusion` is not the one anchored for its epoch.
    error CheckpointMismatch(uint64 epoch);
    /// @notice The previous checkpoint given to `anchor` for `epoch` is not the one anchored for
    /// epoch - 1 (for epoch 0: not all zero).
    error PreviousCheckpointMismatch(uint64 epoch);
    /// @notice The asset totals and proof given to `verifyAssetTotals` do not lead to the
    /// checkpoint's assetsRoot.
    error TotalsNotIncluded();
    /// @notice The asset totals are included, but say they are for epoch `got`, not `expected`.
    error TotalsForAnotherEpoch(uint64 expected, uint64 got);
    /// @notice An encoded AssetTotals must be 83 bytes; this one has `length`.
    error MalformedTotals(uint256 length);

    constructor(
        address attestor_,
        address governor_,
        uint64 governanceDelay_,
        uint64 maxGrowth_
    ) Governed(governor_, governanceDelay_) {
        if (maxGrowth_ == 0) revert ZeroMaxGrowth();
        maxGrowth = maxGrowth_;
        _set(ATTESTOR_ROLE, attestor_);
    }

    /// @notice The only address allowed to anchor now.
    function attestor() external view returns (address) {
        return _holder(ATTESTOR_ROLE);
    }

    /// @notice Anchor the checkpoint of `epoch`: the log has `treeSize` leaves and root `root`;
    /// `metaHash` is the SHA-256 of the epoch metadata, `assetsRoot` the root of its per-asset
    /// totals tree. `previous` is the checkpoint of epoch - 1
    /// exactly as anchored (all zero for epoch 0), `consistencyProof` the RFC 9162 proof from it
    /// to this one (empty for epoch 0).
    function anchor(
        uint64 epoch,
        uint64 treeSize,
        bytes32 root,
        bytes32 metaHash,
        bytes32 assetsRoot,
        Previous calldata previous,
        bytes32[] calldata consistencyProof
    ) external {
        if (msg.sender != _holder(ATTESTOR_ROLE)) revert NotAttestor();
        if (_records[epoch] != bytes32(0)) revert WrongEpoch(_count(), epoch);
        bytes32 previousRecord;
        if (epoch != 0) {
            previousRecord = _records[epoch - 1];
            if (previousRecord == bytes32(0)) revert WrongEpoch(_count(), epoch);
        }
        if (root == bytes32(0)) revert ZeroRoot();
        uint64 previousSize = previous.treeSize;
        bytes32 previousRoot = previous.root;
        if (epoch == 0) {
            if (
                previousSize != 0 ||
                previousRoot != bytes32(0) ||
                previous.metaHash != bytes32(0) ||
                previous.assetsRoot != bytes32(0) ||
                previous.blockNumber != 0 ||
                previous.timestamp != 0
            ) revert PreviousCheckpointMismatch(epoch);
        } else if (previousRecord != _previousRecord(epoch - 1, previous)) {
            revert PreviousCheckpointMismatch(epoch);
        }
        if (treeSize <= previousSize) revert TreeSizeNotGrowing(previousSize, treeSize);
        if (treeSize - previousSize > maxGrowth) revert GrowthTooLarge(maxGrowth, treeSize - previousSize);
        if (epoch == 0) {
            if (consistencyProof.length != 0) revert InconsistentProof();
        } else if (!_consistent(previousSize, treeSize, previousRoot, root, consistencyProof)) {
            revert InconsistentProof();
        }
        _records[epoch] = _record(
            epoch,
            treeSize,
            root,
            metaHash,
            assetsRoot,
            uint64(block.number),
            uint64(block.timestamp)
        );
        emit Anchored(epoch, treeSize, root, metaHash, assetsRoot);
    }

    /// @notice The number of anchored epochs (the next epoch number): a search over the
    /// records, O(log count) reads.
    function count() external view returns (uint64) {
        return _count();
    }

    /// @notice The number of anchored epochs and the block and commitment of the last one (its
    /// fields are in its `Anchored` event in that block); all zero when none is.
    function latest() external view returns (uint64 epochCount, uint64 blockNumber, bytes24 lastCommitment) {
        epochCount = _count();
        if (epochCount != 0) {
            bytes32 record = _records[epochCount - 1];
            blockNumber = uint64(uint256(record));
            lastCommitment = bytes24(record);
        }
    }

    /// @notice The block in which `epoch` was anchored: its `Anchored` event is in that block.
    /// Reverts with UnknownEpoch when it is not anchored.
    function epochBlock(uint64 epoch) external view returns (uint64) {
        return uint64(uint256(_existing(epoch)));
    }

    /// @notice The commitment to the checkpoint of `epoch`: the first 24 bytes of
    /// keccak256(abi.encode(epoch, treeSize, root, metaHash, assetsRoot, blockNumber, timestamp)).
    /// Reverts with UnknownEpoch when it is not anchored.
    function commitment(uint64 epoch) external view returns (bytes24) {
        return bytes24(_existing(epoch));
    }

    /// @notice Whether these are exactly the fields anchored for `epoch` (every one of them).
    /// Reverts with UnknownEpoch when it is not anchored.
    function verifyCheckpoint(
        uint64 epoch,
        uint64 treeSize,
        bytes32 root,
        bytes32 metaHash,
        bytes32 assetsRoot,
        uint64 blockNumber,
        uint64 timestamp
    ) external view returns (bool) {
        return _existing(epoch) == _record(epoch, treeSize, root, metaHash, assetsRoot, blockNumber, timestamp);
    }

    /// @notice Whether `proof` is an RFC 9162 inclusion proof of the leaf with hash `leafHash` at
    /// `index` in the checkpoint (epoch, treeSize, root, metaHash, assetsRoot, blockNumber,
    /// timestamp), which
    /// must be the one anchored: reverts with UnknownEpoch for an epoch not anchored and with
    /// CheckpointMismatch when any field differs from the anchored checkpoint. False for any bad
    /// proof (wrong length, wrong element, index outside the tree).
    function verifyInclusion(
        uint64 epoch,
        uint64 treeSize,
        bytes32 root,
        bytes32 metaHash,
        bytes32 assetsRoot,
        uint64 blockNumber,
        uint64 timestamp,
        uint64 index,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) external view returns (bool) {
        if (_existing(epoch) != _record(epoch, treeSize, root, metaHash, assetsRoot, blockNumber, timestamp)) {
            revert CheckpointMismatch(epoch);
        }
        return _included(treeSize, root, index, leafHash, proof);
    }

    /// @notice One asset's totals for `c.epoch`, checked against the anchored checkpoint: `c` must
    /// be every field as anchored (UnknownEpoch, CheckpointMismatch), `totals` the 83-byte leaf
    /// (MalformedTotals), `proof` its RFC 9162 inclusion proof at `index` in the assets tree of
    /// `assetCount` leaves (TotalsNotIncluded), and the leaf's own epoch `c.epoch`
    /// (TotalsForAnotherEpoch). The caller checks `assetKey` is the asset it means.
    function verifyAssetTotals(
        Checkpoint calldata c,
        bytes calldata totals,
        uint64 index,
        uint64 assetCount,
        bytes32[] calldata proof
    ) external view returns (AssetTotals memory t) {
        if (
            _existing(c.epoch) !=
            _record(c.epoch, c.treeSize, c.root, c.metaHash, c.assetsRoot, c.blockNumber, c.timestamp)
        ) {
            revert CheckpointMismatch(c.epoch);
        }
        if (totals.length != ASSET_TOTALS_LENGTH) revert MalformedTotals(totals.length);
        bytes32 leafHash = sha256(abi.encodePacked(bytes1(0x00), totals));
        if (!_included(assetCount, c.assetsRoot, index, leafHash, proof)) revert TotalsNotIncluded();
        t = _decodeTotals(totals);
        if (t.epoch != c.epoch) revert TotalsForAnotherEpoch(c.epoch, t.epoch);
    }

    function _isRole(bytes32 role) internal pure override returns (bool) {
        return role == ATTESTOR_ROLE || role == GOVERNOR_ROLE;
    }

    /// @dev The first epoch without a record: the records are non-zero exactly for 0 .. count - 1,
    /// so double a bound until it finds no record, then bisect.
    function _count() private view returns (uint64) {
        if (_records[0] == bytes32(0)) return 0;
        uint256 low = 0; // anchored
        uint256 high = 1; // the first bound probed
        while (_records[high] != bytes32(0)) {
            low = high;
            high <<= 1;
        }
        while (high - low > 1) {
            uint256 middle = (low + high) >> 1;
            if (_records[middle] != bytes32(0)) {
                low = middle;
            } else {
                high = middle;
            }
        }
        return uint64(high);
    }

    /// @dev The record of an anchored epoch; reverts with UnknownEpoch when there is none.
    function _existing(uint64 epoch) private view returns (bytes32 record) {
        record = _records[epoch];
        if (record == bytes32(0)) revert UnknownEpoch(epoch);
    }

    /// @dev commitment (the first 24 bytes of the keccak) | blockNumber (the last 8 bytes). The
    /// keccak input is exactly abi.encode(epoch, treeSize, root, metaHash, assetsRoot,
    /// blockNumber, timestamp), laid out in assembly past the free-memory pointer (not allocated,
    /// nothing else uses it meanwhile): abi.encode's allocation and cleanup cost the worst-case
    /// anchor at a million leaves most of what the assets root pushed it over 80,000 gas.
    function _record(
        uint64 epoch,
        uint64 treeSize,
        bytes32 root,
        bytes32 metaHash,
        bytes32 assetsRoot,
        uint64 blockNumber,
        uint64 blockTime
    ) private pure returns (bytes32 record) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, epoch)
            mstore(add(p, 0x20), treeSize)
            mstore(add(p, 0x40), root)
            mstore(add(p, 0x60), metaHash)
            mstore(add(p, 0x80), assetsRoot)
            mstore(add(p, 0xa0), blockNumber)
            mstore(add(p, 0xc0), blockTime)
            record := or(and(keccak256(p, 0xe0), not(0xffffffffffffffff)), blockNumber)
        }
    }

    /// @dev `_record` of the previous checkpoint as `anchor` takes it: its six words copied from
    /// calldata as they are, behind the epoch. Unlike reading each field, the copy does not check
    /// that a uint64 has no high bits set; it need not: the stored record was made from clean
    /// values, so dirty ones give another keccak and the anchor is refused all the same.
    function _previousRecord(uint64 epoch, Previous calldata previous) private pure returns (bytes32 record) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, epoch)
            calldatacopy(add(p, 0x20), previous, 0xc0)
            let blockNumber := calldataload(add(previous, 0x80))
            record := or(and(keccak256(p, 0xe0), not(0xffffffffffffffff)), and(blockNumber, 0xffffffffffffffff))
        }
    }

    /// @dev The fields of an 83-byte leaf (its length checked by the caller), big-endian.
    function _decodeTotals(bytes calldata b) private pure returns (AssetTotals memory t) {
        t.assetKey = bytes32(b[0:32]);
        t.epoch = uint64(bytes8(b[32:40]));
        t.readings = uint64(bytes8(b[40:48]));
        t.energyWh = uint64(bytes8(b[48:56]));
        t.revenue = uint64(bytes8(b[56:64]));
        t.cost = uint64(bytes8(b[64:72]));
        t.net = int64(uint64(bytes8(b[72:80])));
        t.currency = bytes3(b[80:83]);
    }

    /// @dev RFC 9162 section 2.1.3.2.
    function _included(
        uint256 size,
        bytes32 root,
        uint256 index,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) private view returns (bool) {
        if (index >= size) return false;
        uint256 fn = index;
        uint256 sn = size - 1;
        bytes32 r = leafHash;
        for (uint256 i = 0; i < proof.length; ++i) {
            if (sn == 0) return false;
            if (fn & 1 == 1 || fn == sn) {
                r = _node(proof[i], r);
                if (fn & 1 == 0) {
                    while (fn != 0 && fn & 1 == 0) {
                        fn >>= 1;
                        sn >>= 1;
                    }
                }
            } else {
                r = _node(r, proof[i]);
            }
            fn >>= 1;
            sn >>= 1;
        }
        return sn == 0 && r == root;
    }

    /// @dev RFC 9162 section 2.1.4.2, for 0 < size1 < size2. In assembly because it is most of
    /// the gas that grows with the tree: each step costs its SHA-256 call (precompile 96 + call
    /// 100) and little else. `fn`, `sn`, `fr`, `sr` are the RFC's names; the 65-byte SHA-256
    /// input 0x01 || left || right is built past the free-memory pointer (not allocated, nothing
    /// else uses it meanwhile), its 0x01 written once; each digest lands in scratch word 0.
    /// The calls' success is not tested: the precompile fails only when it runs out of gas,
    /// which with 63/64 of the remaining gas forwarded means fewer than 100 gas are left, and
    /// the stores that follow then run out of gas too, reverting the whole anchor.
    function _consistent(
        uint256 size1,
        uint256 size2,
        bytes32 root1,
        bytes32 root2,
        bytes32[] calldata proof
    ) private view returns (bool ok) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore8(p, 0x01)
            let left := add(p, 1)
            let right := add(p, 33)
            let at := proof.offset
            let end := add(at, shl(5, proof.length))
            let valid := 1
            let fr := root1 // size1 a power of two: the first tree is itself the seed
            if and(size1, sub(size1, 1)) {
                switch eq(at, end)
                case 1 {
                    valid := 0
                }
                default {
                    fr := calldataload(at)
                    at := add(at, 0x20)
                }
            }
            let sr := fr
            let fn := sub(size1, 1)
            let sn := sub(size2, 1)
            for {} and(fn, 1) {} {
                fn := shr(1, fn)
                sn := shr(1, sn)
            }
            for {} lt(at, end) {
                at := add(at, 0x20)
            } {
                if iszero(sn) {
                    valid := 0
                    break
                }
                let c := calldataload(at)
                switch or(and(fn, 1), eq(fn, sn))
                case 0 {
                    mstore(left, sr)
                    mstore(right, c)
                    pop(staticcall(gas(), 0x02, p, 65, 0x00, 0x20))
                    sr := mload(0x00)
                }
                default {
                    mstore(left, c)
                    mstore(right, fr)
                    pop(staticcall(gas(), 0x02, p, 65, 0x00, 0x20))
                    fr := mload(0x00)
                    mstore(right, sr)
                    pop(staticcall(gas(), 0x02, p, 65, 0x00, 0x20))
                    sr := mload(0x00)
                    if iszero(and(fn, 1)) {
                        for {} and(iszero(iszero(fn)), iszero(and(fn, 1))) {} {
                            fn := shr(1, fn)
                            sn := shr(1, sn)
                        }
                    }
                }
                fn := shr(1, fn)
                sn := shr(1, sn)
            }
            ok := and(and(valid, iszero(sn)), and(eq(fr, root1), eq(sr, root2)))
        }
    }

    /// @dev SHA-256(0x01 || left || right) through the precompile at address 2, in scratch
    /// memory past the free-memory pointer (not allocated: nothing else uses it meanwhile).
    function _node(bytes32 left, bytes32 right) private view returns (bytes32 result) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore8(p, 0x01)
            mstore(add(p, 1), left)
            mstore(add(p, 33), right)
            if iszero(staticcall(gas(), 0x02, p, 65, 0x00, 0x20)) {
                revert(0, 0)
            }
            result := mload(0x00)
        }
    }
}
