//! A model of each hub's normal heartbeats, for a clinic's fleet view
//! (docs/FLEET.md, "Flags"): the node-behaviour model's idea, one level up.
//! The hub learns how each device talks; the clinic node learns how each
//! hub reports, and names what stops looking like it.
//!
//! A few words of state per hub, updated once a heartbeat: robust running
//! statistics of the clock offset and the memory, the recent restarts,
//! growth streaks of the queues, and when anchoring last moved.

use serde::{Deserialize, Serialize};

use crate::behaviour::stats::{RecentCount, RobustStat};

/// What the model reads from one heartbeat, on the node's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HubSample {
    /// When the node received it.
    pub at_ms: i64,
    /// When the hub's current run began (a new value is a restart).
    pub boot_ms: i64,
    /// The hub's clock minus the node's.
    pub clock_offset_ms: i64,
    pub rss_kib: u64,
    pub unsealed: u64,
    pub unanchored: u64,
    pub oldest_unanchored_age_s: Option<u64>,
    pub anchors: u64,
    pub chain_reachable: bool,
    pub chain_lag_blocks: Option<u64>,
}

/// When a hub is lagging or misbehaving.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HubModelSettings {
    /// A clock further off than this from the node's is skewed, whatever
    /// the hub's habit (certificates, anchors and alert times need it).
    pub clock_skew_ms: i64,
    /// A clock that moved this many robust scales from its own habit, and
    /// by at least `clock_drift_min_ms`, drifts.
    pub clock_z: f32,
    pub clock_drift_min_ms: i64,
    /// Readings wait unanchored longer than this: anchoring stopped.
    pub anchoring_stalled_s: u64,
    /// This many runs begun within `restart_window_ms`: restarts loop.
    pub restarts_looping: usize,
    pub restart_window_ms: i64,
    /// Consecutive heartbeats with a queue growing: lagging.
    pub growth_streak: u8,
    /// A queue shorter than this never counts as growing.
    pub growth_floor: u64,
    /// More blocks behind the head than this: lagging.
    pub chain_lag_blocks: u64,
    /// Heartbeats in a row with the chain unreachable: lagging.
    pub chain_unreachable_beats: u8,
    /// Memory this many robust scales above habit, and 1.5 times it: leaking.
    pub memory_z: f32,
    /// Heartbeats before a hub's own habits are trusted.
    pub learning_beats: u32,
}

impl Default for HubModelSettings {
    fn default() -> Self {
        Self {
            clock_skew_ms: 60_000,
            clock_z: 8.0,
            clock_drift_min_ms: 5_000,
            anchoring_stalled_s: 30 * 60,
            restarts_looping: 3,
            restart_window_ms: 60 * 60 * 1000,
            growth_streak: 10,
            growth_floor: 100,
            chain_lag_blocks: 60,
            chain_unreachable_beats: 3,
            memory_z: 8.0,
            learning_beats: 30,
        }
    }
}

/// What the model says of a hub now.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum HubFinding {
    // Misbehaving.
    ClockSkew { offset_ms: i64 },
    ClockDrift { offset_ms: i64, usual_ms: i64 },
    AnchoringStopped { oldest_unanchored_s: u64 },
    RestartsLooping { restarts: usize, window_min: i64 },
    MemoryGrowing { rss_kib: u64, usual_kib: u64 },
    // Lagging.
    QueueGrowing { queue: String, length: u64 },
    ChainLag { blocks: u64 },
    ChainUnreachable { beats: u8 },
}

impl HubFinding {
    /// Lagging (falling behind, often the network or the chain) rather than
    /// misbehaving (the hub itself is off).
    pub fn is_lagging(&self) -> bool {
        matches!(
            self,
            Self::QueueGrowing { .. } | Self::ChainLag { .. } | Self::ChainUnreachable { .. }
        )
    }

    /// Every name [`name`](Self::name) gives.
    pub const NAMES: [&'static str; 8] = [
        "clock_skew",
        "clock_drift",
        "anchoring_stopped",
        "restarts_looping",
        "memory_growing",
        "queue_growing",
        "chain_lag",
        "chain_unreachable",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Self::ClockSkew { .. } => "clock_skew",
            Self::ClockDrift { .. } => "clock_drift",
            Self::AnchoringStopped { .. } => "anchoring_stopped",
            Self::RestartsLooping { .. } => "restarts_looping",
            Self::MemoryGrowing { .. } => "memory_growing",
            Self::QueueGrowing { .. } => "queue_growing",
            Self::ChainLag { .. } => "chain_lag",
            Self::ChainUnreachable { .. } => "chain_unreachable",
        }
    }
}

