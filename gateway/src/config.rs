//! The hub's configuration: TOML, every key optional with a documented
//! default, validated before the daemon touches anything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use glyco_contracts::Address;
use serde::{Deserialize, Serialize};

use crate::reading::Limits;

/// The default config, with comments; `glyco-hub print-config` prints it.
pub const DEFAULT_CONFIG_TOML: &str = r#"# glyco-hub configuration. Every key is optional; these are the defaults.

# Where the hub keeps its key, journal and device credentials (created 0700).
state_dir = "/var/lib/glyco"

[chain]
# JSON-RPC endpoint of a consortium node (the dev chain, or a hospital's Besu node).
rpc_url = "http://127.0.0.1:8545"
# The deployment file written by `glyco-chain deploy`.
deployment_file = "/etc/glyco/deployment.json"
# The hub's Ethereum key, relative to state_dir; created (mode 0600) if missing.
key_file = "hub.key"
# The consortium's device-id key (mode 0600), provisioned with the deployment
# file: on-chain device ids are keyed with it so they do not reveal hardware
# addresses. Its fingerprint must match the deployment file's.
device_id_key_file = "/etc/glyco/device-id.key"
# Required to run: the patient record this hub serves. The hub follows no one
# else, even if another patient manages to bind its key.
# patient = "0x..."
# Further consortium nodes; when given, the hub takes a head, a block hash or
# a set of device changes only if every node agrees (one lying or lagging
# node cannot make it skip a removal).
extra_rpc_urls = []
# How often the hub follows the chain for device changes, in milliseconds.
poll_interval_ms = 1000
# Blocks per eth_getLogs request when catching up (Besu serves at most 5000).
log_chunk_blocks = 2000
# Blocks behind the head the mirror stays (QBFT blocks are final: 0).
confirmations = 0
# Seconds without a new block before the status calls the chain stale.
stale_after_secs = 60
# Seconds one sync step (all its RPC calls) may take.
step_timeout_secs = 30

[mqtt]
enabled = true
# Where devices connect. Loopback by default; list the LAN address to serve Wi-Fi devices.
listen = ["127.0.0.1:1883"]
# Largest reading payload accepted, in bytes.
max_payload_bytes = 4096
# Seconds a new connection has to send its CONNECT.
connect_timeout_secs = 10
# Optional TLS for the device listeners (PEM files).
# [mqtt.tls]
# cert_file = "/etc/glyco/mqtt.crt"
# key_file = "/etc/glyco/mqtt.key"

[ble]
# Bonded Bluetooth LE health devices through BlueZ on the system D-Bus.
enabled = true
# Adapter name; unset: the default adapter.
# adapter = "hci0"
# Identity addresses to serve; empty: every bonded device BlueZ knows.
# Readings of devices not registered on chain are refused either way.
allow = []
# BLE device clocks carry no time zone: their offset from UTC, in minutes
# (0 when the devices keep UTC; 60 for a clock set to CET, for example).
device_clock_utc_offset_minutes = 0
# CGMs (identity addresses) whose firmware writes the status octets of a CGM
# Measurement Warning first, against the Bluetooth SIG order (Nordic's older
# nRF5 SDK encoder does). Only for devices known to do so: read the other
# way, "session stopped" and "battery low" swap with the high/low warnings.
cgm_status_warning_first = []

[analysis]
# Run the on-hub anomaly detection (clinical rules, glucose forecaster,
# sensor-fault detector) on every stored reading; findings are logged and
# shown by `glyco-hub status`.
enabled = true
# A directory with detector.json and its ONNX models; unset: the models built
# into the binary.
# models_dir = "/usr/share/glyco/models"

[seal]
# Seal stored readings into encrypted, signed batches (umbral, under the
# patient's key), keep them as content-addressed blobs and anchor their
# Merkle roots on chain (docs/BATCH.md).
enabled = true
# The patient's umbral key seed, relative to state_dir; created (0600) at
# first start, its public key published on chain.
patient_key_file = "patient.umbral"
# A batch closes at this many readings, or when its oldest reading has
# waited this long, whichever comes first.
max_batch_readings = 500
max_batch_wait_secs = 60
# One Merkle root over the batches sealed since the last anchor, at most
# this often and over at most this many batches.
anchor_interval_secs = 60
max_batches_per_anchor = 256
# Serve sealed batches over iroh (relays off) to clinic replicas whose node
# id a medical entity enrolled on chain; every other node is refused.
serve_replicas = true
iroh_listen = "0.0.0.0:7446"
# The hub's iroh node key, relative to state_dir; created (0600) at first start.
node_key_file = "iroh.key"
# A local blob is pruned once a replica has confirmed it, its root is
# anchored, and this long has passed since it was sealed (0: at once).
retention_secs = 604800
# How often pruned (untagged) blobs are deleted from disk.
blob_gc_interval_secs = 300

[validation]
# How far ahead of the hub's clock a device's time may be, in seconds.
max_future_skew_secs = 300
# How old a reading may be, in days (glucometers keep months of records).
max_age_days = 366

[status]
# Unix socket where `glyco-hub status` asks the running daemon, relative to state_dir.
socket = "hub.sock"

