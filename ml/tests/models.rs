//! The committed models load, stay within budget, give finite outputs and
//! compute what scikit-learn computed at export time (fixture.json).

use glyco_ml::Models;
use glyco_ml::features::{FAULT_FEATURES, FORECAST_FEATURES};
use serde_json::Value;

fn fixture() -> Value {
    let path = Models::bundled_dir().join("fixture.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture.json is JSON")
}

fn rows(value: &Value) -> Vec<Vec<f32>> {
    value
        .as_array()
        .expect("array of rows")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_f64().expect("number") as f32)
                .collect()
        })
        .collect()
}

#[test]
fn models_are_small_and_load() {
    for name in ["forecaster.onnx", "fault_detector.onnx"] {
        let size = std::fs::metadata(Models::bundled_dir().join(name))
            .expect("model file")
            .len();
        assert!(size <= 1_000_000, "{name} is {size} bytes, over 1 MB");
    }
    let models = Models::load_dir(&Models::bundled_dir()).expect("models load");
    assert!(models.fault_classes()[0].is_none());
    assert!(models.fault_classes().len() >= 2);
}

#[test]
fn outputs_match_the_training_export() {
    let models = Models::load_dir(&Models::bundled_dir()).expect("models load");
    let fixture = fixture();
    let inputs = rows(&fixture["forecaster"]["inputs"]);
    let outputs = rows(&fixture["forecaster"]["outputs"]);
    assert!(!inputs.is_empty());
    for (input, expected) in inputs.iter().zip(&outputs) {
        let input: [f32; FORECAST_FEATURES] =
            input.as_slice().try_into().expect("forecast feature count");
        let got = models.forecast(&input).expect("forecast runs");
        assert!(
            (got.at_30_min / 50.0 - expected[0]).abs() < 1e-3,
            "{got:?} vs {expected:?}"
        );
        assert!(
            (got.at_60_min / 50.0 - expected[1]).abs() < 1e-3,
            "{got:?} vs {expected:?}"
        );
    }
    let inputs = rows(&fixture["fault_detector"]["inputs"]);
    let outputs = rows(&fixture["fault_detector"]["outputs"]);
    for (input, expected) in inputs.iter().zip(&outputs) {
        let input: [f32; FAULT_FEATURES] =
            input.as_slice().try_into().expect("fault feature count");
        let got = models.fault_probabilities(&input).expect("detector runs");
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-3, "{got:?} vs {expected:?}");
        }
        assert!(
            (got.iter().sum::<f32>() - 1.0).abs() < 1e-3,
            "probabilities sum to 1"
        );
    }
}

#[test]
fn extreme_inputs_give_finite_outputs() {
    let models = Models::load_dir(&Models::bundled_dir()).expect("models load");
    for value in [-10.0f32, 0.0, 10.0, 1e6] {
        let forecast = models
            .forecast(&[value; FORECAST_FEATURES])
            .expect("forecast runs");
        assert!(forecast.at_30_min.is_finite() && forecast.at_60_min.is_finite());
        let p = models
            .fault_probabilities(&[value; FAULT_FEATURES])
            .expect("detector runs");
        assert!(p.iter().all(|x| x.is_finite() && (0.0..=1.0).contains(x)));
    }
}

#[test]
fn broken_model_directories_are_errors() {
    let dir = std::env::temp_dir().join(format!("glyco-ml-missing-{}", std::process::id()));
    assert!(Models::load_dir(&dir).is_err());
    let config = std::fs::read(Models::bundled_dir().join("detector.json")).expect("config");
    assert!(Models::from_bytes(&config, b"not onnx", b"not onnx").is_err());
    assert!(Models::from_bytes(b"{}", b"", b"").is_err());
}
