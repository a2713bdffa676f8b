//! The fleet view: every hub with its state and flags, filtered, as rows
//! for the command line, JSON for scripts and the dashboard's page.

use std::collections::BTreeSet;

use glyco_contracts::Address;
use glyco_ml::fleet::HubFinding;
use serde::{Deserialize, Serialize};

use super::book::{FleetBook, FleetSettings, HubEntry};

/// What is wrong with a hub, as the clinic sorts it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// No heartbeat for longer than the node's silence bound.
    Silent,
    /// Not on the fleet's current release (or version).
    Outdated,
    /// Falling behind: queues growing, chain lag, chain unreachable.
    Lagging,
    /// Off its own habits: clock, restarts, anchoring, memory, a failed stage.
    Misbehaving,
    /// None of the above.
    Healthy,
}

impl Flag {
    pub fn name(self) -> &'static str {
        match self {
            Self::Silent => "silent",
            Self::Outdated => "outdated",
            Self::Lagging => "lagging",
            Self::Misbehaving => "misbehaving",
            Self::Healthy => "healthy",
        }
    }
}

/// One hub in the view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubRow {
    pub hub: Address,
    pub patient: Address,
    pub flags: Vec<Flag>,
    /// Why, in words a script can match (`clock_skew`, `stage_failed:seal`).
    pub reasons: Vec<String>,
    pub last_heartbeat_ms: i64,
    pub silent_for_s: u64,
    pub version: String,
    pub release: Option<String>,
    pub uptime_s: u64,
    pub runs: u64,
    pub heartbeats: u64,
    pub clock_offset_ms: i64,
    pub rss_kib: u64,
    pub disk_free_bytes: Option<u64>,
    pub unsealed: u64,
    pub unanchored: u64,
    pub unreplicated: u64,
    pub alerts_open: u64,
    pub chain_lag_blocks: Option<u64>,
    pub devices: usize,
    /// Devices not heard from in an hour.
    pub devices_quiet: usize,
    pub config_version: u64,
    pub policy_waiting: Option<u64>,
    pub findings: Vec<HubFinding>,
    /// The last update's outcome and version (`kept 2026.12.2`).
    #[serde(default)]
    pub update: Option<String>,
}

/// Which hubs to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetFilter {
    /// Hubs with any of these flags (none: all).
    pub flags: BTreeSet<Flag>,
    pub version: Option<String>,
    pub hub: Option<Address>,
}

impl FleetFilter {
    pub fn keeps(&self, row: &HubRow) -> bool {
        (self.flags.is_empty() || row.flags.iter().any(|f| self.flags.contains(f)))
            && self
                .version
                .as_ref()
                .is_none_or(|v| &row.version == v || row.release.as_ref() == Some(v))
            && self.hub.is_none_or(|h| h == row.hub)
    }
}

const HOUR_MS: i64 = 60 * 60 * 1000;

/// How one hub stands at `now_ms`.
pub fn row(hub: Address, entry: &HubEntry, settings: &FleetSettings, now_ms: i64) -> HubRow {
    let last = &entry.last;
    let mut flags = BTreeSet::new();
    let mut reasons = Vec::new();
    let silent_for_ms = now_ms.saturating_sub(entry.received_at_ms).max(0);
    if silent_for_ms > settings.silent_after_ms {
        flags.insert(Flag::Silent);
        reasons.push(format!("silent_for_s:{}", silent_for_ms / 1000));
    }
    let outdated = match (&settings.current_release, &settings.current_version) {
        (Some(release), _) => last.release.as_ref() != Some(release),
        (None, Some(version)) => &last.version != version,
        (None, None) => false,
    };
    if outdated {
        flags.insert(Flag::Outdated);
        reasons.push(format!(
            "outdated:{}",
            last.release.as_deref().unwrap_or(&last.version)
        ));
    }
    for finding in &entry.findings {
        flags.insert(match finding.is_lagging() {
            true => Flag::Lagging,
            false => Flag::Misbehaving,
        });
        reasons.push(finding.name().to_owned());
    }
    for stage in &last.failing_stages {
        flags.insert(Flag::Misbehaving);
        reasons.push(format!("stage_failed:{stage}"));
    }
    if let Some(update) = last.update.as_ref().filter(|u| u.outcome.is_failure()) {
        flags.insert(Flag::Misbehaving);
        reasons.push(format!(
            "update_{}:{}",
            update.outcome.name(),
            update.version
        ));
    }
    if flags.is_empty() {
        flags.insert(Flag::Healthy);
    }
    HubRow {
        hub,
        patient: entry.patient,
        flags: flags.into_iter().collect(),
        reasons,
        last_heartbeat_ms: entry.received_at_ms,
        silent_for_s: (silent_for_ms / 1000) as u64,
        version: last.version.clone(),
        release: last.release.clone(),
        uptime_s: last.uptime_s,
        runs: entry.runs,
        heartbeats: entry.heartbeats,
        clock_offset_ms: entry.clock_offset_ms,
        rss_kib: last.rss_kib,
        disk_free_bytes: last.disk_free_bytes,
        unsealed: last.queues.unsealed,
        unanchored: last.queues.unanchored,
        unreplicated: last.queues.unreplicated,
        alerts_open: last.queues.alerts_open,
        chain_lag_blocks: last.chain.lag_blocks,
        devices: last.devices.len(),
        devices_quiet: last
            .devices
            .iter()
            .filter(|d| {
                d.standing == "active"
                    && d.last_seen_ms
                        .is_none_or(|seen| last.sent_at_ms.saturating_sub(seen) > HOUR_MS)
            })
            .count(),
        config_version: last.config_version,
        policy_waiting: entry.proposed.as_ref().map(|p| p.body.version),
        findings: entry.findings.clone(),
        update: last
            .update
            .as_ref()
            .map(|u| format!("{} {}", u.outcome.name(), u.version)),
    }
}

