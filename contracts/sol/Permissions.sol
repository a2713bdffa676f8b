// SPDX-License-Identifier: GPL-3.0-only
pragma solidity 0.8.30;

import {Roles} from "./Roles.sol";
import {validDataKinds} from "./DataKinds.sol";

/// @title Permissions: what each physician may read of a patient's data.
/// @notice The patient grants a physician read access under the policy id that
/// identifies the proxy re-encryption key fragments (the 2020 paper's
/// Algorithm 3), scoped to kinds of data and a window of data time, until an
/// optional expiry. A grant records the physician's enrolment epoch: revoking
/// the physician (or their entity) ends it for good, and a re-enrolled
/// physician starts with no grants. Only the patient's key grants and revokes
/// (a stolen hub key must not widen access).
///
/// Emergency: the patient sets an emergency policy (kinds, how far back, how
/// long); a physician of an active emergency service opens a time-limited
/// grant under it without the patient's signature (the patient may be
/// unconscious). It is recorded like any grant and announced by
/// EmergencyAccessOpened, which the patient's hub turns into a notification.
///
/// Grants are kept (revoked or expired ones too) and listable per patient and
/// per physician, a page at a time.
contract Permissions {
    struct Grant {
        address patient;
        address grantee;
        /// The grantee's entity and enrolment epoch when granted.
        address entity;
        uint32 epoch;
        bytes32 policyId;
        /// DataKinds bits the grantee may read.
        uint16 kinds;
        bool emergency;
        bool revoked;
        /// Data time window, unix seconds, inclusive; dataUntil zero: open.
        uint64 dataFrom;
        uint64 dataUntil;
        uint64 grantedAt;
        /// Unix seconds; zero: no expiry.
        uint64 expiresAt;
    }

    struct EmergencyPolicy {
        uint16 kinds;
        /// Longest emergency access, in seconds.
        uint32 maxDuration;
        /// How far back the emergency physician may read, in seconds.
        uint32 lookback;
        bool enabled;
    }

    uint32 public constant MAX_EMERGENCY_DURATION = 3 days;
    uint32 public constant MAX_EMERGENCY_LOOKBACK = 90 days;
    uint256 public constant MAX_PAGE = 100;

    Roles public immutable roles;

    Grant[] private grants;
    /// Patient => grantee => the id (index + 1) of the latest grant.
    mapping(address => mapping(address => uint256)) public currentGrantId;
    mapping(address => uint256[]) private grantsByPatient;
    mapping(address => uint256[]) private grantsByGrantee;
    mapping(address => EmergencyPolicy) private emergencyPolicies;

    event PermissionGranted(
        address indexed patient,
        address indexed grantee,
        uint256 indexed grantId,
        bytes32 policyId,
        uint16 kinds,
        uint64 dataFrom,
        uint64 dataUntil,
        uint64 expiresAt,
        bool emergency
    );
    event PermissionRevoked(address indexed patient, address indexed grantee, uint256 indexed grantId);
    event EmergencyPolicySet(address indexed patient, uint16 kinds, uint32 maxDuration, uint32 lookback, bool enabled);
    event EmergencyAccessOpened(
        address indexed patient, address indexed physician, uint256 indexed grantId, address entity, uint64 expiresAt
    );

    error NotPatient(address caller);
    error NotActivePhysician(address grantee);
    error NotEmergencyPhysician(address caller);
    error ZeroPolicyId();
    error InvalidKinds(uint16 kinds);
    error ExpiryInPast(uint64 expiresAt);
    error InvalidDataWindow(uint64 dataFrom, uint64 dataUntil);
    error NoActiveGrant(address patient, address grantee);
    error NoLiveGrant(address patient, address grantee);
    error OutOfScope(uint256 grantId);
    error AlreadyGranted(uint256 grantId);
    error NoEmergencyPolicy(address patient);
    error InvalidEmergencyPolicy();
    error PageTooLarge(uint256 limit);

    constructor(Roles roleRegistry) {
        roles = roleRegistry;
    }

    function _callerPatient() private view returns (address patient) {
        patient = roles.patientOfKey(msg.sender);
        if (patient == address(0)) revert NotPatient(msg.sender);
    }

    /// Grants `grantee` read access, replacing the patient's earlier grant to them.
    function grant(
        address grantee,
        bytes32 policyId,
        uint16 kinds,
        uint64 dataFrom,
        uint64 dataUntil,
        uint64 expiresAt
    ) external returns (uint256 grantId) {
        address patient = _callerPatient();
        if (policyId == bytes32(0)) revert ZeroPolicyId();
        if (!validDataKinds(kinds)) revert InvalidKinds(kinds);
        if (dataUntil != 0 && dataUntil < dataFrom) revert InvalidDataWindow(dataFrom, dataUntil);
        if (expiresAt != 0 && expiresAt <= block.timestamp) revert ExpiryInPast(expiresAt);
        _endCurrent(patient, grantee);
        grantId = _push(patient, grantee, policyId, kinds, dataFrom, dataUntil, expiresAt, false);
    }

    function revoke(address grantee) external {
        address patient = _callerPatient();
        uint256 id = currentGrantId[patient][grantee];
        if (id == 0 || grants[id - 1].revoked) revert NoActiveGrant(patient, grantee);
        _endCurrent(patient, grantee);
    }

    function setEmergencyPolicy(uint16 kinds, uint32 maxDuration, uint32 lookback, bool enabled) external {
        address patient = _callerPatient();
        if (enabled) {
            if (!validDataKinds(kinds)) revert InvalidKinds(kinds);
            if (maxDuration == 0 || maxDuration > MAX_EMERGENCY_DURATION || lookback > MAX_EMERGENCY_LOOKBACK) {
                revert InvalidEmergencyPolicy();
            }
        }
        emergencyPolicies[patient] = EmergencyPolicy(kinds, maxDuration, lookback, enabled);
        emit EmergencyPolicySet(patient, kinds, maxDuration, lookback, enabled);
    }

    /// A physician of an active emergency service opens access under the
    /// patient's emergency policy, for at most its duration.
    function emergencyAccess(address patient) external returns (uint256 grantId) {
        if (!roles.isEmergencyPhysician(msg.sender)) revert NotEmergencyPhysician(msg.sender);
        EmergencyPolicy memory policy = emergencyPolicies[patient];
        if (!policy.enabled || !roles.isPatient(patient)) revert NoEmergencyPolicy(patient);
        uint256 current = currentGrantId[patient][msg.sender];
        if (current != 0 && isLive(current)) revert AlreadyGranted(current);
        _endCurrent(patient, msg.sender);
        uint64 expiresAt = uint64(block.timestamp) + policy.maxDuration;
        uint64 dataFrom = uint64(block.timestamp) - policy.lookback;
        bytes32 policyId = keccak256(abi.encode("glyco.emergency", patient, msg.sender, grants.length + 1));
        grantId = _push(patient, msg.sender, policyId, policy.kinds, dataFrom, 0, expiresAt, true);
        emit EmergencyAccessOpened(patient, msg.sender, grantId, grants[grantId - 1].entity, expiresAt);
    }

    function _endCurrent(address patient, address grantee) private {
        uint256 id = currentGrantId[patient][grantee];
        if (id == 0 || grants[id - 1].revoked) return;
        grants[id - 1].revoked = true;
        emit PermissionRevoked(patient, grantee, id);
    }

    function _push(
        address patient,
        address grantee,
        bytes32 policyId,
        uint16 kinds,
        uint64 dataFrom,
        uint64 dataUntil,
        uint64 expiresAt,
        bool emergency
    ) private returns (uint256 id) {
        uint32 epoch = roles.activePhysicianEpoch(grantee);
        if (epoch == 0) revert NotActivePhysician(grantee);
        grants.push(
            Grant({
                patient: patient,
                grantee: grantee,
                entity: roles.physicianOf(grantee).entity,
                epoch: epoch,
                policyId: policyId,
                kinds: kinds,
                emergency: emergency,
                revoked: false,
                dataFrom: dataFrom,
                dataUntil: dataUntil,
                grantedAt: uint64(block.timestamp),
                expiresAt: expiresAt
            })
        );
        id = grants.length;
        currentGrantId[patient][grantee] = id;
        grantsByPatient[patient].push(id);
        grantsByGrantee[grantee].push(id);
        emit PermissionGranted(patient, grantee, id, policyId, kinds, dataFrom, dataUntil, expiresAt, emergency);
    }

    // ---- decisions ---------------------------------------------------------

    /// Not revoked, not expired, and the grantee is still active in the same
    /// enrolment epoch as when granted.
    function isLive(uint256 grantId) public view returns (bool) {
        if (grantId == 0 || grantId > grants.length) return false;
        Grant storage g = grants[grantId - 1];
        if (g.revoked) return false;
        if (g.expiresAt != 0 && block.timestamp >= g.expiresAt) return false;
        return roles.activePhysicianEpoch(g.grantee) == g.epoch;
    }

    function canRead(address patient, address grantee) external view returns (bool) {
        return isLive(currentGrantId[patient][grantee]);
    }

    /// The grant that lets `grantee` read data of `kinds` from the window
    /// [windowStart, windowEnd]; reverts with why not.
    function check(address patient, address grantee, uint16 kinds, uint64 windowStart, uint64 windowEnd)
        external
        view
        returns (uint256 grantId, bool emergency)
    {
        grantId = currentGrantId[patient][grantee];
        if (!isLive(grantId)) revert NoLiveGrant(patient, grantee);
        Grant storage g = grants[grantId - 1];
        bool kindsCovered = kinds != 0 && kinds & ~g.kinds == 0;
        bool windowCovered = windowStart >= g.dataFrom && (g.dataUntil == 0 || windowEnd <= g.dataUntil);
        if (!kindsCovered || !windowCovered) revert OutOfScope(grantId);
        emergency = g.emergency;
    }

    // ---- listing -------------------------------------------------------------

    /// The grant (all zero for an id that does not exist).
    function grantOf(uint256 grantId) external view returns (Grant memory none) {
        if (grantId == 0 || grantId > grants.length) return none;
        return grants[grantId - 1];
    }

    function emergencyPolicyOf(address patient) external view returns (EmergencyPolicy memory) {
        return emergencyPolicies[patient];
    }

    function grantCountOfPatient(address patient) external view returns (uint256) {
        return grantsByPatient[patient].length;
    }

    function grantCountOfGrantee(address grantee) external view returns (uint256) {
        return grantsByGrantee[grantee].length;
    }

    /// Up to `limit` (at most MAX_PAGE) of the patient's grants from `offset`, oldest first.
    function grantsOfPatient(address patient, uint256 offset, uint256 limit)
        external
        view
        returns (uint256[] memory ids, Grant[] memory page)
    {
        return _page(grantsByPatient[patient], offset, limit);
    }

    /// Up to `limit` (at most MAX_PAGE) of the physician's grants from `offset`, oldest first.
    function grantsOfGrantee(address grantee, uint256 offset, uint256 limit)
        external
        view
        returns (uint256[] memory ids, Grant[] memory page)
    {
        return _page(grantsByGrantee[grantee], offset, limit);
    }

    function _page(uint256[] storage list, uint256 offset, uint256 limit)
        private
        view
        returns (uint256[] memory ids, Grant[] memory page)
    {
        if (limit > MAX_PAGE) revert PageTooLarge(limit);
        uint256 end = offset + limit;
        if (end > list.length) end = list.length;
        uint256 n = offset < end ? end - offset : 0;
        ids = new uint256[](n);
        page = new Grant[](n);
        for (uint256 i = 0; i < n; i++) {
            ids[i] = list[offset + i];
            page[i] = grants[ids[i] - 1];
        }
    }
}
