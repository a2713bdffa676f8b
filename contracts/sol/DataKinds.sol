// SPDX-License-Identifier: GPL-3.0-only
pragma solidity 0.8.30;

// Kinds of patient data, as bits of a uint16: what an anchored batch holds
// and what a grant lets a physician read (the 2018 paper's "what data to keep
// visible and for whom"). Bit 0 glucose (meter and CGM), 1 blood pressure,
// 2 heart rate, 3 weight, 4 temperature, 5 pulse oximetry, 6 findings (the
// hub's anomaly findings and alerts).
uint16 constant ALL_DATA_KINDS = 0x7f;

// True for a non-empty set of known kinds.
function validDataKinds(uint16 kinds) pure returns (bool) {
    return kinds != 0 && kinds & ~ALL_DATA_KINDS == 0;
}