[web]
# The patient's web app and the Nightscout API (docs/WEB.md).
enabled = true
# Loopback by default; "0.0.0.0:8080" serves the home network.
listen = "127.0.0.1:8080"
# Serve only peers on a local network (loopback, RFC 1918, link-local, ULA).
lan_only = true
# The PIN's argon2id hash (`glyco-hub web set-pin`) and the Nightscout API
# secret and read token (`glyco-hub web api-secret`), relative to state_dir.
pin_file = "web-pin"
nightscout_file = "nightscout.json"
# IANA time zone for the report's time of day; empty: the system's.
time_zone = ""
# The patient's Ethereum key, if the patient keeps it on the hub (0600): the
# Sharing page then grants, revokes and sets the emergency policy with it.
# Empty: the page only shows what the chain says.
patient_key_file = ""
# Optional HTTPS (PEM files); the session cookie is then marked Secure.
# [web.tls]
# cert_file = "/etc/glyco/web.crt"
# key_file = "/etc/glyco/web.key"

[enrolment]
# The appliance's first boot (docs/APPLIANCE.md): with no patient configured,
# `glyco-hub run` makes the hub's keys and waits for a physician's enrolment
# code on the web app's address instead of refusing to start. What enrolment
# learns is written to enrolled.toml in state_dir, read over this file.
await_enrolment = false
# Pin the consortium: take only codes for this chain id and Roles contract
# (0 and unset: any).
chain_id = 0
# roles_contract = "0x..."

[fleet]
# Heartbeats to the clinic's fleet node (docs/FLEET.md): versions, uptime,
# disk, memory, queues, chain, devices' last-seen, open alerts; no readings.
enabled = true
# The node, "<iroh node id>@<ip:port>"; unset: the alert inbox node
# (alerts.inbox), which enrolment sets.
# node = ""
interval_secs = 60
# An alert policy a physician proposes through the fleet node: "refuse"
# (recorded, not applied) or "apply" (applied when its signer holds a live
# grant from the patient on chain). The patient's choice.
remote_config = "refuse"

[update]
# Update bundles (docs/FLEET.md, "Updates"): `glyco-hub update check` takes a
# RAUC bundle only if its SHA-256 is published on chain (Releases), its
# signature chains to this keyring, its manifest is for this hub and its
# version is the one on chain.
keyring = "/etc/rauc/keyring.pem"
# compatible = "glyco-amd64"   (glyco-arm64 on the Pi; the build's default)
rauc = "rauc"
max_bundle_mib = 2048
# Releases the clinic's fleet node offers with a heartbeat's answer: fetched,
# checked as above, then installed by glyco-update.service (root) into the
# other slot, and kept only if the health check after the reboot passes.
# Off unless the hub runs from the A/B image (the image turns it on).
accept_offers = false
# Where the installer (root) keeps its own copy and what is pending.
install_dir = "/var/lib/glyco-update"
# How long the health check after an update waits for the hub to be well.
health_timeout_secs = 300

[limits]
# Device connections in all, and from one network address. The hub raises its
# file-descriptor limit at start and lowers max_connections to what it allows
# (each connection uses three descriptors), keeping a reserve for the journal
# and the status socket.
max_connections = 256
max_connections_per_address = 16
# Publishes one connection may send per second (bursts of five times that);
# a device over it is disconnected.
max_publishes_per_second = 10
# Longest MQTT keep-alive accepted, in seconds; a CONNECT asking 0 (none) or
# more gets this one, and is disconnected after 1.5 times it in silence.
max_keep_alive_secs = 1200
# Failed logins: after this many from one address or for one device name,
# each further failure is answered after a delay doubling up to the maximum.
login_failures_before_delay = 3
max_login_delay_secs = 30
# An address with this many failed logins in login_window_secs is banned (its
# connections closed at once) for ban_secs.
ban_after_failures = 20
login_window_secs = 600
ban_secs = 900
# Node-behaviour events kept in full in the journal (counts are kept forever).
max_events_kept = 20000
# The journal's page cache, in MiB.
journal_cache_mib = 16
# Free space kept on the state directory's filesystem: below it the hub
# refuses (does not acknowledge) readings and stops sealing until space
# returns, so the journal and blob store never meet a full disk.
min_free_disk_mib = 64
"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    pub state_dir: PathBuf,
    pub chain: ChainConfig,
    pub mqtt: MqttConfig,
    pub ble: BleConfig,
    pub analysis: AnalysisConfig,
    pub behaviour: BehaviourConfig,
    pub alerts: AlertsConfig,
    pub seal: SealConfig,
    pub validation: Limits,
    pub status: StatusConfig,
    pub limits: LimitsConfig,
    pub web: WebConfig,
    pub enrolment: EnrolmentConfig,
    pub fleet: FleetConfig,
    pub update: UpdateConfig,
}

/// Update bundles (docs/FLEET.md, "Updates").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateConfig {
    /// The release keyring a bundle's signature must chain to.
    pub keyring: PathBuf,
    /// What bundles for this hub say in their manifest.
    pub compatible: String,
    /// The rauc binary.
    pub rauc: PathBuf,
    /// The largest bundle taken.
    pub max_bundle_mib: u64,
    /// Fetch and install releases the fleet node offers.
    pub accept_offers: bool,
    /// The installer's own directory (root's).
    pub install_dir: PathBuf,
    /// How long the health check after an update waits for the hub.
    pub health_timeout_secs: u64,
    /// The wait before fetching an offered release again after the
    /// network, the chain or the disk failed; doubled on each failure up
    /// to an hour, until the hub gives up and refuses it.
    pub retry_secs: u64,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        let arch = match std::env::consts::ARCH {
            "aarch64" => "arm64",
            "x86_64" => "amd64",
            other => other,
        };
        Self {
            keyring: PathBuf::from("/etc/rauc/keyring.pem"),
            compatible: format!("glyco-{arch}"),
            rauc: PathBuf::from("rauc"),
            max_bundle_mib: 2048,
            accept_offers: false,
            install_dir: PathBuf::from("/var/lib/glyco-update"),
            health_timeout_secs: 300,
            retry_secs: 60,
        }
    }
}

