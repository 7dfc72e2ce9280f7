// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title AnchorRegistry: append-only checkpoints of one RFC 6962 / RFC 9162 Merkle log.
/// @notice Epoch n holds the checkpoint (tree size, root) of the log after epoch n, the SHA-256
/// of that epoch's metadata, and the block and time it was anchored. Only the attestor may
/// anchor, epochs are numbered 0, 1, 2, ... with no gap, the tree must grow in every epoch (an
/// epoch with no new leaves is not anchored: the attestor skips it), and every checkpoint after
/// the first must carry an RFC 9162 consistency proof from the previous one, verified here with
/// the SHA-256 precompile (leaf prefix 0x00, node prefix 0x01). So the chain itself refuses a
/// rewritten history, whoever holds the attestor key.
/// @dev Storage per epoch is three slots (root, metaHash, and treeSize|blockNumber|timestamp).
/// There is no separate epoch counter: epochs are contiguous and every anchored epoch has
/// treeSize > 0, so "epoch e exists" is "the packed slot of e is non-zero", which the anchor
/// reads anyway (the previous epoch's size, and the slot about to be written, which warms it).
contract AnchorRegistry {
    struct Checkpoint {
        bytes32 root;
        bytes32 metaHash;
        uint64 treeSize;
        uint64 blockNumber;
        uint64 timestamp;
    }

    /// @notice The only address allowed to anchor.
    address public immutable attestor;

    mapping(uint256 epoch => Checkpoint) private _checkpoints;

    event Anchored(uint64 indexed epoch, uint64 treeSize, bytes32 root, bytes32 metaHash);

    error NotAttestor();
    error WrongEpoch(uint64 expected, uint64 got);
    error TreeSizeNotGrowing(uint64 previous, uint64 given);
    error ZeroRoot();
    error InconsistentProof();
    error UnknownEpoch(uint64 epoch);

    constructor(address attestor_) {
        attestor = attestor_;
    }

    /// @notice Anchor the checkpoint of `epoch`: the log has `treeSize` leaves and root `root`;
    /// `metaHash` is the SHA-256 of the epoch metadata. `consistencyProof` is the RFC 9162 proof
    /// from the previous checkpoint to this one (empty for epoch 0).
    function anchor(
        uint64 epoch,
        uint64 treeSize,
        bytes32 root,
        bytes32 metaHash,
        bytes32[] calldata consistencyProof
    ) external {
        if (msg.sender != attestor) revert NotAttestor();
        if (_checkpoints[epoch].treeSize != 0) revert WrongEpoch(_count(), epoch);
        uint64 previousSize;
        bytes32 previousRoot;
        if (epoch != 0) {
            Checkpoint storage previous = _checkpoints[uint256(epoch) - 1];
            previousSize = previous.treeSize;
            if (previousSize == 0) revert WrongEpoch(_count(), epoch);
            previousRoot = previous.root;
        }
        if (root == bytes32(0)) revert ZeroRoot();
        if (treeSize <= previousSize) revert TreeSizeNotGrowing(previousSize, treeSize);
        if (previousSize == 0) {
            if (consistencyProof.length != 0) revert InconsistentProof();
        } else if (!_consistent(previousSize, treeSize, previousRoot, root, consistencyProof)) {
            revert InconsistentProof();
        }
        _checkpoints[epoch] = Checkpoint({
            root: root,
            metaHash: metaHash,
            treeSize: treeSize,
            blockNumber: uint64(block.number),
            timestamp: uint64(block.timestamp)
        });
        emit Anchored(epoch, treeSize, root, metaHash);
    }

    /// @notice The number of anchored epochs (the next epoch number).
    function count() external view returns (uint64) {
        return _count();
    }

    /// @notice The last checkpoint and the number of anchored epochs; all zero when none is.
    function latest()
        external
        view
        returns (
            uint64 epochCount,
            uint64 treeSize,
            bytes32 root,
            bytes32 metaHash,
            uint64 blockNumber,
            uint64 timestamp
        )
    {
        epochCount = _count();
        if (epochCount == 0) return (0, 0, bytes32(0), bytes32(0), 0, 0);
        Checkpoint storage c = _checkpoints[epochCount - 1];
        return (epochCount, c.treeSize, c.root, c.metaHash, c.blockNumber, c.timestamp);
    }

    /// @notice The checkpoint of `epoch`; reverts with UnknownEpoch when it is not anchored.
    function checkpoint(
        uint64 epoch
    ) external view returns (uint64 treeSize, bytes32 root, bytes32 metaHash, uint64 blockNumber, uint64 timestamp) {
        Checkpoint storage c = _checkpoints[epoch];
        if (c.treeSize == 0) revert UnknownEpoch(epoch);
        return (c.treeSize, c.root, c.metaHash, c.blockNumber, c.timestamp);
    }

    /// @notice Whether `proof` is an RFC 9162 inclusion proof of the leaf with hash `leafHash` at
    /// `index` in the checkpoint of `epoch`. False for any bad proof (wrong length, wrong
    /// element, index outside the tree); reverts with UnknownEpoch for an epoch not anchored.
    function verifyInclusion(
        uint64 epoch,
        uint64 index,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) external view returns (bool) {
        Checkpoint storage c = _checkpoints[epoch];
        uint256 size = c.treeSize;
        if (size == 0) revert UnknownEpoch(epoch);
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
        return sn == 0 && r == c.root;
    }

    /// @dev The number of anchored epochs: the first epoch whose packed slot is zero. Epochs
    /// are contiguous, so an exponential then binary search finds it in O(log n) reads.
    function _count() private view returns (uint64) {
        if (_checkpoints[0].treeSize == 0) return 0;
        uint256 low = 0; // known to exist
        uint256 high = 1; // probe until one is missing
        while (_checkpoints[high].treeSize != 0) {
            low = high;
            high <<= 1;
        }
        while (high - low > 1) {
            uint256 mid = (low + high) >> 1;
            if (_checkpoints[mid].treeSize != 0) low = mid;
            else high = mid;
        }
        return uint64(high);
    }

    /// @dev RFC 9162 section 2.1.4.2, for 0 < size1 < size2.
    function _consistent(
        uint256 size1,
        uint256 size2,
        bytes32 root1,
        bytes32 root2,
        bytes32[] calldata proof
    ) private view returns (bool) {
        uint256 n = proof.length;
        uint256 i;
        bytes32 fr;
        if (size1 & (size1 - 1) == 0) {
            fr = root1; // a power of two: the first tree is itself the seed
        } else {
            if (n == 0) return false;
            fr = proof[0];
            i = 1;
        }
        bytes32 sr = fr;
        uint256 fn = size1 - 1;
        uint256 sn = size2 - 1;
        while (fn & 1 == 1) {
            fn >>= 1;
            sn >>= 1;
        }
        for (; i < n; ++i) {
            if (sn == 0) return false;
            bytes32 c = proof[i];
            if (fn & 1 == 1 || fn == sn) {
                fr = _node(c, fr);
                sr = _node(c, sr);
                if (fn & 1 == 0) {
                    while (fn != 0 && fn & 1 == 0) {
                        fn >>= 1;
                        sn >>= 1;
                    }
                }
            } else {
                sr = _node(sr, c);
            }
            fn >>= 1;
            sn >>= 1;
        }
        return sn == 0 && fr == root1 && sr == root2;
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
