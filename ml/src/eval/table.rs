//! The evaluation table (Markdown, so it pastes into docs) and the aims.

use std::fmt::Write;

use super::{METHODS, Report};

fn num(value: Option<f64>, digits: usize) -> String {
    value.map_or("—".to_string(), |v| format!("{v:.digits$}"))
}

fn pct(value: Option<f64>) -> String {
    value.map_or("—".to_string(), |v| format!("{:.1}%", v * 100.0))
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measurable here",
    }
}

/// Renders the report: data summary, one table, then each aim and whether
/// the measurement meets it.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} subjects, {} CGM readings ({} rejected as invalid), {:.1} patient-days, {} low events (<70 mg/dL for >=10 min)\n",
        report.subjects,
        report.readings,
        report.rejected_readings,
        report.patient_days,
        report.low_events
    );
    let titles: Vec<&str> = METHODS.iter().map(|m| m.title()).collect();
    let _ = writeln!(out, "| metric | {} |", titles.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(METHODS.len()));
    let mut row = |name: String, cells: Vec<String>| {
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    };
    for (h, minutes) in [(0, 30), (1, 60)] {
        let n = report.forecast[0].points[h];
        row(
            format!("forecast RMSE {minutes} min, mg/dL (n={n})"),
            report
                .forecast
                .iter()
                .map(|f| num(Some(f.rmse[h]), 1))
                .collect(),
        );
        row(
            format!("forecast MAE {minutes} min, mg/dL"),
            report
                .forecast
                .iter()
                .map(|f| num(Some(f.mae[h]), 1))
                .collect(),
        );
    }
    row(
        "predicted-low sensitivity".into(),
        report
            .lows
            .iter()
            .map(|l| format!("{} ({}/{})", pct(l.sensitivity()), l.predicted, l.events))
            .collect(),
    );
    row(
        "median lead time, min".into(),
        report
            .lows
            .iter()
            .map(|l| num(l.median_lead_min, 0))
            .collect(),
    );
    row(
        "false predicted lows per patient-day".into(),
        report
            .lows
            .iter()
            .map(|l| {
                format!(
                    "{} ({}/{})",
                    num(Some(l.false_per_day), 2),
                    l.false_alarms,
                    l.alarms
                )
            })
            .collect(),
    );
    for (kind, model, baseline) in &report.faults {
        let cells = |s: &super::FaultScore| {
            format!(
                "P {} R {} (episodes {}/{}), FD {}",
                pct(s.precision()),
                pct(s.recall()),
                s.episodes_found,
                s.episodes,
                pct(s.false_detection_rate())
            )
        };
        let model_cell = cells(model);
        row(
            format!("fault {kind}: precision, recall, false detections"),
            vec![model_cell.clone(), model_cell, "—".into(), cells(baseline)],
        );
    }
    if !report.labelled {
        let _ = writeln!(
            out,
            "\n(no fault labels in the data: fault detection not scored)"
        );
    }

    let _ = writeln!(out, "\nAims:");
    let (model, ar2) = (&report.forecast[0], &report.forecast[2]);
    let gain = (ar2.rmse[0] > 0.0).then(|| 1.0 - model.rmse[0] / ar2.rmse[0]);
    let _ = writeln!(
        out,
        "- 30-min RMSE at least 15% below AR2: {} below ({:.1} vs {:.1} mg/dL): {}",
        pct(gain),
        model.rmse[0],
        ar2.rmse[0],
        verdict(gain.map(|g| g >= 0.15))
    );
    let lows = &report.lows[0];
    let _ = writeln!(
        out,
        "- predicted-low sensitivity >= 90%: {}: {}",
        pct(lows.sensitivity()),
        verdict(lows.sensitivity().map(|s| s >= 0.9))
    );
    let _ = writeln!(
        out,
        "- median lead >= 15 min: {} min: {}",
        num(lows.median_lead_min, 0),
        verdict(lows.median_lead_min.map(|m| m >= 15.0))
    );
    let _ = writeln!(
        out,
        "- <= 1 false predicted low per patient-day: {:.2}: {}",
        lows.false_per_day,
        verdict((report.patient_days > 0.0).then_some(lows.false_per_day <= 1.0))
    );
    if let Some((_, model, _)) = report
        .faults
        .iter()
        .find(|(kind, _, _)| *kind == crate::finding::FaultKind::CompressionLow)
    {
        let (recall, episode, false_rate) = (
            model.recall(),
            model.episode_recall(),
            model.false_detection_rate(),
        );
        let _ = writeln!(
            out,
            "- compression-low recall >= 90% at <= 1.7% false detections: reading recall {}, episode recall {}, false detections {}: {}",
            pct(recall),
            pct(episode),
            pct(false_rate),
            verdict(recall.zip(false_rate).map(|(r, f)| r >= 0.9 && f <= 0.017))
        );
    }
    out
}
