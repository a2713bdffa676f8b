// SPDX-License-Identifier: GPL-3.0-only
pragma solidity 0.8.30;

import {Roles} from "./Roles.sol";
import {validDataKinds} from "./DataKinds.sol";

/// @title Anchors: hashes of the patients' sealed reading batches.
/// @notice A hub anchors a batch root (a blob hash or a Merkle root) with the
/// time window it covers, its reading count and the kinds of data in it.
/// Anchors are keyed by (patient, root): nobody can take a patient's root
/// first by copying it from the mempool, and a resend by the same patient
/// reverts with AlreadyAnchored, which the outbox confirms against
/// `anchorOf` before it treats the batch as anchored.
contract Anchors {
    struct Anchor {
        address submitter;
        /// Unix seconds, inclusive.
        uint64 windowStart;
        uint64 windowEnd;
        uint32 count;
        /// DataKinds bits.
        uint16 kinds;
        uint64 anchoredAt;
        uint64 seq;
    }

    Roles public immutable roles;

    mapping(address => mapping(bytes32 => Anchor)) private anchors;
    mapping(address => uint64) public anchorCount;

    event BatchAnchored(
        address indexed patient,
        bytes32 indexed root,
        address indexed submitter,
        uint64 windowStart,
        uint64 windowEnd,
        uint32 count,
        uint16 kinds,
        uint64 seq
    );

    error NotActingForPatient(address caller, address patient);
    error ZeroRoot();
    error EmptyBatch();
    error InvalidWindow(uint64 windowStart, uint64 windowEnd);
    error InvalidKinds(uint16 kinds);
    error AlreadyAnchored(address patient, bytes32 root);

    constructor(Roles roleRegistry) {
        roles = roleRegistry;
    }

    function anchor(address patient, bytes32 root, uint64 windowStart, uint64 windowEnd, uint32 count, uint16 kinds)
        external
    {
        if (!roles.actsFor(msg.sender, patient)) revert NotActingForPatient(msg.sender, patient);
        if (root == bytes32(0)) revert ZeroRoot();
        if (count == 0) revert EmptyBatch();
        if (windowEnd < windowStart) revert InvalidWindow(windowStart, windowEnd);
        if (!validDataKinds(kinds)) revert InvalidKinds(kinds);
        Anchor storage slot = anchors[patient][root];
        if (slot.anchoredAt != 0) revert AlreadyAnchored(patient, root);
        uint64 seq = ++anchorCount[patient];
        anchors[patient][root] = Anchor({
            submitter: msg.sender,
            windowStart: windowStart,
            windowEnd: windowEnd,
            count: count,
            kinds: kinds,
            anchoredAt: uint64(block.timestamp),
            seq: seq
        });
        emit BatchAnchored(patient, root, msg.sender, windowStart, windowEnd, count, kinds, seq);
    }

    /// The anchor of `root` for `patient` (all zero when not anchored).
    function anchorOf(address patient, bytes32 root) external view returns (Anchor memory) {
        return anchors[patient][root];
    }

    function isAnchored(address patient, bytes32 root) external view returns (bool) {
        return anchors[patient][root].anchoredAt != 0;
    }
}
