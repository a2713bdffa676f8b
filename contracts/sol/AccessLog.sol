// SPDX-License-Identifier: GPL-3.0-only
pragma solidity 0.8.30;

import {Roles} from "./Roles.sol";

/// @title AccessLog: who accessed which data of which patient, and when.
/// @notice A hospital's re-encryption proxy records each access it serves (for
/// the physician it served), and a physician may record their own. Entries are
/// events, indexed by patient, accessor and data id; the contract keeps only a
/// per-patient counter.
contract AccessLog {
    enum Action {
        Read,
        Reencrypt,
        EmergencyRead,
        Denied
    }

    Roles public immutable roles;

    mapping(address => uint64) public accessCount;

    event AccessLogged(
        address indexed patient,
        address indexed accessor,
        bytes32 indexed dataId,
        address recorder,
        Action action,
        uint64 at,
        uint64 seq
    );

    error NotPatient(address account);
    error NotRecorder(address caller, address accessor);

    constructor(Roles roleRegistry) {
        roles = roleRegistry;
    }

    function logAccess(address patient, address accessor, bytes32 dataId, Action action) external {
        if (!roles.isPatient(patient)) revert NotPatient(patient);
        bool selfReport = msg.sender == accessor && roles.isActivePhysician(msg.sender);
        if (!selfReport && !roles.isActiveHospital(msg.sender)) revert NotRecorder(msg.sender, accessor);
        uint64 seq = ++accessCount[patient];
        emit AccessLogged(patient, accessor, dataId, msg.sender, action, uint64(block.timestamp), seq);
    }
}
