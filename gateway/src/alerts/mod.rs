//! Alerts: the findings that matter reach people, up an escalation ladder
//! (patient → physicians), until someone they reached acknowledges.
//!
//! The analysis hands every finding record to the [`AlertSink`] (never
//! waiting); the `alerts` stage runs the [`engine::Engine`], keeps every
//! alert in the journal before acting on it (so a crash loses none and a
//! restart redelivers under the same id), delivers physician steps to the
//! clinic's alert inbox ([`delivery`]) and polls it for acknowledgements.
//! The patient sees and acknowledges alerts with `glyco-hub alerts`.

pub mod delivery;
pub mod engine;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::analysis::FindingRecord;
use crate::journal::{Journal, JournalWriter, Outbox};
use crate::reading::now_millis;
use delivery::Delivery;
use engine::{AlertRecord, Engine, Target};
use glyco_seal::alerts::{AlertPolicyDoc, Signed};
use webhook::Webhook;

/// Findings waiting for the stage.
const QUEUE: usize = 1024;
/// Alerts read back at start (the newest; older ones are closed history).
const RELOAD: usize = 5000;
/// How often due steps and deliveries are looked at.
const TICK: Duration = Duration::from_millis(200);

pub enum AlertInput {
    Finding {
        record: FindingRecord,
        reading_received_at_ms: i64,
    },
    PatientAck {
        id: String,
        reply: oneshot::Sender<Result<AlertRecord, String>>,
    },
    Snooze {
        kind: String,
        minutes: u32,
        reply: oneshot::Sender<Result<Option<i64>, String>>,
    },
    /// A signed policy, already checked, replaces the current one.
    SetPolicy {
        policy: engine::AlertPolicy,
        signed: Box<Signed<AlertPolicyDoc>>,
        signer: glyco_contracts::Address,
        reply: oneshot::Sender<Result<u64, String>>,
    },
}

/// Where the signed alert policy in force is kept in the journal's META.
pub const POLICY_META: &str = "alert_policy";

/// The policy in force, if a signed one replaced the config's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyInForce {
    pub version: u64,
    pub signer: glyco_contracts::Address,
    pub signed: Signed<AlertPolicyDoc>,
}

/// One piece of evidence for the next sealed batch's header: the digest
/// (keccak256 of the signed message's CBOR) of an alert the inbox kept or
/// an acknowledgement the hub accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRecord {
    pub digest: glyco_contracts::B256,
    /// `alert` or `ack`.
    pub what: String,
    /// The alert's id.
    pub alert: String,
    /// The physician told, or who acknowledged.
    pub party: String,
    pub at_ms: i64,
}

/// Where snoozes are kept in the journal's META.
pub const SNOOZE_META: &str = "alert_snoozes";

/// The analysis's handle; a disabled one drops everything.
#[derive(Debug, Clone, Default)]
pub struct AlertSink {
    tx: Option<mpsc::Sender<AlertInput>>,
    dropped: Arc<AtomicU64>,
}

