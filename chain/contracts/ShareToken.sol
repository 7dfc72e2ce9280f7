// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IAssetTotals} from "./IAssetTotals.sol";

/// @title ShareToken: one asset's investor shares (or a mining pod's hashrate), paid out of the
/// asset's attested net cash flow and never more than the investors' share of it.
/// @notice An ERC-20 (OpenZeppelin) with 0 decimals: one token is one share, or for a HASHRATE
/// token one TH/s of the pod's registered hashrate (`maxSupply` is that hashrate, declared at
/// deployment). Tokens move only between accounts on the allowlist the compliance role keeps
/// (ERC-3643's identity registry in its simplest form: one flag per account).
///
/// The issuer funds the distribution of each epoch, in order from `startEpoch`, each exactly once
/// (the amount may be 0), in the settlement token. Each funding carries the asset's totals for
/// that epoch with their proof against the anchored checkpoint, checked by the AnchorRegistry's
/// `verifyAssetTotals`; the token then refuses any amount above
///     cap = investorShareBps * max(0, cumulative attested net) / 10000 - cumulative funded
/// (`CapExceeded(cap, amount)`). Negative epochs lower the cumulative net, so a loss is carried
/// forward: later positive epochs first make it good before anything more can be paid.
/// The cap only bounds: the chain cannot make the issuer fund.
///
/// @dev Distributor in the token, not a separate contract: every transfer must adjust both
/// holders' entitlements, and doing that in the token's own `_update` costs two warm-slot writes,
/// where a separate distributor would need an external call (and its cold account) per transfer.
///
/// Accounting: ERC-2222 "funds distribution" (pull). `_magnifiedPerShare` grows by
/// amount * 2^64 / totalSupply at each funding; a holder's entitlement is
/// (magnifiedPerShare * balance + correction) / 2^64, and every balance change (mint, transfer)
/// moves `correction` by magnifiedPerShare * value so past fundings stay with whoever held the
/// tokens when they were funded. A claim pays the whole part and lowers the correction by what it
/// paid (so "withdrawn" needs no slot of its own). Funding and claiming are O(1), with no loop
/// over holders. Snapshots (ERC20Snapshot-style) were the alternative: they write a checkpoint
/// per holder per balance change and a claim must look up the balance at each funded epoch, so a
/// claim grows with the number of unclaimed epochs; here a claim costs the same after 1 or 1,000
/// epochs.
///
/// Rounding: each funding's per-share increment and each claim round down, so the sum of claims
/// never exceeds the funding. The part of a funding that the rounded increment leaves to nobody
/// is `dust()` (it stays in the contract); a holder's sub-unit remainder stays in its correction
/// and is paid once its remainders add up to a whole unit.
///
/// Storage per holder is ONE slot (allowed flag + correction): the allowlist write pays for the
/// slot, so a transfer's correction updates are always non-zero to non-zero writes.
/// Bounds that make the unchecked arithmetic safe: maxSupply <= 2^64; the total funded is a
/// uint88 (SafeCast: 3 * 10^26 minor units); the magnified per-share total and the allocated sum
/// < 2^88 * 2^64 = 2^152; every correction is below 2^152 * 2^64 + 2^152 < 2^247.
contract ShareToken is ERC20, AccessControl {
    using SafeERC20 for IERC20;

    bytes32 public constant ISSUER_ROLE = keccak256("assetproof.role.issuer");
    bytes32 public constant COMPLIANCE_ROLE = keccak256("assetproof.role.compliance");
    uint8 public constant KIND_SHARE = 0;
    uint8 public constant KIND_HASHRATE = 1;
    uint256 public constant MAX_SUPPLY_LIMIT = 2 ** 64;
    uint256 private constant MAGNITUDE = 2 ** 64;

    /// @notice What the constructor takes (a struct: too many values for the stack otherwise).
    struct Config {
        IAssetTotals registry;
        IERC20 settlement;
        bytes32 assetKey;
        bytes3 currency;
        uint8 kind;
        uint16 investorShareBps;
        uint64 startEpoch;
        uint256 maxSupply;
        address issuer;
        address compliance;
    }

    struct Holder {
        bool allowed;
        int248 correction;
    }

    IAssetTotals public immutable registry;
    IERC20 public immutable settlement;
    /// @notice SHA-256 of the asset's name, as in the anchored totals.
    bytes32 public immutable assetKey;
    /// @notice The ISO code the totals must be in (the settlement token's currency).
    bytes3 public immutable currency;
    uint8 public immutable kind;
    uint16 public immutable investorShareBps;
    uint64 public immutable startEpoch;
    /// @notice The most tokens that can ever exist (for a hashrate token: the pod's TH/s).
    uint256 public immutable maxSupply;

    mapping(address account => Holder) private _holders;

    // Three slots, grouped by which function writes them. Each has a flag set at deployment so
    // no funding or claim ever pays for a zero-to-non-zero write (20,000 gas more each).
    uint64 private _nextEpoch;
    int96 private _cumulativeNet;
    uint88 private _totalFunded;
    bool private _primedA;

    uint160 private _magnifiedPerShare;
    uint88 private _totalClaimed;
    bool private _primedB;

    /// @dev Sum of increment * totalSupply at each funding: what the holders together are owed,
    /// times 2^64 (exact; below 2^95 * 2^64).
    uint160 private _allocatedMagnified;
    bool private _primedC;

    event Allowlisted(address indexed account, bool allowed);
    /// @notice Epoch `epoch` funded with `amount` against attested net `net`; `cap` was the most
    /// it could have been; `cumulativeNet` is the attested net of every epoch from startEpoch.
    event Funded(uint64 indexed epoch, uint256 amount, int64 net, uint256 cap, int256 cumulativeNet);
    event Claimed(address indexed account, uint256 amount);

    error NotAllowlisted(address account);
    error SupplyCapExceeded(uint256 maxSupply, uint256 supplyAfter);
    error CapExceeded(uint256 cap, uint256 amount);
    error EpochBeforeStart(uint64 startEpoch, uint64 epoch);
    error EpochAlreadyFunded(uint64 epoch);
    error EpochOutOfOrder(uint64 expected, uint64 got);
    error CheckpointForAnotherEpoch(uint64 expected, uint64 got);
    error TotalsForAnotherAsset(bytes32 expected, bytes32 got);
    error TotalsForAnotherEpoch(uint64 expected, uint64 got);
    error WrongCurrency(bytes3 expected, bytes3 got);
    error NoSupply();
    error NothingToClaim(address account);
    error BadKind(uint8 kind);
    error BadInvestorShare(uint16 bps);
    error BadMaxSupply(uint256 maxSupply);
    /// @notice A required address of the configuration is zero; `field` names it (bytes32 text:
    /// eth-tester misreads a custom error's string argument as a revert reason).
    error ZeroConfigAddress(bytes32 field);

    constructor(string memory name_, string memory symbol_, Config memory config) ERC20(name_, symbol_) {
        if (address(config.registry) == address(0)) revert ZeroConfigAddress("registry");
        if (address(config.settlement) == address(0)) revert ZeroConfigAddress("settlement");
        if (config.issuer == address(0)) revert ZeroConfigAddress("issuer");
        if (config.compliance == address(0)) revert ZeroConfigAddress("compliance");
        if (config.kind > KIND_HASHRATE) revert BadKind(config.kind);
        if (config.investorShareBps == 0 || config.investorShareBps > 10_000) {
            revert BadInvestorShare(config.investorShareBps);
        }
        if (config.maxSupply == 0 || config.maxSupply > MAX_SUPPLY_LIMIT) revert BadMaxSupply(config.maxSupply);
        registry = config.registry;
        settlement = config.settlement;
        assetKey = config.assetKey;
        currency = config.currency;
        kind = config.kind;
        investorShareBps = config.investorShareBps;
        startEpoch = config.startEpoch;
        maxSupply = config.maxSupply;
        _nextEpoch = config.startEpoch;
        (_primedA, _primedB, _primedC) = (true, true, true);
        _grantRole(DEFAULT_ADMIN_ROLE, config.issuer);
        _grantRole(ISSUER_ROLE, config.issuer);
        _grantRole(COMPLIANCE_ROLE, config.compliance);
    }

    /// @notice Whole tokens only: a share, or one TH/s.
    function decimals() public pure override returns (uint8) {
        return 0;
    }

    // --- allowlist (the compliance role) -------------------------------------------------------

    function setAllowed(address account, bool allowed) external onlyRole(COMPLIANCE_ROLE) {
        _holders[account].allowed = allowed;
        emit Allowlisted(account, allowed);
    }

    function isAllowed(address account) external view returns (bool) {
        return _holders[account].allowed;
    }

    // --- issuing and funding (the issuer) ------------------------------------------------------

    /// @notice Mint `amount` tokens to `to` (allowlisted), up to `maxSupply` in all.
    function issue(address to, uint256 amount) external onlyRole(ISSUER_ROLE) {
        uint256 after_ = totalSupply() + amount;
        if (after_ > maxSupply) revert SupplyCapExceeded(maxSupply, after_);
        _mint(to, amount);
    }

    /// @notice Fund the distribution of `epoch` (the next unfunded one) with `amount` settlement
    /// tokens taken from the caller (approve them first), against the asset's totals for that
    /// epoch: `totals` (83 bytes) is leaf `index` of `count` under the assets root of the anchored
    /// `checkpoint`, `proof` its RFC 6962 inclusion path.
    function fund(
        uint64 epoch,
        uint256 amount,
        IAssetTotals.Checkpoint calldata checkpoint,
        bytes calldata totals,
        uint64 index,
        uint64 count,
        bytes32[] calldata proof
    ) external onlyRole(ISSUER_ROLE) {
        uint64 expected = _nextEpoch;
        if (epoch != expected) {
            if (epoch < startEpoch) revert EpochBeforeStart(startEpoch, epoch);
            if (epoch < expected) revert EpochAlreadyFunded(epoch);
            revert EpochOutOfOrder(expected, epoch);
        }
        if (checkpoint.epoch != epoch) revert CheckpointForAnotherEpoch(epoch, checkpoint.epoch);
        _book(epoch, amount, _attestedNet(epoch, checkpoint, totals, index, count, proof));
    }

    /// @dev The asset's net in `epoch`, once the registry has checked the totals against the
    /// anchored checkpoint (its own errors, e.g. UnknownEpoch or TotalsNotIncluded, pass through).
    function _attestedNet(
        uint64 epoch,
        IAssetTotals.Checkpoint calldata checkpoint,
        bytes calldata totals,
        uint64 index,
        uint64 count,
        bytes32[] calldata proof
    ) private view returns (int64) {
        IAssetTotals.AssetTotals memory t = registry.verifyAssetTotals(checkpoint, totals, index, count, proof);
        if (t.assetKey != assetKey) revert TotalsForAnotherAsset(assetKey, t.assetKey);
        if (t.epoch != epoch) revert TotalsForAnotherEpoch(epoch, t.epoch);
        if (t.currency != currency) revert WrongCurrency(currency, t.currency);
        return t.net;
    }

    function _book(uint64 epoch, uint256 amount, int64 net) private {
        int256 cumulative = int256(_cumulativeNet) + net;
        uint256 funded = _totalFunded;
        uint256 cap_ = _available(cumulative, funded);
        if (amount > cap_) revert CapExceeded(cap_, amount);

        _nextEpoch = epoch + 1;
        _cumulativeNet = SafeCast.toInt96(cumulative);
        _totalFunded = SafeCast.toUint88(funded + amount);
        if (amount != 0) {
            uint256 supply = totalSupply();
            if (supply == 0) revert NoSupply();
            uint256 increment = (amount * MAGNITUDE) / supply;
            unchecked {
                // Below 2^152 (totalFunded < 2^88): no overflow.
                _magnifiedPerShare += uint160(increment);
                _allocatedMagnified += uint160(increment * supply);
            }
            settlement.safeTransferFrom(msg.sender, address(this), amount);
        }
        emit Funded(epoch, amount, net, cap_, cumulative);
    }

    // --- claiming (any holder) -----------------------------------------------------------------

    /// @notice Pay the caller everything it is owed so far, in the settlement token.
    function claim() external returns (uint256 amount) {
        Holder storage holder = _holders[msg.sender];
        amount = _owed(msg.sender, holder.correction);
        if (amount == 0) revert NothingToClaim(msg.sender);
        unchecked {
            // amount <= totalFunded < 2^88, and the corrections stay far inside int248.
            holder.correction -= int248(int256(amount * MAGNITUDE));
            _totalClaimed += uint88(amount);
        }
        settlement.safeTransfer(msg.sender, amount);
        emit Claimed(msg.sender, amount);
    }

    // --- views ---------------------------------------------------------------------------------

    /// @notice What `account` would receive by claiming now.
    function claimable(address account) external view returns (uint256) {
        return _owed(account, _holders[account].correction);
    }

    /// @notice The next epoch to fund (startEpoch before the first funding).
    function nextEpoch() external view returns (uint64) {
        return _nextEpoch;
    }

    /// @notice The attested net of every funded epoch, summed (minor units; may be negative).
    function cumulativeNet() external view returns (int256) {
        return _cumulativeNet;
    }

    function totalFunded() external view returns (uint256) {
        return _totalFunded;
    }

    function totalClaimed() external view returns (uint256) {
        return _totalClaimed;
    }

    /// @notice The most that could be funded now without a new epoch's totals (0 once the
    /// investors' share of the cumulative net is paid, or while it is negative).
    function cap() external view returns (uint256) {
        return _available(_cumulativeNet, _totalFunded);
    }

    /// @notice Whole units of funding that no holder can ever claim (the per-share increments
    /// round down). It stays in the contract. Holders' own sub-unit remainders are theirs (paid
    /// once they add up to a unit), not dust: claimed + claimable + dust <= totalFunded always.
    function dust() external view returns (uint256) {
        return (uint256(_totalFunded) * MAGNITUDE - _allocatedMagnified) / MAGNITUDE;
    }

    // --- internals -----------------------------------------------------------------------------

    function _available(int256 cumulative, uint256 funded) private view returns (uint256) {
        uint256 entitled = cumulative > 0 ? (uint256(cumulative) * investorShareBps) / 10_000 : 0;
        return entitled > funded ? entitled - funded : 0;
    }

    function _owed(address account, int248 correction) private view returns (uint256) {
        int256 accumulated = int256(uint256(_magnifiedPerShare) * balanceOf(account)) + correction;
        return accumulated > 0 ? uint256(accumulated) / MAGNITUDE : 0;
    }

    /// @dev Every balance change (mint, transfer; there is no burn) checks the allowlist and
    /// moves the corrections so past fundings stay with the tokens' holder when they were funded.
    function _update(address from, address to, uint256 value) internal override {
        int248 moved;
        unchecked {
            // magnifiedPerShare < 2^152 and value <= maxSupply <= 2^64 (a larger value fails the
            // balance check in super._update): below 2^216.
            moved = int248(int256(uint256(_magnifiedPerShare) * value));
        }
        if (from != address(0)) {
            Holder storage sender = _holders[from];
            if (!sender.allowed) revert NotAllowlisted(from);
            if (moved != 0) {
                unchecked {
                    sender.correction += moved;
                }
            }
        }
        if (to != address(0)) {
            Holder storage recipient = _holders[to];
            if (!recipient.allowed) revert NotAllowlisted(to);
            if (moved != 0) {
                unchecked {
                    recipient.correction -= moved;
                }
            }
        }
        super._update(from, to, value);
    }
}
