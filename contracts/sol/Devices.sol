// SPDX-License-Identifier: GPL-3.0-only
pragma solidity 0.8.30;

import {Roles} from "./Roles.sol";

/// @title Devices: the patients' registered medical devices.
/// @notice A device is identified by a 32-byte id derived from its identity
/// (the bonded BLE identity address, or a longer id such as an MQTT client id;
/// see docs/CONTRACTS.md for the derivation). A device belongs to at most one
/// patient at a time; a duplicate registration is refused (the 2020 paper's
/// Algorithm 2). Only the patient, or a hub the patient authorised, changes the
/// patient's devices.
contract Devices {
    struct Device {
        address patient;
        uint8 kind;
        bool active;
        uint64 addedAt;
    }

    Roles public immutable roles;

    mapping(bytes32 => Device) private devices;
    mapping(address => bytes32[]) private patientDevices;
    /// Position of a device in its patient's list, plus one (zero: not listed).
    mapping(bytes32 => uint256) private listIndex;

    event DeviceAdded(address indexed patient, bytes32 indexed deviceId, uint8 kind, address by);
    event DeviceRemoved(address indexed patient, bytes32 indexed deviceId, address by);

    error NotActingForPatient(address caller, address patient);
    error ZeroDeviceId();
    error DuplicateDevice(bytes32 deviceId);
    error DeviceOfAnotherPatient(bytes32 deviceId);
    error UnknownDevice(bytes32 deviceId);

    constructor(Roles roleRegistry) {
        roles = roleRegistry;
    }

    modifier actingFor(address patient) {
        if (!roles.actsFor(msg.sender, patient)) revert NotActingForPatient(msg.sender, patient);
        _;
    }

    function addDevice(address patient, bytes32 deviceId, uint8 kind) external actingFor(patient) {
        if (deviceId == bytes32(0)) revert ZeroDeviceId();
        Device storage existing = devices[deviceId];
        if (existing.active) {
            if (existing.patient == patient) revert DuplicateDevice(deviceId);
            revert DeviceOfAnotherPatient(deviceId);
        }
        devices[deviceId] = Device({patient: patient, kind: kind, active: true, addedAt: uint64(block.timestamp)});
        patientDevices[patient].push(deviceId);
        listIndex[deviceId] = patientDevices[patient].length;
        emit DeviceAdded(patient, deviceId, kind, msg.sender);
    }

    function removeDevice(address patient, bytes32 deviceId) external actingFor(patient) {
        Device storage device = devices[deviceId];
        if (!device.active) revert UnknownDevice(deviceId);
        if (device.patient != patient) revert DeviceOfAnotherPatient(deviceId);
        device.active = false;

        // Swap-and-pop keeps the patient's list dense.
        bytes32[] storage list = patientDevices[patient];
        uint256 index = listIndex[deviceId] - 1;
        bytes32 last = list[list.length - 1];
        list[index] = last;
        listIndex[last] = index + 1;
        list.pop();
        delete listIndex[deviceId];

        emit DeviceRemoved(patient, deviceId, msg.sender);
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
