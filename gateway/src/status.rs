//! The daemon's status: devices, the last reading of each, refusal counts and
//! how far the chain is synced. Served as JSON on a Unix socket in the state
//! directory; `glyco-hub status` asks for it and prints it.

use std::path::{Path, PathBuf};

use glyco_contracts::{Address, DeviceId, DeviceKind, EmergencyAccess};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::behaviour::RefusalReason;
use crate::mqtt::logins::ThrottleStatus;
use crate::reading::{Reading, Transport, UnixMillis};
use crate::registry::Standing;
use crate::seal::export::{BatchExport, BatchSelector};
use crate::supervisor::StageState;
use crate::throttle::accept_backoff;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub hub: Address,
    pub patient: Option<Address>,
    pub started_at: UnixMillis,
    pub chain: ChainStatus,
    pub mqtt: ServiceStatus,
    pub ble: ServiceStatus,
    pub devices: Vec<DeviceStatus>,
    pub readings_stored: u64,
    pub refusals: Vec<RefusalCount>,
    #[serde(default)]
    pub analysis: crate::analysis::AnalysisStatus,
    /// The node-behaviour stage.
    #[serde(default)]
    pub node_watch: crate::nodewatch::NodeWatchStatus,
    /// Alerts: open, recent, delivery.
    #[serde(default)]
    pub alerts: crate::alerts::AlertStatus,
    /// Devices in quarantine (open entries) and the latest released.
    #[serde(default)]
    pub quarantine: Vec<crate::quarantine::QuarantineEntry>,
    /// Refusals counted but not journaled (the journal fell behind).
    pub refusal_events_dropped: u64,
    /// Refusals counted but not logged one by one (rate limit; summarised).
    #[serde(default)]
    pub refusals_suppressed: u64,
    /// Each stage of the hub and how it is doing.
    #[serde(default)]
    pub stages: std::collections::BTreeMap<String, StageState>,
    #[serde(default)]
    pub connections: ConnectionStatus,
    #[serde(default)]
    pub logins: ThrottleStatus,
    /// Emergency accesses opened to the patient's data (latest last).
    #[serde(default)]
    pub emergency_accesses: Vec<EmergencyAccess>,
    /// Sealing, blob storage and anchoring.
    #[serde(default)]
    pub seal: crate::seal::SealStatus,
    /// Whether the journal takes readings.
    #[serde(default)]
    pub storage: crate::pipeline::StorageStatus,
    /// The web app.
    #[serde(default)]
    pub web: crate::web::WebStatus,
    /// The hub process's memory and CPU time.
    #[serde(default)]
    pub process: ProcessStatus,
    /// Heartbeats to the clinic's fleet node, and remote configuration.
    #[serde(default)]
    pub fleet: crate::fleet::FleetStatus,
}

/// The hub process's resident memory and CPU time, from /proc/self.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStatus {
    pub rss_kib: u64,
    /// User plus system CPU time since the process started.
    pub cpu_ms: u64,
}

