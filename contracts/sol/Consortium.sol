// SPDX-License-Identifier: GPL-3.0-only
pragma solidity 0.8.30;

import {Roles} from "./Roles.sol";

/// @title Consortium: the consortium admin as an M-of-N of enrolled hospitals.
/// @notice Once Roles' admin is handed to this contract (two steps:
/// `Roles.transferAdmin`, then a proposal here that calls `acceptAdmin`),
/// every admin act (enrolling or revoking entities and physicians, releasing a
/// disputed device, changing the threshold) is a proposal by an active
/// hospital, approved by `threshold` active hospitals, executed once within
/// PROPOSAL_LIFETIME. Approvals count only hospitals still active at execution,
/// and no execution may leave fewer active hospitals than the threshold (the
/// consortium could never act again).
contract Consortium {
    struct Proposal {
        address proposer;
        address target;
        uint64 createdAt;
        bool executed;
        bool cancelled;
        bytes data;
    }

    uint64 public constant PROPOSAL_LIFETIME = 7 days;
    /// Bounds the approvals counted at execution.
    uint256 public constant MAX_APPROVERS = 64;

    Roles public immutable roles;
    uint32 public threshold;

    Proposal[] private proposals;
    mapping(uint256 => address[]) private approvers;
    mapping(uint256 => mapping(address => bool)) public hasApproved;

    event Proposed(uint256 indexed id, address indexed proposer, address indexed target, bytes data);
    event Approved(uint256 indexed id, address indexed hospital);
    event Executed(uint256 indexed id, address indexed by);
    event Cancelled(uint256 indexed id);
    event ThresholdChanged(uint32 previous, uint32 threshold);

    error NotActiveHospital(address caller);
    error UnknownProposal(uint256 id);
    error ProposalClosed(uint256 id);
    error ProposalExpired(uint256 id);
    error AlreadyApproved(uint256 id, address hospital);
    error TooManyApprovers(uint256 id);
    error NotEnoughApprovals(uint256 id, uint256 approvals, uint32 threshold);
    error NotProposer(address caller);
    error OnlyByProposal();
    error InvalidThreshold(uint32 threshold, uint32 activeHospitals);
    error WouldLockConsortium(uint32 activeHospitals, uint32 threshold);

    constructor(Roles roleRegistry, uint32 initialThreshold) {
        roles = roleRegistry;
        _checkThreshold(initialThreshold);
        threshold = initialThreshold;
        emit ThresholdChanged(0, initialThreshold);
    }

    modifier onlyHospital() {
        if (!roles.isActiveHospital(msg.sender)) revert NotActiveHospital(msg.sender);
        _;
    }

    function propose(address target, bytes calldata data) external onlyHospital returns (uint256 id) {
        proposals.push(
            Proposal({
                proposer: msg.sender,
                target: target,
                createdAt: uint64(block.timestamp),
                executed: false,
                cancelled: false,
                data: data
            })
        );
        id = proposals.length;
        emit Proposed(id, msg.sender, target, data);
        _approve(id);
    }

    function approve(uint256 id) external onlyHospital {
        _open(id);
        _approve(id);
    }

    /// Runs the proposal's call if enough hospitals, active now, approved it.
    function execute(uint256 id) external onlyHospital {
        Proposal storage p = _open(id);
        uint256 count = approvalCount(id);
        if (count < threshold) revert NotEnoughApprovals(id, count, threshold);
        p.executed = true;
        (bool ok, bytes memory result) = p.target.call(p.data);
        if (!ok) {
            // Bubble the target's own error up, so callers see why.
            assembly {
                revert(add(result, 32), mload(result))
            }
        }
        uint32 hospitals = roles.activeHospitals();
        if (hospitals < threshold) revert WouldLockConsortium(hospitals, threshold);
        emit Executed(id, msg.sender);
    }

    function cancel(uint256 id) external {
        Proposal storage p = _open(id);
        if (msg.sender != p.proposer) revert NotProposer(msg.sender);
        p.cancelled = true;
        emit Cancelled(id);
    }

    /// Only through a proposal of this contract's own.
    function setThreshold(uint32 newThreshold) external {
        if (msg.sender != address(this)) revert OnlyByProposal();
        _checkThreshold(newThreshold);
        emit ThresholdChanged(threshold, newThreshold);
        threshold = newThreshold;
    }

    function _checkThreshold(uint32 m) private view {
        uint32 hospitals = roles.activeHospitals();
        if (m == 0 || m > hospitals) revert InvalidThreshold(m, hospitals);
    }

    function _open(uint256 id) private view returns (Proposal storage p) {
        if (id == 0 || id > proposals.length) revert UnknownProposal(id);
        p = proposals[id - 1];
        if (p.executed || p.cancelled) revert ProposalClosed(id);
        if (block.timestamp > p.createdAt + PROPOSAL_LIFETIME) revert ProposalExpired(id);
    }

    function _approve(uint256 id) private {
        if (hasApproved[id][msg.sender]) revert AlreadyApproved(id, msg.sender);
        if (approvers[id].length >= MAX_APPROVERS) revert TooManyApprovers(id);
        hasApproved[id][msg.sender] = true;
        approvers[id].push(msg.sender);
        emit Approved(id, msg.sender);
    }

    /// Approvals by hospitals that are active now.
    function approvalCount(uint256 id) public view returns (uint256 count) {
        address[] storage list = approvers[id];
        for (uint256 i = 0; i < list.length; i++) {
            if (roles.isActiveHospital(list[i])) count++;
        }
    }

    function proposalOf(uint256 id) external view returns (Proposal memory) {
        if (id == 0 || id > proposals.length) revert UnknownProposal(id);
        return proposals[id - 1];
    }

    function approversOf(uint256 id) external view returns (address[] memory) {
        return approvers[id];
    }

    function proposalCount() external view returns (uint256) {
        return proposals.length;
    }
}
