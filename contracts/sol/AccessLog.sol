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
    /// The most anchored roots one access may cover (a day of one-minute
    /// anchors is 1,440; the loop stays far below a block's gas).
    uint256 public constant MAX_ROOTS_PER_ACCESS = 2048;

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
    error RootsMismatch(bytes32 dataId);
    error TooManyRoots(uint256 count);

    /// The roots a set access covered (its AccessLogged entry carries their
    /// hash as dataId).
    event AccessSetRoots(address indexed patient, uint64 indexed seq, bytes32[] roots);

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
        _checkCaller(request, physicianSignature);
        (uint256 grantId, bool emergency) = _coveringGrant(request);
        seq = ++accessCount[request.patient];
        _emitLogged(request, grantId, emergency ? Action.EmergencyRead : Action.Read, seq);
    }

    /// Decides and logs one access to a set of anchored roots (the batches
    /// of a day, say) in one transaction: the physician signs the request
    /// with `dataId = keccak256(abi.encodePacked(roots))`; every root must be
    /// anchored for the patient, and one live grant must cover the union of
    /// their kinds and time windows.
    function recordAccessSet(
        AccessRequest calldata request,
        bytes32[] calldata roots,
        bytes calldata physicianSignature
    ) external returns (uint64 seq) {
        if (roots.length == 0 || roots.length > MAX_ROOTS_PER_ACCESS) revert TooManyRoots(roots.length);
        if (keccak256(abi.encodePacked(roots)) != request.dataId) revert RootsMismatch(request.dataId);
        _checkCaller(request, physicianSignature);
        uint16 kinds;
        uint64 windowStart = type(uint64).max;
        uint64 windowEnd;
        for (uint256 i = 0; i < roots.length; i++) {
            Anchors.Anchor memory batch = anchors.anchorOf(request.patient, roots[i]);
            if (batch.anchoredAt == 0) revert NotAnchored(request.patient, roots[i]);
            kinds |= batch.kinds;
            if (batch.windowStart < windowStart) windowStart = batch.windowStart;
            if (batch.windowEnd > windowEnd) windowEnd = batch.windowEnd;
        }
        (uint256 grantId, bool emergency) =
            permissions.check(request.patient, request.physician, kinds, windowStart, windowEnd);
        seq = ++accessCount[request.patient];
        _emitLogged(request, grantId, emergency ? Action.EmergencyRead : Action.Read, seq);
        emit AccessSetRoots(request.patient, seq, roots);
    }

    /// Caller, lifetime, signature and nonce: what every access checks first.
    function _checkCaller(AccessRequest calldata request, bytes calldata physicianSignature) private {
        if (!roles.isActiveProxy(msg.sender)) revert NotActiveProxy(msg.sender);
        if (request.proxy != msg.sender) revert WrongProxy(msg.sender, request.proxy);
        if (block.timestamp > request.deadline) revert RequestExpired(request.deadline);
        if (request.deadline > block.timestamp + MAX_REQUEST_LIFETIME) revert DeadlineTooFar(request.deadline);
        address signer = _signer(hashRequest(request), physicianSignature);
        if (signer != request.physician) revert WrongSigner(request.physician, signer);
        _useNonce(request.physician, request.nonce);
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
