//! The clinic node's Prometheus metrics: the fleet by flag and by release,
//! the hubs' findings, heartbeats kept and refused, the alert inbox's
//! counts when the node runs one, and the process.

use std::collections::BTreeMap;

use glyco_ml::fleet::HubFinding;
use glyco_webkit::metrics::{Exposition, Kind};

use super::FleetNode;
use super::view::{self, FleetFilter};
use crate::inbox::InboxCounts;

/// Distinct release labels exported at most (the rest are summed as
/// `other`), so a fleet of odd builds cannot blow up the series count.
const MAX_RELEASE_LABELS: usize = 32;

pub fn render(node: &FleetNode, inbox: Option<&InboxCounts>, now_ms: i64) -> String {
    let (rows, counts) = node.with_book(|book| {
        (
            view::view(book, &FleetFilter::default(), now_ms),
            book.counts(),
        )
    });
    let mut e = Exposition::new();
    e.single(
        "glyco_fleet_hubs_known",
        Kind::Gauge,
        "Hubs the node has a heartbeat from.",
        rows.len() as f64,
    );
    e.family(
        "glyco_fleet_hubs",
        Kind::Gauge,
        "Hubs by flag (a hub may carry several; healthy carries none other).",
    );
    for (flag, count) in view::tally(&rows) {
        e.sample("glyco_fleet_hubs", &[("flag", flag.name())], count as f64);
    }
    let mut releases: BTreeMap<String, usize> = BTreeMap::new();
    for row in &rows {
        let release = row.release.clone().unwrap_or_else(|| row.version.clone());
        let known = releases.len() < MAX_RELEASE_LABELS || releases.contains_key(&release);
        *releases
            .entry(if known { release } else { "other".into() })
            .or_default() += 1;
    }
    e.family(
        "glyco_fleet_hubs_by_release",
        Kind::Gauge,
        "Hubs by the release (or version) they run.",
    );
    for (release, count) in &releases {
        e.sample(
            "glyco_fleet_hubs_by_release",
            &[("release", release)],
            *count as f64,
        );
    }
    let mut findings: BTreeMap<&str, usize> = BTreeMap::new();
    for finding in rows.iter().flat_map(|r| &r.findings) {
        *findings.entry(finding.name()).or_default() += 1;
    }
    e.family(
        "glyco_fleet_hub_findings",
        Kind::Gauge,
        "Hubs whose newest heartbeat has this finding.",
    );
    for name in HubFinding::NAMES {
        let count = findings.get(name).copied().unwrap_or(0);
        e.sample(
            "glyco_fleet_hub_findings",
            &[("finding", name)],
            count as f64,
        );
    }
    e.single(
        "glyco_fleet_heartbeats_total",
        Kind::Counter,
        "Heartbeats kept since the node started.",
        counts.heartbeats as f64,
    );
    e.single(
        "glyco_fleet_policy_proposals_total",
        Kind::Counter,
        "Alert policies physicians left for hubs since the node started.",
        counts.proposals as f64,
    );
    e.family(
        "glyco_fleet_refused_total",
        Kind::Counter,
        "Fleet messages refused, by reason.",
    );
    let refused = node.counts().refused;
    for reason in super::REFUSAL_REASONS {
        let count = refused.get(reason).copied().unwrap_or(0);
        e.sample(
            "glyco_fleet_refused_total",
            &[("reason", reason)],
            count as f64,
        );
    }
    if let Some(rollout) = node.rollout() {
        e.family(
            "glyco_fleet_rollout_hubs",
            Kind::Gauge,
            "Hubs in the release's rollout, by where they stand.",
        );
        for (state, count) in [
            ("offered", rollout.offered),
            ("kept", rollout.kept),
            ("failed", rollout.failed.len()),
        ] {
            e.sample(
                "glyco_fleet_rollout_hubs",
                &[("release", &rollout.version), ("state", state)],
                count as f64,
            );
        }
        e.single(
            "glyco_fleet_rollout_halted",
            Kind::Gauge,
            "1 when the rollout stopped on failures.",
            f64::from(u8::from(rollout.halted_at_ms.is_some())),
        );
    }
    if let Some(inbox) = inbox {
        for (name, help, value) in [
            (
                "glyco_inbox_alerts_kept_total",
                "Alerts kept for physicians.",
                inbox.kept,
            ),
            (
                "glyco_inbox_duplicates_total",
                "Alert deliveries already kept.",
                inbox.duplicates,
            ),
            (
                "glyco_inbox_acks_total",
                "Acknowledgements kept.",
                inbox.acks,
            ),
            (
                "glyco_inbox_refused_total",
                "Inbox requests refused.",
                inbox.refused,
            ),
        ] {
            e.single(name, Kind::Counter, help, value as f64);
        }
    }
    let (rss_kib, cpu_ms) = glyco_webkit::metrics::process_figures();
    glyco_webkit::metrics::process(&mut e, rss_kib, cpu_ms);
    e.finish()
}
