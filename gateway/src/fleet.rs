//! Heartbeats to the clinic's fleet node (docs/FLEET.md): every
//! `fleet.interval_secs` the hub signs how it fares (versions, uptime, disk
//! and memory, queues, chain, each device's last-seen and behaviour
//! findings, open alerts, clock offset; no reading, no value) and sends it
//! over iroh. The node's answer gives its clock, and may carry an alert
//! policy a physician proposed; the hub applies it only as the patient
//! chose (`fleet.remote_config`), after checking on chain that its signer
//! holds a live grant, and records what it did.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use glyco_contracts::{Address, GlycoClient};
use glyco_seal::alerts::AlertPolicyDoc;
use glyco_seal::fleet::{
    self, ChainHealth, DeviceHealth, FLEET_ALPN, FleetAnswer, Heartbeat, HubFleetMessage,
    MAX_DEVICE_FINDINGS, MAX_FAILING_STAGES, MAX_HEARTBEAT_DEVICES, Queues, Signed, cap,
};
use iroh::endpoint::Connection;
use iroh::{Endpoint, EndpointAddr, EndpointId};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::{AlertsConfig, RemoteConfig};
use crate::journal::JournalWriter;
use crate::reading::now_millis;
use crate::status::StatusReport;
use crate::supervisor::StageState;

/// How long one exchange with the node may take.
const EXCHANGE_WAIT: Duration = Duration::from_secs(10);
/// Where the record of remote configuration is kept (journal META).
pub const REMOTE_CONFIG_META: &str = "remote_config_log";
/// Entries of that record kept.
const REMOTE_CONFIG_KEPT: usize = 50;

/// What `glyco-hub status`, the web app and the metrics show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FleetStatus {
    pub enabled: bool,
    /// `<node id>@<ip:port>`.
    pub node: Option<String>,
    pub interval_secs: u64,
    pub sent: u64,
    pub failed: u64,
    pub last_sent_ms: Option<i64>,
    pub last_error: Option<String>,
    /// The hub's clock minus the node's at the last answer.
    pub clock_offset_ms: Option<i64>,
    pub remote_config: RemoteConfig,
    /// What happened to proposed policies, newest last.
    pub remote_log: Vec<RemoteConfigEvent>,
}

/// One proposed policy and what the hub did with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteConfigEvent {
    pub at_ms: i64,
    pub version: u64,
    pub signer: Option<Address>,
    /// `applied`, `refused: …`, `not_allowed`.
    pub outcome: String,
}

/// Applies a physician's proposed policy the way a hand-carried one is
/// (`glyco-hub alerts policy --signed`): checked on chain, merged into the
/// config's alert settings, handed to the alert stage.
#[derive(Clone)]
pub struct PolicyApplier {
    pub chain: GlycoClient,
    pub alerts_config: AlertsConfig,
    pub alerts: crate::alerts::Alerts,
    pub hub: Address,
    pub patient: Address,
}

impl PolicyApplier {
    /// The version now in force and its signer.
    pub async fn apply(&self, signed: Signed<AlertPolicyDoc>) -> Result<(u64, Address), String> {
        let signer =
            crate::alerts::check_policy(&signed, self.hub, self.patient, &self.chain).await?;
        let policy = self
            .alerts_config
            .with_policy(&signed.body)
            .policy()
            .map_err(|e| e.to_string())?;
        self.alerts
            .sink()
            .set_policy(policy, signed, signer)
            .await
            .map(|version| (version, signer))
    }
}

pub struct HeartbeatSender {
    pub endpoint: Endpoint,
    pub node: (EndpointId, SocketAddr),
    pub key: PrivateKeySigner,
    pub boot_ms: i64,
    pub interval: Duration,
    pub report: Arc<dyn Fn() -> StatusReport + Send + Sync>,
    pub state_dir: PathBuf,
    pub status: Arc<Mutex<FleetStatus>>,
    pub policies: Option<PolicyApplier>,
    pub writer: JournalWriter,
    /// Takes releases the node offers (docs/FLEET.md, "Updates").
    pub updater: Option<crate::update::fetch::Updater>,
}

