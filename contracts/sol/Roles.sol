// SPDX-License-Identifier: GPL-3.0-only
pragma solidity 0.8.30;

/// @title Roles: who is who in the consortium.
/// @notice The consortium admin enrols medical entities (hospitals, clinics,
/// labs) and physicians; an active physician registers patients; a patient
/// authorises the hubs that act for them. Every account holds at most one role,
/// so a key can never be, say, both a physician and the patient who grants that
/// physician access.
contract Roles {
    enum Role {
        None,
        Entity,
        Physician,
        Patient,
        Hub
    }

    enum EntityKind {
        None,
        Hospital,
        Clinic,
        Lab
    }

    struct Entity {
        EntityKind kind;
        bool active;
        string name;
    }

    struct Physician {
        address entity;
        bool active;
    }

    address public admin;
    mapping(address => Role) public roleOf;
    mapping(address => Entity) private entities;
    mapping(address => Physician) private physicians;
    /// Patient => the physician who registered them.
    mapping(address => address) public registeredBy;
    /// Hub => the patient it acts for (zero when none).
    mapping(address => address) public hubPatient;

    event AdminTransferred(address indexed previousAdmin, address indexed newAdmin);
    event EntityEnrolled(address indexed entity, EntityKind indexed kind, string name);
    event EntityRevoked(address indexed entity);
    event PhysicianEnrolled(address indexed physician, address indexed entity);
    event PhysicianRevoked(address indexed physician);
    event PatientRegistered(address indexed patient, address indexed physician);
    event HubAuthorised(address indexed patient, address indexed hub);
    event HubRevoked(address indexed patient, address indexed hub);

    error NotAdmin(address caller);
    error ZeroAddress();
    error RoleTaken(address account, Role role);
    error InvalidEntityKind();
    error NotEntity(address account);
    error NotActiveEntity(address entity);
    error NotPhysician(address account);
    error NotActivePhysician(address caller);
    error NotPatient(address account);
    error NotHubOfPatient(address hub, address patient);

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        _;
    }

    modifier nonZero(address account) {
        if (account == address(0)) revert ZeroAddress();
        _;
    }

    constructor(address initialAdmin) nonZero(initialAdmin) {
        admin = initialAdmin;
        emit AdminTransferred(address(0), initialAdmin);
    }

    function transferAdmin(address newAdmin) external onlyAdmin nonZero(newAdmin) {
        emit AdminTransferred(admin, newAdmin);
        admin = newAdmin;
    }

    // ---- medical entities ------------------------------------------------

    /// Enrols a hospital, clinic or lab, or re-activates a revoked one.
    function enrolEntity(address entity, EntityKind kind, string calldata name)
        external
        onlyAdmin
        nonZero(entity)
    {
        if (kind == EntityKind.None) revert InvalidEntityKind();
        Role role = roleOf[entity];
        if (role == Role.Entity) {
            if (entities[entity].active) revert RoleTaken(entity, role);
        } else if (role != Role.None) {
            revert RoleTaken(entity, role);
        }
        roleOf[entity] = Role.Entity;
        entities[entity] = Entity({kind: kind, active: true, name: name});
        emit EntityEnrolled(entity, kind, name);
    }

    function revokeEntity(address entity) external onlyAdmin {
        if (roleOf[entity] != Role.Entity) revert NotEntity(entity);
        entities[entity].active = false;
        emit EntityRevoked(entity);
    }

    function entityOf(address entity) external view returns (Entity memory) {
        return entities[entity];
    }

    function isActiveEntity(address account) public view returns (bool) {
        return roleOf[account] == Role.Entity && entities[account].active;
    }

    function isActiveHospital(address account) external view returns (bool) {
        return isActiveEntity(account) && entities[account].kind == EntityKind.Hospital;
    }

    // ---- physicians ------------------------------------------------------

    /// Enrols a physician with an active entity, or re-activates a revoked one.
    function enrolPhysician(address physician, address entity) external onlyAdmin nonZero(physician) {
        if (!isActiveEntity(entity)) revert NotActiveEntity(entity);
        Role role = roleOf[physician];
        if (role == Role.Physician) {
            if (physicians[physician].active) revert RoleTaken(physician, role);
        } else if (role != Role.None) {
            revert RoleTaken(physician, role);
        }
        roleOf[physician] = Role.Physician;
        physicians[physician] = Physician({entity: entity, active: true});
        emit PhysicianEnrolled(physician, entity);
    }

    function revokePhysician(address physician) external onlyAdmin {
        if (roleOf[physician] != Role.Physician) revert NotPhysician(physician);
        physicians[physician].active = false;
        emit PhysicianRevoked(physician);
    }

    function physicianOf(address physician) external view returns (Physician memory) {
        return physicians[physician];
    }

    /// A physician counts as active only while their entity is active too.
    function isActivePhysician(address account) public view returns (bool) {
        if (roleOf[account] != Role.Physician) return false;
        Physician storage p = physicians[account];
        return p.active && isActiveEntity(p.entity);
    }

    // ---- patients --------------------------------------------------------

    /// An active physician registers a patient by the patient's address.
    function registerPatient(address patient) external nonZero(patient) {
        if (!isActivePhysician(msg.sender)) revert NotActivePhysician(msg.sender);
        Role role = roleOf[patient];
        if (role != Role.None) revert RoleTaken(patient, role);
        roleOf[patient] = Role.Patient;
        registeredBy[patient] = msg.sender;
        emit PatientRegistered(patient, msg.sender);
    }

    function isPatient(address account) public view returns (bool) {
        return roleOf[account] == Role.Patient;
    }

    // ---- hubs ------------------------------------------------------------

    /// The patient authorises a hub key to act for them (devices, anchors).
    function authoriseHub(address hub) external nonZero(hub) {
        if (!isPatient(msg.sender)) revert NotPatient(msg.sender);
        Role role = roleOf[hub];
        if (role != Role.None) revert RoleTaken(hub, role);
        roleOf[hub] = Role.Hub;
        hubPatient[hub] = msg.sender;
        emit HubAuthorised(msg.sender, hub);
    }

    /// The patient revokes a hub; the key returns to no role.
    function revokeHub(address hub) external {
        if (hubPatient[hub] != msg.sender) revert NotHubOfPatient(hub, msg.sender);
        delete hubPatient[hub];
        roleOf[hub] = Role.None;
        emit HubRevoked(msg.sender, hub);
    }

    /// True when `account` is the patient or a hub the patient authorised.
    function actsFor(address account, address patient) external view returns (bool) {
        if (!isPatient(patient)) return false;
        return account == patient || hubPatient[account] == patient;
    }
}
