//! glyco-hub: the Glyco home hub daemon and its administration commands.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use glyco_contracts::keys::load_or_create_key;
use glyco_contracts::{Deployment, DeviceIdentity, DeviceKind, GlycoClient, UnixSeconds};
use glyco_gateway::config::{DEFAULT_CONFIG_TOML, HubConfig};
use glyco_gateway::device_admin::DeviceAdmin;
use glyco_gateway::seal::export::BatchSelector;
use glyco_gateway::{daemon, status};
use tokio_util::sync::CancellationToken;

const DEFAULT_CONFIG_PATH: &str = "/etc/glyco/hub.toml";

#[derive(Parser)]
#[command(
    name = "glyco-hub",
    version,
    about = "The Glyco home hub: BLE and MQTT health readings, admitted by the chain"
)]
struct Cli {
    /// Config file (TOML). If the default path does not exist, defaults apply.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum WebCommand {
    /// Set the patient's PIN (6 to 12 digits, read from stdin); stored as an
    /// argon2id hash, 0600. Sessions of the old PIN end at the next restart.
    SetPin,
    /// Make a new Nightscout API secret and read token (the old ones stop
    /// working at the next restart) and print them once.
    ApiSecret,
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// Acknowledge an alert by its id.
    Ack { id: String },
    /// Put a signed alert policy in force (kinds, severity, ladder,
    /// de-duplication). `--file` (JSON: kinds, min_severity, ladder as
    /// [[after_secs, ["patient", "physician:0x…"]], …], dedupe_secs) is
    /// signed here with `--key` (the patient's, or whoever acts for them);
    /// `--signed` hands over one a physician signed
    /// (`glyco-clinic physician sign-alert-policy`).
    Policy {
        #[arg(long, requires = "key", conflicts_with = "signed")]
        file: Option<PathBuf>,
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long)]
        signed: Option<PathBuf>,
    },
    /// Hold new alerts of a kind for a while (at most 24 h; 0 lifts it).
    /// Alerts already open go on; very_low_glucose is never snoozed.
    Snooze {
        #[arg(long)]
        kind: String,
        #[arg(long)]
        minutes: u32,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub until SIGTERM or SIGINT.
    Run,
    /// Print the default config, with comments.
    PrintConfig,
    /// Validate the config and exit.
    CheckConfig,
    /// Show the running hub's devices, last readings, refusals and chain sync.
    Status {
        /// Print the raw JSON report.
        #[arg(long)]
        json: bool,
    },
    /// The patient's alerts: open ones and the latest acknowledged; `ack`
    /// acknowledges one (its escalation stops).
    Alerts {
        #[command(subcommand)]
        command: Option<AlertsCommand>,
        /// Keep showing new alerts as they come (polls the hub each second).
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        json: bool,
    },
    /// Register or remove the patient's devices (on chain, with the hub's
    /// key: the patient must have delegated device registration to the hub).
    #[command(subcommand)]
    Device(DeviceCommand),
    /// The web app's credentials (docs/WEB.md).
    #[command(subcommand)]
    Web(WebCommand),
    /// Enrol this hub with a physician's enrolment code: a PNG picture of
    /// the QR code or a file holding its text (`-`: standard input). On the
    /// appliance the web app's first-boot page does the same.
    Enrol {
        /// The code's picture or text.
        code: PathBuf,
    },
    /// Make the hub's keys if missing and print who it is (hub, patient
    /// record, iroh node).
    Identity,
    /// Update bundles (docs/FLEET.md, "Updates").
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Print the hub's signed consent to serve the configured patient (JSON):
    /// the patient submits it on chain to authorise this hub.
    Consent {
        /// How long the consent stays valid, in hours.
        #[arg(long, default_value_t = 24)]
        valid_hours: u64,
    },
    /// Recover a journal whose file has a torn tail (the hub refuses to open
    /// it): the longest sound prefix is kept, the damaged file saved beside
    /// it. Run with the hub stopped.
    RepairJournal,
    /// Make the patient's offline emergency kit: the profile and the last
    /// hours' readings, encrypted, kept at the clinic replica; its key split
    /// among family members (t of n). Writes each share as text and as a QR
    /// code (PNG), mode 0600, into --out; making it again invalidates the
    /// old shares.
    EmergencyKit {
        /// Shares needed to open the kit.
        #[arg(long, default_value_t = 2)]
        threshold: u8,
        /// Family members who get a share.
        #[arg(long, default_value_t = 3)]
        shares: u8,
        /// Readings of the last this many hours go in.
        #[arg(long, default_value_t = 24)]
        hours: u32,
        /// The patient's emergency profile (a text file: diagnosis, insulin,
        /// allergies, whom to call).
        #[arg(long)]
        profile: PathBuf,
        /// Where the share files go (created 0700).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check one of the running hub's sealed batches from its bytes to the
    /// chain: blob hash, format, hub signature, inclusion proof, root on
    /// chain, hub authorised for the patient. Says which link broke.
    Verify {
        /// The hub's batch number.
        #[arg(long, conflicts_with_all = ["reading", "cid"])]
        batch: Option<u64>,
        /// The journal sequence number of a reading (its batch is checked).
        #[arg(long, conflicts_with = "cid")]
        reading: Option<u64>,
        /// The batch's CID (bafkr4…) or BLAKE3 hex.
        #[arg(long)]
        cid: Option<String>,
    },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Register a device to the patient; a named (MQTT) device also gets a
    /// secret, printed once.
    Add {
        #[command(flatten)]
        identity: IdentityArgs,
        #[arg(long, value_enum)]
        kind: KindArg,
    },
    /// Remove a device from the patient's registry (and its MQTT secret).
    Remove {
        #[command(flatten)]
        identity: IdentityArgs,
    },
    /// Release a device from quarantine: it is yours and fine (its readings
    /// alert again and are no longer marked).
    Release {
        #[command(flatten)]
        identity: IdentityArgs,
    },
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct IdentityArgs {
    /// A named device (its MQTT username).
    #[arg(long)]
    name: Option<String>,
    /// A bonded BLE device's identity address, AA:BB:CC:DD:EE:FF.
    #[arg(long)]
    ble: Option<String>,
}

impl IdentityArgs {
    fn identity(&self) -> Result<DeviceIdentity> {
        Ok(match (&self.name, &self.ble) {
            (Some(name), _) => DeviceIdentity::name(name)?,
            (None, Some(address)) => DeviceIdentity::ble(address)?,
            (None, None) => bail!("give --name or --ble"),
        })
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    Glucometer,
    Cgm,
    BloodPressure,
    HeartRate,
    Weight,
    Thermometer,
    PulseOximeter,
    Other,
}

impl From<KindArg> for DeviceKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Glucometer => DeviceKind::Glucometer,
            KindArg::Cgm => DeviceKind::Cgm,
            KindArg::BloodPressure => DeviceKind::BloodPressure,
            KindArg::HeartRate => DeviceKind::HeartRate,
            KindArg::Weight => DeviceKind::Weight,
            KindArg::Thermometer => DeviceKind::Thermometer,
            KindArg::PulseOximeter => DeviceKind::PulseOximeter,
            KindArg::Other => DeviceKind::Other,
        }
    }
}

