//! The escalation engine: which findings become alerts, de-duplication, the
//! ladder (patient → physicians → ...), acknowledgements. Pure: time is an
//! argument, so tests drive it without sleeping, and every change comes
//! back as the changed [`AlertRecord`]s for the stage to keep durably.

use std::collections::{BTreeMap, HashMap, VecDeque};

use glyco_contracts::Address;
use glyco_seal::alerts;
use serde::{Deserialize, Serialize};

use crate::analysis::FindingRecord;

/// Alerts open at once; beyond, the oldest non-urgent one is closed.
pub const MAX_OPEN: usize = 1000;
/// The longest snooze, and how many kinds may be snoozed at once.
pub const MAX_SNOOZE_MS: i64 = 24 * 3_600_000;
const MAX_SNOOZED: usize = 32;
/// Never snoozed: a level-2 low is always told.
pub const NEVER_SNOOZED: [&str; 1] = ["very_low_glucose"];
/// The only findings an emergency service is told of (when urgent): a
/// level-2 low, the papers' emergency. A misbehaving device or a forecast
/// is for the patient and their physicians, not an ambulance.
pub const EMERGENCY_KINDS: [&str; 1] = ["very_low_glucose"];
/// Closed alerts kept for the status output.
const RECENT_CLOSED: usize = 50;

/// Who an alert step reaches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Target {
    /// Shown by `glyco-hub alerts` (and the hub's own log).
    Patient,
    /// Delivered to the physician through the clinic's alert inbox.
    Physician { address: Address },
    /// Posted to a configured webhook (a paging system, a caregiver's app).
    Webhook { name: String },
    /// The duty physicians of an emergency service enrolled on chain, through
    /// its inbox; urgent lows only ([`EMERGENCY_KINDS`]), and only with the
    /// patient's emergency policy enabled on chain.
    Emergency { entity: Address },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Patient => f.write_str("patient"),
            Target::Physician { address } => write!(f, "physician:{address}"),
            Target::Webhook { name } => write!(f, "webhook:{name}"),
            Target::Emergency { entity } => write!(f, "emergency:{entity}"),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().split_once(':') {
            None if text.trim() == "patient" => Ok(Target::Patient),
            Some(("physician", address)) => address
                .parse()
                .map(|address| Target::Physician { address })
                .map_err(|e| format!("{text:?}: {e}")),
            Some(("emergency", entity)) => entity
                .parse()
                .map(|entity| Target::Emergency { entity })
                .map_err(|e| format!("{text:?}: {e}")),
            Some(("webhook", name)) if !name.is_empty() && name.len() <= 32 => {
                Ok(Target::Webhook {
                    name: name.to_owned(),
                })
            }
            _ => Err(format!(
                "{text:?}: a target is \"patient\", \"physician:0x…\", \"webhook:<name>\" or \"emergency:0x…\""
            )),
        }
    }
}

/// One rung of the ladder: who is added, how long after the alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub after_ms: i64,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertPolicy {
    /// Finding kinds that alert: exact names, or a prefix ending in `*`.
    pub kinds: Vec<String>,
    /// `info`, `warning` or `urgent`: the least severity that alerts.
    pub min_severity: String,
    pub ladder: Vec<Step>,
    /// A (device, kind) alerts again only this long after its last alert.
    pub dedupe_ms: i64,
}

fn rank(severity: &str) -> u8 {
    match severity {
        "urgent" => 2,
        "warning" => 1,
        _ => 0,
    }
}

impl AlertPolicy {
    pub fn alerts_on(&self, kind: &str, severity: &str) -> bool {
        rank(severity) >= rank(&self.min_severity)
            && self.kinds.iter().any(|k| match k.strip_suffix('*') {
                Some(prefix) => kind.starts_with(prefix),
                None => k == kind,
            })
    }
}

/// A delivery target of an alert and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetState {
    pub target: Target,
    /// The ladder step that added it.
    pub step: u8,
    pub delivered_at_ms: Option<i64>,
    /// Why the last attempt failed (it is tried again).
    pub last_error: Option<String>,
    pub attempts: u32,
    /// The physicians the delivery reached (an emergency step's duty
    /// physicians); any of them may acknowledge.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reached: Vec<Address>,
}

