// SPDX-License-Identifier: GPL-3.0-only
pragma solidity 0.8.30;

import {Eip712} from "./Eip712.sol";

/// @title Roles: who is who in the consortium, each with their own consent.
/// @notice The consortium admin (in production the Consortium contract, an
/// M-of-N of hospitals) offers roles to medical entities and physicians; an
/// active physician offers registration to a patient; an active hospital
/// offers the proxy role to its re-encryption servers. No role is bound until
/// the key being bound accepts it (`acceptRole`), so nobody can squat a key.
/// A hub is bound by its patient with the hub's own EIP-712 consent.
///
/// Every enrolment of an entity or physician starts a new epoch: grants record
/// the physician's epoch, so a revocation ends them for good even if the
/// physician (or their entity) is enrolled again later.
///
/// A patient is known by a record address (the address of the first key that
/// accepted registration); the key that acts for the record can be rotated with
/// the registering physician's co-signature, and the old key is retired for
/// ever. Devices, grants, anchors and the access log are keyed by the record.
contract Roles is Eip712 {
    enum Role {
        None,
        Entity,
        Physician,
        Patient,
        Hub,
        Proxy,
        Retired
    }

    enum EntityKind {
        None,
        Hospital,
        Clinic,
        Lab,
        EmergencyService
    }

    struct Entity {
        EntityKind kind;
        bool active;
        /// 1 at the first enrolment, +1 at every re-enrolment.
        uint32 epoch;
        string name;
    }

    struct Physician {
        address entity;
        /// The entity's epoch when the physician was enrolled.
        uint32 entityEpoch;
        /// 1 at the first enrolment, +1 at every re-enrolment.
        uint32 epoch;
        bool active;
    }

    struct Proxy {
        address hospital;
        uint32 hospitalEpoch;
        bool active;
        /// The proxy's iroh node id (ed25519 public key).
        bytes32 nodeId;
    }

    struct Hub {
        address patient;
        /// The patient delegated device registration to this hub.
        bool mayManageDevices;
    }

    /// An iroh node (a clinic's replica, a proxy's transport) that an entity
    /// runs; it counts only while the entity is active in the same epoch.
    struct Node {
        address entity;
        uint32 entityEpoch;
    }

    struct Offer {
        Role role;
        EntityKind kind;
        /// The physician's entity, or the proxy's hospital.
        address entity;
        uint32 entityEpoch;
        uint64 expiresAt;
        bytes32 nodeId;
        string name;
    }

    uint64 public constant OFFER_LIFETIME = 30 days;
    uint256 public constant MAX_NAME_BYTES = 64;
    bytes32 public constant HUB_CONSENT_TYPEHASH =
        keccak256("HubConsent(address hub,address patient,uint64 nonce,uint64 deadline)");
    bytes32 public constant KEY_ROTATION_TYPEHASH =
        keccak256("KeyRotation(address patient,address oldKey,address newKey,uint64 deadline)");

    uint256 public constant PRE_KEY_BYTES = 33;
    uint32 public constant MAX_NODES_PER_ENTITY = 16;

    address public admin;
    address public pendingAdmin;
    mapping(address => Role) public roleOf;
    mapping(address => Entity) private entities;
    mapping(address => Physician) private physicians;
    mapping(address => Proxy) private proxies;
    mapping(address => Hub) private hubs;
    /// Consumed by each hub authorisation, so a consent is used once.
    mapping(address => uint64) public hubConsentNonce;
    /// Patient record => the key that currently acts for it.
    mapping(address => address) public patientKey;
    /// A current patient key => its patient record.
    mapping(address => address) public patientOfKey;
    /// Patient record => the physician who registered it.
    mapping(address => address) public registeredBy;
    /// Account => offerer => pending offer.
    mapping(address => mapping(address => Offer)) private offers;
    /// Patient record => umbral public key (a compressed secp256k1 point):
    /// the hub seals the patient's reading batches to it.
    mapping(address => bytes) private patientPreKeys;
    /// Physician => umbral public key (the receiving key of re-encryption).
    mapping(address => bytes) private physicianPreKeys;
    /// iroh node id (ed25519 public key) => the entity that runs it.
    mapping(bytes32 => Node) private nodes;
    mapping(address => uint32) public nodeCount;
    uint32 public activeHospitals;

    event AdminTransferStarted(address indexed admin, address indexed pendingAdmin);
    event AdminTransferred(address indexed previousAdmin, address indexed newAdmin);
    event RoleOffered(address indexed account, address indexed offeredBy, Role role, uint64 expiresAt);
    event OfferWithdrawn(address indexed account, address indexed offeredBy);
    event EntityEnrolled(address indexed entity, EntityKind indexed kind, uint32 epoch, string name);
    event EntityRevoked(address indexed entity, uint32 epoch);
    event PhysicianEnrolled(address indexed physician, address indexed entity, uint32 epoch);
    event PhysicianRevoked(address indexed physician, uint32 epoch, address by);
    event ProxyEnrolled(address indexed proxy, address indexed hospital, bytes32 nodeId);
    event ProxyRevoked(address indexed proxy, address by);
    event PatientRegistered(address indexed patient, address indexed physician);
    event PatientKeyRotated(address indexed patient, address indexed oldKey, address indexed newKey);
    event HubAuthorised(address indexed patient, address indexed hub, bool mayManageDevices);
    event HubDevicePowerChanged(address indexed patient, address indexed hub, bool mayManageDevices);
    event HubRevoked(address indexed patient, address indexed hub);
    event PatientPreKeySet(address indexed patient, address indexed by, bytes preKey);
    event PhysicianPreKeySet(address indexed physician, uint32 epoch, bytes preKey);
    event NodeEnrolled(bytes32 indexed nodeId, address indexed entity, uint32 entityEpoch);
    event NodeRetired(bytes32 indexed nodeId, address indexed entity, address by);

    error NotAdmin(address caller);
    error NotPendingAdmin(address caller);
    error ZeroAddress();
    error RoleTaken(address account, Role role);
    error InvalidEntityKind();
    error NameTooLong(uint256 length);
    error NotActiveEntity(address entity);
    error NotActiveHospital(address account);
    error NotActivePhysician(address account);
    error NotActiveProxy(address account);
    error NotPatient(address account);
    error NotAllowed(address caller);
    error NoOffer(address account, address offeredBy, Role role);
    error OfferExpired(uint64 expiresAt);
    error NotHubOfPatient(address hub, address caller);
    error ConsentExpired(uint64 deadline);
    error WrongSigner(address expected, address actual);
    error NotActingForPatient(address caller, address patient);
    error InvalidPreKey();
    error ZeroNode();
    error NodeTaken(bytes32 nodeId, address entity);
    error TooManyNodes(address entity);
    error UnknownNode(bytes32 nodeId);

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        _;
    }

    modifier nonZero(address account) {
        if (account == address(0)) revert ZeroAddress();
        _;
    }

    constructor(address initialAdmin) Eip712("Glyco Roles", "2") nonZero(initialAdmin) {
        admin = initialAdmin;
        emit AdminTransferred(address(0), initialAdmin);
    }

    // ---- the consortium admin (two steps) ---------------------------------

    /// Names the next admin; nothing changes until it accepts.
    function transferAdmin(address newAdmin) external onlyAdmin nonZero(newAdmin) {
        pendingAdmin = newAdmin;
        emit AdminTransferStarted(admin, newAdmin);
    }

    function acceptAdmin() external {
        if (msg.sender != pendingAdmin) revert NotPendingAdmin(msg.sender);
        emit AdminTransferred(admin, msg.sender);
        admin = msg.sender;
        pendingAdmin = address(0);
    }

    // ---- offers: nothing is bound without the bound key's consent ----------

    /// Offers the entity role (hospital, clinic, lab, emergency service), or
    /// re-enrolment to a revoked entity.
    function offerEntity(address account, EntityKind kind, string calldata name)
        external
        onlyAdmin
        nonZero(account)
    {
        if (kind == EntityKind.None) revert InvalidEntityKind();
        if (bytes(name).length > MAX_NAME_BYTES) revert NameTooLong(bytes(name).length);
        _requireFree(account, Role.Entity);
        _offer(account, Offer(Role.Entity, kind, address(0), 0, 0, bytes32(0), name));
    }

    /// Offers the physician role at an active entity (or re-enrolment).
    function offerPhysician(address account, address entity) external onlyAdmin nonZero(account) {
        if (!isActiveEntity(entity)) revert NotActiveEntity(entity);
        _requireFree(account, Role.Physician);
        _offer(account, Offer(Role.Physician, EntityKind.None, entity, entities[entity].epoch, 0, bytes32(0), ""));
    }

    /// An active physician offers to register the key as a patient.
    function registerPatient(address account) external nonZero(account) {
        if (!isActivePhysician(msg.sender)) revert NotActivePhysician(msg.sender);
        if (roleOf[account] != Role.None) revert RoleTaken(account, roleOf[account]);
        _offer(account, Offer(Role.Patient, EntityKind.None, address(0), 0, 0, bytes32(0), ""));
    }

    /// An active hospital offers the proxy role to one of its servers' keys.
    function offerProxy(address account, bytes32 nodeId) external nonZero(account) {
        if (!isActiveHospital(msg.sender)) revert NotActiveHospital(msg.sender);
        _requireFree(account, Role.Proxy);
        _offer(account, Offer(Role.Proxy, EntityKind.None, msg.sender, entities[msg.sender].epoch, 0, nodeId, ""));
    }

    function withdrawOffer(address account) external {
        if (offers[account][msg.sender].role == Role.None) revert NoOffer(account, msg.sender, Role.None);
        delete offers[account][msg.sender];
        emit OfferWithdrawn(account, msg.sender);
    }

    function offerOf(address account, address offeredBy) external view returns (Offer memory) {
        return offers[account][offeredBy];
    }

    /// The caller accepts the `role` that `offeredBy` offered them. The
    /// offerer must still hold the power to offer it.
    function acceptRole(address offeredBy, Role role) external {
        Offer memory o = offers[msg.sender][offeredBy];
        if (role == Role.None || o.role != role) revert NoOffer(msg.sender, offeredBy, role);
        if (block.timestamp > o.expiresAt) revert OfferExpired(o.expiresAt);
        delete offers[msg.sender][offeredBy];
        if (role == Role.Entity) {
            _acceptEntity(offeredBy, o);
        } else if (role == Role.Physician) {
            _acceptPhysician(offeredBy, o);
        } else if (role == Role.Patient) {
            _acceptPatient(offeredBy);
        } else {
            _acceptProxy(offeredBy, o);
        }
    }

    function _acceptEntity(address offeredBy, Offer memory o) private {
        if (offeredBy != admin) revert NotAdmin(offeredBy);
        _requireFree(msg.sender, Role.Entity);
        uint32 epoch = entities[msg.sender].epoch + 1;
        roleOf[msg.sender] = Role.Entity;
        entities[msg.sender] = Entity({kind: o.kind, active: true, epoch: epoch, name: o.name});
        if (o.kind == EntityKind.Hospital) activeHospitals += 1;
        emit EntityEnrolled(msg.sender, o.kind, epoch, o.name);
    }

    function _acceptPhysician(address offeredBy, Offer memory o) private {
        if (offeredBy != admin) revert NotAdmin(offeredBy);
        if (!isActiveEntity(o.entity) || entities[o.entity].epoch != o.entityEpoch) revert NotActiveEntity(o.entity);
        _requireFree(msg.sender, Role.Physician);
        uint32 epoch = physicians[msg.sender].epoch + 1;
        roleOf[msg.sender] = Role.Physician;
        physicians[msg.sender] = Physician({entity: o.entity, entityEpoch: o.entityEpoch, epoch: epoch, active: true});
        emit PhysicianEnrolled(msg.sender, o.entity, epoch);
    }

    function _acceptPatient(address offeredBy) private {
        if (!isActivePhysician(offeredBy)) revert NotActivePhysician(offeredBy);
        if (roleOf[msg.sender] != Role.None) revert RoleTaken(msg.sender, roleOf[msg.sender]);
        roleOf[msg.sender] = Role.Patient;
        patientKey[msg.sender] = msg.sender;
        patientOfKey[msg.sender] = msg.sender;
        registeredBy[msg.sender] = offeredBy;
        emit PatientRegistered(msg.sender, offeredBy);
    }

    function _acceptProxy(address offeredBy, Offer memory o) private {
        if (!isActiveHospital(offeredBy) || entities[offeredBy].epoch != o.entityEpoch) {
            revert NotActiveHospital(offeredBy);
        }
        _requireFree(msg.sender, Role.Proxy);
        roleOf[msg.sender] = Role.Proxy;
        proxies[msg.sender] = Proxy({hospital: offeredBy, hospitalEpoch: o.entityEpoch, active: true, nodeId: o.nodeId});
        emit ProxyEnrolled(msg.sender, offeredBy, o.nodeId);
    }

    function _offer(address account, Offer memory o) private {
        o.expiresAt = uint64(block.timestamp) + OFFER_LIFETIME;
        offers[account][msg.sender] = o;
        emit RoleOffered(account, msg.sender, o.role, o.expiresAt);
    }

    /// The account holds no role, or `role` in a revoked state (re-enrolment).
    function _requireFree(address account, Role role) private view {
        Role current = roleOf[account];
        if (current == Role.None) return;
        bool revoked = (current == role)
            && (
                (role == Role.Entity && !isActiveEntity(account))
                    || (role == Role.Physician && !isActivePhysician(account))
                    || (role == Role.Proxy && !isActiveProxy(account))
            );
        if (!revoked) revert RoleTaken(account, current);
    }

    // ---- revocations --------------------------------------------------------

    function revokeEntity(address entity) external onlyAdmin {
        if (!isActiveEntity(entity)) revert NotActiveEntity(entity);
        Entity storage e = entities[entity];
        e.active = false;
        if (e.kind == EntityKind.Hospital) activeHospitals -= 1;
        emit EntityRevoked(entity, e.epoch);
    }

    /// The admin, or the physician's own active entity, ends a physician's
    /// enrolment and with it every grant made to this enrolment.
    function revokePhysician(address physician) external {
        Physician storage p = physicians[physician];
        if (roleOf[physician] != Role.Physician || !p.active) revert NotActivePhysician(physician);
        if (msg.sender != admin && !(msg.sender == p.entity && isActiveEntity(msg.sender))) {
            revert NotAllowed(msg.sender);
        }
        p.active = false;
        emit PhysicianRevoked(physician, p.epoch, msg.sender);
    }

    function revokeProxy(address proxy) external {
        Proxy storage p = proxies[proxy];
        if (roleOf[proxy] != Role.Proxy || !p.active) revert NotActiveProxy(proxy);
        if (msg.sender != admin && msg.sender != p.hospital) revert NotAllowed(msg.sender);
        p.active = false;
        emit ProxyRevoked(proxy, msg.sender);
    }

    // ---- hubs -----------------------------------------------------------------

    /// The patient binds a hub that consented (EIP-712 `HubConsent`, signed by
    /// the hub's key for this patient record, nonce and deadline).
    function authoriseHub(address hub, bool manageDevices, uint64 deadline, bytes calldata hubSignature)
        external
        nonZero(hub)
    {
        address patient = patientOfKey[msg.sender];
        if (patient == address(0)) revert NotPatient(msg.sender);
        if (roleOf[hub] != Role.None) revert RoleTaken(hub, roleOf[hub]);
        if (block.timestamp > deadline) revert ConsentExpired(deadline);
        uint64 nonce = hubConsentNonce[hub];
        bytes32 structHash = keccak256(abi.encode(HUB_CONSENT_TYPEHASH, hub, patient, nonce, deadline));
        address signer = _signer(structHash, hubSignature);
        if (signer != hub) revert WrongSigner(hub, signer);
        hubConsentNonce[hub] = nonce + 1;
        roleOf[hub] = Role.Hub;
        hubs[hub] = Hub({patient: patient, mayManageDevices: manageDevices});
        emit HubAuthorised(patient, hub, manageDevices);
    }

    /// The patient gives or takes back the hub's power to change devices.
    function setHubDevicePower(address hub, bool manageDevices) external {
        address patient = _hubPatientOfCaller(hub);
        hubs[hub].mayManageDevices = manageDevices;
        emit HubDevicePowerChanged(patient, hub, manageDevices);
    }

    /// The patient revokes a hub; the key returns to no role (binding it again
    /// needs a fresh consent).
    function revokeHub(address hub) external {
        address patient = _hubPatientOfCaller(hub);
        delete hubs[hub];
        roleOf[hub] = Role.None;
        emit HubRevoked(patient, hub);
    }

    function _hubPatientOfCaller(address hub) private view returns (address patient) {
        patient = hubs[hub].patient;
        if (patient == address(0) || patientKey[patient] != msg.sender) revert NotHubOfPatient(hub, msg.sender);
    }

    // ---- patient key rotation -------------------------------------------------

    /// Moves a patient record to a new key. Sent by the current key (or by the
    /// admin, for a lost key), signed by the new key (consent) and co-signed
    /// by the registering physician (EIP-712 `KeyRotation`). The old key is
    /// retired: it can never hold a role again.
    function rotatePatientKey(
        address patient,
        address newKey,
        uint64 deadline,
        bytes calldata newKeySignature,
        bytes calldata physicianSignature
    ) external nonZero(newKey) {
        address oldKey = patientKey[patient];
        if (oldKey == address(0)) revert NotPatient(patient);
        if (msg.sender != oldKey && msg.sender != admin) revert NotAllowed(msg.sender);
        if (roleOf[newKey] != Role.None) revert RoleTaken(newKey, roleOf[newKey]);
        if (block.timestamp > deadline) revert ConsentExpired(deadline);
        bytes32 structHash = keccak256(abi.encode(KEY_ROTATION_TYPEHASH, patient, oldKey, newKey, deadline));
        address signer = _signer(structHash, newKeySignature);
        if (signer != newKey) revert WrongSigner(newKey, signer);
        address physician = registeredBy[patient];
        if (!isActivePhysician(physician)) revert NotActivePhysician(physician);
        signer = _signer(structHash, physicianSignature);
        if (signer != physician) revert WrongSigner(physician, signer);

        roleOf[oldKey] = Role.Retired;
        delete patientOfKey[oldKey];
        roleOf[newKey] = Role.Patient;
        patientKey[patient] = newKey;
        patientOfKey[newKey] = patient;
        emit PatientKeyRotated(patient, oldKey, newKey);
    }

    // ---- views -------------------------------------------------------------

    function entityOf(address entity) external view returns (Entity memory) {
        return entities[entity];
    }

    function physicianOf(address physician) external view returns (Physician memory) {
        return physicians[physician];
    }

    function proxyOf(address proxy) external view returns (Proxy memory) {
        return proxies[proxy];
    }

    function hubOf(address hub) external view returns (Hub memory) {
        return hubs[hub];
    }

    /// The patient record a hub acts for (zero when none).
    function hubPatient(address hub) external view returns (address) {
        return hubs[hub].patient;
    }

    function isActiveEntity(address account) public view returns (bool) {
        return roleOf[account] == Role.Entity && entities[account].active;
    }

    function isActiveHospital(address account) public view returns (bool) {
        return isActiveEntity(account) && entities[account].kind == EntityKind.Hospital;
    }

    /// Active, enrolled at an entity that is active in the same epoch as at
    /// the physician's enrolment (an entity's re-enrolment does not revive it).
    function isActivePhysician(address account) public view returns (bool) {
        if (roleOf[account] != Role.Physician) return false;
        Physician storage p = physicians[account];
        return p.active && isActiveEntity(p.entity) && entities[p.entity].epoch == p.entityEpoch;
    }

    /// The physician's current enrolment epoch while active, else zero.
    function activePhysicianEpoch(address account) external view returns (uint32) {
        return isActivePhysician(account) ? physicians[account].epoch : 0;
    }

    /// An active physician of an active emergency service.
    function isEmergencyPhysician(address account) external view returns (bool) {
        return isActivePhysician(account) && entities[physicians[account].entity].kind == EntityKind.EmergencyService;
    }

    /// An active proxy of a hospital that is active in the proxy's epoch.
    function isActiveProxy(address account) public view returns (bool) {
        if (roleOf[account] != Role.Proxy) return false;
        Proxy storage p = proxies[account];
        return p.active && isActiveHospital(p.hospital) && entities[p.hospital].epoch == p.hospitalEpoch;
    }

    function isPatient(address patient) public view returns (bool) {
        return patientKey[patient] != address(0);
    }

    // ---- the patient's proxy re-encryption key ----------------------------

    /// Publishes the patient's umbral public key; the patient's key or a hub
    /// the patient authorised may set it (the hub creates the key pair).
    function setPatientPreKey(address patient, bytes calldata preKey) external {
        if (!actsFor(msg.sender, patient)) revert NotActingForPatient(msg.sender, patient);
        if (preKey.length != PRE_KEY_BYTES || (preKey[0] != 0x02 && preKey[0] != 0x03)) revert InvalidPreKey();
        patientPreKeys[patient] = preKey;
        emit PatientPreKeySet(patient, msg.sender, preKey);
    }

    /// The patient's umbral public key (empty when none was published).
    function patientPreKey(address patient) external view returns (bytes memory) {
        return patientPreKeys[patient];
    }

    /// An active physician publishes the umbral public key made on their own
    /// machine; grants re-encrypt to it. Setting it again replaces it (a lost
    /// machine): kfrags made for the old key stop verifying at the proxies.
    function setPhysicianPreKey(bytes calldata preKey) external {
        if (!isActivePhysician(msg.sender)) revert NotActivePhysician(msg.sender);
        if (preKey.length != PRE_KEY_BYTES || (preKey[0] != 0x02 && preKey[0] != 0x03)) revert InvalidPreKey();
        physicianPreKeys[msg.sender] = preKey;
        emit PhysicianPreKeySet(msg.sender, physicians[msg.sender].epoch, preKey);
    }

    /// The physician's umbral public key (empty when none was published).
    function physicianPreKey(address physician) external view returns (bytes memory) {
        return physicianPreKeys[physician];
    }

    // ---- iroh nodes of medical entities ---------------------------------------

    /// An active entity names an iroh node it runs (a replica, a proxy's
    /// endpoint). First come: a node taken by mistake or malice is retired by
    /// its entity or the admin.
    function enrolNode(bytes32 nodeId) external {
        if (!isActiveEntity(msg.sender)) revert NotActiveEntity(msg.sender);
        if (nodeId == bytes32(0)) revert ZeroNode();
        Node storage n = nodes[nodeId];
        if (n.entity != address(0)) revert NodeTaken(nodeId, n.entity);
        if (nodeCount[msg.sender] >= MAX_NODES_PER_ENTITY) revert TooManyNodes(msg.sender);
        nodes[nodeId] = Node({entity: msg.sender, entityEpoch: entities[msg.sender].epoch});
        nodeCount[msg.sender] += 1;
        emit NodeEnrolled(nodeId, msg.sender, entities[msg.sender].epoch);
    }

    /// The node's entity or the admin retires it.
    function retireNode(bytes32 nodeId) external {
        Node storage n = nodes[nodeId];
        address entity = n.entity;
        if (entity == address(0)) revert UnknownNode(nodeId);
        if (msg.sender != entity && msg.sender != admin) revert NotAllowed(msg.sender);
        nodeCount[entity] -= 1;
        delete nodes[nodeId];
        emit NodeRetired(nodeId, entity, msg.sender);
    }

    /// The entity running `nodeId` while it is active in the epoch it enrolled
    /// the node in; zero otherwise (a revoked entity's nodes stay out even if
    /// it is enrolled again).
    function activeNodeEntity(bytes32 nodeId) external view returns (address) {
        Node storage n = nodes[nodeId];
        if (!isActiveEntity(n.entity) || entities[n.entity].epoch != n.entityEpoch) return address(0);
        return n.entity;
    }

    /// True when `account` is the patient's current key or a hub the patient
    /// authorised (anchors).
    function actsFor(address account, address patient) public view returns (bool) {
        if (!isPatient(patient)) return false;
        return patientKey[patient] == account || hubs[account].patient == patient;
    }

    /// True when `account` may add or remove the patient's devices: the
    /// patient's key, or a hub the patient delegated that power to.
    function mayManageDevices(address account, address patient) external view returns (bool) {
        if (!isPatient(patient)) return false;
        if (patientKey[patient] == account) return true;
        Hub storage h = hubs[account];
        return h.patient == patient && h.mayManageDevices;
    }
}