fn load_config(path: Option<&Path>) -> Result<HubConfig> {
    match path {
        Some(path) => Ok(HubConfig::load(path)?),
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
            Ok(HubConfig::load(Path::new(DEFAULT_CONFIG_PATH))?)
        }
        None => {
            let config = HubConfig::default();
            config.validate()?;
            Ok(config)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,rumqttd=warn".into());
    // Under systemd: the journal, with each field its own journal field.
    if let Some(journal) = glyco_gateway::journald::JournalLayer::when_under_systemd() {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        tracing_subscriber::registry()
            .with(filter)
            .with(journal)
            .init();
        return;
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour only on a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[derive(Subcommand)]
enum UpdateCommand {
    /// Check a RAUC bundle as the hub would before installing it: its
    /// SHA-256 published on chain and not withdrawn, its signature, its
    /// compatibility and its version.
    Check { bundle: PathBuf },
    /// Install a bundle into the other slot (root): checked on a private
    /// copy as `check` does, then written by RAUC. `--requested` installs
    /// what the hub asked for (glyco-update.service).
    Install {
        #[arg(required_unless_present = "requested", conflicts_with = "requested")]
        bundle: Option<PathBuf>,
        #[arg(long)]
        requested: bool,
        /// Reboot into the new slot once installed.
        #[arg(long)]
        reboot: bool,
    },
    /// The health check after a boot (root; glyco-update-health.service):
    /// keeps an updated slot, or marks it bad and reboots into the old one.
    Health {
        /// Do not reboot after marking a slot bad.
        #[arg(long)]
        no_reboot: bool,
    },
    /// How the last update went, and what is pending.
    Status,
    /// Ask the running hub for the health check's test reading through its
    /// pipeline (decoded, checked, sealed and opened; not stored).
    SelfTest,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::PrintConfig => {
            print!("{DEFAULT_CONFIG_TOML}");
            Ok(())
        }
        Command::CheckConfig => {
            load_config(cli.config.as_deref())?.validate_for_hub()?;
            println!("config is valid");
            Ok(())
        }
        Command::Run => Box::pin(run(cli.config.as_deref())).await,
        Command::Enrol { code } => enrol(load_config(cli.config.as_deref())?, &code).await,
        Command::Update(command) => update(load_config(cli.config.as_deref())?, command).await,
        Command::Identity => {
            let id = glyco_gateway::enrolment::ensure_keys(&load_config(cli.config.as_deref())?)?;
            println!(
                "hub {:#x}\npatient {:#x}\nnode {}",
                id.hub, id.patient, id.node
            );
            Ok(())
        }
        Command::Status { json } => {
            let config = load_config(cli.config.as_deref())?;
            let report = status::query(&config.status_socket()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            Ok(())
        }
        Command::Alerts {
            command,
            follow,
            json,
        } => alerts(load_config(cli.config.as_deref())?, command, follow, json).await,
        Command::Device(DeviceCommand::Release { identity }) => {
            release(load_config(cli.config.as_deref())?, identity).await
        }
        Command::Device(command) => device(load_config(cli.config.as_deref())?, command).await,
        Command::Web(command) => web(load_config(cli.config.as_deref())?, command),
        Command::Consent { valid_hours } => {
            consent(load_config(cli.config.as_deref())?, valid_hours).await
        }
        Command::RepairJournal => {
            let config = load_config(cli.config.as_deref())?;
            if status::query(&config.status_socket()).await.is_ok() {
                bail!("the hub is running; stop it first");
            }
            let path = config.journal_path();
            let repaired = glyco_gateway::journal::repair::repair_torn_tail(&path)?;
            let (journal, _) = glyco_gateway::journal::open(&path, config.limits.journal())?;
            println!(
                "repaired {}: cut {} trailing bytes; {} readings kept; the damaged file is kept as {}",
                path.display(),
                repaired.cut_bytes,
                journal.last_journal_seq()?,
                repaired.kept_as.display()
            );
            Ok(())
        }
        Command::EmergencyKit {
            threshold,
            shares,
            hours,
            profile,
            out,
        } => {
            let config = load_config(cli.config.as_deref())?;
            let profile = std::fs::read_to_string(&profile)
                .with_context(|| format!("reading {}", profile.display()))?;
            let request = glyco_gateway::seal::emergency_kit::KitRequest {
                threshold,
                shares,
                hours,
                profile,
            };
            let made = status::query_kit(&config.status_socket(), request)
                .await?
                .map_err(|e| anyhow::anyhow!("the hub cannot make the kit: {e}"))?;
            write_shares(&out, &made)?;
            println!(
                "emergency kit {} (generation {}, {} readings) kept for the clinic replica; {} shares in {} ({} needed)",
                made.hash,
                made.generation,
                made.readings,
                made.shares.len(),
                out.display(),
                threshold
            );
            Ok(())
        }
        Command::Verify {
            batch,
            reading,
            cid,
        } => {
            let selector = match (batch, reading, cid) {
                (Some(no), None, None) => BatchSelector::Number(no),
                (None, Some(seq), None) => BatchSelector::Reading(seq),
                (None, None, Some(cid)) => BatchSelector::Hash(cid),
                _ => bail!("name one batch: --batch, --reading or --cid"),
            };
            verify(load_config(cli.config.as_deref())?, selector).await
        }
    }
}

/// Each share as `share-<i>.txt` and `share-<i>.png` (a QR code of the same
/// text), mode 0600 in a 0700 directory: they are the family's secrets.
fn write_shares(out: &Path, made: &glyco_gateway::seal::emergency_kit::KitMade) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o700))?;
    for (i, text) in made.shares.iter().enumerate() {
        let n = i + 1;
        let txt = out.join(format!("share-{n}.txt"));
        glyco_contracts::files::write_atomically(&txt, format!("{text}\n").as_bytes())?;
        let png = glyco_gateway::qr::png(text).context("drawing the QR code")?;
        glyco_contracts::files::write_atomically(&out.join(format!("share-{n}.png")), &png)?;
    }
    Ok(())
}