impl HeartbeatSender {
    pub async fn run(self, token: CancellationToken) -> Result<(), std::convert::Infallible> {
        let release = image_release();
        let mut connection: Option<Connection> = None;
        let mut seq = 0u64;
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tick.tick() => {}
            }
            seq += 1;
            let report = (self.report)();
            let beat = self.heartbeat(&report, seq, release.clone());
            let sent_at = now_millis();
            // An unreachable node must not hold the hub's stop.
            let result = tokio::select! {
                _ = token.cancelled() => break,
                result = async {
                    let signed = Signed::sign(beat, &self.key)
                        .map_err(|e| format!("signing: {e}"))?;
                    self.exchange(&mut connection, HubFleetMessage::Heartbeat(Box::new(signed)))
                        .await
                } => result,
            };
            let answered_at = now_millis();
            match result {
                Ok(FleetAnswer::Kept {
                    node_time_ms,
                    proposed_policy,
                    offered_release,
                }) => {
                    if let (Some(updater), Some(offer)) = (&self.updater, offered_release) {
                        updater.offered(offer, &token);
                    }
                    {
                        let mut status = self.status.lock();
                        status.sent += 1;
                        status.last_sent_ms = Some(sent_at);
                        status.last_error = None;
                        status.clock_offset_ms =
                            Some(sent_at + (answered_at - sent_at) / 2 - node_time_ms);
                    }
                    if let Some(policy) = proposed_policy {
                        tokio::select! {
                            _ = token.cancelled() => break,
                            _ = self.proposed(*policy) => {}
                        }
                    }
                }
                Ok(FleetAnswer::Refused { reason }) => self.failed(format!("refused: {reason}")),
                Ok(other) => self.failed(format!("unexpected answer: {other:?}")),
                Err(e) => self.failed(e),
            }
        }
        if let Some(c) = connection {
            c.close(0u32.into(), b"stopping");
        }
        Ok(())
    }

    fn failed(&self, error: String) {
        tracing::debug!(%error, "heartbeat not kept");
        let mut status = self.status.lock();
        status.failed += 1;
        status.last_error = Some(error);
    }

    async fn exchange(
        &self,
        connection: &mut Option<Connection>,
        message: HubFleetMessage,
    ) -> Result<FleetAnswer, String> {
        for attempt in 0..2 {
            let c = match connection {
                Some(c) if c.close_reason().is_none() => c.clone(),
                _ => {
                    let to = EndpointAddr::new(self.node.0).with_ip_addr(self.node.1);
                    let c =
                        tokio::time::timeout(EXCHANGE_WAIT, self.endpoint.connect(to, FLEET_ALPN))
                            .await
                            .map_err(|_| "connecting to the fleet node timed out".to_string())?
                            .map_err(|e| format!("connecting to the fleet node: {e}"))?;
                    *connection = Some(c.clone());
                    c
                }
            };
            let result = tokio::time::timeout(EXCHANGE_WAIT, fleet::exchange(&c, &message))
                .await
                .map_err(|_| "the fleet node did not answer in time".to_string())
                .and_then(|r| r);
            match result {
                Ok(answer) => return Ok(answer),
                // A connection the node closed (a restart): dial once more.
                Err(_) if attempt == 0 => *connection = None,
                Err(e) => {
                    *connection = None;
                    return Err(e);
                }
            }
        }
        Err("unreachable".into())
    }

    /// A policy the node passed on: applied if the patient allows it, and
    /// recorded either way (once per version).
    async fn proposed(&self, signed: Signed<AlertPolicyDoc>) {
        let version = signed.body.version;
        let signer = signed.signer().ok();
        let mode = {
            let status = self.status.lock();
            if status
                .remote_log
                .iter()
                .any(|e| e.version == version && e.signer == signer)
            {
                return;
            }
            status.remote_config
        };
        // A chain that cannot be read says nothing of the proposal: it is
        // not recorded, so the next heartbeat's answer tries it again.
        const CHAIN_DOWN: &str = "the chain cannot be read";
        let outcome = match (mode, &self.policies) {
            (RemoteConfig::Refuse, _) => "not_allowed".to_owned(),
            (RemoteConfig::Apply, None) => "refused: alerts are off on this hub".to_owned(),
            (RemoteConfig::Apply, Some(applier)) => match applier.apply(signed).await {
                Ok((version, signer)) => {
                    tracing::info!(version, %signer, "a physician's proposed alert policy is in force");
                    "applied".to_owned()
                }
                Err(e) if e.starts_with(CHAIN_DOWN) => {
                    tracing::warn!(version, error = %e, "a proposed alert policy waits for the chain");
                    self.status.lock().last_error = Some(format!("proposed policy {version}: {e}"));
                    return;
                }
                Err(e) => {
                    tracing::warn!(version, error = %e, "a proposed alert policy was refused");
                    format!("refused: {e}")
                }
            },
        };
        let log = {
            let mut status = self.status.lock();
            status.remote_log.push(RemoteConfigEvent {
                at_ms: now_millis(),
                version,
                signer,
                outcome,
            });
            keep_newest(&mut status.remote_log);
            status.remote_log.clone()
        };
        if let Ok(json) = serde_json::to_vec(&log)
            && let Err(e) = self.writer.save_meta(REMOTE_CONFIG_META, json).await
        {
            tracing::error!(error = %e, "the remote configuration record was not kept");
        }
    }

    fn heartbeat(&self, report: &StatusReport, seq: u64, release: Option<String>) -> Heartbeat {
        let now = now_millis();
        let (disk_free_bytes, disk_total_bytes) = crate::disk::usage(&self.state_dir)
            .map_or((None, None), |(free, total)| (Some(free), Some(total)));
        let seal = &report.seal;
        let chain = &report.chain;
        let mut findings: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for alert in report.alerts.open.iter() {
            if alert.kind.starts_with("node_behaviour") {
                findings
                    .entry(alert.device.as_str())
                    .or_default()
                    .push(cap(&alert.kind));
            }
        }
        let quarantined: Vec<&str> = report
            .quarantine
            .iter()
            .filter(|q| q.released_at_ms.is_none())
            .map(|q| q.device.as_str())
            .collect();
        let devices = report
            .devices
            .iter()
            .take(MAX_HEARTBEAT_DEVICES)
            .map(|d| {
                let identity = d.identity.as_deref().unwrap_or("");
                let mut kinds = findings.get(identity).cloned().unwrap_or_default();
                kinds.sort();
                kinds.dedup();
                kinds.truncate(MAX_DEVICE_FINDINGS);
                DeviceHealth {
                    device: d.device_id.to_string(),
                    kind: d.kind.map(|k| cap(&format!("{k:?}").to_lowercase())),
                    standing: if quarantined.contains(&identity) {
                        "quarantined".into()
                    } else {
                        cap(&format!("{:?}", d.standing).to_lowercase())
                    },
                    last_seen_ms: d.last_reading.as_ref().map(|r| r.received_at),
                    findings: kinds,
                }
            })
            .collect();
        Heartbeat {
            hub: report.hub,
            boot_ms: self.boot_ms,
            seq,
            sent_at_ms: now,
            version: cap(env!("CARGO_PKG_VERSION")),
            release,
            uptime_s: (now.saturating_sub(self.boot_ms) / 1000).max(0) as u64,
            disk_free_bytes,
            disk_total_bytes,
            rss_kib: report.process.rss_kib,
            cpu_ms: report.process.cpu_ms,
            mem_available_kib: mem_available_kib(),
            queues: Queues {
                readings_stored: report.readings_stored,
                unsealed: seal.readings_unsealed,
                unreplicated: seal.batches_sealed.saturating_sub(seal.batches_replicated),
                unanchored: seal.batches_sealed.saturating_sub(seal.batches_anchored),
                oldest_unanchored_age_s: seal.oldest_unanchored_age_ms.map(|ms| ms / 1000),
                alerts_open: report.alerts.open.len() as u64,
                readings_refused: report.storage.readings_refused,
            },
            chain: ChainHealth {
                reachable: chain.reachable,
                head: chain.head,
                synced: chain.synced_block,
                lag_blocks: chain
                    .head
                    .zip(chain.synced_block)
                    .map(|(head, synced)| head.saturating_sub(synced)),
                last_anchor_block: seal.last_anchor.as_ref().map(|a| a.block),
                anchors: seal.anchors,
            },
            devices,
            failing_stages: report
                .stages
                .iter()
                .filter(|(_, state)| matches!(state, StageState::Failed(_)))
                .map(|(name, _)| cap(name))
                .take(MAX_FAILING_STAGES)
                .collect(),
            config_version: report.alerts.policy.map_or(0, |(version, _)| version),
            clock_offset_ms: self.status.lock().clock_offset_ms,
            update: crate::update::record::load_outcome(&self.state_dir),
        }
    }
}

/// The record of remote configuration kept in the journal.
pub fn restore_log(bytes: &[u8]) -> Vec<RemoteConfigEvent> {
    let mut log = serde_json::from_slice(bytes).unwrap_or_default();
    keep_newest(&mut log);
    log
}

/// Drops the oldest events beyond [`REMOTE_CONFIG_KEPT`].
fn keep_newest(log: &mut Vec<RemoteConfigEvent>) {
    let excess = log.len().saturating_sub(REMOTE_CONFIG_KEPT);
    log.drain(..excess);
}

/// `IMAGE_VERSION` from os-release: the appliance image's release.
pub fn image_release() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .ok()?;
    text.lines().find_map(|line| {
        line.strip_prefix("IMAGE_VERSION=")
            .map(|v| cap(v.trim().trim_matches('"')))
    })
}

/// `MemAvailable` (None where /proc/meminfo is hidden, as under the
/// unit's ProcSubset=pid).
fn mem_available_kib() -> Option<u64> {
    glyco_webkit::metrics::kib_field(
        &std::fs::read_to_string("/proc/meminfo").ok()?,
        "MemAvailable:",
    )
}
