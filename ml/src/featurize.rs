//! Training rows for ml/training/train.py, computed by the same code the hub
//! runs (`glyco-ml features`), so training and serving see identical inputs.

use std::io::Write;

use crate::data::{Dataset, Source, sensor_changes};
use crate::features::{
    DELTA_SCALE, FAULT_FEATURES, FORECAST_FEATURES, fault_features, forecast_features,
};
use crate::history::{Arrival, CgmHistory, CgmPoint, MINUTE_MS};
use crate::truth::Truth;

/// Writes one CSV row per CGM reading: subject, time, label, whether the
/// timing alone explains it (gap/clock), forecaster features and targets
/// (blank when the truth is unknown), fault-detector features.
pub fn write_features(data: &Dataset, out: &mut dyn Write) -> std::io::Result<usize> {
    let mut header = vec![
        "subject".to_string(),
        "at_ms".into(),
        "label".into(),
        "timing_fault".into(),
    ];
    header.extend((0..FORECAST_FEATURES).map(|i| format!("fc{i}")));
    header.extend(["target30".to_string(), "target60".to_string()]);
    header.extend((0..FAULT_FEATURES).map(|i| format!("ff{i}")));
    writeln!(out, "{}", header.join(","))?;
    let mut rows = 0;
    for (subject, records) in &data.subjects {
        let truth = Truth::build(records);
        let mut history = CgmHistory::new();
        let changes = sensor_changes(records);
        for ((record, segment), new_sensor) in records.iter().zip(&truth.segment_of).zip(changes) {
            if record.source != Source::Cgm || !record.mg_dl.is_finite() {
                continue;
            }
            if new_sensor {
                // As the monitor does: a new sensor's history starts afresh.
                history.clear();
            }
            let arrival = history.admit(CgmPoint {
                at_ms: record.at_ms,
                mg_dl: record.mg_dl as f32,
            });
            let timing_fault = match arrival {
                Arrival::Duplicate => continue,
                Arrival::AfterGap { .. } | Arrival::ClockWentBack { .. } => 1,
                Arrival::First | Arrival::Next { .. } => 0,
            };
            let (Some(fc), Some(ff)) = (forecast_features(&history), fault_features(&history))
            else {
                continue;
            };
            let label = record.label.flatten().map_or("none", |k| k.name());
            let segment = &truth.segments[*segment];
            let clean = record.label.flatten().is_none();
            let target = |minutes: i64| {
                segment
                    .value_at(record.at_ms + minutes * MINUTE_MS)
                    .filter(|_| clean)
                    .map_or(String::new(), |v| {
                        format!("{:.5}", (v - record.mg_dl as f32) / DELTA_SCALE)
                    })
            };
            let mut row = vec![
                subject.clone(),
                record.at_ms.to_string(),
                label.to_string(),
                timing_fault.to_string(),
            ];
            row.extend(fc.iter().map(|v| format!("{v:.5}")));
            row.push(target(30));
            row.push(target(60));
            row.extend(ff.iter().map(|v| format!("{v:.5}")));
            writeln!(out, "{}", row.join(","))?;
            rows += 1;
        }
    }
    Ok(rows)
}