/// The hub's key and a client signing with it, for the patient the config names.
fn hub_client(config: &HubConfig) -> Result<(GlycoClient, glyco_contracts::Address, Deployment)> {
    let patient = config.validate_for_hub()?;
    let deployment = Deployment::load(&config.chain.deployment_file)?;
    let (key, _) = load_or_create_key(&config.key_path())?;
    let url = config.chain.rpc_url.parse().context("chain.rpc_url")?;
    Ok((
        GlycoClient::new(url, key, deployment.clone()),
        patient,
        deployment,
    ))
}

async fn verify(config: HubConfig, selector: BatchSelector) -> Result<()> {
    let export = status::query_batch(&config.status_socket(), selector)
        .await?
        .map_err(|e| anyhow::anyhow!("the hub cannot hand out that batch: {e}"))?;
    let Some(blob_hex) = &export.blob_hex else {
        bail!(
            "batch {} was pruned from this hub after replication (to node {}); verify it at the replica: glyco-clinic verify --cid {}",
            export.batch_no,
            export.replicated_to.as_deref().unwrap_or("?"),
            glyco_seal::BlobCid(
                glyco_seal::hexcode::unhex32(&export.record.hash).unwrap_or_default()
            ),
        );
    };
    let blob = hex::decode(blob_hex).context("the hub's answer holds no valid blob")?;
    let hash = glyco_seal::hexcode::unhex32(&export.record.hash)
        .context("the hub's record holds no valid hash")?;
    let deployment = Deployment::load(&config.chain.deployment_file)?;
    let chain = GlycoClient::read_only(
        config.chain.rpc_url.parse().context("chain.rpc_url")?,
        deployment,
    );
    let proof = export.anchor.as_ref().map(|a| &a.proof);
    match glyco_seal::verify::verify_batch(&blob, Some(&hash), proof, &chain).await {
        Ok(verified) => {
            print!("{}", glyco_seal::verify::render(&verified));
            if let Some(node) = &export.replicated_to {
                println!("replicated      to clinic node {node}");
            }
            Ok(())
        }
        Err(e) => bail!("batch {}: verification failed at {e}", export.batch_no),
    }
}

