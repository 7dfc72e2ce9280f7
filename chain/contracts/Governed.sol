// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title Governed: role holders replaced only by a governor, only after a delay anyone can watch.
/// @notice Each contract of assetproof names the holder of each role it knows (the attestor of
/// the AnchorRegistry, the registrar of the DeviceRegistry, the pricing authority of the
/// TariffRegistry) and a governor. The governor cannot act in a role; it can only propose a new
/// holder, which takes over after `governanceDelay` seconds, when anyone calls `executeRole`.
/// The delay is the watchers' window: an auditor or investor who sees `RoleChangeProposed` for
/// a holder it does not trust has that long to act (and a governor who proposed by mistake, or
/// under duress, can `cancelRole`). The governor's own role changes the same way.
/// @dev `GOVERNOR_ROLE` is this contract's own role; a contract adds its roles by overriding
/// `_isRole` and reads its holders with `roleHolder` (one storage read).
abstract contract Governed {
    bytes32 public constant GOVERNOR_ROLE = keccak256("assetproof.role.governor");

    struct PendingChange {
        address account;
        uint64 eta;
    }

    /// @notice Seconds between a proposal and the earliest time it can take effect.
    uint64 public immutable governanceDelay;

    mapping(bytes32 role => address holder) private _holders;
    mapping(bytes32 role => PendingChange) private _pending;

    event RoleChangeProposed(bytes32 indexed role, address indexed account, uint64 eta);
    event RoleChangeCancelled(bytes32 indexed role, address indexed account);
    event RoleChanged(bytes32 indexed role, address indexed previous, address indexed account);

    error NotGovernor(address caller);
    error NotRoleHolder(bytes32 role, address caller);
    error UnknownRole(bytes32 role);
    error ZeroAddress(bytes32 role);
    error NoPendingChange(bytes32 role);
    error ChangeNotDue(bytes32 role, uint64 eta, uint64 now_);

    constructor(address governor_, uint64 governanceDelay_) {
        governanceDelay = governanceDelay_;
        _set(GOVERNOR_ROLE, governor_);
    }

    modifier onlyRole(bytes32 role) {
        if (msg.sender != _holders[role]) revert NotRoleHolder(role, msg.sender);
        _;
    }

    /// @notice The governor: may propose new role holders, nothing else.
    function governor() external view returns (address) {
        return _holders[GOVERNOR_ROLE];
    }

    /// @notice Who holds `role` now (reverts for a role this contract does not know).
    function roleHolder(bytes32 role) public view returns (address) {
        if (!_isRole(role)) revert UnknownRole(role);
        return _holders[role];
    }

    /// @notice The change proposed for `role`: the new holder and when it can take effect (zero
    /// address and 0 when none is pending).
    function pendingChange(bytes32 role) external view returns (address account, uint64 eta) {
        PendingChange memory p = _pending[role];
        return (p.account, p.eta);
    }

    /// @notice Propose `account` as the next holder of `role`; it can take effect after the
    /// delay. A new proposal replaces a pending one (and restarts the delay).
    function proposeRole(bytes32 role, address account) external {
        if (msg.sender != _holders[GOVERNOR_ROLE]) revert NotGovernor(msg.sender);
        if (!_isRole(role)) revert UnknownRole(role);
        if (account == address(0)) revert ZeroAddress(role);
        uint64 eta = uint64(block.timestamp) + governanceDelay;
        _pending[role] = PendingChange({account: account, eta: eta});
        emit RoleChangeProposed(role, account, eta);
    }

    /// @notice Withdraw the change pending for `role`.
    function cancelRole(bytes32 role) external {
        if (msg.sender != _holders[GOVERNOR_ROLE]) revert NotGovernor(msg.sender);
        PendingChange memory p = _pending[role];
        if (p.account == address(0)) revert NoPendingChange(role);
        delete _pending[role];
        emit RoleChangeCancelled(role, p.account);
    }

    /// @notice Put the pending holder of `role` in place, once its delay has passed; anyone may
    /// call it (the governor's proposal is the decision, the delay the only condition).
    function executeRole(bytes32 role) external {
        PendingChange memory p = _pending[role];
        if (p.account == address(0)) revert NoPendingChange(role);
        if (block.timestamp < p.eta) revert ChangeNotDue(role, p.eta, uint64(block.timestamp));
        delete _pending[role];
        _set(role, p.account);
    }

    function _set(bytes32 role, address account) internal {
        if (account == address(0)) revert ZeroAddress(role);
        address previous = _holders[role];
        _holders[role] = account;
        emit RoleChanged(role, previous, account);
    }

    function _holder(bytes32 role) internal view returns (address) {
        return _holders[role];
    }

    /// @dev The roles this contract knows besides the governor's.
    function _isRole(bytes32 role) internal view virtual returns (bool) {
        return role == GOVERNOR_ROLE;
    }
}
