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

#[test]
fn generated_held_out_patients_evaluate_into_the_table() {
    let dir = std::env::temp_dir().join(format!("glyco-ml-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let csv = dir.join("eval-small.csv");
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("training/generate.py");
    let status = Command::new(python())
        .arg(&generator)
        .args([
            "--split",
            "eval",
            "--days",
            "0.75",
            "--patients",
            "2",
            "--seed",
            "11",
            "--out",
        ])
        .arg(&csv)
        .status()
        .expect("the generator starts (run scripts/bootstrap.sh)");
    assert!(status.success(), "generator failed: {status}");
    let text = std::fs::read_to_string(&csv).expect("generated CSV");
    assert!(text.starts_with("subject_id,timestamp,glucose_mg_dl,fault,source\n"));
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
        "30-min RMSE at least 15% below AR2",
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