/// The rows `filter` keeps, the most urgent first (silent, then
/// misbehaving, lagging, outdated; then by hub).
pub fn view(book: &FleetBook, filter: &FleetFilter, now_ms: i64) -> Vec<HubRow> {
    let mut rows: Vec<HubRow> = book
        .hubs()
        .map(|(hub, entry)| row(*hub, entry, &book.settings, now_ms))
        .filter(|row| filter.keeps(row))
        .collect();
    let rank = |row: &HubRow| {
        [
            Flag::Silent,
            Flag::Misbehaving,
            Flag::Lagging,
            Flag::Outdated,
        ]
        .iter()
        .position(|f| row.flags.contains(f))
        .unwrap_or(4)
    };
    rows.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.hub.cmp(&b.hub)));
    rows
}

/// How many hubs carry each flag.
pub fn tally(rows: &[HubRow]) -> std::collections::BTreeMap<Flag, usize> {
    let mut tally = std::collections::BTreeMap::new();
    for flag in [
        Flag::Healthy,
        Flag::Silent,
        Flag::Outdated,
        Flag::Lagging,
        Flag::Misbehaving,
    ] {
        tally.insert(flag, 0);
    }
    for row in rows {
        for flag in &row.flags {
            *tally.entry(*flag).or_default() += 1;
        }
    }
    tally
}

fn age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// The rows as a table for a terminal.
pub fn table(rows: &[HubRow]) -> String {
    let mut out = format!(
        "{:<42} {:<20} {:>8} {:>12} {:>8} {:>9} {:>9} {:>8}  {}\n",
        "hub", "flags", "seen", "version", "uptime", "unsealed", "unanchor", "clock", "why"
    );
    for row in rows {
        let flags: Vec<&str> = row.flags.iter().map(|f| f.name()).collect();
        out.push_str(&format!(
            "{:<42} {:<20} {:>8} {:>12} {:>8} {:>9} {:>9} {:>6}ms  {}\n",
            row.hub.to_string(),
            flags.join(","),
            age(row.silent_for_s),
            row.release.as_deref().unwrap_or(&row.version),
            age(row.uptime_s),
            row.unsealed,
            row.unanchored,
            row.clock_offset_ms,
            row.reasons.join(" "),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::book::tests::beat;

    #[test]
    fn flags_sort_and_filter() {
        let settings = FleetSettings {
            current_version: Some("0.2.0".into()),
            ..Default::default()
        };
        let mut book = FleetBook::new(settings);
        let (a, b, c) = (
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            Address::repeat_byte(3),
        );
        let mut current = beat(a, 1, 1, 0);
        current.version = "0.2.0".into();
        book.record(current.clone(), Address::ZERO, 0).unwrap();
        let mut skewed = beat(b, 1, 1, 600_000 + 90_000);
        skewed.version = "0.2.0".into();
        book.record(skewed, Address::ZERO, 600_000).unwrap();
        let mut failing = beat(c, 1, 1, 600_000);
        failing.failing_stages = vec!["seal".into()];
        book.record(failing, Address::ZERO, 600_000).unwrap();

        let rows = view(&book, &FleetFilter::default(), 610_000);
        let order: Vec<Address> = rows.iter().map(|r| r.hub).collect();
        assert_eq!(order, vec![a, b, c]);
        assert_eq!(rows[0].flags, vec![Flag::Silent]);
        assert_eq!(rows[1].flags, vec![Flag::Misbehaving]);
        assert_eq!(rows[1].reasons, vec!["clock_skew"]);
        assert_eq!(rows[2].flags, vec![Flag::Outdated, Flag::Misbehaving]);
        assert!(rows[2].reasons.contains(&"stage_failed:seal".to_string()));

        let only_outdated = FleetFilter {
            flags: [Flag::Outdated].into(),
            ..Default::default()
        };
        assert_eq!(view(&book, &only_outdated, 610_000).len(), 1);
        let by_version = FleetFilter {
            version: Some("0.2.0".into()),
            ..Default::default()
        };
        assert_eq!(view(&book, &by_version, 610_000).len(), 2);
        let tally = tally(&rows);
        assert_eq!(tally[&Flag::Healthy], 0);
        assert_eq!(tally[&Flag::Misbehaving], 2);
        assert!(table(&rows).contains("stage_failed:seal"));
    }
}