impl AlertSink {
    pub fn channel() -> (Self, mpsc::Receiver<AlertInput>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Self {
                tx: Some(tx),
                dropped: Arc::default(),
            },
            rx,
        )
    }

    pub fn finding(&self, record: &FindingRecord, reading_received_at_ms: i64) {
        let Some(tx) = &self.tx else {
            return;
        };
        let input = AlertInput::Finding {
            record: record.clone(),
            reading_received_at_ms,
        };
        if tx.try_send(input).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends the stage a request and waits for its answer.
    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, String>>) -> AlertInput,
    ) -> Result<T, String> {
        let tx = self.tx.as_ref().ok_or("alerts are disabled")?;
        let (reply, answer) = oneshot::channel();
        tx.send(request(reply))
            .await
            .map_err(|_| "the alert stage is not running")?;
        answer
            .await
            .map_err(|_| "the alert stage stopped".to_string())?
    }

    pub async fn patient_ack(&self, id: String) -> Result<AlertRecord, String> {
        self.ask(|reply| AlertInput::PatientAck { id, reply }).await
    }

    pub async fn set_policy(
        &self,
        policy: engine::AlertPolicy,
        signed: Signed<AlertPolicyDoc>,
        signer: glyco_contracts::Address,
    ) -> Result<u64, String> {
        self.ask(|reply| AlertInput::SetPolicy {
            policy,
            signed: Box::new(signed),
            signer,
            reply,
        })
        .await
    }

    pub async fn snooze(&self, kind: String, minutes: u32) -> Result<Option<i64>, String> {
        self.ask(|reply| AlertInput::Snooze {
            kind,
            minutes,
            reply,
        })
        .await
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// What `glyco-hub status` and `glyco-hub alerts` show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertStatus {
    pub enabled: bool,
    /// The alert inboxes configured (`<node>@<address>`).
    pub inboxes: Vec<String>,
    /// Open alerts, oldest first.
    pub open: Vec<AlertRecord>,
    /// The latest closed (acknowledged) alerts.
    pub recent: Vec<AlertRecord>,
    pub created: u64,
    pub delivered: u64,
    pub acknowledged: u64,
    /// Findings not taken because the stage fell behind.
    pub dropped_findings: u64,
    pub last_error: Option<String>,
    /// Snoozed kinds and until when (hub ms).
    pub snoozed: std::collections::BTreeMap<String, i64>,
    /// The signed policy in force (version, signer), if any replaced the
    /// config's.
    pub policy: Option<(u64, glyco_contracts::Address)>,
}

/// Shared between the stage and the status socket.
#[derive(Debug, Clone, Default)]
pub struct Alerts {
    status: Arc<Mutex<AlertStatus>>,
    sink: AlertSink,
}

impl Alerts {
    pub fn new(sink: AlertSink, enabled: bool, inboxes: Vec<String>) -> Self {
        let alerts = Self {
            status: Arc::default(),
            sink,
        };
        {
            let mut status = alerts.status.lock();
            status.enabled = enabled;
            status.inboxes = inboxes;
        }
        alerts
    }

    pub fn status(&self) -> AlertStatus {
        let mut status = self.status.lock().clone();
        status.dropped_findings = self.sink.dropped();
        status
    }

    pub fn sink(&self) -> &AlertSink {
        &self.sink
    }

    /// The version of the signed policy in force (0: the config's).
    pub fn policy_version(&self) -> u64 {
        self.status.lock().policy.map_or(0, |(v, _)| v)
    }

    /// Shows a signed policy restored at start.
    pub fn restored_policy(&self, version: u64, signer: glyco_contracts::Address) {
        self.status.lock().policy = Some((version, signer));
    }
}

/// The configured webhooks with their secrets (read before the daemon
/// touches any state; a relative secret file is in the state directory).
pub fn load_webhooks(
    config: &crate::config::HubConfig,
) -> Result<HashMap<String, WebhookTarget>, crate::config::ConfigError> {
    let mut webhooks = HashMap::new();
    for w in &config.alerts.webhooks {
        let path = if w.secret_file.is_absolute() {
            w.secret_file.clone()
        } else {
            config.state_dir.join(&w.secret_file)
        };
        let secret = std::fs::read(&path).map_err(|e| {
            crate::config::ConfigError::Invalid(format!(
                "alerts.webhooks {}: secret file {}: {e}",
                w.name,
                path.display()
            ))
        })?;
        let secret = secret.trim_ascii().to_vec();
        if secret.len() < 16 {
            return Err(crate::config::ConfigError::Invalid(format!(
                "alerts.webhooks {}: the secret must be at least 16 bytes",
                w.name
            )));
        }
        let url = w.url.parse().map_err(|e| {
            crate::config::ConfigError::Invalid(format!("alerts.webhooks {}: {e}", w.name))
        })?;
        webhooks.insert(
            w.name.clone(),
            WebhookTarget::new(Webhook::new(w.name.clone(), url, secret)),
        );
    }
    Ok(webhooks)
}