/// Heartbeats to the clinic's fleet node (docs/FLEET.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    pub enabled: bool,
    /// `<iroh node id>@<ip:port>`; unset: the clinic's alert inbox node.
    pub node: Option<String>,
    pub interval_secs: u64,
    /// What the hub does with an alert policy a physician proposes
    /// through the fleet node: the patient's choice.
    pub remote_config: RemoteConfig,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            node: None,
            interval_secs: 60,
            remote_config: RemoteConfig::Refuse,
        }
    }
}

/// The patient's consent to remote configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteConfig {
    /// Proposals are recorded, never applied.
    #[default]
    Refuse,
    /// A proposal signed by a physician with a live grant from the patient
    /// (checked on chain) is applied and recorded.
    Apply,
}

impl FleetConfig {
    /// The fleet node to send heartbeats to, if any (`node`, else the
    /// first alert inbox), checked.
    pub fn node_peer(
        &self,
        alerts: &AlertsConfig,
    ) -> Result<Option<(iroh::EndpointId, std::net::SocketAddr)>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        let Some(text) = self.node.as_ref().or(alerts.inbox.as_ref()) else {
            return Ok(None);
        };
        node_at(text).map(Some).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "fleet.node {text:?} is not <iroh node id>@<ip:port>"
            ))
        })
    }
}

/// `<iroh node id>@<ip:port>`, as alert inboxes and the fleet node are named.
fn node_at(text: &str) -> Option<(iroh::EndpointId, std::net::SocketAddr)> {
    let (node, addr) = text.split_once('@')?;
    Some((node.parse().ok()?, addr.parse().ok()?))
}

/// First boot and enrolment (docs/APPLIANCE.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrolmentConfig {
    pub await_enrolment: bool,
    pub chain_id: u64,
    pub roles_contract: Option<Address>,
}

/// What enrolment writes in the state directory, read over the config file.
pub const ENROLLED_OVERLAY: &str = "enrolled.toml";

/// Merges `overlay` into `base`: tables key by key, anything else replaced.
fn merge_toml(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(overlay)) => {
                merge_toml(base, overlay)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The web app (docs/WEB.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub lan_only: bool,
    pub pin_file: PathBuf,
    pub nightscout_file: PathBuf,
    pub time_zone: String,
    pub patient_key_file: PathBuf,
    pub tls: Option<TlsConfig>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            lan_only: true,
            pin_file: PathBuf::from("web-pin"),
            nightscout_file: PathBuf::from("nightscout.json"),
            time_zone: String::new(),
            patient_key_file: PathBuf::new(),
            tls: None,
        }
    }
}

impl WebConfig {
    /// The report's time zone: the configured one, else the system's.
    pub fn time_zone(&self) -> Result<jiff::tz::TimeZone, ConfigError> {
        if self.time_zone.is_empty() {
            return Ok(jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC));
        }
        jiff::tz::TimeZone::get(&self.time_zone)
            .map_err(|e| ConfigError::Invalid(format!("web.time_zone {:?}: {e}", self.time_zone)))
    }
}

/// Every bound the hub keeps, with safe defaults (docs/HUB.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub max_publishes_per_second: u32,
    pub max_keep_alive_secs: u16,
    pub login_failures_before_delay: u32,
    pub max_login_delay_secs: u64,
    pub ban_after_failures: u32,
    pub login_window_secs: u64,
    pub ban_secs: u64,
    pub max_events_kept: u64,
    pub journal_cache_mib: usize,
    pub min_free_disk_mib: u64,
}

impl LimitsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let check = |ok: bool, message: &str| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Invalid(format!("limits.{message}")))
            }
        };
        check(
            (1..=65_536).contains(&self.max_connections),
            "max_connections must be between 1 and 65536",
        )?;
        check(
            (1..=self.max_connections).contains(&self.max_connections_per_address),
            "max_connections_per_address must be between 1 and max_connections",
        )?;
        check(
            (1..=1000).contains(&self.max_publishes_per_second),
            "max_publishes_per_second must be between 1 and 1000",
        )?;
        check(
            self.max_keep_alive_secs >= 10,
            "max_keep_alive_secs must be at least 10",
        )?;
        check(
            self.max_login_delay_secs <= 300,
            "max_login_delay_secs must be at most 300",
        )?;
        check(
            self.ban_after_failures >= 1 && self.login_window_secs >= 1,
            "ban_after_failures and login_window_secs must be positive",
        )?;
        check(self.ban_secs <= 86_400, "ban_secs must be at most 86400")?;
        check(
            (100..=10_000_000).contains(&self.max_events_kept),
            "max_events_kept must be between 100 and 10000000",
        )?;
        check(
            (1..=1024).contains(&self.journal_cache_mib),
            "journal_cache_mib must be between 1 and 1024",
        )?;
        check(
            self.min_free_disk_mib <= 1024 * 1024,
            "min_free_disk_mib must be at most 1048576",
        )
    }

    pub fn journal(&self) -> crate::journal::JournalLimits {
        crate::journal::JournalLimits {
            max_events: self.max_events_kept,
            cache_bytes: self.journal_cache_mib * 1024 * 1024,
            min_free_bytes: self.min_free_disk_mib * 1024 * 1024,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_connections_per_address: 16,
            max_publishes_per_second: 10,
            max_keep_alive_secs: 1200,
            login_failures_before_delay: 3,
            max_login_delay_secs: 30,
            ban_after_failures: 20,
            login_window_secs: 600,
            ban_secs: 900,
            max_events_kept: 20_000,
            journal_cache_mib: 16,
            min_free_disk_mib: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisConfig {
    pub enabled: bool,
    pub models_dir: Option<PathBuf>,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            models_dir: None,
        }
    }
}

