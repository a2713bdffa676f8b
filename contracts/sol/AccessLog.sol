// SPDX-License-Identifier: GPL-3.0-only
pragma solidity 0.8.30;

import {Eip712} from "./Eip712.sol";
import {Roles} from "./Roles.sol";
import {Permissions} from "./Permissions.sol";
import {Anchors} from "./Anchors.sol";

/// @title AccessLog: every access to a patient's data, decided and logged in one transaction.
/// @notice A hospital's re-encryption proxy calls `recordAccess` with the
/// physician's signed request (EIP-712 `AccessRequest`) before it re-encrypts
/// anything. The contract checks that the physician signed it, that it was not
/// used before and has not expired, that the caller is an active proxy of an
/// active hospital named in the request, that the data is a batch anchored for
/// the patient, and that a live grant covers the batch's kinds and time window;
/// only then does it log the access. Nobody can log an access no grant allows,
/// and a proxy cannot re-encrypt unlogged: the log entry is the decision.
contract AccessLog is Eip712 {
    enum Action {
        Read,
        EmergencyRead
    }

    struct AccessRequest {
        address patient;
        address physician;
        address proxy;
        bytes32 dataId;
        uint256 nonce;
        uint64 deadline;
    }

    bytes32 public constant ACCESS_REQUEST_TYPEHASH = keccak256(
        "AccessRequest(address patient,address physician,address proxy,bytes32 dataId,uint256 nonce,uint64 deadline)"
    );
    /// A signed request is good for at most this long.
    uint64 public constant MAX_REQUEST_LIFETIME = 1 hours;

    Roles public immutable roles;
    Permissions public immutable permissions;
    Anchors public immutable anchors;

    mapping(address => uint64) public accessCount;
    /// Physician => nonce / 256 => used bits: requests can be signed and used in any order.
    mapping(address => mapping(uint256 => uint256)) private usedNonces;

    event AccessLogged(
        address indexed patient,
        address indexed physician,
        bytes32 indexed dataId,
        address proxy,
        uint256 grantId,
        Action action,
        uint64 at,
        uint64 seq,
        uint256 nonce
    );

    error NotActiveProxy(address caller);
    error WrongProxy(address caller, address named);
    error RequestExpired(uint64 deadline);
    error DeadlineTooFar(uint64 deadline);
    error WrongSigner(address expected, address actual);
    error NonceUsed(address physician, uint256 nonce);
    error NotAnchored(address patient, bytes32 dataId);

    constructor(Roles roleRegistry, Permissions permissionRegistry, Anchors anchorRegistry)
        Eip712("Glyco AccessLog", "2")
    {
        roles = roleRegistry;
        permissions = permissionRegistry;
        anchors = anchorRegistry;
    }

    /// Decides and logs one access; returns its position in the patient's log.
    function recordAccess(AccessRequest calldata request, bytes calldata physicianSignature)
        external
        returns (uint64 seq)
    {
        if (!roles.isActiveProxy(msg.sender)) revert NotActiveProxy(msg.sender);
        if (request.proxy != msg.sender) revert WrongProxy(msg.sender, request.proxy);
        if (block.timestamp > request.deadline) revert RequestExpired(request.deadline);
        if (request.deadline > block.timestamp + MAX_REQUEST_LIFETIME) revert DeadlineTooFar(request.deadline);
        address signer = _signer(hashRequest(request), physicianSignature);
        if (signer != request.physician) revert WrongSigner(request.physician, signer);
        _useNonce(request.physician, request.nonce);

        (uint256 grantId, bool emergency) = _coveringGrant(request);
        seq = ++accessCount[request.patient];
        _emitLogged(request, grantId, emergency ? Action.EmergencyRead : Action.Read, seq);
    }

    /// The live grant that covers the anchored batch's kinds and window.
    function _coveringGrant(AccessRequest calldata request) private view returns (uint256, bool) {
        Anchors.Anchor memory batch = anchors.anchorOf(request.patient, request.dataId);
        if (batch.anchoredAt == 0) revert NotAnchored(request.patient, request.dataId);
        return permissions.check(request.patient, request.physician, batch.kinds, batch.windowStart, batch.windowEnd);
    }

    function _emitLogged(AccessRequest calldata request, uint256 grantId, Action action, uint64 seq) private {
        emit AccessLogged(
            request.patient,
            request.physician,
            request.dataId,
            msg.sender,
            grantId,
            action,
            uint64(block.timestamp),
            seq,
            request.nonce
        );
    }

    function hashRequest(AccessRequest calldata r) public pure returns (bytes32) {
        return keccak256(
            abi.encode(ACCESS_REQUEST_TYPEHASH, r.patient, r.physician, r.proxy, r.dataId, r.nonce, r.deadline)
        );
    }

    function isNonceUsed(address physician, uint256 nonce) external view returns (bool) {
        return usedNonces[physician][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    function _useNonce(address physician, uint256 nonce) private {
        uint256 bit = 1 << (nonce & 0xff);
        uint256 word = usedNonces[physician][nonce >> 8];
        if (word & bit != 0) revert NonceUsed(physician, nonce);
        usedNonces[physician][nonce >> 8] = word | bit;
    }
}