/// Checks a signed policy for this hub: signed by someone who acts for
/// the patient or by a physician with a live grant from them (asked on
/// chain), for this patient and hub; returns the signer.
pub async fn check_policy(
    signed: &Signed<AlertPolicyDoc>,
    hub: glyco_contracts::Address,
    patient: glyco_contracts::Address,
    chain: &glyco_contracts::GlycoClient,
) -> Result<glyco_contracts::Address, String> {
    let doc = &signed.body;
    if doc.hub != hub || doc.patient != patient {
        return Err(format!(
            "the policy is for hub {} and patient {}, not this hub's",
            doc.hub, doc.patient
        ));
    }
    let signer = signed.signer().map_err(|e| e.to_string())?;
    let chain_error = |e: glyco_contracts::ChainError| format!("the chain cannot be read: {e}");
    if chain.acts_for(signer, patient).await.map_err(chain_error)? {
        return Ok(signer);
    }
    if let Some(grant) = chain
        .current_grant(patient, signer)
        .await
        .map_err(chain_error)?
        && chain.is_grant_live(grant.id).await.map_err(chain_error)?
    {
        return Ok(signer);
    }
    Err(format!(
        "{signer} neither acts for the patient nor holds a live grant from them"
    ))
}

/// The alerts kept in the journal (the newest [`RELOAD`]).
pub fn load(journal: &Journal) -> Result<Vec<AlertRecord>, crate::journal::JournalError> {
    let last = journal
        .last_in::<AlertRecord>(Outbox::Alerts)?
        .map_or(0, |(no, _)| no);
    let from = last.saturating_sub(RELOAD as u64 - 1).max(1);
    Ok(journal
        .outbox_from::<AlertRecord>(Outbox::Alerts, from, RELOAD)?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

/// A webhook and when it may be tried again after failing.
pub struct WebhookTarget {
    pub webhook: Webhook,
    retry: Option<(Instant, Duration)>,
}

impl WebhookTarget {
    pub fn new(webhook: Webhook) -> Self {
        Self {
            webhook,
            retry: None,
        }
    }

    fn may_try(&self) -> bool {
        self.retry.is_none_or(|(at, _)| Instant::now() >= at)
    }

    async fn post(
        &mut self,
        http: &reqwest::Client,
        record: &AlertRecord,
        step: u8,
        hub: glyco_contracts::Address,
        patient: glyco_contracts::Address,
    ) -> Result<i64, String> {
        let result = self
            .webhook
            .post(http, record, step, hub, patient, now_millis())
            .await;
        match &result {
            Ok(()) => self.retry = None,
            Err(_) => {
                let wait = self.retry.map_or(Duration::from_millis(500), |(_, w)| {
                    (w * 2).min(Duration::from_secs(60))
                });
                self.retry = Some((Instant::now() + wait, wait));
            }
        }
        result.map(|()| now_millis())
    }
}

pub struct AlertStage {
    pub engine: Engine,
    pub writer: JournalWriter,
    pub alerts: Alerts,
    pub delivery: Option<Delivery>,
    pub webhooks: HashMap<String, WebhookTarget>,
    pub http: reqwest::Client,
    pub hub: glyco_contracts::Address,
    pub patient: glyco_contracts::Address,
    /// The next evidence record's number.
    pub evidence_next: u64,
    pub ack_poll: Duration,
    pub rx: mpsc::Receiver<AlertInput>,
}

impl AlertStage {
    /// Keeps a digest for the next sealed batch's header.
    async fn keep_evidence(
        &mut self,
        digest: glyco_contracts::B256,
        what: &str,
        alert: &str,
        party: String,
    ) {
        let record = EvidenceRecord {
            digest,
            what: what.to_owned(),
            alert: alert.to_owned(),
            party,
            at_ms: now_millis(),
        };
        let Ok(json) = serde_json::to_vec(&record) else {
            return;
        };
        match self
            .writer
            .put_outbox(vec![(Outbox::Evidence, self.evidence_next, json)])
            .await
        {
            Ok(()) => self.evidence_next += 1,
            Err(e) => tracing::warn!(error = %e, "evidence not kept for the sealed batches"),
        }
    }

    /// Keeps the changed alerts in the journal (one commit) and the status.
    async fn keep(&mut self, changed: &[AlertRecord]) {
        if changed.is_empty() {
            return;
        }
        let records = changed
            .iter()
            .filter_map(|r| {
                serde_json::to_vec(r)
                    .ok()
                    .map(|json| (Outbox::Alerts, r.no, json))
            })
            .collect();
        if let Err(e) = self.writer.put_outbox(records).await {
            tracing::error!(error = %e, "alerts not kept in the journal");
            self.alerts.status.lock().last_error = Some(format!("journal: {e}"));
        }
        self.publish();
    }

    fn publish(&self) {
        let mut status = self.alerts.status.lock();
        status.open = self.engine.open().cloned().collect();
        status.recent = self.engine.recent_closed().cloned().collect();
        status.snoozed = self.engine.snoozes().clone();
    }

    pub async fn run(
        mut self,
        shutdown: CancellationToken,
    ) -> Result<(), std::convert::Infallible> {
        self.publish();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_poll = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                input = self.rx.recv() => match input {
                    None => return Ok(()),
                    Some(input) => self.on_input(input).await,
                },
                _ = tick.tick() => {
                    let escalated = self.engine.escalate(now_millis());
                    for record in &escalated {
                        tracing::warn!(id = %record.id, kind = %record.kind, step = record.step, "alert escalated: no acknowledgement");
                    }
                    self.keep(&escalated).await;
                    // Deliveries may wait on the network: shutdown cuts them.
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = self.deliver() => {}
                    }
                    if last_poll.elapsed() >= self.ack_poll {
                        last_poll = tokio::time::Instant::now();
                        tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            _ = self.poll_acks() => {}
                        }
                    }
                }
            }
        }
    }

    async fn on_input(&mut self, input: AlertInput) {
        match input {
            AlertInput::Finding {
                record,
                reading_received_at_ms,
            } => {
                let Some(alert) =
                    self.engine
                        .on_finding(&record, reading_received_at_ms, now_millis())
                else {
                    return;
                };
                if alert.repeats == 0 {
                    self.alerts.status.lock().created += 1;
                    tracing::warn!(
                        id = %alert.id,
                        device = %alert.device,
                        kind = %alert.kind,
                        severity = %alert.severity,
                        explanation = %alert.explanation,
                        "alert"
                    );
                }
                self.keep(&[alert]).await;
                // The first step's physicians are told at once, not at the next tick.
                self.deliver().await;
            }
            AlertInput::PatientAck { id, reply } => {
                let result = self
                    .engine
                    .acknowledge(&id, None, now_millis())
                    .map_err(|e| e.to_string());
                if let Ok(record) = &result {
                    tracing::info!(id = %record.id, "alert acknowledged by the patient");
                    self.alerts.status.lock().acknowledged += 1;
                    self.keep(std::slice::from_ref(record)).await;
                }
                let _ = reply.send(result);
            }
            AlertInput::SetPolicy {
                policy,
                signed,
                signer,
                reply,
            } => {
                let version = signed.body.version;
                if version <= self.alerts.policy_version() {
                    let _ = reply.send(Err(format!(
                        "version {version} is not newer than the policy in force ({})",
                        self.alerts.policy_version()
                    )));
                    return;
                }
                let kept = PolicyInForce {
                    version,
                    signer,
                    signed: *signed,
                };
                let json = serde_json::to_vec(&kept).unwrap_or_default();
                if let Err(e) = self.writer.save_meta(POLICY_META, json).await {
                    let _ = reply.send(Err(format!("the policy could not be kept: {e}")));
                    return;
                }
                self.engine.policy = policy;
                self.alerts.status.lock().policy = Some((version, signer));
                tracing::info!(version, %signer, "a signed alert policy is in force");
                let _ = reply.send(Ok(version));
            }
            AlertInput::Snooze {
                kind,
                minutes,
                reply,
            } => {
                let result = self.engine.snooze(&kind, minutes, now_millis());
                if result.is_ok() {
                    tracing::info!(%kind, minutes, "alerts snoozed by the patient");
                    let kept = serde_json::to_vec(self.engine.snoozes()).unwrap_or_default();
                    if let Err(e) = self.writer.save_meta(SNOOZE_META, kept).await {
                        tracing::warn!(error = %e, "snooze not kept in the journal");
                    }
                    self.publish();
                }
                let _ = reply.send(result);
            }
        }
    }

    async fn deliver(&mut self) {
        for (no, index, target) in self.engine.undelivered() {
            let Some(record) = self.engine.get(no).cloned() else {
                continue;
            };
            let step = record.targets[index].step;
            let result = match &target {
                Target::Physician { .. } | Target::Emergency { .. } => {
                    let Some(delivery) = self.delivery.as_mut() else {
                        continue;
                    };
                    if !delivery.may_try(&target) {
                        continue;
                    }
                    match delivery.deliver(&record, step, &target).await {
                        Ok(delivered) => {
                            for (physician, digest) in &delivered.reached {
                                self.keep_evidence(
                                    *digest,
                                    "alert",
                                    &record.id,
                                    physician.to_string(),
                                )
                                .await;
                            }
                            let reached = delivered.reached.iter().map(|(p, _)| *p).collect();
                            Ok((delivered.at_ms, reached))
                        }
                        Err(e) => Err(e),
                    }
                }
                Target::Webhook { name } => {
                    let Some(webhook) = self.webhooks.get_mut(name) else {
                        continue;
                    };
                    if !webhook.may_try() {
                        continue;
                    }
                    webhook
                        .post(&self.http, &record, step, self.hub, self.patient)
                        .await
                        .map(|at| (at, Vec::new()))
                }
                Target::Patient => continue,
            };
            match &result {
                Ok(_) => {
                    tracing::info!(id = %record.id, %target, step, "alert delivered");
                    let mut status = self.alerts.status.lock();
                    status.delivered += 1;
                    status.last_error = None;
                }
                Err(e) => {
                    tracing::warn!(id = %record.id, %target, error = %e, "alert not delivered; retrying");
                    self.alerts.status.lock().last_error = Some(e.clone());
                }
            }
            if let Some(changed) = self.engine.delivered(no, index, result) {
                self.keep(&[changed]).await;
            }
        }
    }

    async fn poll_acks(&mut self) {
        if !self.engine.awaits_physician_ack() {
            return;
        }
        let Some(delivery) = &mut self.delivery else {
            return;
        };
        let acks = delivery.poll_acks().await;
        for ack in acks {
            let id = glyco_seal::alerts::id_hex(&ack.body.alert);
            match self
                .engine
                .acknowledge(&id, Some(ack.body.by), now_millis())
            {
                Ok(record) => {
                    tracing::info!(%id, by = %ack.body.by, "alert acknowledged by a physician");
                    if let Ok(digest) = ack.evidence() {
                        self.keep_evidence(digest, "ack", &id, ack.body.by.to_string())
                            .await;
                    }
                    self.alerts.status.lock().acknowledged += 1;
                    self.keep(&[record]).await;
                }
                Err(e) => tracing::debug!(%id, error = %e, "acknowledgement not applied"),
            }
        }
    }
}
