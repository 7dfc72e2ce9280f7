// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {Governed} from "./Governed.sol";

/// @title TariffRegistry: the prices attested cash flow is computed with, as the pricing authority
/// publishes them.
/// @notice A tariff is the RFC 8785 (canonical JSON) encoding of assetproof's tariff object
/// (prices in minor units, bitcoin price, difficulty, subsidy, fees, pool fee). The pricing
/// authority publishes it with the time it takes effect; the contract keeps its SHA-256 and that
/// time, and the `TariffPublished` event carries the tariff itself, so an auditor reads every
/// price from the chain alone. An epoch is priced with the tariff in force at its window's start
/// (`tariffInForce`); a change that takes effect inside a window applies from the next epoch.
/// Effective times strictly increase, and only the first tariff may take effect before its own
/// block (it covers the history before the deployment): nobody can reprice the past.
contract TariffRegistry is Governed {
    bytes32 public constant PRICING_ROLE = keccak256("assetproof.role.pricing");

    /// @dev SHA-256 of each tariff, and (effectiveFrom) by index.
    mapping(uint256 index => bytes32) private _hashes;
    mapping(uint256 index => uint64) private _effectiveFrom;
    uint256 private _count;

    event TariffPublished(uint256 indexed index, bytes32 indexed tariffHash, uint64 effectiveFrom, bytes tariff);

    error NotPricingAuthority(address caller);
    error EmptyTariff();
    /// @notice A tariff after the first must take effect no earlier than the block publishing it.
    error RetroactiveTariff(uint64 effectiveFrom, uint64 now_);
    /// @notice Effective times must strictly increase.
    error NotAfterPrevious(uint64 previous, uint64 effectiveFrom);
    error TariffIndexOutOfRange(uint256 index, uint256 count);

    constructor(address pricingAuthority_, address governor_, uint64 governanceDelay_) Governed(governor_, governanceDelay_) {
        _set(PRICING_ROLE, pricingAuthority_);
    }

    /// @notice The only address allowed to publish tariffs now.
    function pricingAuthority() external view returns (address) {
        return _holder(PRICING_ROLE);
    }

    /// @notice Publish `tariff` (canonical JSON bytes), in force from `effectiveFrom` (seconds).
    function publish(bytes calldata tariff, uint64 effectiveFrom) external returns (uint256 index, bytes32 tariffHash) {
        if (msg.sender != _holder(PRICING_ROLE)) revert NotPricingAuthority(msg.sender);
        if (tariff.length == 0) revert EmptyTariff();
        index = _count;
        if (index != 0) {
            if (effectiveFrom < block.timestamp) revert RetroactiveTariff(effectiveFrom, uint64(block.timestamp));
            uint64 previous = _effectiveFrom[index - 1];
            if (effectiveFrom <= previous) revert NotAfterPrevious(previous, effectiveFrom);
        }
        tariffHash = sha256(tariff);
        _hashes[index] = tariffHash;
        _effectiveFrom[index] = effectiveFrom;
        _count = index + 1;
        emit TariffPublished(index, tariffHash, effectiveFrom, tariff);
    }

    /// @notice How many tariffs were published.
    function count() external view returns (uint256) {
        return _count;
    }

    /// @notice Tariff `index`: its SHA-256 and the time it takes effect.
    function tariffAt(uint256 index) external view returns (bytes32 tariffHash, uint64 effectiveFrom) {
        if (index >= _count) revert TariffIndexOutOfRange(index, _count);
        return (_hashes[index], _effectiveFrom[index]);
    }

    /// @notice The tariff in force at `time` (seconds): the last whose effective time is at or
    /// before it; `found` is false before the first.
    function tariffInForce(
        uint64 time
    ) external view returns (bool found, uint256 index, bytes32 tariffHash, uint64 effectiveFrom) {
        uint256 n = _count;
        if (n == 0 || _effectiveFrom[0] > time) return (false, 0, bytes32(0), 0);
        uint256 low = 0; // in force at or before time
        uint256 high = n; // the first after it (or n)
        while (high - low > 1) {
            uint256 mid = (low + high) >> 1;
            if (_effectiveFrom[mid] <= time) low = mid;
            else high = mid;
        }
        return (true, low, _hashes[low], _effectiveFrom[low]);
    }

    function _isRole(bytes32 role) internal pure override returns (bool) {
        return role == PRICING_ROLE || role == GOVERNOR_ROLE;
    }
}