impl TargetState {
    fn reached(&self, physician: Address) -> bool {
        self.delivered_at_ms.is_some()
            && match self.target {
                Target::Physician { address } => address == physician,
                Target::Emergency { .. } => self.reached.contains(&physician),
                _ => false,
            }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acked {
    /// `patient` or the physician's address.
    pub by: String,
    pub at_ms: i64,
}

/// An alert and where it stands; kept in the journal (overwritten on each
/// change) so nothing is lost over a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub no: u64,
    /// `alerts::alert_id(hub, no)`, hex.
    pub id: String,
    pub device: String,
    pub kind: String,
    pub severity: String,
    pub explanation: String,
    pub confidence: f32,
    /// When the finding was made.
    pub at_ms: i64,
    pub created_at_ms: i64,
    /// When the hub received the reading behind it.
    pub reading_received_at_ms: i64,
    /// The highest ladder step reached.
    pub step: u8,
    /// When the next step is due, if there is one and no one acknowledged.
    pub next_step_at_ms: Option<i64>,
    pub targets: Vec<TargetState>,
    pub acked: Option<Acked>,
    /// The same (device, kind) again within the de-duplication window.
    pub repeats: u32,
}

impl AlertRecord {
    pub fn is_open(&self) -> bool {
        self.acked.is_none()
    }
}

/// The engine's state: open alerts and the recent ones.
#[derive(Debug, Clone)]
pub struct Engine {
    pub policy: AlertPolicy,
    hub: Address,
    open: BTreeMap<u64, AlertRecord>,
    closed: VecDeque<AlertRecord>,
    next_no: u64,
    last_by_key: HashMap<(String, String), (u64, i64)>,
    /// Kind → snoozed until (hub ms).
    snoozed: BTreeMap<String, i64>,
}

impl Engine {
    /// An engine that continues from the kept records (any order).
    pub fn new(policy: AlertPolicy, hub: Address, kept: Vec<AlertRecord>) -> Self {
        let mut engine = Self {
            policy,
            hub,
            open: BTreeMap::new(),
            closed: VecDeque::new(),
            next_no: 1,
            last_by_key: HashMap::new(),
            snoozed: BTreeMap::new(),
        };
        for record in kept {
            engine.next_no = engine.next_no.max(record.no + 1);
            engine.last_by_key.insert(
                (record.device.clone(), record.kind.clone()),
                (record.no, record.created_at_ms),
            );
            if record.is_open() {
                engine.open.insert(record.no, record);
            } else {
                engine.remember_closed(record);
            }
        }
        engine
    }

    fn remember_closed(&mut self, record: AlertRecord) {
        if self.closed.len() == RECENT_CLOSED {
            self.closed.pop_front();
        }
        self.closed.push_back(record);
    }

    pub fn open(&self) -> impl Iterator<Item = &AlertRecord> {
        self.open.values()
    }

    pub fn recent_closed(&self) -> impl Iterator<Item = &AlertRecord> {
        self.closed.iter()
    }

    pub fn get(&self, no: u64) -> Option<&AlertRecord> {
        self.open.get(&no)
    }

    /// The targets `step` adds for an alert of `kind` and `severity`: an
    /// emergency service is told of urgent lows only.
    fn step_targets(&self, step: usize, kind: &str, severity: &str) -> Vec<TargetState> {
        let emergency = severity == "urgent" && EMERGENCY_KINDS.contains(&kind);
        self.policy.ladder.get(step).map_or_else(Vec::new, |s| {
            s.targets
                .iter()
                .filter(|t| emergency || !matches!(t, Target::Emergency { .. }))
                .map(|target| TargetState {
                    target: target.clone(),
                    step: step as u8,
                    // The patient's list is the hub's own: shown at once.
                    delivered_at_ms: None,
                    last_error: None,
                    attempts: 0,
                    reached: Vec::new(),
                })
                .collect()
        })
    }

    fn next_step_at(&self, created_at_ms: i64, step: usize) -> Option<i64> {
        self.policy
            .ladder
            .get(step + 1)
            .map(|s| created_at_ms.saturating_add(s.after_ms))
    }

