//! `glyco-clinic physician …`: the physician's key, grants, reading through
//! the proxies, and emergency access.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use glyco_clinic::fhir;
use glyco_clinic::physician::{ProxyPeer, Reader, sources};
use glyco_clinic::replica::{HubPeer, bind};
use glyco_clinic::store::ReplicaStore;
use glyco_clinic::summary::glucose_summary;
use glyco_contracts::keys::load_key;
use glyco_contracts::{Address, Deployment, GlycoClient};
use glyco_seal::PhysicianKey;
use glyco_seal::hexcode::hex;

use crate::{Chain, node_key};

#[derive(Subcommand)]
pub enum PhysicianCommand {
    /// Make the physician's umbral key pair in --dir (seed 0600) and print
    /// the public key and the machine's iroh node id.
    Init {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Publish the umbral public key on chain (Roles.setPhysicianPreKey).
    PublishKey {
        #[arg(long)]
        dir: PathBuf,
        /// The physician's Ethereum key file.
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        chain: Chain,
    },
    /// The grants made to me, live or not.
    Grants {
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        chain: Chain,
    },
    /// List a patient's anchored batches (from the hub or a replica):
    /// number, time window, readings, kinds, CID and anchored root.
    Batches {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        patient: Address,
        #[arg(long, conflicts_with = "replica")]
        hub: Option<HubPeer>,
        #[arg(long)]
        replica: Option<PathBuf>,
    },
    /// Read a patient's readings through the proxies.
    Read {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        key: PathBuf,
        /// The patient's record address.
        #[arg(long)]
        patient: Address,
        /// Fetch the batches from the patient's hub: <iroh node id>@<ip:port>
        /// (this machine's node must be enrolled for the physician's entity).
        #[arg(long, conflicts_with = "replica")]
        hub: Option<HubPeer>,
        /// Or read them from a clinic replica's directory.
        #[arg(long)]
        replica: Option<PathBuf>,
        /// A proxy: <ethereum address>@<ip:port> (repeatable; asked in order).
        #[arg(long = "proxy", required = true)]
        proxies: Vec<ProxyPeer>,
        /// Fragments needed per batch (the grant's M of N).
        #[arg(long, default_value_t = 1)]
        threshold: usize,
        /// Only batches with readings in the last this many hours.
        #[arg(long)]
        since_hours: Option<u64>,
        /// Write the readings as a FHIR R4 Bundle here.
        #[arg(long)]
        fhir: Option<PathBuf>,
        /// Rows of the readings table printed (the newest).
        #[arg(long, default_value_t = 20)]
        rows: usize,
        #[command(flatten)]
        chain: Chain,
    },
    /// Show my alerts from a clinic alert inbox, each once across runs;
    /// with --follow, stay and show new ones as they arrive.
    Alerts {
        #[arg(long)]
        dir: PathBuf,
        /// The physician's Ethereum key file (signs the request).
        #[arg(long)]
        key: PathBuf,
        /// The inbox: <iroh node id>@<ip:port>.
        #[arg(long)]
        inbox: HubPeer,
        #[arg(long)]
        follow: bool,
        /// One JSON object per line (with `shown_at_ms`).
        #[arg(long)]
        json: bool,
    },
    /// Sign an alert policy for a patient's hub (the patient hands it to
    /// the hub: `glyco-hub alerts policy --signed`). The hub takes it only
    /// from a physician with a live grant from the patient, and only with
    /// a version above the one in force.
    SignAlertPolicy {
        /// JSON: kinds, min_severity, ladder, dedupe_secs.
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        patient: Address,
        #[arg(long)]
        hub: Address,
        #[arg(long)]
        version: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Acknowledge an alert (stops its escalation at the hub).
    Ack {
        /// The alert id as shown.
        id: String,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        inbox: HubPeer,
    },
    /// Enrol a new hub: write a one-time QR code (PNG, and on the terminal)
    /// with this physician's address, the chain, its contracts, the proxies
    /// and the enrolment node, then serve that node until a hub has used the
    /// code (the patient role is offered on chain) or it expired.
    Enrol(crate::enrol_cmd::EnrolArgs),
    /// Sign the dashboard's sign-in message (read from stdin, or --file)
    /// when the browser has no Ethereum wallet; paste what it prints.
    SignIn {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Open emergency access to a patient under their emergency policy (an
    /// active physician of an emergency service only).
    EmergencyAccess {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        patient: Address,
        #[command(flatten)]
        chain: Chain,
    },
}

fn client(key: &Path, chain: &Chain) -> Result<GlycoClient> {
    Ok(GlycoClient::new(
        chain.rpc.parse().context("--rpc")?,
        load_key(key)?,
        Deployment::load(&chain.deployment)?,
    ))
}

pub fn umbral_key(dir: &Path) -> Result<PhysicianKey> {
    std::fs::create_dir_all(dir)?;
    Ok(PhysicianKey::load_or_create(&dir.join("physician.umbral"))?.0)
}

pub async fn run(command: PhysicianCommand) -> Result<()> {
    match command {
        PhysicianCommand::Init { dir } => {
            let key = umbral_key(&dir)?;
            println!("umbral public key {}", hex(&key.public_bytes()));
            println!("iroh node {}", node_key(&dir)?.public());
        }
        PhysicianCommand::PublishKey { dir, key, chain } => {
            let umbral = umbral_key(&dir)?;
            let tx = client(&key, &chain)?
                .set_physician_pre_key(&umbral.public_bytes())
                .await?;
            println!("published umbral key (tx {}, block {})", tx.hash, tx.block);
        }
        PhysicianCommand::Grants { key, chain } => {
            let client = client(&key, &chain)?;
            let me = load_key(&key)?.address();
            for g in client.grants_of_grantee(me).await? {
                let live = client.is_grant_live(g.id).await?;
                println!(
                    "grant {} from patient {}: {}{} kinds {:?} expiry {:?}",
                    g.id,
                    g.patient,
                    if live { "live" } else { "ended" },
                    if g.emergency { " (emergency)" } else { "" },
                    g.scope.kinds,
                    g.expiry
                );
            }
        }
        PhysicianCommand::Batches {
            dir,
            patient,
            hub,
            replica,
        } => {
            let endpoint = bind(node_key(&dir)?, "127.0.0.1:0".parse()?).await?;
            let batches = source_batches(&endpoint, hub, replica, patient).await;
            endpoint.close().await;
            println!(
                "{:>6} {:<25} {:<25} {:>5} {:<62} root",
                "batch", "from (UTC)", "to (UTC)", "n", "cid"
            );
            for b in batches? {
                let Ok(sealed) = glyco_seal::SealedBatch::from_bytes(&b.blob) else {
                    println!("{:>6} (does not decode)", b.batch_no);
                    continue;
                };
                let h = &sealed.header;
                if h.patient != patient {
                    continue;
                }
                println!(
                    "{:>6} {:<25} {:<25} {:>5} {:<62} {}",
                    h.batch_no,
                    fhir::iso8601(h.window_start_ms),
                    fhir::iso8601(h.window_end_ms),
                    h.count,
                    glyco_seal::BlobCid(*blake3::hash(&b.blob).as_bytes()).to_string(),
                    b.root
                );
            }
        }
        PhysicianCommand::Alerts {
            dir,
            key,
            inbox,
            follow,
            json,
        } => crate::alerts_cmd::alerts(&dir, &key, &inbox, follow, json).await?,
        PhysicianCommand::SignAlertPolicy {
            file,
            key,
            patient,
            hub,
            version,
            out,
        } => crate::alerts_cmd::sign_policy(&file, &key, patient, hub, version, &out)?,
        PhysicianCommand::Ack {
            id,
            dir,
            key,
            inbox,
        } => crate::alerts_cmd::ack(&dir, &key, &inbox, &id).await?,
        PhysicianCommand::Enrol(args) => Box::pin(crate::enrol_cmd::run(args)).await?,
        PhysicianCommand::SignIn { key, file } => {
            crate::dashboard_cmd::sign_in(&key, file.as_deref())?
        }
        PhysicianCommand::EmergencyAccess {
            key,
            patient,
            chain,
        } => {
            let (tx, grant) = client(&key, &chain)?.emergency_access(patient).await?;
            println!(
                "emergency grant {grant} opened (tx {}, block {})",
                tx.hash, tx.block
            );
        }
        PhysicianCommand::Read {
            dir,
            key,
            patient,
            hub,
            replica,
            proxies,
            threshold,
            since_hours,
            fhir: fhir_path,
            rows,
            chain,
        } => {
            let umbral = umbral_key(&dir)?;
            let client = client(&key, &chain)?;
            let endpoint = bind(node_key(&dir)?, "127.0.0.1:0".parse()?).await?;
            let mut batches = source_batches(&endpoint, hub, replica, patient).await?;
            if let Some(hours) = since_hours {
                let from = now_ms() - (hours as i64) * 3_600_000;
                batches.retain(|b| {
                    glyco_seal::SealedBatch::from_bytes(&b.blob)
                        .is_ok_and(|s| s.header.window_end_ms >= from)
                });
            }
            if batches.is_empty() {
                bail!("no anchored batches of patient {patient} to read");
            }
            let reader = Reader {
                endpoint: &endpoint,
                chain: &client,
                key: &umbral,
                proxies: &proxies,
                threshold,
            };
            let opened = reader.open(patient, batches).await;
            endpoint.close().await;
            let opened = opened?;
            println!(
                "opened {} batches: {} readings, {} findings",
                opened.batches,
                opened.readings.len(),
                opened.findings.len()
            );
            for (proxy, roots, seq) in &opened.accesses {
                println!(
                    "access #{seq} in the patient's on-chain log: proxy {proxy}, data {roots}"
                );
            }
            println!("{:<25} {:<24} value", "time (UTC)", "device");
            let skip = opened.readings.len().saturating_sub(rows);
            for r in &opened.readings[skip..] {
                println!(
                    "{:<25} {:<24} {}",
                    fhir::iso8601(r.measured_at()),
                    r.device.to_string(),
                    r.measurement.display_value()
                );
            }
            if let Some(summary) = glucose_summary(&opened.readings) {
                println!("{summary}");
            }
            if let Some(path) = fhir_path {
                let bundle = fhir::bundle(patient, &opened.readings);
                std::fs::write(&path, serde_json::to_vec_pretty(&bundle)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("FHIR R4 bundle written to {}", path.display());
            }
        }
    }
    Ok(())
}

/// The patient's anchored batches from the hub (over iroh) or a replica's
/// directory, whichever the command names.
async fn source_batches(
    endpoint: &iroh::Endpoint,
    hub: Option<HubPeer>,
    replica: Option<PathBuf>,
    patient: Address,
) -> Result<Vec<glyco_clinic::physician::SourceBatch>> {
    Ok(match (hub, replica) {
        (Some(hub), None) => sources::from_hub(endpoint, &hub).await?,
        (None, Some(dir)) => sources::from_replica(&ReplicaStore::open(&dir)?, patient)?,
        _ => bail!("name where the batches are: --hub or --replica"),
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