/// What the hub does with a node-behaviour finding (docs/HUB.md, "Node
/// behaviour").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BehaviourConfig {
    /// `report` (findings only) or `quarantine` (also mark the device's
    /// readings and keep them from alerts until the patient releases it).
    pub policy: String,
    /// The least severity that quarantines: `warning` or `urgent`.
    pub quarantine_on: String,
}

impl Default for BehaviourConfig {
    fn default() -> Self {
        Self {
            policy: "report".into(),
            quarantine_on: "urgent".into(),
        }
    }
}

impl BehaviourConfig {
    /// The severity that quarantines, if the policy quarantines.
    pub fn quarantine_at(&self) -> Result<Option<glyco_ml::Severity>, ConfigError> {
        let severity = match self.quarantine_on.as_str() {
            "urgent" => glyco_ml::Severity::Urgent,
            "warning" => glyco_ml::Severity::Warning,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "behaviour.quarantine_on is warning or urgent, not {other:?}"
                )));
            }
        };
        match self.policy.as_str() {
            "report" => Ok(None),
            "quarantine" => Ok(Some(severity)),
            other => Err(ConfigError::Invalid(format!(
                "behaviour.policy is report or quarantine, not {other:?}"
            ))),
        }
    }
}

/// Who is told about findings, and when (docs/HUB.md, "Alerts").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub enabled: bool,
    /// The clinic's alert inbox, `<iroh node id>@<ip:port>`; needed for
    /// physician steps.
    pub inbox: Option<String>,
    /// More inboxes (another clinic's, an emergency service's), same form.
    /// Each physician or emergency target goes to the inbox whose node the
    /// chain enrols for the target's entity.
    pub inboxes: Vec<String>,
    /// Finding kinds that alert: names, or a prefix ending in `*`.
    pub kinds: Vec<String>,
    /// The least severity that alerts: `info`, `warning` or `urgent`.
    pub min_severity: String,
    /// The escalation ladder, first step first (`after_secs` 0).
    pub ladder: Vec<LadderStepConfig>,
    /// The same device and kind alert again only after this long.
    pub dedupe_secs: u64,
    /// How often acknowledgements are asked for while alerts are open.
    pub ack_poll_ms: u64,
    /// Webhooks a ladder step may name as `webhook:<name>`.
    pub webhooks: Vec<WebhookConfig>,
}

/// A webhook target: HTTP POST of the alert with an HMAC-SHA256 signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub name: String,
    /// `http(s)://…`
    pub url: String,
    /// The HMAC secret's file (relative: in the state directory), 0600.
    pub secret_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LadderStepConfig {
    /// Seconds after the alert this step is added (if no one acknowledged).
    pub after_secs: u64,
    /// `patient`, `physician:0x…`, `webhook:<name>` or `emergency:0x…`
    /// (an emergency service's entity address; urgent alerts only).
    pub to: Vec<String>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            inbox: None,
            inboxes: Vec::new(),
            kinds: vec![
                "very_low_glucose".into(),
                "predicted_low".into(),
                "stale_data".into(),
                "node_behaviour:*".into(),
            ],
            min_severity: "warning".into(),
            ladder: vec![LadderStepConfig {
                after_secs: 0,
                to: vec!["patient".into()],
            }],
            dedupe_secs: 1800,
            ack_poll_ms: 1000,
            webhooks: Vec::new(),
        }
    }
}