async fn consent(config: HubConfig, valid_hours: u64) -> Result<()> {
    if !(1..=24 * 30).contains(&valid_hours) {
        bail!("--valid-hours must be between 1 and 720");
    }
    let (client, patient, _) = hub_client(&config)?;
    let deadline = UnixSeconds::now().plus(std::time::Duration::from_secs(valid_hours * 3600));
    let consent = client.sign_hub_consent(patient, deadline).await?;
    println!("{}", serde_json::to_string_pretty(&consent)?);
    Ok(())
}

async fn enrol(config: HubConfig, code: &Path) -> Result<()> {
    if config.chain.patient.is_some() {
        bail!("this hub already serves a patient (chain.patient is set)");
    }
    let bytes = if code == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::io::stdin(), 512 * 1024),
            &mut bytes,
        )?;
        bytes
    } else {
        std::fs::read(code).with_context(|| format!("reading {}", code.display()))?
    };
    let invitation = glyco_gateway::enrolment::read_code(&bytes)?;
    let done = glyco_gateway::enrolment::enrol(&config, &invitation).await?;
    println!(
        "enrolled with physician {:#x}: patient {:#x}, hub {:#x} (offer {}, accepted {}, authorised {})",
        done.physician, done.patient, done.hub, done.offer_tx, done.accept_tx, done.authorise_tx
    );
    Ok(())
}

