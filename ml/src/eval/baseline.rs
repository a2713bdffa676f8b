//! Fixed-threshold baselines: what a simple rule-based monitor would say.

use crate::finding::FaultKind;
use crate::history::{CgmHistory, MINUTE_MS};

/// Predicted-low baseline: an "approaching low" alarm between 70 and 80 mg/dL.
pub fn approaching_low(mg_dl: f64) -> bool {
    (70.0..80.0).contains(&mg_dl)
}

/// Artefact baselines on the newest reading of `history`:
/// - spike: a jump of at least 25 mg/dL at more than 4 mg/dL/min;
/// - stuck: the same value for at least 20 minutes (3 readings or more);
/// - compression low: at least 35 mg/dL below the 30-minute maximum and
///   below 100 mg/dL.
pub fn fault(history: &CgmHistory) -> Option<FaultKind> {
    let now = history.last()?;
    let previous = history.previous()?;
    let jump = (now.mg_dl - previous.mg_dl).abs();
    let minutes = ((now.at_ms - previous.at_ms) as f32 / MINUTE_MS as f32).max(0.1);
    if jump >= 25.0 && jump / minutes > 4.0 {
        return Some(FaultKind::Spike);
    }
    let (same, run_ms) = history.repeated_run();
    if same >= 2 && run_ms >= 20 * MINUTE_MS {
        return Some(FaultKind::Stuck);
    }
    let max_30 = history
        .points()
        .rev()
        .take_while(|p| p.at_ms >= now.at_ms - 30 * MINUTE_MS)
        .map(|p| p.mg_dl)
        .fold(now.mg_dl, f32::max);
    if max_30 - now.mg_dl >= 35.0 && now.mg_dl < 100.0 {
        return Some(FaultKind::CompressionLow);
    }
    None
}