/// One hub's habits (in memory: a restarted node learns them again).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HubModel {
    offset: RobustStat,
    rss: RobustStat,
    boots: RecentCount<8>,
    last_boot_ms: Option<i64>,
    last_unsealed: u64,
    last_unanchored: u64,
    unsealed_streak: u8,
    unanchored_streak: u8,
    unreachable_streak: u8,
    beats: u32,
}

fn clock_stat() -> RobustStat {
    // Offsets start around zero with a second's scale; a floor of 250 ms
    // keeps network jitter from ever being news.
    RobustStat::new(0.0, 1000.0, 250.0, 200, 1)
}

fn memory_stat() -> RobustStat {
    RobustStat::new(64_000.0, 8_000.0, 2_000.0, 500, 1)
}

impl Default for HubModel {
    fn default() -> Self {
        Self {
            offset: clock_stat(),
            rss: memory_stat(),
            boots: RecentCount::default(),
            last_boot_ms: None,
            last_unsealed: 0,
            last_unanchored: 0,
            unsealed_streak: 0,
            unanchored_streak: 0,
            unreachable_streak: 0,
            beats: 0,
        }
    }
}

fn streak(streak: u8, previous: u64, now: u64, floor: u64) -> u8 {
    if now > previous && now >= floor {
        streak.saturating_add(1)
    } else if now < previous {
        0
    } else {
        streak
    }
}

impl HubModel {
    /// Judges `sample` against the hub's habits, then learns from it.
    pub fn observe(&mut self, sample: &HubSample, settings: &HubModelSettings) -> Vec<HubFinding> {
        let mut findings = Vec::new();
        let learned = self.beats >= settings.learning_beats;

        if self.last_boot_ms != Some(sample.boot_ms) {
            // A first heartbeat is a start too: a hub that restarts in a
            // loop may never send two from one run.
            self.boots.push(sample.at_ms);
            self.last_boot_ms = Some(sample.boot_ms);
        }
        let restarts = self.boots.within(sample.at_ms, settings.restart_window_ms);
        if restarts >= settings.restarts_looping {
            findings.push(HubFinding::RestartsLooping {
                restarts,
                window_min: settings.restart_window_ms / 60_000,
            });
        }

        let offset = sample.clock_offset_ms;
        if offset.abs() > settings.clock_skew_ms {
            findings.push(HubFinding::ClockSkew { offset_ms: offset });
        } else if learned
            && self.offset.z(offset as f32).abs() > settings.clock_z
            && (offset as f32 - self.offset.mean()).abs() > settings.clock_drift_min_ms as f32
        {
            findings.push(HubFinding::ClockDrift {
                offset_ms: offset,
                usual_ms: self.offset.mean() as i64,
            });
        }

        if let Some(age) = sample.oldest_unanchored_age_s
            && sample.unanchored > 0
            && age > settings.anchoring_stalled_s
        {
            findings.push(HubFinding::AnchoringStopped {
                oldest_unanchored_s: age,
            });
        }

        let rss = sample.rss_kib as f32;
        if learned && self.rss.z(rss) > settings.memory_z && rss > 1.5 * self.rss.mean() {
            findings.push(HubFinding::MemoryGrowing {
                rss_kib: sample.rss_kib,
                usual_kib: self.rss.mean() as u64,
            });
        }

        self.unsealed_streak = streak(
            self.unsealed_streak,
            self.last_unsealed,
            sample.unsealed,
            settings.growth_floor,
        );
        self.unanchored_streak = streak(
            self.unanchored_streak,
            self.last_unanchored,
            sample.unanchored,
            settings.growth_floor.div_ceil(10).max(1),
        );
        self.last_unsealed = sample.unsealed;
        self.last_unanchored = sample.unanchored;
        if self.unsealed_streak >= settings.growth_streak {
            findings.push(HubFinding::QueueGrowing {
                queue: "unsealed".into(),
                length: sample.unsealed,
            });
        }
        if self.unanchored_streak >= settings.growth_streak {
            findings.push(HubFinding::QueueGrowing {
                queue: "unanchored".into(),
                length: sample.unanchored,
            });
        }
        if let Some(blocks) = sample.chain_lag_blocks
            && blocks > settings.chain_lag_blocks
        {
            findings.push(HubFinding::ChainLag { blocks });
        }
        self.unreachable_streak = match sample.chain_reachable {
            true => 0,
            false => self.unreachable_streak.saturating_add(1),
        };
        if self.unreachable_streak >= settings.chain_unreachable_beats {
            findings.push(HubFinding::ChainUnreachable {
                beats: self.unreachable_streak,
            });
        }

        // Learn only from what looked normal, so a drift does not become
        // the habit while it is being reported.
        if !findings.iter().any(|f| {
            matches!(
                f,
                HubFinding::ClockSkew { .. } | HubFinding::ClockDrift { .. }
            )
        }) {
            self.offset.update(offset as f32);
        }
        if !findings
            .iter()
            .any(|f| matches!(f, HubFinding::MemoryGrowing { .. }))
        {
            self.rss.update(rss);
        }
        self.beats = self.beats.saturating_add(1);
        findings
    }

