//! Readings per second through parse + validate + admit, on one core: the
//! work the hub does for every MQTT publish before the journal.
//!
//!     cargo bench -p glyco-gateway --bench admission

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use glyco_contracts::DeviceIdentity;
use glyco_gateway::admission::{Admission, Decision};
use glyco_gateway::reading::{Limits, now_millis};
use glyco_gateway::registry::{MirrorState, MirroredDevice, Registry};
use glyco_gateway::sim;

fn admission_for(device: &DeviceIdentity) -> Admission {
    let mut state = MirrorState::default();
    state.devices.insert(
        device.device_id(),
        MirroredDevice {
            kind: None,
            active: true,
            block: 1,
        },
    );
    Admission::new(Registry::new(state), Limits::default(), 4096)
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
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