    /// A finding; returns the new or changed alert, if any. Findings on
    /// late readings never alert (they are history, not news).
    pub fn on_finding(
        &mut self,
        finding: &FindingRecord,
        reading_received_at_ms: i64,
        now_ms: i64,
    ) -> Option<AlertRecord> {
        if finding.late || !self.policy.alerts_on(&finding.kind, &finding.severity) {
            return None;
        }
        if self
            .snoozed
            .get(&finding.kind)
            .is_some_and(|until| now_ms < *until)
        {
            return None;
        }
        let key = (finding.device.clone(), finding.kind.clone());
        if let Some((no, created)) = self.last_by_key.get(&key)
            && now_ms.saturating_sub(*created) < self.policy.dedupe_ms
        {
            let record = self.open.get_mut(no)?;
            record.repeats += 1;
            return Some(record.clone());
        }
        if self.open.len() >= MAX_OPEN {
            let victim = self
                .open
                .values()
                .find(|r| r.severity != "urgent")
                .or_else(|| self.open.values().next())
                .map(|r| r.no);
            if let Some(no) = victim
                && let Some(mut record) = self.open.remove(&no)
            {
                record.acked = Some(Acked {
                    by: "evicted".into(),
                    at_ms: now_ms,
                });
                self.remember_closed(record);
            }
        }
        let no = self.next_no;
        self.next_no += 1;
        let mut targets = self.step_targets(0, &finding.kind, &finding.severity);
        for target in &mut targets {
            if target.target == Target::Patient {
                target.delivered_at_ms = Some(now_ms);
            }
        }
        let record = AlertRecord {
            no,
            id: alerts::id_hex(&alerts::alert_id(self.hub, no)),
            device: finding.device.clone(),
            kind: finding.kind.clone(),
            severity: finding.severity.clone(),
            explanation: finding.explanation.clone(),
            confidence: finding.confidence,
            at_ms: finding.at,
            created_at_ms: now_ms,
            reading_received_at_ms,
            step: 0,
            next_step_at_ms: self.next_step_at(now_ms, 0),
            targets,
            acked: None,
            repeats: 0,
        };
        self.last_by_key.insert(key, (no, now_ms));
        self.open.insert(no, record.clone());
        Some(record)
    }

    /// Snoozes new alerts of `kind` for `minutes` (0 lifts it). Alerts
    /// already open are not affected.
    pub fn snooze(&mut self, kind: &str, minutes: u32, now_ms: i64) -> Result<Option<i64>, String> {
        if NEVER_SNOOZED.contains(&kind) {
            return Err(format!("{kind} is never snoozed"));
        }
        let duration = i64::from(minutes) * 60_000;
        if duration > MAX_SNOOZE_MS {
            return Err("a snooze lasts at most 24 hours".into());
        }
        self.snoozed.retain(|_, until| *until > now_ms);
        if duration == 0 {
            self.snoozed.remove(kind);
            return Ok(None);
        }
        if !self.snoozed.contains_key(kind) && self.snoozed.len() >= MAX_SNOOZED {
            return Err(format!("at most {MAX_SNOOZED} kinds are snoozed at once"));
        }
        let until = now_ms.saturating_add(duration);
        self.snoozed.insert(kind.to_owned(), until);
        Ok(Some(until))
    }

    /// Snoozes in force: kind → until.
    pub fn snoozes(&self) -> &BTreeMap<String, i64> {
        &self.snoozed
    }

    /// Restores snoozes kept across a restart.
    pub fn restore_snoozes(&mut self, snoozes: BTreeMap<String, i64>) {
        self.snoozed = snoozes
            .into_iter()
            .filter(|(kind, _)| !NEVER_SNOOZED.contains(&kind.as_str()))
            .take(MAX_SNOOZED)
            .collect();
    }

    /// Steps whose time has come; returns the escalated alerts.
    pub fn escalate(&mut self, now_ms: i64) -> Vec<AlertRecord> {
        let due: Vec<u64> = self
            .open
            .values()
            .filter(|r| r.next_step_at_ms.is_some_and(|at| at <= now_ms))
            .map(|r| r.no)
            .collect();
        let mut changed = Vec::new();
        for no in due {
            let step = self.open[&no].step as usize + 1;
            let created = self.open[&no].created_at_ms;
            let record = &self.open[&no];
            let mut added = self.step_targets(step, &record.kind, &record.severity);
            for target in &mut added {
                if target.target == Target::Patient {
                    target.delivered_at_ms = Some(now_ms);
                }
            }
            let next = self.next_step_at(created, step);
            let Some(record) = self.open.get_mut(&no) else {
                continue;
            };
            record.step = step as u8;
            record.next_step_at_ms = next;
            for target in added {
                if !record.targets.iter().any(|t| t.target == target.target) {
                    record.targets.push(target);
                }
            }
            changed.push(record.clone());
        }
        changed
    }

