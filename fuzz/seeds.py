#!/usr/bin/env python3
"""Writes one or more well-formed inputs per fuzz target into fuzz/corpus/,
so the coverage-guided runs start from inputs that reach deep into each
parser. Formats: Bluetooth SIG GATT specifications; MQTT 3.1.1/5; docs/WIRE.md."""
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"


def date(year=2025, month=11, day=23, h=8, m=30, s=0):
    return struct.pack("<HBBBBB", year, month, day, h, m, s)


def sfloat(mantissa, exponent=0):
    return struct.pack("<H", ((exponent & 0xF) << 12) | (mantissa & 0xFFF))


def mqtt_string(text):
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def mqtt_packet(first, body):
    length, encoded = len(body), b""
    while True:
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            return bytes([first]) + encoded + body


def connect(level, props=b""):
    body = mqtt_string("MQTT") + bytes([level, 0xC2]) + struct.pack(">H", 60)
    if level == 5:
        body += bytes([len(props)]) + props
    body += mqtt_string("cuff-1") + mqtt_string("cuff-1") + mqtt_string("secret")
    return mqtt_packet(0x10, body)


def publish(level, topic, payload, packet_id=1):
    body = mqtt_string(topic) + struct.pack(">H", packet_id)
    if level == 5:
        body += b"\x00"
    return mqtt_packet(0x32, body + payload)


READING = {
    "v": 1,
    "seq": 42,
    "time_ms": 1763800000000,
    "measurement": {"kind": "glucose", "value": 5.4, "unit": "mmol/L"},
    "flags": ["low_battery"],
}
BP = {
    "v": 1,
    "seq": 7,
    "measurement": {"kind": "blood_pressure", "systolic": 128, "diastolic": 82, "mean": 97, "unit": "mmHg"},
}

SEEDS = {
    "mqtt_stream": [
        connect(4) + publish(4, "glyco/v1/readings/cuff-1", json.dumps(BP).encode()) + b"\xc0\x00",
        connect(5, b"\x21\x00\x10") + publish(5, "glyco/v1/readings/cuff-1", b"{}") + b"\xe0\x00",
        connect(4) + mqtt_packet(0x82, struct.pack(">H", 1) + mqtt_string("glyco/v1/acks/cuff-1") + b"\x01"),
    ],
    "wire_reading": [json.dumps(READING).encode(), json.dumps(BP).encode(),
                     json.dumps({"v": 1, "seq": 1, "measurement": {"kind": "spo2", "value": 97, "unit": "%", "pulse": 64}}).encode()],
    "ble_glucose": [
        b"\x03" + struct.pack("<H", 1) + date() + struct.pack("<h", 0) + sfloat(100, -5) + b"\x11",
        b"\x1f" + struct.pack("<H", 2) + date() + struct.pack("<h", -30) + sfloat(55, -4) + b"\x11" + struct.pack("<H", 0x0001),
    ],
    "ble_glucose_context": [
        b"\x00" + struct.pack("<H", 1),
        b"\xdf" + struct.pack("<H", 1) + b"\x00" + b"\x01" + sfloat(50, -3) + b"\x01" + b"\x12" + b"\x01"
        + struct.pack("<H", 30) + b"\x01" + sfloat(4, -3) + struct.pack("<H", 0x0064),
    ],
    "ble_cgm": [
        b"\x06\x00" + sfloat(110) + struct.pack("<H", 5),
        b"\x0d\xe3" + sfloat(110) + struct.pack("<H", 10) + b"\x01\x02\x04" + sfloat(-2, -1) + sfloat(95),
        b"\x06\x00" + sfloat(110) + struct.pack("<H", 5) + b"\x06\x00" + sfloat(112) + struct.pack("<H", 10),
    ],
    "ble_cgm_status": [struct.pack("<H", 5) + b"\x00\x00\x00", struct.pack("<H", 5) + b"\x01\x02\x04" + b"\x12\x34"],
    "ble_cgm_session": [date() + b"\x04\x00", date() + b"\x04\x04\xab\xcd", struct.pack("<H", 336)],
    "ble_blood_pressure": [
        b"\x00" + sfloat(128) + sfloat(82) + sfloat(97),
        b"\x1e" + sfloat(128) + sfloat(82) + sfloat(97) + date() + sfloat(64) + b"\x01" + struct.pack("<H", 0x0004),
    ],
    "ble_heart_rate": [b"\x00\x48", b"\x19" + struct.pack("<HHHH", 72, 300, 800, 810)],
    "ble_weight": [b"\x00" + struct.pack("<H", 14000), b"\x0f" + struct.pack("<H", 30000) + date() + b"\x01" + struct.pack("<HH", 220, 1750)],
    "ble_temperature": [b"\x00" + struct.pack("<I", (0xFF << 24) | 370), b"\x07" + struct.pack("<I", (0xFF << 24) | 988) + date() + b"\x02"],
    "ble_plx_spot_check": [b"\x00" + sfloat(97) + sfloat(64), b"\x1f" + sfloat(97) + sfloat(64) + date() + struct.pack("<H", 1) + b"\x00\x00\x00" + struct.pack("<H", 0x0040)],
    "ble_plx_continuous": [b"\x00" + sfloat(97) + sfloat(64), b"\x1f" + sfloat(97) + sfloat(64) * 4 + struct.pack("<H", 1) + b"\x00\x00\x00" + struct.pack("<H", 0x0040)],
    "ble_racp": [b"\x06\x00\x01\x01", b"\x05\x00" + struct.pack("<H", 12), b"\x06\x00\x01\x06"],
}

for target, inputs in SEEDS.items():
    directory = ROOT / target
    directory.mkdir(parents=True, exist_ok=True)
    for index, data in enumerate(inputs):
        (directory / f"seed-{index}").write_bytes(data)
print(f"seeded {sum(len(v) for v in SEEDS.values())} inputs for {len(SEEDS)} targets")
