//! Node-behaviour events: every refusal the hub makes, with the device it
//! concerns, where it came from, the transport and the reason. They are
//! counted for the status output and kept in the journal for the anomaly
//! detector.
//!
//! Nothing an attacker sends is kept as sent: a claimed device name and a
//! detail are capped (longer text is cut and identified by a hash), and one
//! source can have only a few events a minute logged and journaled; the rest
//! are counted, and summarised in one "N more suppressed" event per source
//! and reason. Counting never waits for the journal: a flood of bad input
//! must not slow good input.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::journal::JournalWriter;
use crate::nodewatch::NodeWatch;
use crate::reading::{Transport, UnixMillis, now_millis};
use crate::throttle::{KeyedBuckets, TokenBucket};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The device is not registered to this hub's patient on chain.
    Unregistered,
    /// The device was registered but has been removed.
    Removed,
    /// Wrong secret, unknown device name, or a client id that is not the username.
    BadCredentials,
    /// Too many failed logins from this address or for this name: delayed or banned.
    LoginThrottled,
    /// Published or subscribed outside the device's own topics.
    WrongTopic,
    /// The payload could not be read (JSON, schema, unit, size).
    InvalidPayload,
    /// The values or the device time are outside the accepted bounds.
    InvalidReading,
    /// A sequence number already used by different content.
    ReplayedSequence,
    /// A BLE frame that does not parse.
    MalformedFrame,
    /// The MQTT connection broke the protocol (first packet not CONNECT, bad
    /// framing, QoS 2).
    ProtocolViolation,
    /// Over a bound: connections in all or from one address, publishes per second.
    OverLimit,
}

impl RefusalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unregistered => "unregistered",
            Self::Removed => "removed",
            Self::BadCredentials => "bad_credentials",
            Self::LoginThrottled => "login_throttled",
            Self::WrongTopic => "wrong_topic",
            Self::InvalidPayload => "invalid_payload",
            Self::InvalidReading => "invalid_reading",
            Self::ReplayedSequence => "replayed_sequence",
            Self::MalformedFrame => "malformed_frame",
            Self::ProtocolViolation => "protocol_violation",
            Self::OverLimit => "over_limit",
        }
    }
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEvent {
    pub at: UnixMillis,
    /// The identity the device claimed (MQTT username, BLE address), capped.
    pub device: Option<String>,
    /// The network address it came from (MQTT).
    #[serde(default)]
    pub source: Option<IpAddr>,
    pub transport: Transport,
    pub reason: RefusalReason,
    /// The specific cause, for people; capped.
    pub detail: String,
    /// Refusals this event stands for: 1, or N for a "suppressed" summary.
    #[serde(default = "one")]
    pub count: u64,
}

/// Longest claimed device name kept as is (a device name is at most 64).
const MAX_CLAIM_CHARS: usize = 64;
/// Longest detail kept as is.
const MAX_DETAIL_CHARS: usize = 240;
/// Events one source may have logged and journaled: a burst, then per minute.
const PER_SOURCE_BURST: u32 = 10;
const PER_SOURCE_PER_MIN: f64 = 6.0;
/// Events all sources together may have logged and journaled, per second.
const GLOBAL_BURST: u32 = 100;
const GLOBAL_PER_SEC: f64 = 20.0;
/// Sources remembered for rate limiting and for summaries.
const MAX_SOURCES: usize = 1024;

/// Keeps attacker-supplied text bounded and printable: longer or odd text is
/// cut, and the whole is identified by a short hash instead.
pub fn cap_text(text: &str, max_chars: usize) -> String {
    let printable = |c: char| !c.is_control();
    if text.chars().count() <= max_chars && text.chars().all(printable) {
        return text.to_owned();
    }
    let head: String = text
        .chars()
        .take(max_chars / 2)
        .map(|c| if printable(c) { c } else { '?' })
        .collect();
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "{head}…({} bytes, sha256 {})",
        text.len(),
        hex::encode(&digest[..6])
    )
}

/// Who a refusal is about, as far as the hub can tell.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub transport: Transport,
    pub device: Option<&'a str>,
    pub source: Option<IpAddr>,
}

impl<'a> Origin<'a> {
    pub fn mqtt(source: IpAddr, device: Option<&'a str>) -> Self {
        Self {
            transport: Transport::Mqtt,
            device,
            source: Some(source),
        }
    }

