//! End to end: the Python generator makes a small labelled set of held-out
//! virtual patients, and `glyco-ml eval` scores it into the table.
//!
//! Needs the pinned Python environment: GLYCO_PYTHON, or else
//! <workspace>/ml/.venv/bin/python (made by scripts/bootstrap.sh).

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("GLYCO_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python for the data generator at {} and GLYCO_PYTHON is unset: run scripts/bootstrap.sh",
        venv.display()
    );
    venv
}

/// Runs the data generator for the first `patients` of `split` into `out`.
fn generate(split: &str, days: &str, patients: &str, seed: &str, out: &Path) {
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("training/generate.py");
    let status = Command::new(python())
        .arg(&generator)
        .args(["--split", split, "--days", days, "--patients", patients])
        .args(["--seed", seed, "--out"])
        .arg(out)
        .status()
        .expect("the generator starts (run scripts/bootstrap.sh)");
    assert!(status.success(), "generator failed: {status}");
}

#[test]
fn generated_held_out_patients_evaluate_into_the_table() {
    let dir = std::env::temp_dir().join(format!("glyco-ml-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let csv = dir.join("eval-small.csv");
    generate("eval", "0.75", "2", "11", &csv);
    let text = std::fs::read_to_string(&csv).expect("generated CSV");
    assert!(text.starts_with("subject_id,timestamp,glucose_mg_dl,fault,source,sensor_session\n"));
    assert!(text.lines().count() > 300, "too few readings");
    for name in ["adolescent-009", "adolescent-010"] {
        assert!(text.contains(name), "held-out patient {name} missing");
    }
    assert!(
        !text.contains("adult-001"),
        "a training patient leaked into the evaluation split"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_glyco-ml"))
        .args(["eval", "--csv"])
        .arg(&csv)
        .output()
        .expect("glyco-ml runs");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "eval failed: {}\n{table}",
        String::from_utf8_lossy(&output.stderr)
    );
    for row in [
        "| forecast RMSE 30 min",
        "| forecast MAE 60 min",
        "| predicted-low sensitivity",
        "| false predicted lows per patient-day",
        "| fault compression_low",
        "| fault stuck",
        "AR2 (Nightscout)",
        "learned model alone",
        "30-min RMSE at least 15% below AR2",
        "never worse than AR2 and the last value on a subject",
        "| P(low in 30 min) >= |",
        "30-min forecast RMSE per subject",
        "patient-days of data",
        "days with >= 70 % of expected readings",
    ] {
        assert!(table.contains(row), "table lacks {row:?}:\n{table}");
    }
    // The same file without labels still gets forecasts and lows, no faults.
    let unlabelled = dir.join("unlabelled.csv");
    let stripped: String = text
        .lines()
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            [cells[0], cells[1], cells[2]].join(",") + "\n"
        })
        .collect();
    std::fs::write(&unlabelled, stripped).expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_glyco-ml"))
        .args(["eval", "--csv"])
        .arg(&unlabelled)
        .output()
        .expect("glyco-ml runs");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(table.contains("| forecast RMSE 30 min") && !table.contains("| fault compression_low"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `glyco-ml tune` measures the combination's priors and chooses the
/// predicted-low operating point on validation patients; a dry run leaves
/// detector.json alone, a real run writes settings the models then load.
#[test]
fn tuning_on_validation_patients_writes_loadable_settings() {
    let dir = std::env::temp_dir().join(format!("glyco-ml-tune-{}", std::process::id()));
    let models = dir.join("models");
    std::fs::create_dir_all(&models).expect("temp dir");
    for file in ["detector.json", "forecaster.onnx", "fault_detector.onnx"] {
        std::fs::copy(
            glyco_ml::Models::bundled_dir().join(file),
            models.join(file),
        )
        .expect("copy models");
    }
    let csv = dir.join("validation-small.csv");
    generate("validation", "1", "1", "5", &csv);
    let before = std::fs::read(models.join("detector.json")).expect("read");
    let run = |dry: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_glyco-ml"));
        command
            .args(["tune", "--csv"])
            .arg(&csv)
            .arg("--models")
            .arg(&models);
        if dry {
            command.arg("--dry-run");
        }
        let output = command.output().expect("glyco-ml runs");
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            output.status.success(),
            "tune failed: {}\n{text}",
            String::from_utf8_lossy(&output.stderr)
        );
        text
    };
    let text = run(true);
    assert!(
        text.contains("shrinkage 0.25: combined") && text.contains("chosen: prior weight"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(models.join("detector.json")).expect("read"),
        before
    );
    run(false);
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(models.join("detector.json")).expect("read"))
            .expect("json");
    let priors = &after["combination"]["prior_error_moments"];
    assert_eq!(priors.as_array().map(Vec::len), Some(2));
    assert_eq!(priors[0].as_array().map(Vec::len), Some(5));
    assert!(after["predicted_low"]["probability"].as_f64().is_some());
    glyco_ml::Models::load_dir(&models).expect("tuned models load");
    let _ = std::fs::remove_dir_all(&dir);
}