async fn run(config_path: Option<&Path>) -> Result<()> {
    let mut config = load_config(config_path)?;

    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        trigger.cancel();
    });
    if config.awaits_enrolment() {
        match glyco_gateway::enrolment::first_boot::wait(&config, shutdown.clone()).await? {
            Some(_) => config = load_config(config_path)?,
            None => return Ok(()),
        }
    }
    Box::pin(daemon::run(config, shutdown)).await?;
    Ok(())
}

async fn device(config: HubConfig, command: DeviceCommand) -> Result<()> {
    let (client, patient, deployment) = hub_client(&config)?;
    let admin = DeviceAdmin {
        client,
        patient,
        ids: daemon::load_device_id_key(&config, &deployment)?,
        credentials_path: config.credentials_path(),
    };
    match command {
        DeviceCommand::Add { identity, kind } => {
            let identity = identity.identity()?;
            let added = admin.add(&identity, kind.into()).await?;
            println!(
                "registered {identity} for patient {patient}: tx {} (gas {})",
                added.tx.hash, added.tx.gas_used
            );
            if let (DeviceIdentity::Name(name), Some(secret)) = (&identity, added.mqtt_secret) {
                println!("MQTT username: {name}\nMQTT password (shown once): {secret}");
            }
        }
        DeviceCommand::Release { identity } => return release(config, identity).await,
        DeviceCommand::Remove { identity } => {
            let identity = identity.identity()?;
            let tx = admin.remove(&identity).await?;
            println!("removed {identity}: tx {} (gas {})", tx.hash, tx.gas_used);
        }
    }
    Ok(())
}

fn web(config: HubConfig, command: WebCommand) -> Result<()> {
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating {}", config.state_dir.display()))?;
    match command {
        WebCommand::SetPin => {
            let mut pin = String::new();
            std::io::stdin().read_line(&mut pin)?;
            glyco_gateway::web::auth::set_pin(&config.web_pin_path(), pin.trim())?;
            println!("PIN set for the web app");
        }
        WebCommand::ApiSecret => {
            let secrets = glyco_gateway::web::nightscout::NightscoutSecrets::create(
                &config.nightscout_path(),
            )?;
            println!(
                "Nightscout API secret (shown once): {}\nread token: {}\n(restart the hub to use them)",
                secrets.secret, secrets.token
            );
        }
    }
    Ok(())
}

fn alert_line(alert: &glyco_gateway::alerts::engine::AlertRecord) -> String {
    let reached: Vec<String> = alert
        .targets
        .iter()
        .map(|t| match (t.delivered_at_ms, &t.last_error) {
            (Some(_), _) => format!("{} (told)", t.target),
            (None, Some(e)) => format!("{} (not yet: {e})", t.target),
            (None, None) => format!("{} (pending)", t.target),
        })
        .collect();
    let state = match &alert.acked {
        Some(acked) => format!("acknowledged by {}", acked.by),
        None => format!("open, step {}", alert.step),
    };
    format!(
        "{} [{}] {} on {}: {} ({state}; {}{})",
        alert.id,
        alert.severity,
        alert.kind,
        alert.device,
        alert.explanation,
        reached.join(", "),
        if alert.repeats > 0 {
            format!("; repeated {} times", alert.repeats)
        } else {
            String::new()
        }
    )
}

