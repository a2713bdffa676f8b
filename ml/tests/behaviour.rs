//! The node-behaviour model on generated traffic: what the hub's model
//! finds and what it leaves alone, its bounds, and that no input breaks it.

use glyco_ml::behaviour::eval::{EvalConfig, evaluate, render};
use glyco_ml::behaviour::scenarios::Scenario;
use glyco_ml::behaviour::{
    Arrival, ArrivalOutcome, BehaviourDetector, DeviceClass, NodeObservation, Observed,
    RefusalGroup, RobustBehaviour,
};

#[test]
fn the_model_finds_the_misbehaviour_and_stays_quiet_on_clean_traffic() {
    let config = EvalConfig {
        first_seed: 101,
        seeds: 4,
        clean_weeks: 2,
        time_events: false,
        ..EvalConfig::default()
    };
    let report = evaluate(&config);
    let table = render(&report);
    let recall = |wanted: Scenario| {
        report
            .scenarios
            .iter()
            .find(|(s, _, _)| *s == wanted)
            .map(|(_, robust, _)| robust.recall())
            .unwrap()
    };
    // What one event or one session shows is found every time.
    for scenario in [
        Scenario::Flood,
        Scenario::Replay,
        Scenario::StolenCredentials,
        Scenario::Silent,
        Scenario::IdentityChange,
    ] {
        assert_eq!(recall(scenario), 1.0, "{scenario:?}\n{table}");
    }
    assert!(recall(Scenario::Chatty) >= 0.8, "{table}");
    let (robust, fixed) = &report.clean;
    let per_device_week = f64::from(robust.total()) / report.device_weeks;
    assert!(per_device_week < 0.5, "{per_device_week}\n{table}");
    assert!(
        robust.total() * 10 < fixed.total(),
        "the model is far quieter than fixed thresholds\n{table}"
    );
    for (class, (bytes, _)) in &report.bytes {
        assert!(*bytes <= 16 * 1024, "{class}: {bytes} B");
    }
}

/// A tiny deterministic generator of arbitrary observations.
fn arbitrary(seed: u64, n: usize) -> Vec<NodeObservation> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut at = 0i64;
    (0..n)
        .map(|_| {
            let r = next();
            at = at.wrapping_add((r % 100_000) as i64 - 10_000);
            let extreme = [i64::MIN, i64::MAX, 0, -1, at][(r >> 8) as usize % 5];
            let what = match (r >> 16) % 7 {
                0 => Observed::Arrival(Arrival {
                    outcome: [
                        ArrivalOutcome::New,
                        ArrivalOutcome::Duplicate,
                        ArrivalOutcome::Replayed,
                    ][(r >> 20) as usize % 3],
                    device_time_ms: ((r >> 24) % 2 == 0).then_some(extreme),
                    bytes: Some((r >> 32) as u32),
                    shape: r >> 40,
                    value: Some(
                        [f32::NAN, f32::INFINITY, -1e30, 0.0, 120.0][(r >> 28) as usize % 5],
                    ),
                    pause_announced: r % 3 == 0,
                }),
                1 => Observed::Refusal(RefusalGroup::Payload),
                2 => Observed::SessionStart {
                    source: Some(r % 5),
                    replaced: Some(Some(r % 3)),
                },
                3 => Observed::SessionEnd,
                4 => Observed::Rssi((r % 200) as i16 - 150),
                5 => Observed::Lookalike {
                    rssi: Some((r % 100) as i16 - 100),
                },
                _ => Observed::Tick,
            };
            NodeObservation { at_ms: at, what }
        })
        .collect()
}

#[test]
fn no_sequence_of_observations_panics_or_grows_the_state() {
    for class in [DeviceClass::Cgm, DeviceClass::Meter, DeviceClass::HeartRate] {
        let mut model = RobustBehaviour::new(class);
        let before = model.state_bytes();
        for seed in 1..20 {
            for o in arbitrary(seed, 5_000) {
                let _ = model.observe(&o);
            }
        }
        assert_eq!(model.state_bytes(), before, "{class:?}");
    }
}