    pub fn beats(&self) -> u32 {
        self.beats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(i: i64) -> HubSample {
        HubSample {
            at_ms: i * 60_000,
            boot_ms: 0,
            clock_offset_ms: 40 + (i % 7) * 30,
            rss_kib: 64_000 + (i % 5) as u64 * 300,
            unsealed: (i % 4) as u64,
            unanchored: 1,
            oldest_unanchored_age_s: Some(40),
            anchors: i as u64 / 2,
            chain_reachable: true,
            chain_lag_blocks: Some(1),
        }
    }

    fn run(
        model: &mut HubModel,
        from: i64,
        to: i64,
        edit: impl Fn(&mut HubSample, i64),
    ) -> Vec<HubFinding> {
        let settings = HubModelSettings::default();
        let mut all = Vec::new();
        for i in from..to {
            let mut s = sample(i);
            edit(&mut s, i);
            all.extend(model.observe(&s, &settings));
        }
        all
    }

    #[test]
    fn a_healthy_hub_raises_nothing_in_a_week() {
        let mut model = HubModel::default();
        let findings = run(&mut model, 0, 7 * 24 * 60, |_, _| {});
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn a_clock_far_off_is_skewed_and_a_drift_from_habit_is_noticed() {
        let mut model = HubModel::default();
        run(&mut model, 0, 100, |_, _| {});
        let found = run(&mut model, 100, 101, |s, _| s.clock_offset_ms = 90_000);
        assert_eq!(found, vec![HubFinding::ClockSkew { offset_ms: 90_000 }]);
        let found = run(&mut model, 101, 102, |s, _| s.clock_offset_ms = 20_000);
        assert!(
            matches!(
                found[..],
                [HubFinding::ClockDrift {
                    offset_ms: 20_000,
                    ..
                }]
            ),
            "{found:?}"
        );
    }

    #[test]
    fn restarts_in_a_loop_are_named_and_one_restart_is_not() {
        let mut model = HubModel::default();
        assert!(
            run(&mut model, 0, 60, |s, i| s.boot_ms =
                if i < 30 { 0 } else { 1 })
            .is_empty()
        );
        let found = run(&mut model, 60, 64, |s, i| s.boot_ms = i);
        assert!(
            found.iter().any(|f| f.name() == "restarts_looping"),
            "{found:?}"
        );
    }

    #[test]
    fn anchoring_stopped_and_growing_queues_and_chain_lag() {
        let mut model = HubModel::default();
        run(&mut model, 0, 40, |_, _| {});
        let found = run(&mut model, 40, 60, |s, i| {
            s.unanchored = (i - 38) as u64;
            s.oldest_unanchored_age_s = Some(((i - 38) * 60) as u64 * 2);
            s.unsealed = (i - 38) as u64 * 100;
            s.chain_lag_blocks = Some(500);
        });
        let names: std::collections::BTreeSet<_> = found.iter().map(HubFinding::name).collect();
        for name in ["anchoring_stopped", "queue_growing", "chain_lag"] {
            assert!(names.contains(name), "{name} missing from {names:?}");
        }
        assert!(
            found
                .iter()
                .filter(|f| f.name() == "chain_lag")
                .all(HubFinding::is_lagging)
        );
    }

    #[test]
    fn memory_far_above_habit_is_growing() {
        let mut model = HubModel::default();
        run(&mut model, 0, 60, |_, _| {});
        let found = run(&mut model, 60, 61, |s, _| s.rss_kib = 200_000);
        assert!(
            matches!(
                found[..],
                [HubFinding::MemoryGrowing {
                    rss_kib: 200_000,
                    ..
                }]
            ),
            "{found:?}"
        );
    }

    #[test]
    fn an_unreachable_chain_takes_three_beats() {
        let mut model = HubModel::default();
        let found = run(&mut model, 0, 2, |s, _| s.chain_reachable = false);
        assert!(found.is_empty());
        let found = run(&mut model, 2, 3, |s, _| s.chain_reachable = false);
        assert_eq!(found, vec![HubFinding::ChainUnreachable { beats: 3 }]);
    }
}