async fn alerts(
    config: HubConfig,
    command: Option<AlertsCommand>,
    follow: bool,
    json: bool,
) -> Result<()> {
    let socket = config.status_socket();
    match command {
        Some(AlertsCommand::Ack { id }) => {
            match status::query_alert_ack(&socket, id).await? {
                Ok(record) => println!("alert {} acknowledged; its escalation stopped", record.id),
                Err(e) => bail!("not acknowledged: {e}"),
            }
            return Ok(());
        }
        Some(AlertsCommand::Policy { file, key, signed }) => {
            let signed = match (file, key, signed) {
                (Some(file), Some(key), None) => {
                    let wanted: glyco_seal::alerts::PolicyFile =
                        serde_json::from_slice(&std::fs::read(&file)?)
                            .with_context(|| format!("reading {}", file.display()))?;
                    let report = status::query(&socket).await?;
                    let patient = report.patient.context("the hub serves no patient")?;
                    let version = report.alerts.policy.map_or(0, |(v, _)| v) + 1;
                    let doc = wanted.into_doc(patient, report.hub, version);
                    glyco_seal::alerts::Signed::sign(doc, &glyco_contracts::keys::load_key(&key)?)?
                }
                (None, None, Some(signed)) => serde_json::from_slice(&std::fs::read(&signed)?)
                    .with_context(|| format!("reading {}", signed.display()))?,
                _ => bail!("give --file with --key, or --signed"),
            };
            match status::query_alert_policy(&socket, signed).await? {
                Ok(version) => println!("alert policy version {version} in force"),
                Err(e) => bail!("policy refused: {e}"),
            }
            return Ok(());
        }
        Some(AlertsCommand::Snooze { kind, minutes }) => {
            match status::query_alert_snooze(&socket, kind.clone(), minutes).await? {
                Ok(Some(until)) => {
                    println!("new {kind} alerts snoozed for {minutes} min (until {until} ms)")
                }
                Ok(None) => println!("{kind} alerts are no longer snoozed"),
                Err(e) => bail!("not snoozed: {e}"),
            }
            return Ok(());
        }
        None => {}
    }
    let mut shown = std::collections::HashSet::new();
    loop {
        let report = status::query(&socket).await?;
        let alerts = report.alerts;
        if !follow {
            if json {
                println!("{}", serde_json::to_string_pretty(&alerts)?);
                return Ok(());
            }
            if !alerts.enabled {
                println!("alerts are off ([alerts] enabled = false, or the analysis is off)");
            }
            println!("OPEN ({})", alerts.open.len());
            for alert in &alerts.open {
                println!("  {}", alert_line(alert));
            }
            println!("RECENTLY ACKNOWLEDGED ({})", alerts.recent.len());
            for alert in alerts.recent.iter().rev() {
                println!("  {}", alert_line(alert));
            }
            return Ok(());
        }
        for alert in &alerts.open {
            if shown.insert(alert.id.clone()) {
                if json {
                    println!("{}", serde_json::to_string(alert)?);
                } else {
                    println!("{}", alert_line(alert));
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// `glyco-hub device release`: over the status socket, no chain needed.
async fn release(config: HubConfig, identity: IdentityArgs) -> Result<()> {
    let device = identity.identity()?.to_string();
    match status::query_release(&config.status_socket(), device).await? {
        Ok(entry) => {
            println!(
                "{} released from quarantine (its readings from journal #{} to #{} stay marked)",
                entry.device,
                entry.from_journal_seq,
                entry.until_journal_seq.unwrap_or(entry.from_journal_seq)
            );
            Ok(())
        }
        Err(e) => bail!("not released: {e}"),
    }
}

async fn update(config: HubConfig, command: UpdateCommand) -> Result<()> {
    use glyco_gateway::update::{health, install, record};
    let chain = || -> Result<GlycoClient> {
        Ok(GlycoClient::read_only(
            config.chain.rpc_url.parse().context("chain.rpc_url")?,
            Deployment::load(&config.chain.deployment_file)?,
        ))
    };
    match command {
        UpdateCommand::Check { bundle } => update_check(&config, &chain()?, &bundle).await,
        UpdateCommand::Install {
            bundle,
            requested,
            reboot,
        } => {
            let pending = match bundle {
                Some(bundle) => {
                    Some(install::install(&bundle, None, &config.update, &chain()?).await?)
                }
                None if requested => {
                    install::install_requested(&config.state_dir, &config.update, &chain()?).await?
                }
                None => None,
            };
            let Some(pending) = pending else {
                println!("no install was asked for");
                return Ok(());
            };
            println!(
                "installed {} ({}) into slot {}, which boots next",
                pending.version, pending.sha256, pending.to_slot
            );
            if reboot {
                reboot_now()?;
            }
            Ok(())
        }
        UpdateCommand::Health { no_reboot } => {
            let check = health::HealthCheck {
                state_dir: config.state_dir.clone(),
                config: config.update.clone(),
                status_socket: config.status_socket(),
                hub_unit: "glyco-hub.service".into(),
            };
            match check.run().await? {
                health::Verdict::NoSlots => println!("no A/B slots here: nothing to check"),
                health::Verdict::Good { slot } => println!("slot {slot} marked good"),
                health::Verdict::Kept(p) => {
                    println!(
                        "update {} kept: slot {} passed its health check",
                        p.version, p.to_slot
                    )
                }
                health::Verdict::RolledBack {
                    pending,
                    why,
                    reboot,
                } => {
                    eprintln!(
                        "update {} rolled back ({why}); slot {} is marked bad",
                        pending.version, pending.to_slot
                    );
                    if reboot && !no_reboot {
                        reboot_now()?;
                    }
                }
            }
            Ok(())
        }
        UpdateCommand::SelfTest => {
            let report = status::query_self_test(&config.status_socket()).await?;
            for step in &report.steps {
                match &step.failed {
                    None => println!("{}: passed", step.step),
                    Some(why) => println!("{}: FAILED: {why}", step.step),
                }
            }
            if !report.passed() {
                bail!("the test reading did not go through the pipeline");
            }
            Ok(())
        }
        UpdateCommand::Status => {
            let status = serde_json::json!({
                "booted_slot": record::booted_slot(),
                "last": record::load_outcome(&config.state_dir),
                "pending": record::load_pending(&config.update.install_dir).ok().flatten(),
            });
            println!("{}", serde_json::to_string_pretty(&status)?);
            Ok(())
        }
    }
}

/// Reboots through systemd (the slot RAUC or the health check chose).
fn reboot_now() -> Result<()> {
    let status = std::process::Command::new("systemctl")
        .arg("reboot")
        .status()
        .context("systemctl reboot")?;
    if !status.success() {
        bail!("systemctl reboot failed: {status}");
    }
    Ok(())
}

async fn update_check(
    config: &HubConfig,
    chain: &GlycoClient,
    bundle: &std::path::Path,
) -> Result<()> {
    let work = config.state_dir.join("update");
    let checked = glyco_gateway::update::check(bundle, &work, &config.update, chain).await?;
    println!(
        "bundle {} ({} bytes): {} {}, published on chain (release {}, by {:#x}), signature checks against {}",
        checked.sha256,
        checked.bytes,
        checked.compatible,
        checked.version,
        checked.release.seq,
        checked.release.publisher,
        config.update.keyring.display()
    );
    Ok(())
}