    pub fn device(transport: Transport, device: &'a str) -> Self {
        Self {
            transport,
            device: Some(device),
            source: None,
        }
    }
}

/// What rate limits and summaries are kept by: the address when there is one
/// (a guesser changes names, not addresses), else the claimed device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum SourceKey {
    Address(IpAddr),
    Device(String),
    Unknown,
}

impl std::fmt::Display for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Address(a) => write!(f, "{a}"),
            Self::Device(d) => f.write_str(d),
            Self::Unknown => f.write_str("-"),
        }
    }
}

#[derive(Debug)]
struct Inner {
    counts: BTreeMap<(Transport, RefusalReason), u64>,
    dropped: u64,
    suppressed_total: u64,
    per_source: KeyedBuckets<SourceKey>,
    global: TokenBucket,
    suppressed: HashMap<(SourceKey, Transport, RefusalReason), Suppressed>,
}

#[derive(Debug)]
struct Suppressed {
    count: u64,
    device: Option<String>,
    source: Option<IpAddr>,
}

/// Counts refusals, logs and journals a bounded share of them.
#[derive(Debug, Clone)]
pub struct Behaviour {
    inner: Arc<Mutex<Inner>>,
    journal: JournalWriter,
    /// The node-behaviour model's feed (disabled unless set).
    watch: NodeWatch,
}

impl Behaviour {
    /// A recorder whose events go to the journal thread, starting from counts
    /// persisted earlier.
    pub fn new(
        journal: JournalWriter,
        persisted: BTreeMap<(Transport, RefusalReason), u64>,
    ) -> Self {
        let now = Instant::now();
        Self {
            inner: Arc::new(Mutex::new(Inner {
                counts: persisted,
                dropped: 0,
                suppressed_total: 0,
                per_source: KeyedBuckets::new(
                    MAX_SOURCES,
                    PER_SOURCE_BURST,
                    PER_SOURCE_PER_MIN / 60.0,
                ),
                global: TokenBucket::new(GLOBAL_BURST, GLOBAL_PER_SEC, now),
                suppressed: HashMap::new(),
            })),
            journal,
            watch: NodeWatch::disabled(),
        }
    }

    /// Feeds refusals, and through the pipeline and the gatekeeper the
    /// devices' arrivals and sessions, to the node-behaviour stage.
    pub fn with_watch(mut self, watch: NodeWatch) -> Self {
        self.watch = watch;
        self
    }

    pub fn watch(&self) -> &NodeWatch {
        &self.watch
    }

    /// A refusal about a device (BLE, or MQTT after the connection is known).
    pub fn refuse(
        &self,
        device: Option<&str>,
        transport: Transport,
        reason: RefusalReason,
        detail: impl AsRef<str>,
    ) {
        let origin = Origin {
            transport,
            device,
            source: None,
        };
        self.record(origin, reason, detail.as_ref());
    }

    /// Records one refusal: always counted; logged and journaled within the
    /// source's and the hub's rate, else kept for the source's summary.
    pub fn record(&self, origin: Origin<'_>, reason: RefusalReason, detail: &str) {
        let device = origin.device.map(|d| cap_text(d, MAX_CLAIM_CHARS));
        if let Some(device) = &device {
            self.watch.refusal(device, reason);
        }
        let key = match (origin.source, &device) {
            (Some(address), _) => SourceKey::Address(address),
            (None, Some(device)) => SourceKey::Device(device.clone()),
            (None, None) => SourceKey::Unknown,
        };
        let now = Instant::now();
        let event = {
            let mut inner = self.inner.lock();
            *inner.counts.entry((origin.transport, reason)).or_default() += 1;
            let within = inner.per_source.take(&key, now) && inner.global.take(now);
            if !within {
                inner.suppressed_total += 1;
                let full = inner.suppressed.len() >= MAX_SOURCES;
                let slot = if full {
                    (SourceKey::Unknown, origin.transport, reason)
                } else {
                    (key, origin.transport, reason)
                };
                let entry = inner.suppressed.entry(slot).or_insert(Suppressed {
                    count: 0,
                    device: device.clone(),
                    source: origin.source,
                });
                entry.count += 1;
                return;
            }
            NodeEvent {
                at: now_millis(),
                device,
                source: origin.source,
                transport: origin.transport,
                reason,
                detail: cap_text(detail, MAX_DETAIL_CHARS),
                count: 1,
            }
        };
        tracing::warn!(
            device = event.device.as_deref().unwrap_or("-"),
            source = %event.source.map_or("-".to_owned(), |s| s.to_string()),
            transport = ?event.transport,
            reason = reason.as_str(),
            detail = %event.detail,
            "refused"
        );
        self.journal_event(event);
    }

