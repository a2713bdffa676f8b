// SPDX-License-Identifier: GPL-3.0-only
pragma solidity 0.8.30;

import {Roles} from "./Roles.sol";

/// @title Permissions: what a patient lets each physician do.
/// @notice The patient grants a physician read and/or write permission under
/// the policy id that proxy re-encryption uses (the 2020 paper's Algorithm 3),
/// optionally until an expiry (temporary and emergency access). Only the
/// patient grants and revokes: a stolen hub key must not widen access. A proxy
/// asks `mayReencrypt` before it re-encrypts anything.
contract Permissions {
    struct Grant {
        bytes32 policyId;
        uint64 grantedAt;
        /// Unix seconds; zero means no expiry.
        uint64 expiresAt;
        bool read;
        bool write;
        bool active;
    }

    Roles public immutable roles;

    mapping(address => mapping(address => Grant)) private grants;

    event PermissionGranted(
        address indexed patient,
        address indexed grantee,
        bytes32 indexed policyId,
        bool read,
        bool write,
        uint64 expiresAt
    );
    event PermissionRevoked(address indexed patient, address indexed grantee, bytes32 indexed policyId);

    error NotPatient(address caller);
    error NotActivePhysician(address grantee);
    error ZeroPolicyId();
    error NothingGranted();
    error ExpiryInPast(uint64 expiresAt);
    error NoActiveGrant(address patient, address grantee);

    constructor(Roles roleRegistry) {
        roles = roleRegistry;
    }

    /// Grants, or replaces, the caller's permission for `grantee`.
    function grant(address grantee, bytes32 policyId, bool read, bool write, uint64 expiresAt) external {
        if (!roles.isPatient(msg.sender)) revert NotPatient(msg.sender);
        if (!roles.isActivePhysician(grantee)) revert NotActivePhysician(grantee);
        if (policyId == bytes32(0)) revert ZeroPolicyId();
        if (!read && !write) revert NothingGranted();
        if (expiresAt != 0 && expiresAt <= block.timestamp) revert ExpiryInPast(expiresAt);
        grants[msg.sender][grantee] = Grant({
            policyId: policyId,
            grantedAt: uint64(block.timestamp),
            expiresAt: expiresAt,
            read: read,
            write: write,
            active: true
        });
        emit PermissionGranted(msg.sender, grantee, policyId, read, write, expiresAt);
    }

    function revoke(address grantee) external {
        Grant storage g = grants[msg.sender][grantee];
        if (!g.active) revert NoActiveGrant(msg.sender, grantee);
        g.active = false;
        emit PermissionRevoked(msg.sender, grantee, g.policyId);
    }

    function grantOf(address patient, address grantee) external view returns (Grant memory) {
        return grants[patient][grantee];
    }

    /// A grant is live while active, unexpired, and its grantee is still an
    /// active physician (revoking a physician or their hospital ends access).
    function _live(address patient, address grantee) private view returns (Grant storage g, bool live) {
        g = grants[patient][grantee];
        live = g.active && (g.expiresAt == 0 || block.timestamp < g.expiresAt) && roles.isActivePhysician(grantee);
    }

    function canRead(address patient, address grantee) external view returns (bool) {
        (Grant storage g, bool live) = _live(patient, grantee);
        return live && g.read;
    }

    function canWrite(address patient, address grantee) external view returns (bool) {
        (Grant storage g, bool live) = _live(patient, grantee);
        return live && g.write;
    }

    /// The proxy's decision: re-encrypt under `policyId` for `grantee`?
    function mayReencrypt(address patient, address grantee, bytes32 policyId) external view returns (bool) {
        (Grant storage g, bool live) = _live(patient, grantee);
        return live && g.read && g.policyId == policyId;
    }
}
