//! The fleet book: the newest heartbeat of every hub, each hub's model of
//! its normal heartbeats, and the policies physicians left for hubs. Pure
//! and synchronous, so the node, the tests and the scale bench run the same
//! code; signatures and the chain are checked before a heartbeat gets here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use glyco_contracts::Address;
use glyco_ml::fleet::{HubFinding, HubModel, HubModelSettings, HubSample};
use glyco_seal::alerts::AlertPolicyDoc;
use glyco_seal::fleet::{FleetRefusal, Heartbeat, Signed};
use serde::{Deserialize, Serialize};

/// What the book is told to expect of hubs.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSettings {
    /// No heartbeat for this long: silent.
    pub silent_after_ms: i64,
    /// Heartbeats closer than this from one hub are refused.
    pub min_interval_ms: i64,
    /// Hubs kept at most; a new hub beyond is refused.
    pub max_hubs: usize,
    /// The release hubs should run (`IMAGE_VERSION`); else their version.
    pub current_release: Option<String>,
    pub current_version: Option<String>,
    pub model: HubModelSettings,
}

impl Default for FleetSettings {
    fn default() -> Self {
        Self {
            silent_after_ms: 5 * 60 * 1000,
            // The hub's shortest interval is 5 s; a little jitter is fine.
            min_interval_ms: 4_000,
            max_hubs: 100_000,
            current_release: None,
            current_version: None,
            model: HubModelSettings::default(),
        }
    }
}

/// One hub as the book keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HubEntry {
    pub patient: Address,
    pub last: Heartbeat,
    pub received_at_ms: i64,
    /// The hub's clock minus the node's at that heartbeat.
    pub clock_offset_ms: i64,
    pub first_seen_ms: i64,
    pub heartbeats: u64,
    /// Runs seen begin (restarts, and the first).
    pub runs: u64,
    /// What the model said of the newest heartbeat.
    pub findings: Vec<HubFinding>,
    /// A physician's policy waiting for the hub's next heartbeat.
    pub proposed: Option<Box<Signed<AlertPolicyDoc>>>,
    #[serde(skip)]
    model: HubModel,
}

/// What the book counts (metrics and the node's log).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BookCounts {
    pub heartbeats: u64,
    pub proposals: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FleetBookError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a fleet roster: {detail}")]
    Damaged { path: PathBuf, detail: String },
}

pub struct FleetBook {
    pub settings: FleetSettings,
    hubs: HashMap<Address, HubEntry>,
    counts: BookCounts,
}