impl ProcessStatus {
    /// Reads /proc/self (zeros where it cannot be read).
    pub fn now() -> Self {
        let (rss_kib, cpu_ms) = glyco_webkit::metrics::process_figures();
        Self {
            rss_kib: rss_kib.unwrap_or_default(),
            cpu_ms: cpu_ms.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStatus {
    pub rpc_url: String,
    pub reachable: bool,
    /// Last block whose device events the mirror has applied.
    pub synced_block: Option<u64>,
    pub head: Option<u64>,
    pub last_error: Option<String>,
    /// The head has not moved for longer than `chain.stale_after_secs`.
    #[serde(default)]
    pub stale: bool,
    /// A log of ours did not decode; the mirror stays where it was.
    #[serde(default)]
    pub halted: Option<String>,
    #[serde(default)]
    pub endpoints: usize,
}

/// Device connections held, and the bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionStatus {
    pub held: usize,
    pub max: usize,
    pub descriptor_limit: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub enabled: bool,
    /// What the service is doing, e.g. "listening on 127.0.0.1:1883".
    pub state: String,
    /// Addresses it listens on (MQTT).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<std::net::SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceStatus {
    pub device_id: DeviceId,
    /// The identity, when the hub has seen or provisioned it (the chain
    /// holds only its hash).
    pub identity: Option<String>,
    pub kind: Option<DeviceKind>,
    pub standing: Standing,
    pub connected: bool,
    pub last_reading: Option<Reading>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalCount {
    pub transport: Transport,
    pub reason: RefusalReason,
    pub count: u64,
}

impl StatusReport {
    /// Human-readable rendering for `glyco-hub status`.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "hub       {}", self.hub);
        let _ = writeln!(
            out,
            "patient   {}",
            self.patient
                .map_or("(not yet authorised on chain)".to_owned(), |p| p
                    .to_string())
        );
        if let Some(why) = &self.storage.failing {
            let _ = writeln!(
                out,
                "STORAGE   FAILING: readings are refused, not acknowledged ({} so far): {why}",
                self.storage.readings_refused
            );
        }
        let chain = &self.chain;
        let _ = writeln!(
            out,
            "chain     {} — {}, synced to block {}, head {}",
            chain.rpc_url,
            if chain.halted.is_some() {
                "HALTED (a log did not decode; using the last mirror)"
            } else if !chain.reachable {
                "UNREACHABLE (using the last mirror)"
            } else if chain.stale {
                "STALE (no new block lately)"
            } else {
                "reachable"
            },
            chain.synced_block.map_or("-".into(), |b| b.to_string()),
            chain.head.map_or("-".into(), |b| b.to_string()),
        );
        if let Some(e) = &chain.last_error {
            let _ = writeln!(out, "          last error: {e}");
        }
        let _ = writeln!(
            out,
            "mqtt      {} ({} of {} connections)",
            self.mqtt.state, self.connections.held, self.connections.max
        );
        if self.logins.bans_total > 0 || !self.logins.banned_now.is_empty() {
            let _ = writeln!(
                out,
                "logins    {} addresses banned now ({} bans in all): {}",
                self.logins.banned_now.len(),
                self.logins.bans_total,
                self.logins
                    .banned_now
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let failed: Vec<String> = self
            .stages
            .iter()
            .filter_map(|(name, state)| match state {
                StageState::Failed(reason) => Some(format!("{name}: {reason}")),
                _ => None,
            })
            .collect();
        if !failed.is_empty() {
            let _ = writeln!(out, "STAGES FAILED: {}", failed.join("; "));
        }
        let _ = writeln!(out, "ble       {}", self.ble.state);
        let _ = writeln!(out, "readings  {} stored", self.readings_stored);
        let _ = writeln!(out, "\ndevices");
        if self.devices.is_empty() {
            let _ = writeln!(out, "  (none registered)");
        }
        for d in &self.devices {
            let name = d
                .identity
                .clone()
                .unwrap_or_else(|| format!("{}…", &d.device_id.to_string()[..10]));
            let kind = d.kind.map_or("?".into(), |k| format!("{k:?}"));
            let last = d
                .last_reading
                .as_ref()
                .map_or("no reading yet".to_owned(), |r| {
                    format!(
                        "last {} (seq {}, {})",
                        r.measurement.display_value(),
                        r.seq,
                        format_time(r.measured_at())
                    )
                });
            let _ = writeln!(
                out,
                "  {name:<28} {kind:<14} {:<10} {:<9} {last}",
                format!("{:?}", d.standing).to_lowercase(),
                if d.connected { "connected" } else { "" },
            );
        }
        if !self.emergency_accesses.is_empty() {
            let _ = writeln!(out, "\nEMERGENCY ACCESS");
            for e in &self.emergency_accesses {
                let _ = writeln!(
                    out,
                    "  physician {} of {} (grant {}), until {}",
                    e.physician,
                    e.entity,
                    e.grant_id,
                    format_time(e.expires_at.saturating_mul(1000).min(i64::MAX as u64) as i64)
                );
            }
        }
        if self.seal.enabled {
            render_seal(&self.seal, &mut out);
        }
        let _ = writeln!(out, "\nrefusals");
        if self.refusals.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        if self.refusals_suppressed > 0 {
            let _ = writeln!(
                out,
                "  ({} not logged one by one: rate limit, summarised)",
                self.refusals_suppressed
            );
        }
        for r in &self.refusals {
            let _ = writeln!(
                out,
                "  {:<5} {:<20} {}",
                format!("{:?}", r.transport).to_lowercase(),
                r.reason.as_str(),
                r.count
            );
        }
        let analysis = &self.analysis;
        let _ = writeln!(out, "\nfindings");
        if !analysis.enabled {
            let _ = writeln!(out, "  (analysis disabled)");
        } else {
            let _ = writeln!(
                out,
                "  {} readings analysed{}{}",
                analysis.readings_analysed,
                if analysis.errors > 0 {
                    format!(", {} not analysable", analysis.errors)
                } else {
                    String::new()
                },
                if analysis.missed > 0 {
                    format!(", {} missed while behind", analysis.missed)
                } else {
                    String::new()
                },
            );
            for (kind, severity, count) in &analysis.counts {
                let _ = writeln!(out, "  {kind:<30} {severity:<8} {count}");
            }
            if !analysis.recent.is_empty() {
                let _ = writeln!(out, "  latest:");
            }
            for f in analysis.recent.iter().rev().take(5) {
                let _ = writeln!(
                    out,
                    "    {} {} {} [{}, {:.0}%{}] {}",
                    format_time(f.at),
                    f.device,
                    f.kind,
                    f.severity,
                    f.confidence * 100.0,
                    if f.late { ", late" } else { "" },
                    f.explanation
                );
            }
        }
        let watch = &self.node_watch;
        if watch.enabled {
            let _ = writeln!(
                out,
                "\nnode behaviour\n  {} devices modelled, {} observations{}",
                watch.devices,
                watch.observations,
                if watch.dropped > 0 {
                    format!(", {} dropped while behind", watch.dropped)
                } else {
                    String::new()
                }
            );
        }
        let quarantined: Vec<_> = self.quarantine.iter().filter(|q| q.is_open()).collect();
        if !quarantined.is_empty() {
            let _ = writeln!(
                out,
                "\nQUARANTINED (readings kept and marked; glyco-hub device release)"
            );
            for q in quarantined {
                let _ = writeln!(
                    out,
                    "  {} since {} ({}: {})",
                    q.device,
                    format_time(q.since_ms),
                    q.kind,
                    q.explanation
                );
            }
        }
        let alerts = &self.alerts;
        if alerts.enabled {
            let _ = writeln!(
                out,
                "\nalerts\n  {} open, {} made, {} delivered, {} acknowledged{}",
                alerts.open.len(),
                alerts.created,
                alerts.delivered,
                alerts.acknowledged,
                alerts
                    .last_error
                    .as_ref()
                    .map_or(String::new(), |e| format!("; last delivery error: {e}"))
            );
            for a in alerts.open.iter().rev().take(5) {
                let _ = writeln!(
                    out,
                    "  {} [{}] {} on {} (step {}): {}",
                    a.id, a.severity, a.kind, a.device, a.step, a.explanation
                );
            }
        }
        out
    }
}

/// The sealed path's section of the status text.
fn render_seal(s: &crate::seal::SealStatus, out: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(out, "\nSEALED AND ANCHORED");
    let _ = writeln!(
        out,
        "  {} batches sealed ({} readings), {} anchored under {} roots; {} readings waiting",
        s.batches_sealed, s.readings_sealed, s.batches_anchored, s.anchors, s.readings_unsealed
    );
    if let Some(a) = &s.last_anchor {
        let _ = writeln!(
            out,
            "  last anchor #{}: root {} in block {} (tx {}, gas {})",
            a.anchor_no, a.root, a.block, a.tx, a.gas_used
        );
    }
    if s.damaged_blob_count > 0 {
        let _ = writeln!(
            out,
            "  {} local batch blobs DAMAGED (readings kept in the journal): {}",
            s.damaged_blob_count,
            s.damaged_blobs
                .iter()
                .map(|d| format!(
                    "batch {} {}{}",
                    d.batch_no,
                    d.problem,
                    if d.replicated {
                        " (the replica has it)"
                    } else {
                        ""
                    }
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(e) = &s.seal_error {
        let _ = writeln!(out, "  sealing is failing: {e}");
    }
    if let Some(e) = &s.anchor_error {
        let _ = writeln!(out, "  anchoring is failing: {e}");
    }
    let _ = writeln!(
        out,
        "  {} batches replicated to a clinic, {} pruned locally{}",
        s.batches_replicated,
        s.batches_pruned,
        s.oldest_unreplicated_age_ms
            .map(|ms| format!("; oldest unreplicated {} s old", ms / 1000))
            .unwrap_or_default()
    );
    if let (Some(node), Some(listen)) = (&s.node_id, &s.node_listen) {
        let _ = writeln!(out, "  serving replicas as iroh node {node}@{listen}");
    }
    if let Some(e) = &s.serve_error {
        let _ = writeln!(out, "  NOT serving replicas: {e}");
    }
    if s.node_refusals > 0 {
        let _ = writeln!(
            out,
            "  {} connections refused from nodes not enrolled on chain (last: {})",
            s.node_refusals,
            s.last_refused_node.as_deref().unwrap_or("?")
        );
    }
    let _ = writeln!(
        out,
        "  patient umbral key {}",
        if s.pre_key_published {
            "published on chain"
        } else {
            "NOT yet on chain"
        }
    );
    if let Some(share) = &s.sharing {
        let _ = writeln!(
            out,
            "  sharing: {} live grants, {} with kfrags at all {} proxies ({} of them needed), {} dropped{}",
            share.live_grants,
            share.delivered_grants,
            share.proxies,
            share.threshold,
            share.dropped_grants,
            share
                .last_error
                .as_ref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        );
    }
}

fn format_time(millis: UnixMillis) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the hub is not running (no answer on {path}: {source})")]
    NotRunning {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad answer from the hub: {0}")]
    BadAnswer(String),
}

/// What a client asks the status socket: one JSON request, then EOF. A
/// client that sends nothing gets the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "ask", rename_all = "snake_case")]
pub enum Ask {
    Status,
    /// One sealed batch, for `glyco-hub verify`.
    Batch {
        selector: BatchSelector,
    },
    /// Make (or remake, with new shares) the offline emergency kit, for
    /// `glyco-hub emergency-kit`.
    EmergencyKit(crate::seal::emergency_kit::KitRequest),
    /// The patient acknowledges an alert (`glyco-hub alerts ack`).
    AlertAck {
        id: String,
    },
    /// A signed alert policy for this hub (`glyco-hub alerts policy`).
    AlertPolicy(Box<glyco_seal::alerts::Signed<glyco_seal::alerts::AlertPolicyDoc>>),
    /// The patient releases a device from quarantine (`glyco-hub device
    /// release`): "it is mine and fine".
    Release {
        device: String,
    },
    /// The patient snoozes new alerts of a kind (`glyco-hub alerts snooze`).
    AlertSnooze {
        kind: String,
        minutes: u32,
    },
    /// A test reading through the pipeline, not stored (the health check
    /// after an update).
    SelfTest,
}

/// The largest request read from the socket.
const MAX_ASK_BYTES: u64 = 16 * 1024;
/// How long a client may take to send its request.
const ASK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// How long an answer may take to write (a batch can be megabytes).
const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `report()` for a status request and `answer(ask)` (JSON) for any
/// other, to each client that connects, one at a time, until shutdown.
pub async fn serve<F, A, Fut>(
    path: &Path,
    report: F,
    answer: A,
    shutdown: CancellationToken,
) -> Result<(), StatusError>
where
    F: Fn() -> StatusReport + Send + Sync + 'static,
    A: Fn(Ask) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Vec<u8>> + Send,
{
    // A socket left by a crashed daemon would make bind fail.
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(|source| StatusError::Bind {
        path: path.to_owned(),
        source,
    })?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
    }
    let path = path.to_owned();
    let mut backoff = accept_backoff(std::time::Duration::from_secs(1));
    loop {
        let mut stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff.reset();
                    stream
                }
                Err(e) => {
                    // Never a hot loop (out of descriptors, say): back off.
                    tracing::debug!(error = %e, "status accept failed");
                    tokio::time::sleep(backoff.next_delay(0.0)).await;
                    continue;
                }
            },
        };
        // One client at a time, briefly: a stuck client cannot pile up tasks.
        let mut request = Vec::new();
        let mut limited = (&mut stream).take(MAX_ASK_BYTES);
        let _ = tokio::time::timeout(ASK_WAIT, limited.read_to_end(&mut request)).await;
        let ask = if request.iter().all(u8::is_ascii_whitespace) {
            Ok(Ask::Status)
        } else {
            serde_json::from_slice::<Ask>(&request).map_err(|e| e.to_string())
        };
        let body = match ask {
            Ok(Ask::Status) => serde_json::to_vec(&report()).unwrap_or_default(),
            Ok(other) => answer(other).await,
            Err(e) => serde_json::to_vec(&Err::<BatchExport, _>(format!("bad request: {e}")))
                .unwrap_or_default(),
        };
        let write = async {
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
        };
        let _ = tokio::time::timeout(ANSWER_WAIT, write).await;
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// Sends one request to the running daemon; its raw answer.
async fn ask(path: &Path, ask: &Ask) -> Result<Vec<u8>, StatusError> {
    let mut stream = UnixStream::connect(path)
        .await
        .map_err(|source| StatusError::NotRunning {
            path: path.to_owned(),
            source,
        })?;
    let request = serde_json::to_vec(ask).map_err(|e| StatusError::BadAnswer(e.to_string()))?;
    stream
        .write_all(&request)
        .await
        .map_err(|e| StatusError::BadAnswer(e.to_string()))?;
    stream
        .shutdown()
        .await
        .map_err(|e| StatusError::BadAnswer(e.to_string()))?;
    let mut body = Vec::new();
    stream
        .read_to_end(&mut body)
        .await
        .map_err(|e| StatusError::BadAnswer(e.to_string()))?;
    Ok(body)
}

/// Asks the running daemon for one sealed batch.
pub async fn query_batch(
    path: &Path,
    selector: BatchSelector,
) -> Result<Result<BatchExport, String>, StatusError> {
    let body = ask(path, &Ask::Batch { selector }).await?;
    serde_json::from_slice(&body).map_err(|e| StatusError::BadAnswer(e.to_string()))
}

/// Asks the running daemon to make the emergency kit.
pub async fn query_kit(
    path: &Path,
    request: crate::seal::emergency_kit::KitRequest,
) -> Result<Result<crate::seal::emergency_kit::KitMade, String>, StatusError> {
    let body = ask(path, &Ask::EmergencyKit(request)).await?;
    serde_json::from_slice(&body).map_err(|e| StatusError::BadAnswer(e.to_string()))
}

/// Asks the running daemon to record the patient's acknowledgement.
pub async fn query_alert_ack(
    path: &Path,
    id: String,
) -> Result<Result<crate::alerts::engine::AlertRecord, String>, StatusError> {
    let body = ask(path, &Ask::AlertAck { id }).await?;
    serde_json::from_slice(&body).map_err(|e| StatusError::BadAnswer(e.to_string()))
}

/// Asks the running daemon to snooze new alerts of a kind.
pub async fn query_alert_snooze(
    path: &Path,
    kind: String,
    minutes: u32,
) -> Result<Result<Option<i64>, String>, StatusError> {
    let body = ask(path, &Ask::AlertSnooze { kind, minutes }).await?;
    serde_json::from_slice(&body).map_err(|e| StatusError::BadAnswer(e.to_string()))
}

/// Hands the running daemon a signed alert policy; the version in force.
pub async fn query_alert_policy(
    path: &Path,
    signed: glyco_seal::alerts::Signed<glyco_seal::alerts::AlertPolicyDoc>,
) -> Result<Result<u64, String>, StatusError> {
    let body = ask(path, &Ask::AlertPolicy(Box::new(signed))).await?;
    serde_json::from_slice(&body).map_err(|e| StatusError::BadAnswer(e.to_string()))
}

/// Asks the running daemon to release a device from quarantine.
pub async fn query_release(
    path: &Path,
    device: String,
) -> Result<Result<crate::quarantine::QuarantineEntry, String>, StatusError> {
    let body = ask(path, &Ask::Release { device }).await?;
    serde_json::from_slice(&body).map_err(|e| StatusError::BadAnswer(e.to_string()))
}

/// Asks the running daemon for its status.
pub async fn query_self_test(
    path: &Path,
) -> Result<crate::update::selftest::SelfTestReport, StatusError> {
    let body = ask(path, &Ask::SelfTest).await?;
    serde_json::from_slice(&body).map_err(|e| StatusError::BadAnswer(e.to_string()))
}

pub async fn query(path: &Path) -> Result<StatusReport, StatusError> {
    let body = ask(path, &Ask::Status).await?;
    serde_json::from_slice(&body).map_err(|e| StatusError::BadAnswer(e.to_string()))
}