impl AlertsConfig {
    /// The policy the engine runs, checked.
    pub fn policy(&self) -> Result<crate::alerts::engine::AlertPolicy, ConfigError> {
        use crate::alerts::engine::{AlertPolicy, Step, Target};
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.ladder.is_empty() || self.ladder.len() > 6 {
            return invalid("alerts.ladder must have 1 to 6 steps".into());
        }
        if self.ladder[0].after_secs != 0 {
            return invalid("alerts.ladder's first step must have after_secs = 0".into());
        }
        if self
            .ladder
            .windows(2)
            .any(|w| w[1].after_secs <= w[0].after_secs)
        {
            return invalid("alerts.ladder's after_secs must increase".into());
        }
        let mut ladder = Vec::new();
        for step in &self.ladder {
            if step.after_secs > 7 * 86_400 || step.to.is_empty() || step.to.len() > 16 {
                return invalid(
                    "alerts.ladder: each step is within a week and has 1 to 16 targets".into(),
                );
            }
            let targets = step
                .to
                .iter()
                .map(|t| t.parse::<Target>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ConfigError::Invalid(format!("alerts.ladder: {e}")))?;
            if self.inbox.is_none()
                && self.inboxes.is_empty()
                && targets
                    .iter()
                    .any(|t| matches!(t, Target::Physician { .. } | Target::Emergency { .. }))
            {
                return invalid(
                    "alerts.ladder names a physician or an emergency service: alerts.inbox (or alerts.inboxes) is required"
                        .into(),
                );
            }
            ladder.push(Step {
                after_ms: step.after_secs as i64 * 1000,
                targets,
            });
        }
        if !matches!(self.min_severity.as_str(), "info" | "warning" | "urgent") {
            return invalid("alerts.min_severity is info, warning or urgent".into());
        }
        if self.kinds.len() > 64 || self.kinds.iter().any(|k| k.is_empty() || k.len() > 64) {
            return invalid("alerts.kinds: at most 64 names of 1 to 64 characters".into());
        }
        if self.dedupe_secs > 86_400 {
            return invalid("alerts.dedupe_secs must be at most 86400".into());
        }
        if !(100..=60_000).contains(&self.ack_poll_ms) {
            return invalid("alerts.ack_poll_ms must be between 100 and 60000".into());
        }
        if self.webhooks.len() > 8 {
            return invalid("alerts.webhooks: at most 8".into());
        }
        for (i, webhook) in self.webhooks.iter().enumerate() {
            if webhook.name.is_empty()
                || webhook.name.len() > 32
                || self.webhooks[..i].iter().any(|w| w.name == webhook.name)
            {
                return invalid(
                    "alerts.webhooks: names are 1 to 32 characters and distinct".into(),
                );
            }
            let url: Result<reqwest::Url, _> = webhook.url.parse();
            if !url.is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                return invalid(format!(
                    "alerts.webhooks: {:?} is not an http(s) URL",
                    webhook.url
                ));
            }
        }
        Ok(AlertPolicy {
            kinds: self.kinds.clone(),
            min_severity: self.min_severity.clone(),
            ladder,
            dedupe_ms: self.dedupe_secs as i64 * 1000,
        })
    }

    /// This config with a signed policy's kinds, severity, ladder and
    /// de-duplication (inbox, webhooks and polling stay the hub's).
    pub fn with_policy(&self, doc: &glyco_seal::alerts::AlertPolicyDoc) -> Self {
        Self {
            kinds: doc.kinds.clone(),
            min_severity: doc.min_severity.clone(),
            ladder: doc
                .ladder
                .iter()
                .map(|(after_secs, to)| LadderStepConfig {
                    after_secs: *after_secs,
                    to: to.clone(),
                })
                .collect(),
            dedupe_secs: doc.dedupe_secs,
            ..self.clone()
        }
    }

    /// Every configured inbox (`inbox` first), as written.
    pub fn all_inboxes(&self) -> Vec<String> {
        self.inbox.iter().chain(&self.inboxes).cloned().collect()
    }

    /// The inboxes' nodes and addresses, checked: at most 8, distinct nodes.
    pub fn inbox_peers(
        &self,
    ) -> Result<Vec<(iroh::EndpointId, std::net::SocketAddr)>, ConfigError> {
        let texts = self.all_inboxes();
        if texts.len() > 8 {
            return Err(ConfigError::Invalid(
                "alerts: at most 8 inboxes in all".into(),
            ));
        }
        let mut peers: Vec<(iroh::EndpointId, std::net::SocketAddr)> = Vec::new();
        for text in &texts {
            let bad = || {
                ConfigError::Invalid(format!(
                    "alerts inbox {text:?} is not <iroh node id>@<ip:port>"
                ))
            };
            let (node, addr) = node_at(text).ok_or_else(bad)?;
            if peers.iter().any(|(n, _)| *n == node) {
                return Err(ConfigError::Invalid(format!(
                    "alerts: inbox node {node} is named twice"
                )));
            }
            peers.push((node, addr));
        }
        Ok(peers)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SealConfig {
    pub enabled: bool,
    pub patient_key_file: PathBuf,
    pub max_batch_readings: u32,
    pub max_batch_wait_secs: u64,
    pub anchor_interval_secs: u64,
    pub max_batches_per_anchor: u32,
    pub serve_replicas: bool,
    pub iroh_listen: std::net::SocketAddr,
    pub node_key_file: PathBuf,
    pub retention_secs: u64,
    pub blob_gc_interval_secs: u64,
    /// Re-encryption proxies that get each grant's kfrags, as
    /// `<proxy ethereum address>@<ip:port>`; empty: nothing is shared.
    pub proxies: Vec<String>,
    /// How many of the proxies must re-encrypt for a physician to read (M of N).
    pub proxy_threshold: u32,
    /// How often the patient's grants are read from the chain.
    pub share_poll_secs: u64,
}

impl Default for SealConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            patient_key_file: PathBuf::from("patient.umbral"),
            max_batch_readings: 500,
            max_batch_wait_secs: 60,
            anchor_interval_secs: 60,
            max_batches_per_anchor: 256,
            serve_replicas: true,
            iroh_listen: std::net::SocketAddr::from(([0, 0, 0, 0], 7446)),
            node_key_file: PathBuf::from("iroh.key"),
            retention_secs: 7 * 24 * 3600,
            blob_gc_interval_secs: 300,
            proxies: Vec::new(),
            proxy_threshold: 1,
            share_poll_secs: 2,
        }
    }
}