    /// An acknowledgement by the patient (`None`) or a physician. A
    /// physician may acknowledge only an alert that reached them. Returns
    /// the closed alert.
    pub fn acknowledge(
        &mut self,
        id: &str,
        by: Option<Address>,
        at_ms: i64,
    ) -> Result<AlertRecord, AckError> {
        let no = self
            .open
            .values()
            .find(|r| r.id == id)
            .map(|r| r.no)
            .ok_or(AckError::NotOpen)?;
        if let Some(physician) = by {
            let reached = self.open[&no].targets.iter().any(|t| t.reached(physician));
            if !reached {
                return Err(AckError::NotARecipient);
            }
        }
        let mut record = self.open.remove(&no).ok_or(AckError::NotOpen)?;
        record.acked = Some(Acked {
            by: by.map_or("patient".into(), |a| a.to_string()),
            at_ms,
        });
        record.next_step_at_ms = None;
        self.remember_closed(record.clone());
        Ok(record)
    }

    /// Deliveries still to make (physicians, webhooks): (alert no, target
    /// index, target).
    pub fn undelivered(&self) -> Vec<(u64, usize, Target)> {
        self.open
            .values()
            .flat_map(|r| {
                r.targets
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.delivered_at_ms.is_none() && t.target != Target::Patient)
                    .map(move |(i, t)| (r.no, i, t.target.clone()))
            })
            .collect()
    }

    /// Records a delivery attempt: when it was delivered and the
    /// physicians it reached, or why not. Returns the changed alert.
    pub fn delivered(
        &mut self,
        no: u64,
        index: usize,
        result: Result<(i64, Vec<Address>), String>,
    ) -> Option<AlertRecord> {
        let record = self.open.get_mut(&no)?;
        let target = record.targets.get_mut(index)?;
        target.attempts += 1;
        match result {
            Ok((at, reached)) => {
                target.delivered_at_ms = Some(at);
                target.last_error = None;
                target.reached = reached;
            }
            Err(e) => target.last_error = Some(e),
        }
        Some(record.clone())
    }

