// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title IAssetTotals: the AnchorRegistry's check of one asset's totals for one epoch.
/// @notice What a token needs of the AnchorRegistry, declared apart so the token compiles
/// against the ABI alone. Each anchored checkpoint commits to `assetsRoot`, an RFC 6962 root
/// over the epoch's per-asset totals, each encoded in 83 bytes, big-endian: assetKey (32, the
/// SHA-256 of the asset's name) | epoch (8) | readings (8) | energyWh (8) | revenue (8) | cost (8)
/// | net (8, two's complement) | currency (3 ASCII bytes).
interface IAssetTotals {
    /// @notice Every field of an anchored checkpoint (the block's number and time included).
    struct Checkpoint {
        uint64 epoch;
        uint64 treeSize;
        bytes32 root;
        bytes32 metaHash;
        bytes32 assetsRoot;
        uint64 blockNumber;
        uint64 timestamp;
    }

    /// @notice One asset's totals for one epoch, decoded.
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

    /// @notice `totals` decoded, if they are leaf `index` of `count` under the assets root of
    /// checkpoint `c`, which must be the one anchored for its epoch. Reverts with UnknownEpoch,
    /// CheckpointMismatch, TotalsNotIncluded, TotalsForAnotherEpoch(expected, got) or
    /// MalformedTotals(length).
    function verifyAssetTotals(
        Checkpoint calldata c,
        bytes calldata totals,
        uint64 index,
        uint64 count,
        bytes32[] calldata proof
    ) external view returns (AssetTotals memory);
}