impl SealConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if !(1..=10_000).contains(&self.max_batch_readings) {
            return invalid("seal.max_batch_readings must be between 1 and 10000");
        }
        if !(1..=86_400).contains(&self.max_batch_wait_secs) {
            return invalid("seal.max_batch_wait_secs must be between 1 and 86400");
        }
        if !(1..=86_400).contains(&self.anchor_interval_secs) {
            return invalid("seal.anchor_interval_secs must be between 1 and 86400");
        }
        if !(1..=4096).contains(&self.max_batches_per_anchor) {
            return invalid("seal.max_batches_per_anchor must be between 1 and 4096");
        }
        if self.retention_secs > 10 * 366 * 86_400 {
            return invalid("seal.retention_secs must be at most ten years");
        }
        if !(1..=86_400).contains(&self.blob_gc_interval_secs) {
            return invalid("seal.blob_gc_interval_secs must be between 1 and 86400");
        }
        self.proxy_targets()?;
        if !(1..=3600).contains(&self.share_poll_secs) {
            return invalid("seal.share_poll_secs must be between 1 and 3600");
        }
        Ok(())
    }

    /// The configured proxies, parsed; M of N checked.
    pub fn proxy_targets(&self) -> Result<Vec<crate::seal::sharer::ProxyTarget>, ConfigError> {
        let targets = self
            .proxies
            .iter()
            .map(|p| {
                p.parse()
                    .map_err(|e| ConfigError::Invalid(format!("seal.proxies: {e}")))
            })
            .collect::<Result<Vec<crate::seal::sharer::ProxyTarget>, _>>()?;
        let n = targets.len();
        if n > glyco_seal::sharing::MAX_PROXIES {
            return Err(ConfigError::Invalid(format!(
                "seal.proxies: at most {} proxies",
                glyco_seal::sharing::MAX_PROXIES
            )));
        }
        let distinct: std::collections::HashSet<_> = targets.iter().map(|t| t.address).collect();
        if distinct.len() != n {
            return Err(ConfigError::Invalid(
                "seal.proxies: a proxy is listed twice".into(),
            ));
        }
        if n > 0 && !(1..=n as u32).contains(&self.proxy_threshold) {
            return Err(ConfigError::Invalid(format!(
                "seal.proxy_threshold must be between 1 and the {n} proxies"
            )));
        }
        Ok(targets)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainConfig {
    pub rpc_url: String,
    pub deployment_file: PathBuf,
    pub key_file: PathBuf,
    pub device_id_key_file: PathBuf,
    pub patient: Option<Address>,
    pub extra_rpc_urls: Vec<String>,
    pub poll_interval_ms: u64,
    pub log_chunk_blocks: u64,
    pub confirmations: u64,
    pub stale_after_secs: u64,
    pub step_timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    pub enabled: bool,
    pub listen: Vec<SocketAddr>,
    pub max_payload_bytes: usize,
    pub connect_timeout_secs: u64,
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BleConfig {
    pub enabled: bool,
    pub adapter: Option<String>,
    pub allow: Vec<String>,
    pub device_clock_utc_offset_minutes: i32,
    pub cgm_status_warning_first: Vec<String>,
}

impl BleConfig {
    /// The session settings for glyco-ble, checked.
    pub fn sessions(&self) -> Result<glyco_ble::BleConfig, ConfigError> {
        let allow = self
            .allow
            .iter()
            .map(|a| {
                a.parse::<glyco_ble::BdAddr>()
                    .map_err(|e| ConfigError::Invalid(format!("ble.allow: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cgm_warning_first = self
            .cgm_status_warning_first
            .iter()
            .map(|a| {
                a.parse::<glyco_ble::BdAddr>()
                    .map_err(|e| ConfigError::Invalid(format!("ble.cgm_status_warning_first: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sessions = glyco_ble::BleConfig {
            adapter: self.adapter.clone(),
            allow: (!allow.is_empty()).then_some(allow),
            cgm_warning_first,
            ..glyco_ble::BleConfig::default()
        };
        sessions
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("ble: {e}")))?;
        Ok(sessions)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    pub socket: PathBuf,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/glyco"),
            chain: ChainConfig::default(),
            mqtt: MqttConfig::default(),
            ble: BleConfig::default(),
            analysis: AnalysisConfig::default(),
            behaviour: BehaviourConfig::default(),
            alerts: AlertsConfig::default(),
            seal: SealConfig::default(),
            validation: Limits::default(),
            status: StatusConfig::default(),
            limits: LimitsConfig::default(),
            web: WebConfig::default(),
            enrolment: EnrolmentConfig::default(),
            fleet: FleetConfig::default(),
            update: UpdateConfig::default(),
        }
    }
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            rpc_url: "http://127.0.0.1:8545".into(),
            deployment_file: PathBuf::from("/etc/glyco/deployment.json"),
            key_file: PathBuf::from("hub.key"),
            device_id_key_file: PathBuf::from("/etc/glyco/device-id.key"),
            patient: None,
            extra_rpc_urls: Vec::new(),
            poll_interval_ms: 1000,
            log_chunk_blocks: 2000,
            confirmations: 0,
            stale_after_secs: 60,
            step_timeout_secs: 30,
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 1883))],
            max_payload_bytes: 4096,
            connect_timeout_secs: 10,
            tls: None,
        }
    }
}

impl Default for BleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            adapter: None,
            allow: Vec::new(),
            device_clock_utc_offset_minutes: 0,
            cgm_status_warning_first: Vec::new(),
        }
    }
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from("hub.sock"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Largest payload the hub will consider; devices send readings, not files.
const PAYLOAD_CEILING: usize = 64 * 1024;

impl HubConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let parse = |path: &Path, text: &str| {
            toml::from_str::<toml::Table>(text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })
        };
        let mut table = parse(path, &text)?;
        let state_dir = match table.get("state_dir") {
            Some(toml::Value::String(dir)) => PathBuf::from(dir),
            _ => Self::default().state_dir,
        };
        let overlay_path = state_dir.join(ENROLLED_OVERLAY);
        match std::fs::read_to_string(&overlay_path) {
            Ok(overlay) => merge_toml(&mut table, parse(&overlay_path, &overlay)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ConfigError::Read {
                    path: overlay_path,
                    source,
                });
            }
        }
        let config: Self = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// The enrolment overlay's path ([`ENROLLED_OVERLAY`]).
    pub fn enrolled_overlay_path(&self) -> PathBuf {
        self.state_dir.join(ENROLLED_OVERLAY)
    }

    /// The hub is waiting for its first enrolment.
    pub fn awaits_enrolment(&self) -> bool {
        self.enrolment.await_enrolment && self.chain.patient.is_none()
    }

    /// [`HubConfig::validate`], plus what running the hub (or acting for
    /// its patient) needs: the patient it serves.
    pub fn validate_for_hub(&self) -> Result<Address, ConfigError> {
        self.validate()?;
        match self.chain.patient {
            Some(patient) if !patient.is_zero() => Ok(patient),
            _ => Err(ConfigError::Invalid(
                "chain.patient is required: the patient record this hub serves".into(),
            )),
        }
    }

    /// Checks everything that can be checked without side effects.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.state_dir.as_os_str().is_empty() {
            return invalid("state_dir must not be empty".into());
        }
        for url in std::iter::once(&self.chain.rpc_url).chain(&self.chain.extra_rpc_urls) {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.parse::<glyco_contracts::client::RpcUrl>().is_err()
            {
                return invalid(format!("chain.rpc_url {url:?} is not an http(s) URL"));
            }
        }
        if self.chain.extra_rpc_urls.len() > 4 {
            return invalid("chain.extra_rpc_urls may name at most 4 nodes".into());
        }
        if self.chain.confirmations > 64 {
            return invalid("chain.confirmations must be at most 64".into());
        }
        if !(5..=3600).contains(&self.chain.stale_after_secs) {
            return invalid("chain.stale_after_secs must be between 5 and 3600".into());
        }
        if !(1..=600).contains(&self.chain.step_timeout_secs) {
            return invalid("chain.step_timeout_secs must be between 1 and 600".into());
        }
        if !(1..=10_000).contains(&self.chain.log_chunk_blocks) {
            return invalid("chain.log_chunk_blocks must be between 1 and 10000".into());
        }
        self.limits.validate()?;
        self.seal.validate()?;
        if !(1..=8192).contains(&self.update.max_bundle_mib) {
            return invalid("update.max_bundle_mib must be between 1 and 8192".into());
        }
        if !(30..=3600).contains(&self.update.health_timeout_secs) {
            return invalid("update.health_timeout_secs must be between 30 and 3600".into());
        }
        if !(1..=3600).contains(&self.update.retry_secs) {
            return invalid("update.retry_secs must be between 1 and 3600".into());
        }
        if !(1..=64).contains(&self.update.compatible.len()) {
            return invalid("update.compatible must be 1 to 64 characters".into());
        }
        if !(5..=3600).contains(&self.fleet.interval_secs) {
            return invalid("fleet.interval_secs must be between 5 and 3600".into());
        }
        if self.fleet.node_peer(&self.alerts)?.is_some() && !self.seal.enabled {
            return invalid(
                "fleet heartbeats need seal.enabled (they leave through the seal's iroh node); set fleet.enabled = false"
                    .into(),
            );
        }
        self.alerts.policy()?;
        let inboxes = self.alerts.inbox_peers()?;
        self.web.time_zone()?;
        self.behaviour.quarantine_at()?;
        if !inboxes.is_empty() && !self.seal.enabled {
            return invalid(
                "alerts.inbox needs seal.enabled (alerts leave through the seal's iroh node)"
                    .into(),
            );
        }
        if !(100..=60_000).contains(&self.chain.poll_interval_ms) {
            return invalid("chain.poll_interval_ms must be between 100 and 60000".into());
        }
        if self.mqtt.enabled && self.mqtt.listen.is_empty() {
            return invalid(
                "mqtt.listen must name at least one address when MQTT is enabled".into(),
            );
        }
        if !(128..=PAYLOAD_CEILING).contains(&self.mqtt.max_payload_bytes) {
            return invalid(format!(
                "mqtt.max_payload_bytes must be between 128 and {PAYLOAD_CEILING}"
            ));
        }
        if !(1..=300).contains(&self.mqtt.connect_timeout_secs) {
            return invalid("mqtt.connect_timeout_secs must be between 1 and 300".into());
        }
        if self.validation.max_future_skew_secs > 86_400 {
            return invalid("validation.max_future_skew_secs must be at most 86400".into());
        }
        self.ble.sessions()?;
        if !(-14 * 60..=14 * 60).contains(&self.ble.device_clock_utc_offset_minutes) {
            return invalid(
                "ble.device_clock_utc_offset_minutes must be between -840 and 840".into(),
            );
        }
        if self.validation.max_age_days == 0 {
            return invalid("validation.max_age_days must be positive".into());
        }
        Ok(())
    }

    /// A path from the config, resolved against the state directory.
    pub fn patient_key_path(&self) -> PathBuf {
        self.in_state_dir(&self.seal.patient_key_file)
    }

    /// The blob store's directory (iroh-blobs FsStore).
    pub fn node_key_path(&self) -> PathBuf {
        self.in_state_dir(&self.seal.node_key_file)
    }

    pub fn blob_dir(&self) -> PathBuf {
        self.state_dir.join("blobs")
    }

    pub fn in_state_dir(&self, path: &Path) -> PathBuf {
        self.state_dir.join(path)
    }

    pub fn key_path(&self) -> PathBuf {
        self.in_state_dir(&self.chain.key_file)
    }

    pub fn journal_path(&self) -> PathBuf {
        self.state_dir.join("journal.redb")
    }

    pub fn credentials_path(&self) -> PathBuf {
        self.state_dir.join("device-credentials.json")
    }

    pub fn status_socket(&self) -> PathBuf {
        self.in_state_dir(&self.status.socket)
    }

    pub fn web_pin_path(&self) -> PathBuf {
        self.in_state_dir(&self.web.pin_file)
    }

    pub fn nightscout_path(&self) -> PathBuf {
        self.in_state_dir(&self.web.nightscout_file)
    }

    /// The patient's key kept on the hub, if configured.
    pub fn web_patient_key_path(&self) -> Option<PathBuf> {
        (!self.web.patient_key_file.as_os_str().is_empty())
            .then(|| self.in_state_dir(&self.web.patient_key_file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_default_config_is_the_default_and_valid() {
        let parsed: HubConfig = toml::from_str(DEFAULT_CONFIG_TOML).unwrap();
        assert_eq!(parsed, HubConfig::default());
        parsed.validate().unwrap();
    }

    #[test]
    fn a_hub_needs_the_patient_it_serves() {
        let mut config = HubConfig::default();
        let err = config.validate_for_hub().unwrap_err().to_string();
        assert!(err.contains("chain.patient"), "{err}");
        config.chain.patient = Some(Address::ZERO);
        assert!(config.validate_for_hub().is_err());
        let patient = Address::repeat_byte(5);
        config.chain.patient = Some(patient);
        assert_eq!(config.validate_for_hub().unwrap(), patient);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<HubConfig>("[mqtt]\nlisten_on = []\n").unwrap_err();
        assert!(err.to_string().contains("listen_on"), "{err}");
    }

    #[test]
    fn invalid_values_are_refused_with_the_key_named() {
        let node = "9f8ddb6eb1b9f3c3df85ea5e8b7e8f3a1c4e6c2f3b2a1d0e9f8a7b6c5d4e3f2a";
        let twice =
            format!("[alerts]\ninbox = \"{node}@127.0.0.1:1\"\ninboxes = [\"{node}@127.0.0.1:2\"]");
        let cases: [(&str, &str); 17] = [
            (
                "[[alerts.ladder]]\nafter_secs = 0\nto = [\"emergency:0x0000000000000000000000000000000000000001\"]",
                "alerts.inbox (or alerts.inboxes) is required",
            ),
            (&twice, "named twice"),
            ("[ble]\nallow = [\"not-an-address\"]", "ble.allow"),
            (
                "[ble]\ncgm_status_warning_first = [\"zz\"]",
                "cgm_status_warning_first",
            ),
            ("[limits]\nmax_connections = 0", "limits.max_connections"),
            (
                "[limits]\nmax_connections_per_address = 1000",
                "limits.max_connections_per_address",
            ),
            ("[limits]\nmax_events_kept = 5", "limits.max_events_kept"),
            ("[chain]\nconfirmations = 1000", "chain.confirmations"),
            ("[chain]\nextra_rpc_urls = [\"ftp://x\"]", "chain.rpc_url"),
            ("[ble]\nadapter = \"hci0/../x\"", "ble"),
            (
                "[ble]\ndevice_clock_utc_offset_minutes = 1000",
                "device_clock_utc_offset_minutes",
            ),
            ("[chain]\nrpc_url = \"ftp://x\"", "rpc_url"),
            ("[chain]\npoll_interval_ms = 5", "poll_interval_ms"),
            ("[mqtt]\nlisten = []", "mqtt.listen"),
            ("[mqtt]\nmax_payload_bytes = 10000000", "max_payload_bytes"),
            ("[validation]\nmax_age_days = 0", "max_age_days"),
            ("state_dir = \"\"", "state_dir"),
        ];
        for (toml_text, key) in cases {
            let config: HubConfig = toml::from_str(toml_text).unwrap();
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{toml_text}: {err}");
        }
    }

    #[test]
    fn the_enrolment_overlay_is_read_over_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(
            &path,
            format!(
                "state_dir = {:?}\n[web]\nlisten = \"0.0.0.0:8080\"\n[enrolment]\nawait_enrolment = true\n",
                state.display().to_string()
            ),
        )
        .unwrap();
        let before = HubConfig::load(&path).unwrap();
        assert!(before.awaits_enrolment());
        std::fs::write(
            state.join(ENROLLED_OVERLAY),
            "[chain]\nrpc_url = \"http://10.0.2.2:8545\"\npatient = \"0x00000000000000000000000000000000000000aa\"\n[web]\npatient_key_file = \"patient.eth\"\n",
        )
        .unwrap();
        let after = HubConfig::load(&path).unwrap();
        assert!(!after.awaits_enrolment());
        assert_eq!(after.chain.rpc_url, "http://10.0.2.2:8545");
        // Keys the overlay does not name keep the file's values.
        assert_eq!(after.web.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(after.web.patient_key_file, PathBuf::from("patient.eth"));
        // A damaged overlay is an error naming it, not a silent default.
        std::fs::write(state.join(ENROLLED_OVERLAY), "[chain\n").unwrap();
        let error = HubConfig::load(&path).unwrap_err().to_string();
        assert!(error.contains(ENROLLED_OVERLAY), "{error}");
    }

    #[test]
    fn relative_paths_resolve_in_the_state_dir_and_absolute_ones_stay() {
        let mut config = HubConfig {
            state_dir: PathBuf::from("/srv/hub"),
            ..HubConfig::default()
        };
        assert_eq!(config.key_path(), PathBuf::from("/srv/hub/hub.key"));
        config.chain.key_file = PathBuf::from("/etc/keys/hub.key");
        assert_eq!(config.key_path(), PathBuf::from("/etc/keys/hub.key"));
    }
}
