// SPDX-License-Identifier: GPL-3.0-only
pragma solidity 0.8.30;

import {Roles} from "./Roles.sol";

/// @title Devices: the patients' registered medical devices.
/// @notice A device is identified by a 32-byte keyed id of its identity (the
/// bonded BLE identity address, or a device name): the consortium's device-id
/// key makes the id unlinkable to the hardware address for anyone without the
/// key, while every hub derives the same id, so duplicates are still refused
/// (docs/CONTRACTS.md explains the trade-off). A device belongs to at most one
/// patient at a time (the 2020 paper's Algorithm 2). Only the patient changes
/// the patient's devices, or a hub the patient explicitly delegated that power
/// to. A device squatted by another patient can be released by the consortium
/// admin, or by the physician who registered the squatting patient, after
/// checking.
contract Devices {
    struct Device {
        address patient;
        uint8 kind;
        bool active;
        uint64 addedAt;
    }

    /// Bounds every patient's list (and so `devicesOf`).
    uint256 public constant MAX_DEVICES_PER_PATIENT = 64;

    Roles public immutable roles;

    mapping(bytes32 => Device) private devices;
    mapping(address => bytes32[]) private patientDevices;
    /// Position of a device in its patient's list, plus one (zero: not listed).
    mapping(bytes32 => uint256) private listIndex;

    event DeviceAdded(address indexed patient, bytes32 indexed deviceId, uint8 kind, address by);
    event DeviceRemoved(address indexed patient, bytes32 indexed deviceId, address by);
    /// A disputed device taken from `patient` by the admin or the patient's registering physician.
    event DeviceReleased(address indexed patient, bytes32 indexed deviceId, address by);

    error NotAllowedForPatient(address caller, address patient);
    error NotAllowed(address caller);
    error ZeroDeviceId();
    error DuplicateDevice(bytes32 deviceId);
    error DeviceOfAnotherPatient(bytes32 deviceId);
    error UnknownDevice(bytes32 deviceId);
    error TooManyDevices(address patient);

    constructor(Roles roleRegistry) {
        roles = roleRegistry;
    }

    modifier managing(address patient) {
        if (!roles.mayManageDevices(msg.sender, patient)) revert NotAllowedForPatient(msg.sender, patient);
        _;
    }

    function addDevice(address patient, bytes32 deviceId, uint8 kind) external managing(patient) {
        if (deviceId == bytes32(0)) revert ZeroDeviceId();
        Device storage existing = devices[deviceId];
        if (existing.active) {
            if (existing.patient == patient) revert DuplicateDevice(deviceId);
            revert DeviceOfAnotherPatient(deviceId);
        }
        if (patientDevices[patient].length >= MAX_DEVICES_PER_PATIENT) revert TooManyDevices(patient);
        devices[deviceId] = Device({patient: patient, kind: kind, active: true, addedAt: uint64(block.timestamp)});
        patientDevices[patient].push(deviceId);
        listIndex[deviceId] = patientDevices[patient].length;
        emit DeviceAdded(patient, deviceId, kind, msg.sender);
    }

    function removeDevice(address patient, bytes32 deviceId) external managing(patient) {
        Device storage device = devices[deviceId];
        if (!device.active) revert UnknownDevice(deviceId);
        if (device.patient != patient) revert DeviceOfAnotherPatient(deviceId);
        _unlist(patient, deviceId);
        emit DeviceRemoved(patient, deviceId, msg.sender);
    }

    /// The dispute path: frees a device held by a patient who should not hold
    /// it. Only the consortium admin, or the active physician who registered
    /// the holding patient, may release it.
    function releaseDevice(bytes32 deviceId) external {
        Device storage device = devices[deviceId];
        if (!device.active) revert UnknownDevice(deviceId);
        address patient = device.patient;
        bool registering = msg.sender == roles.registeredBy(patient) && roles.isActivePhysician(msg.sender);
        if (msg.sender != roles.admin() && !registering) revert NotAllowed(msg.sender);
        _unlist(patient, deviceId);
        emit DeviceReleased(patient, deviceId, msg.sender);
    }

    function _unlist(address patient, bytes32 deviceId) private {
        devices[deviceId].active = false;
        // Swap-and-pop keeps the patient's list dense.
        bytes32[] storage list = patientDevices[patient];
        uint256 index = listIndex[deviceId] - 1;
        bytes32 last = list[list.length - 1];
        list[index] = last;
        listIndex[last] = index + 1;
        list.pop();
        delete listIndex[deviceId];
    }

    function deviceOf(bytes32 deviceId) external view returns (Device memory) {
        return devices[deviceId];
    }

    /// True while the device is registered, not removed, to this patient.
    function isRegistered(address patient, bytes32 deviceId) external view returns (bool) {
        Device storage device = devices[deviceId];
        return device.active && device.patient == patient;
    }

    /// The patient's active devices, in no particular order.
    function devicesOf(address patient) external view returns (bytes32[] memory) {
        return patientDevices[patient];
    }
}