impl FleetBook {
    pub fn new(settings: FleetSettings) -> Self {
        Self {
            settings,
            hubs: HashMap::new(),
            counts: BookCounts::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.hubs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hubs.is_empty()
    }

    pub fn counts(&self) -> BookCounts {
        self.counts.clone()
    }

    pub fn hubs(&self) -> impl Iterator<Item = (&Address, &HubEntry)> {
        self.hubs.iter()
    }

    pub fn get(&self, hub: &Address) -> Option<&HubEntry> {
        self.hubs.get(hub)
    }

    /// Keeps a heartbeat whose signature and hub the caller checked; returns
    /// the policy waiting for the hub, if it is newer than the hub's.
    pub fn record(
        &mut self,
        heartbeat: Heartbeat,
        patient: Address,
        received_at_ms: i64,
    ) -> Result<Option<Box<Signed<AlertPolicyDoc>>>, FleetRefusal> {
        heartbeat.check_bounds()?;
        let hub = heartbeat.hub;
        if !self.hubs.contains_key(&hub) && self.hubs.len() >= self.settings.max_hubs {
            return Err(FleetRefusal::FleetFull {
                max: self.settings.max_hubs,
            });
        }
        let clock_offset_ms = heartbeat.sent_at_ms.saturating_sub(received_at_ms);
        let settings = &self.settings;
        let entry = self.hubs.entry(hub).or_insert_with(|| HubEntry {
            patient,
            last: heartbeat.clone(),
            received_at_ms: i64::MIN,
            clock_offset_ms,
            first_seen_ms: received_at_ms,
            heartbeats: 0,
            runs: 0,
            findings: Vec::new(),
            proposed: None,
            model: HubModel::default(),
        });
        if entry.heartbeats > 0 {
            let last = &entry.last;
            let older_run = heartbeat.boot_ms < last.boot_ms;
            let same_run_not_newer = heartbeat.boot_ms == last.boot_ms && heartbeat.seq <= last.seq;
            if older_run || same_run_not_newer {
                return Err(FleetRefusal::Replayed {
                    boot_ms: heartbeat.boot_ms,
                    seq: heartbeat.seq,
                });
            }
            if received_at_ms.saturating_sub(entry.received_at_ms) < settings.min_interval_ms {
                return Err(FleetRefusal::TooOften {
                    min_interval_s: (settings.min_interval_ms / 1000).max(1) as u64,
                });
            }
        }
        if entry.heartbeats == 0 || heartbeat.boot_ms != entry.last.boot_ms {
            entry.runs += 1;
        }
        let sample = HubSample {
            at_ms: received_at_ms,
            boot_ms: heartbeat.boot_ms,
            clock_offset_ms,
            rss_kib: heartbeat.rss_kib,
            unsealed: heartbeat.queues.unsealed,
            unanchored: heartbeat.queues.unanchored,
            oldest_unanchored_age_s: heartbeat.queues.oldest_unanchored_age_s,
            anchors: heartbeat.chain.anchors,
            chain_reachable: heartbeat.chain.reachable,
            chain_lag_blocks: heartbeat.chain.lag_blocks,
        };
        entry.findings = entry.model.observe(&sample, &settings.model);
        entry.patient = patient;
        entry.received_at_ms = received_at_ms;
        entry.clock_offset_ms = clock_offset_ms;
        entry.heartbeats += 1;
        let config_version = heartbeat.config_version;
        entry.last = heartbeat;
        self.counts.heartbeats += 1;
        // A proposal the hub has applied (or passed) is done with.
        if entry
            .proposed
            .as_ref()
            .is_some_and(|p| p.body.version <= config_version)
        {
            entry.proposed = None;
        }
        Ok(entry.proposed.clone())
    }

    /// Leaves a signed policy (checked by the caller) for a hub the book
    /// knows; a newer version replaces an older one waiting.
    pub fn propose(&mut self, signed: Signed<AlertPolicyDoc>) -> Result<u64, FleetRefusal> {
        let hub = signed.body.hub;
        let Some(entry) = self.hubs.get_mut(&hub) else {
            return Err(FleetRefusal::NotAHub { hub });
        };
        let version = signed.body.version;
        if version <= entry.last.config_version
            || entry
                .proposed
                .as_ref()
                .is_some_and(|p| p.body.version >= version)
        {
            return Err(FleetRefusal::OverBound {
                detail: format!("version {version} is not newer than the hub's or the one waiting"),
            });
        }
        entry.proposed = Some(Box::new(signed));
        self.counts.proposals += 1;
        Ok(version)
    }

    /// Writes every hub's entry (not the models: they are learned again)
    /// to `path`, atomically, 0600.
    pub fn save(&self, path: &Path) -> Result<(), FleetBookError> {
        let bytes = self.to_bytes()?;
        glyco_contracts::files::write_atomically(path, &bytes).map_err(|source| {
            FleetBookError::Io {
                path: path.to_owned(),
                source,
            }
        })
    }

    /// The roster's bytes (CBOR of every hub's entry).
    pub fn to_bytes(&self) -> Result<Vec<u8>, FleetBookError> {
        let mut bytes = Vec::new();
        let entries: Vec<(&Address, &HubEntry)> = self.hubs.iter().collect();
        ciborium::into_writer(&entries, &mut bytes).map_err(|e| FleetBookError::Damaged {
            path: PathBuf::from("(encoding)"),
            detail: e.to_string(),
        })?;
        Ok(bytes)
    }

    /// Reads a roster saved by [`save`](Self::save); none yet is an empty
    /// book. Hubs silent since keep their last heartbeat, so they show as
    /// silent after a node restart instead of vanishing.
    pub fn load(settings: FleetSettings, path: &Path) -> Result<Self, FleetBookError> {
        let mut book = Self::new(settings);
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(book),
            Err(source) => {
                return Err(FleetBookError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let entries: Vec<(Address, HubEntry)> =
            ciborium::from_reader(&bytes[..]).map_err(|e| FleetBookError::Damaged {
                path: path.to_owned(),
                detail: e.to_string(),
            })?;
        book.hubs = entries.into_iter().take(book.settings.max_hubs).collect();
        Ok(book)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use glyco_seal::fleet::{ChainHealth, Queues};

    pub fn beat(hub: Address, boot_ms: i64, seq: u64, at_ms: i64) -> Heartbeat {
        Heartbeat {
            hub,
            boot_ms,
            seq,
            sent_at_ms: at_ms,
            version: "0.1.0".into(),
            release: None,
            uptime_s: 60,
            disk_free_bytes: None,
            disk_total_bytes: None,
            rss_kib: 64_000,
            cpu_ms: 0,
            mem_available_kib: None,
            queues: Queues::default(),
            chain: ChainHealth {
                reachable: true,
                ..Default::default()
            },
            devices: vec![],
            failing_stages: vec![],
            config_version: 0,
            clock_offset_ms: None,
            update: None,
        }
    }

    #[test]
    fn replays_and_floods_are_refused_and_a_restart_is_a_new_run() {
        let hub = Address::repeat_byte(1);
        let mut book = FleetBook::new(FleetSettings::default());
        book.record(beat(hub, 10, 1, 60_000), Address::ZERO, 60_000)
            .unwrap();
        assert!(matches!(
            book.record(beat(hub, 10, 1, 120_000), Address::ZERO, 120_000),
            Err(FleetRefusal::Replayed { .. })
        ));
        assert!(matches!(
            book.record(beat(hub, 10, 2, 61_000), Address::ZERO, 61_000),
            Err(FleetRefusal::TooOften { .. })
        ));
        book.record(beat(hub, 10, 2, 120_000), Address::ZERO, 120_000)
            .unwrap();
        assert!(matches!(
            book.record(beat(hub, 9, 50, 180_000), Address::ZERO, 180_000),
            Err(FleetRefusal::Replayed { .. })
        ));
        book.record(beat(hub, 11, 1, 180_000), Address::ZERO, 180_000)
            .unwrap();
        let entry = book.get(&hub).unwrap();
        assert_eq!((entry.heartbeats, entry.runs), (3, 2));
    }

    #[test]
    fn the_book_is_bounded_and_survives_a_restart() {
        let settings = FleetSettings {
            max_hubs: 2,
            ..Default::default()
        };
        let mut book = FleetBook::new(settings.clone());
        for i in 1..=2u8 {
            book.record(beat(Address::repeat_byte(i), 1, 1, 0), Address::ZERO, 0)
                .unwrap();
        }
        assert!(matches!(
            book.record(beat(Address::repeat_byte(3), 1, 1, 0), Address::ZERO, 0),
            Err(FleetRefusal::FleetFull { max: 2 })
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roster.cbor");
        book.save(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = FleetBook::load(settings.clone(), &path).unwrap();
        assert_eq!(back.len(), 2);
        std::fs::write(&path, b"not cbor").unwrap();
        assert!(matches!(
            FleetBook::load(settings, &path),
            Err(FleetBookError::Damaged { .. })
        ));
    }
}