    fn journal_event(&self, event: NodeEvent) {
        if !self.journal.record_event(event) {
            self.inner.lock().dropped += 1;
        }
    }

    /// Turns what was suppressed since the last call into one summary event
    /// per source and reason (logged and journaled). Called every few
    /// seconds, and at shutdown.
    pub fn flush_suppressed(&self) -> u64 {
        let pending: Vec<_> = self.inner.lock().suppressed.drain().collect();
        let mut total = 0;
        for ((key, transport, reason), s) in pending {
            total += s.count;
            tracing::warn!(
                source = %key,
                transport = ?transport,
                reason = reason.as_str(),
                suppressed = s.count,
                "{} more refusals suppressed",
                s.count
            );
            self.journal_event(NodeEvent {
                at: now_millis(),
                device: s.device,
                source: s.source,
                transport,
                reason,
                detail: format!(
                    "{} more refusals from {key} suppressed (rate limit)",
                    s.count
                ),
                count: s.count,
            });
        }
        total
    }

    /// Refusal counts by (transport, reason).
    pub fn counts(&self) -> BTreeMap<(Transport, RefusalReason), u64> {
        self.inner.lock().counts.clone()
    }

    /// Events counted but not journaled because the journal fell behind.
    pub fn dropped(&self) -> u64 {
        self.inner.lock().dropped
    }

    /// Refusals counted but not logged one by one (rate limit), since start.
    pub fn suppressed(&self) -> u64 {
        self.inner.lock().suppressed_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacker_text_is_capped_and_identified_by_a_hash() {
        assert_eq!(cap_text("cgm-1", 64), "cgm-1");
        let long = "x".repeat(5_000);
        let capped = cap_text(&long, 64);
        assert!(capped.chars().count() < 100, "{capped}");
        assert!(capped.contains("5000 bytes"), "{capped}");
        let control = cap_text("evil\u{1b}[2Jname", 64);
        assert!(!control.contains('\u{1b}'), "{control:?}");
        assert_ne!(
            cap_text(&"y".repeat(5_000), 64),
            capped,
            "different text, different hash"
        );
    }

    #[tokio::test]
    async fn a_flood_from_one_source_is_counted_but_logged_a_few_times_then_summarised() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, store) =
            crate::journal::open(&dir.path().join("j.redb"), Default::default()).unwrap();
        let (writer, task) = store.spawn().unwrap();
        let behaviour = Behaviour::new(writer, BTreeMap::new());
        let attacker: IpAddr = "192.0.2.7".parse().unwrap();
        let neighbour: IpAddr = "192.0.2.8".parse().unwrap();
        for i in 0..10_000 {
            let name = format!("guess-{i}-{}", "z".repeat(5_000));
            behaviour.record(
                Origin::mqtt(attacker, Some(&name)),
                RefusalReason::BadCredentials,
                "unknown device or wrong secret",
            );
        }
        // Another address is limited on its own.
        behaviour.record(
            Origin::mqtt(neighbour, Some("cuff-1")),
            RefusalReason::WrongTopic,
            "published to \"x\"",
        );
        assert_eq!(
            behaviour.counts()[&(Transport::Mqtt, RefusalReason::BadCredentials)],
            10_000
        );
        assert_eq!(behaviour.suppressed(), 10_000 - u64::from(PER_SOURCE_BURST));
        assert_eq!(behaviour.flush_suppressed(), behaviour.suppressed());
        drop(behaviour);
        task.wait().await.unwrap();
        let events = journal.recent_events(100).unwrap();
        assert_eq!(events.len(), PER_SOURCE_BURST as usize + 2, "{events:#?}");
        assert!(
            events
                .iter()
                .all(|e| e.device.as_ref().is_none_or(|d| d.len() < 200))
        );
        let summary = events.iter().find(|e| e.count > 1).unwrap();
        assert_eq!(summary.source, Some(attacker));
        assert_eq!(
            journal.event_counts().unwrap()[&(Transport::Mqtt, RefusalReason::BadCredentials)],
            10_000,
            "the journaled counts include the suppressed"
        );
    }
}
