//! Readings per second through parse + validate + admit, on one core: the
//! work the hub does for every MQTT publish before the journal.
//!
//!     cargo bench -p glyco-gateway --bench admission

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use glyco_contracts::{DeviceIdKey, DeviceIdentity};
use glyco_gateway::admission::{Admission, Decision};
use glyco_gateway::ble::{DeviceClock, convert};
use glyco_gateway::reading::{Limits, now_millis};
use glyco_gateway::registry::{MirrorState, MirroredDevice, Registry};
use glyco_gateway::sim;

fn admission_for(device: &DeviceIdentity) -> Admission {
    let ids = DeviceIdKey::generate();
    let mut state = MirrorState::default();
    state.devices.insert(
        ids.id_of(device),
        MirroredDevice {
            kind: None,
            active: true,
            block: 1,
        },
    );
    Admission::new(Registry::new(state, ids), Limits::default(), 4096)
}

fn bench(c: &mut Criterion) {
    let device = DeviceIdentity::name("bench-device").unwrap();
    let admission = admission_for(&device);
    let now = now_millis();
    let cases = [
        ("glucose_mmol", sim::glucose_payload(42, now, 5.4, "mmol/L")),
        ("cgm", sim::cgm_payload(42, now, 142.0)),
        (
            "blood_pressure",
            sim::blood_pressure_payload(42, now, 128.0, 82.0),
        ),
        (
            "out_of_range_refused",
            sim::glucose_payload(42, now, 900.0, "mg/dL"),
        ),
    ];
    let mut group = c.benchmark_group("parse_validate_admit");
    group.throughput(Throughput::Elements(1));
    for (name, payload) in &cases {
        // Sanity: the admitted cases admit, the refused one refuses.
        let decision = admission.mqtt(&device, payload, now);
        assert_eq!(
            matches!(decision, Decision::Admit(_)),
            !name.ends_with("refused"),
            "{name}"
        );
        group.bench_function(*name, |b| {
            b.iter(|| admission.mqtt(&device, black_box(payload), now))
        });
    }
    // BLE: a Glucose Measurement frame through the SIG parser, the unit
    // conversion and admission by identity address.
    let meter = DeviceIdentity::ble("C0:26:DA:01:02:03").unwrap();
    let ble_admission = admission_for(&meter);
    let frame = glucose_frame(42, 112);
    group.bench_function("ble_glucose_frame", |b| {
        b.iter(|| {
            let measurements = glyco_ble::parse_measurement(
                glyco_ble::Characteristic::GlucoseMeasurement,
                black_box(&frame),
            )
            .unwrap();
            for measurement in &measurements {
                for reading in
                    convert::readings(&meter, now, None, DeviceClock::default(), measurement)
                        .unwrap()
                {
                    black_box(ble_admission.reading(reading, now));
                }
            }
        })
    });
    group.finish();
}

/// A Glucose Measurement (flags 0x02: concentration in kg/L) dated now.
fn glucose_frame(seq: u16, mg_dl: i16) -> Vec<u8> {
    use glyco_ble::testing::frames;
    frames::glucose_record(seq, frames::utc_minutes_ago(0), mg_dl)
}

criterion_group!(benches, bench);
criterion_main!(benches);
