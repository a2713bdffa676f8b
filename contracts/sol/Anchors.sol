// SPDX-License-Identifier: GPL-3.0-only
pragma solidity 0.8.30;

import {Roles} from "./Roles.sol";

/// @title Anchors: hashes of the patients' sealed reading batches.
/// @notice A hub anchors a batch root (a blob hash or a Merkle root) with the
/// time window it covers and its reading count. A root is anchored once: a
/// resend of the same root reverts with AlreadyAnchored, which lets the hub's
/// outbox retry safely (exactly once on chain).
contract Anchors {
    struct Anchor {
        address patient;
        address submitter;
        /// Unix seconds, inclusive.
        uint64 windowStart;
        uint64 windowEnd;
        uint32 count;
        uint64 anchoredAt;
        uint64 seq;
    }

    Roles public immutable roles;

    mapping(bytes32 => Anchor) private anchors;
    mapping(address => uint64) public anchorCount;

    event BatchAnchored(
        address indexed patient,
        bytes32 indexed root,
        address indexed submitter,
        uint64 windowStart,
        uint64 windowEnd,
        uint32 count,
        uint64 seq
    );

    error NotActingForPatient(address caller, address patient);
    error ZeroRoot();
    error EmptyBatch();
    error InvalidWindow(uint64 windowStart, uint64 windowEnd);
    error AlreadyAnchored(bytes32 root);

    constructor(Roles roleRegistry) {
        roles = roleRegistry;
    }

    function anchor(address patient, bytes32 root, uint64 windowStart, uint64 windowEnd, uint32 count) external {
        if (!roles.actsFor(msg.sender, patient)) revert NotActingForPatient(msg.sender, patient);
        if (root == bytes32(0)) revert ZeroRoot();
        if (count == 0) revert EmptyBatch();
        if (windowEnd < windowStart) revert InvalidWindow(windowStart, windowEnd);
        if (anchors[root].anchoredAt != 0) revert AlreadyAnchored(root);
        uint64 seq = ++anchorCount[patient];
        anchors[root] = Anchor({
            patient: patient,
            submitter: msg.sender,
            windowStart: windowStart,
            windowEnd: windowEnd,
            count: count,
            anchoredAt: uint64(block.timestamp),
            seq: seq
        });
        emit BatchAnchored(patient, root, msg.sender, windowStart, windowEnd, count, seq);
    }

    function anchorOf(bytes32 root) external view returns (Anchor memory) {
        return anchors[root];
    }

    function isAnchored(bytes32 root) external view returns (bool) {
        return anchors[root].anchoredAt != 0;
    }
}