    /// Whether any open alert was delivered to a physician (acks to poll).
    pub fn awaits_physician_ack(&self) -> bool {
        self.open.values().any(|r| {
            r.targets.iter().any(|t| {
                matches!(
                    t.target,
                    Target::Physician { .. } | Target::Emergency { .. }
                ) && t.delivered_at_ms.is_some()
            })
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("no open alert has that id")]
    NotOpen,
    #[error("the alert did not reach this physician")]
    NotARecipient,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn physician(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    fn policy() -> AlertPolicy {
        AlertPolicy {
            kinds: vec!["predicted_low".into(), "node_behaviour:*".into()],
            min_severity: "warning".into(),
            ladder: vec![
                Step {
                    after_ms: 0,
                    targets: vec![Target::Patient],
                },
                Step {
                    after_ms: 60_000,
                    targets: vec![Target::Physician {
                        address: physician(1),
                    }],
                },
                Step {
                    after_ms: 180_000,
                    targets: vec![Target::Physician {
                        address: physician(2),
                    }],
                },
            ],
            dedupe_ms: 1_800_000,
        }
    }

    fn finding(kind: &str, severity: &str) -> FindingRecord {
        FindingRecord {
            at: 0,
            device: "name:cgm-1".into(),
            kind: kind.into(),
            severity: severity.into(),
            confidence: 0.8,
            explanation: "x".into(),
            late: false,
        }
    }

    #[test]
    fn only_matching_fresh_findings_alert_and_repeats_are_folded() {
        let mut engine = Engine::new(policy(), physician(9), Vec::new());
        assert!(
            engine
                .on_finding(&finding("low_glucose", "urgent"), 0, 0)
                .is_none(),
            "kind not in policy"
        );
        assert!(
            engine
                .on_finding(&finding("node_behaviour:flood", "info"), 0, 0)
                .is_none(),
            "below severity"
        );
        let mut late = finding("predicted_low", "urgent");
        late.late = true;
        assert!(engine.on_finding(&late, 0, 0).is_none(), "late");
        let first = engine
            .on_finding(&finding("predicted_low", "urgent"), 0, 1000)
            .unwrap();
        assert_eq!(first.no, 1);
        assert_eq!(
            first.targets[0].delivered_at_ms,
            Some(1000),
            "the patient sees it at once"
        );
        let again = engine
            .on_finding(&finding("predicted_low", "urgent"), 0, 2000)
            .unwrap();
        assert_eq!((again.no, again.repeats), (1, 1));
        assert_eq!(engine.open().count(), 1);
        let later = engine
            .on_finding(&finding("predicted_low", "urgent"), 0, 1_900_000)
            .unwrap();
        assert_eq!(
            later.no, 2,
            "after the de-duplication window it alerts again"
        );
    }

    #[test]
    fn the_ladder_climbs_until_someone_it_reached_acknowledges() {
        let mut engine = Engine::new(policy(), physician(9), Vec::new());
        let alert = engine
            .on_finding(&finding("predicted_low", "urgent"), 0, 0)
            .unwrap();
        assert!(engine.escalate(59_999).is_empty());
        let up = engine.escalate(60_000);
        assert_eq!(up[0].step, 1);
        assert_eq!(
            engine.undelivered(),
            vec![(
                1,
                1,
                Target::Physician {
                    address: physician(1)
                }
            )]
        );
        assert_eq!(
            engine.acknowledge(&alert.id, Some(physician(1)), 61_000),
            Err(AckError::NotARecipient),
            "not delivered yet"
        );
        engine.delivered(1, 1, Err("inbox down".into()));
        engine.delivered(1, 1, Ok((62_000, vec![physician(1)])));
        assert!(engine.awaits_physician_ack());
        assert_eq!(
            engine.acknowledge(&alert.id, Some(physician(2)), 63_000),
            Err(AckError::NotARecipient),
            "physician 2 is on a later step"
        );
        let acked = engine
            .acknowledge(&alert.id, Some(physician(1)), 63_000)
            .unwrap();
        assert_eq!(acked.acked.unwrap().by, physician(1).to_string());
        assert!(
            engine.escalate(1_000_000).is_empty(),
            "no step after an ack"
        );
        assert_eq!(
            engine.acknowledge(&alert.id, None, 0),
            Err(AckError::NotOpen)
        );
    }

    #[test]
    fn the_emergency_step_takes_urgent_lows_and_any_duty_physician_may_acknowledge() {
        let service = physician(7);
        let mut policy = policy();
        policy.ladder[2]
            .targets
            .push(Target::Emergency { entity: service });
        policy.kinds.push("very_low_glucose".into());
        let mut engine = Engine::new(policy, physician(9), Vec::new());
        let urgent = engine
            .on_finding(&finding("very_low_glucose", "urgent"), 0, 0)
            .unwrap();
        let warning = engine
            .on_finding(&finding("predicted_low", "warning"), 0, 0)
            .unwrap();
        let mut flood = finding("node_behaviour:flood", "urgent");
        flood.device = "name:meter".into();
        let flood = engine.on_finding(&flood, 0, 0).unwrap();
        engine.escalate(60_000);
        let last = engine.escalate(180_000);
        let targets_of = |id: &str| {
            last.iter()
                .find(|r| r.id == id)
                .unwrap()
                .targets
                .iter()
                .map(|t| t.target.clone())
                .collect::<Vec<_>>()
        };
        assert!(targets_of(&urgent.id).contains(&Target::Emergency { entity: service }));
        assert!(
            !targets_of(&warning.id).contains(&Target::Emergency { entity: service }),
            "a warning never reaches an emergency service"
        );
        assert!(
            !targets_of(&flood.id).contains(&Target::Emergency { entity: service }),
            "nor does a misbehaving device, however urgent"
        );
        let index = last
            .iter()
            .find(|r| r.id == urgent.id)
            .unwrap()
            .targets
            .iter()
            .position(|t| t.target == Target::Emergency { entity: service })
            .unwrap();
        let (medic, other_medic) = (physician(5), physician(6));
        engine.delivered(urgent.no, index, Ok((190_000, vec![medic, other_medic])));
        assert_eq!(
            engine.acknowledge(&urgent.id, Some(physician(4)), 191_000),
            Err(AckError::NotARecipient),
            "not on the roster it reached"
        );
        let acked = engine
            .acknowledge(&urgent.id, Some(other_medic), 191_000)
            .unwrap();
        assert_eq!(acked.acked.unwrap().by, other_medic.to_string());
        let text = format!("emergency:{service}");
        assert_eq!(
            text.parse::<Target>().unwrap(),
            Target::Emergency { entity: service }
        );
        assert_eq!(Target::Emergency { entity: service }.to_string(), text);
    }

    #[test]
    fn unacknowledged_alerts_reach_the_last_step_and_stay_open() {
        let mut engine = Engine::new(policy(), physician(9), Vec::new());
        engine
            .on_finding(&finding("predicted_low", "urgent"), 0, 0)
            .unwrap();
        engine.escalate(60_000);
        let last = engine.escalate(180_000);
        assert_eq!(last[0].step, 2);
        assert_eq!(last[0].next_step_at_ms, None);
        assert_eq!(last[0].targets.len(), 3);
        assert!(engine.escalate(10_000_000).is_empty());
        // The patient may always acknowledge.
        let id = last[0].id.clone();
        assert!(engine.acknowledge(&id, None, 10_000_001).is_ok());
    }

    #[test]
    fn a_restarted_engine_continues_from_its_records() {
        let mut engine = Engine::new(policy(), physician(9), Vec::new());
        let a = engine
            .on_finding(&finding("predicted_low", "urgent"), 0, 0)
            .unwrap();
        let b = engine
            .on_finding(&finding("node_behaviour:flood", "urgent"), 0, 0)
            .unwrap();
        let b = engine.acknowledge(&b.id, None, 5).unwrap();
        let restarted = Engine::new(policy(), physician(9), vec![b, a.clone()]);
        assert_eq!(
            restarted.open().map(|r| r.no).collect::<Vec<_>>(),
            vec![a.no]
        );
        let mut restarted = restarted;
        let c = restarted
            .on_finding(&finding("node_behaviour:silent", "warning"), 0, 10)
            .unwrap();
        assert_eq!(c.no, 3, "numbers continue, so ids never repeat");
        assert!(
            restarted
                .on_finding(&finding("predicted_low", "urgent"), 0, 20)
                .is_some()
        );
    }

    #[test]
    fn open_alerts_are_bounded() {
        let mut engine = Engine::new(policy(), physician(9), Vec::new());
        for i in 0..(MAX_OPEN as i64 + 10) {
            let mut f = finding("node_behaviour:flood", "warning");
            f.device = format!("name:d{i}");
            engine.on_finding(&f, 0, i).unwrap();
        }
        assert_eq!(engine.open().count(), MAX_OPEN);
    }

    #[test]
    fn a_snooze_holds_new_alerts_of_its_kind_for_its_time_but_never_a_severe_low() {
        let mut engine = Engine::new(policy(), physician(9), Vec::new());
        assert!(engine.snooze("very_low_glucose", 60, 0).is_err());
        assert!(engine.snooze("predicted_low", 25 * 60, 0).is_err());
        assert_eq!(engine.snooze("predicted_low", 60, 0), Ok(Some(3_600_000)));
        assert!(
            engine
                .on_finding(&finding("predicted_low", "urgent"), 0, 1000)
                .is_none()
        );
        assert!(
            engine
                .on_finding(&finding("predicted_low", "urgent"), 0, 3_600_000)
                .is_some()
        );
        assert_eq!(engine.snooze("predicted_low", 0, 0), Ok(None));
    }

    #[test]
    fn targets_parse() {
        assert_eq!("patient".parse::<Target>().unwrap(), Target::Patient);
        let t: Target = format!("physician:{}", physician(3)).parse().unwrap();
        assert_eq!(
            t,
            Target::Physician {
                address: physician(3)
            }
        );
        assert!("nurse".parse::<Target>().is_err());
        assert_eq!(
            "webhook:pager".parse::<Target>().unwrap(),
            Target::Webhook {
                name: "pager".into()
            }
        );
        assert!("webhook:".parse::<Target>().is_err());
        assert!("physician:0x12".parse::<Target>().is_err());
    }
}
