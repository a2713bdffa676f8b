//! The AGP figures against an independent implementation on the same data:
//! GlucoStats (PyPI; URJC 2025) for time in ranges, mean, GMI and CV, and
//! pandas' quantiles for the percentile bands (tests/python/agp_check.py).

use std::path::PathBuf;
use std::process::Command;

use glyco_report::{AgpOptions, CgmPoint, agp};

const MINUTE: i64 = 60_000;
const DAY: i64 = 1440 * MINUTE;
/// 2026-11-30T12:00:00Z
const NOW: i64 = 1_796_040_000_000;

fn trace() -> Vec<CgmPoint> {
    glyco_report::synthetic::cgm_trace(NOW - 14 * DAY, NOW, 1, 0x9e37_79b9_7f4a_7c15, true)
}

#[test]
fn agp_figures_agree_with_glucostats_and_pandas() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join("tests/python/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/bootstrap.sh",
        python.display()
    );
    let points = trace();
    let report = agp(&points, NOW, &AgpOptions::default()).unwrap();
    let metrics = report.metrics.unwrap();
    assert!(metrics.ranges.very_low > 0.0 && metrics.ranges.very_high > 0.0);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("readings.csv");
    let mut text = String::from("time_ms,mg_dl,minute_of_day\n");
    for p in points.iter().filter(|p| p.at_ms >= report.from_ms) {
        text.push_str(&format!(
            "{},{},{}\n",
            p.at_ms,
            p.mg_dl,
            (p.at_ms % DAY) / MINUTE
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let json = dir.path().join("ours.json");
    std::fs::write(&json, serde_json::to_vec(&report).unwrap()).unwrap();
    let out = Command::new(&python)
        .arg(root.join("tests/python/agp_check.py"))
        .arg(&csv)
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout));
}
