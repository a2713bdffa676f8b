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

/// Subjects whose combined 30-min RMSE is no worse than both AR2 and the
/// last value, subjects measured, and the worst excess over the better one.
fn never_worse(report: &Report) -> (usize, usize, Option<f64>) {
    let mut no_worse = 0;
    let mut measured = 0;
    let mut worst: Option<f64> = None;
    for subject in report.per_subject.iter().filter(|s| s.points >= 50) {
        measured += 1;
        let best_simple = subject.rmse_30[2].min(subject.rmse_30[3]);
        let excess = subject.rmse_30[0] / best_simple - 1.0;
        if excess <= 0.0 {
            no_worse += 1;
        }
        worst = Some(worst.map_or(excess, |w: f64| w.max(excess)));
    }
    (no_worse, measured, worst)
}

/// Renders the report: data summary, one table, then each aim and whether
/// the measurement meets it.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} subjects, {} CGM readings ({} rejected as invalid), {:.1} patient-days of data ({:.1} days first to last), {} of {} days with >= 70 % of expected readings, {} low events (<70 mg/dL for >=10 min)\n",
        report.subjects,
        report.readings,
        report.rejected_readings,
        report.patient_days,
        report.span_days,
        report.sufficient_days.0,
        report.sufficient_days.1,
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
    let _ = writeln!(
        out,
        "\nPredicted lows at other operating points (the hub's default is probability >= {:.2}):\n",
        report.low_probability
    );
    let _ = writeln!(
        out,
        "| P(low in 30 min) >= | sensitivity | false per patient-day | median lead, min |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|");
    for point in &report.low_curve {
        let s = &point.score;
        let _ = writeln!(
            out,
            "| {:.2} | {} ({}/{}) | {} | {} |",
            point.probability,
            pct(s.sensitivity()),
            s.predicted,
            s.events,
            num(Some(s.false_per_day), 2),
            num(s.median_lead_min, 0)
        );
    }
    let _ = writeln!(
        out,
        "\n30-min forecast RMSE per subject, mg/dL:\n\n| subject | n | {} |\n|---|---:|{}",
        titles.join(" | "),
        "---:|".repeat(METHODS.len())
    );
    for subject in &report.per_subject {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            subject.subject,
            subject.points,
            subject
                .rmse_30
                .iter()
                .map(|r| num(Some(*r), 1))
                .collect::<Vec<_>>()
                .join(" | ")
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
    let (no_worse, measured, worst) = never_worse(report);
    let _ = writeln!(
        out,
        "- never worse than AR2 and the last value on a subject (30-min RMSE): {no_worse} of {measured} subjects, worst {}: {}",
        worst.map_or("—".to_string(), |w| format!("{:+.1}%", w * 100.0)),
        verdict((measured > 0).then_some(no_worse == measured))
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
