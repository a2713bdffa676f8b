//! `glyco-clinic`: the clinic's side of Glyco: the replica that keeps every
//! hub's sealed batches, the hospital's re-encryption proxy, the physician's
//! reader and dashboard, the family's emergency kit, enrolling iroh nodes on chain, and
//! verifying a batch from its bytes to the chain.

mod alerts_cmd;
mod dashboard_cmd;
mod emergency_cmd;
mod enrol_cmd;
mod fleet_cmd;
mod inbox_cmd;
mod physician_cmd;
mod proxy_cmd;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use glyco_clinic::replica::{HubPeer, Replica, bind, load_or_create_node_key};
use glyco_clinic::store::ReplicaStore;
use glyco_contracts::keys::load_key;
use glyco_contracts::{Address, B256, Deployment, GlycoClient};
use glyco_seal::hexcode::unhex32;
use glyco_seal::verify::verify_batch;
use glyco_seal::{BlobCid, InclusionProof};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "glyco-clinic",
    version,
    about = "Glyco's clinic side: replica, proxy, physician, emergency kit, verification"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
pub struct Chain {
    /// The chain's JSON-RPC URL.
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    pub rpc: String,
    /// The deployment file (contract addresses).
    #[arg(long)]
    pub deployment: PathBuf,
}

impl Chain {
    fn read_only(&self) -> Result<GlycoClient> {
        let deployment = Deployment::load(&self.deployment)?;
        Ok(GlycoClient::read_only(
            self.rpc.parse().context("--rpc")?,
            deployment,
        ))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Follow hubs: fetch, check, keep and confirm every new sealed batch.
    Replica {
        /// The replica's directory (its node key, blobs and index).
        #[arg(long)]
        dir: PathBuf,
        /// Where the replica's iroh endpoint binds.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// A hub to follow, as <iroh node id>@<ip:port> (repeatable).
        #[arg(long = "hub", required = true)]
        hubs: Vec<HubPeer>,
        /// How often each hub is asked for new batches, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        poll_ms: u64,
    },
    /// Run a hospital's re-encryption proxy: keep the kfrags hubs deliver,
    /// re-encrypt for physicians what the chain allows, log every access.
    Proxy {
        /// The proxy's directory (its iroh node key and kept kfrags).
        #[arg(long)]
        dir: PathBuf,
        /// The proxy's Ethereum key file (enrolled as a proxy on chain).
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// The most grants whose kfrags are kept.
        #[arg(long, default_value_t = 100_000)]
        max_kfrags: usize,
        /// Requests worked on at once (more are answered "busy").
        #[arg(long, default_value_t = 64)]
        max_in_flight: usize,
        /// How often kept kfrags are checked against the chain.
        #[arg(long, default_value_t = 10)]
        sweep_secs: u64,
        #[command(flatten)]
        chain: Chain,
    },
    /// Run a clinic's alert inbox: hubs deliver their patients' alerts for
    /// the clinic's physicians (who hold a live grant), physicians follow
    /// and acknowledge, hubs poll the acknowledgements.
    AlertInbox {
        /// The inbox's directory (its iroh node key and kept alerts). Enrol
        /// its node for the clinic with `enrol-node --dir` so hubs use it.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Physicians following at once.
        #[arg(long, default_value_t = 1000)]
        max_followers: usize,
        /// Deliveries and polls worked on at once (more are answered "busy").
        #[arg(long, default_value_t = 64)]
        max_in_flight: usize,
        /// For an emergency service: the file naming its duty physicians,
        /// one address per line, read again at every request. Hubs whose
        /// alerts climb to the emergency step ask it who to tell.
        #[arg(long)]
        duty_roster: Option<PathBuf>,
        #[command(flatten)]
        fleet: inbox_cmd::FleetArgs,
        #[command(flatten)]
        chain: Chain,
    },
    /// The clinic's fleet of hubs: which are silent, outdated, lagging or
    /// misbehaving (from the clinic node's `--http`), and proposing a
    /// physician's signed alert policy to a hub.
    Fleet {
        #[command(subcommand)]
        command: fleet_cmd::FleetCommand,
    },
    /// The physician's dashboard in a browser (sign in with the
    /// physician's Ethereum key): patients, alerts, reports, access log.
    Dashboard(dashboard_cmd::DashboardArgs),
    /// The physician's commands.
    Physician {
        #[command(subcommand)]
        command: physician_cmd::PhysicianCommand,
    },
    /// Open a patient's offline emergency kit with family members' shares.
    EmergencyOpen {
        /// The kit file (the clinic replica keeps it as
        /// hubs/<hub address>/emergency.kit).
        #[arg(long)]
        kit: PathBuf,
        /// A share as printed (GLYCO-SHARE-1:…), or a file holding one
        /// (repeatable).
        #[arg(long = "share", required = true)]
        shares: Vec<String>,
        /// The chain's JSON-RPC URL.
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        rpc: String,
        /// With the deployment file: check on chain that the kit's signer
        /// is the patient's hub (a physician offline can skip it).
        #[arg(long)]
        deployment: Option<PathBuf>,
    },
    /// Print the replica's iroh node id (created on first use).
    NodeId {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Enrol the replica's iroh node on chain for a medical entity (signed
    /// with the entity's key), so hubs serve it.
    EnrolNode {
        #[arg(long)]
        dir: PathBuf,
        /// The medical entity's Ethereum key file.
        #[arg(long)]
        entity_key: PathBuf,
        #[command(flatten)]
        chain: Chain,
    },
    /// Check a batch the replica keeps: blob hash, format, hub signature,
    /// inclusion proof, root on chain, hub authorised for the patient.
    Verify {
        #[arg(long)]
        dir: PathBuf,
        /// The batch's CID (bafkr4…) or BLAKE3 hex.
        #[arg(long, conflicts_with_all = ["batch", "reading"])]
        cid: Option<String>,
        /// The hub (Ethereum address) whose batch or reading is meant.
        #[arg(long)]
        hub: Option<Address>,
        /// The hub's batch number.
        #[arg(long, requires = "hub")]
        batch: Option<u64>,
        /// The hub journal's sequence number of a reading.
        #[arg(long, requires = "hub", conflicts_with = "batch")]
        reading: Option<u64>,
        #[command(flatten)]
        chain: Chain,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,iroh=warn,iroh_blobs=warn,noq=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Replica {
            dir,
            listen,
            hubs,
            poll_ms,
        } => replica(dir, listen, hubs, poll_ms).await,
        Command::Proxy {
            dir,
            key,
            listen,
            max_kfrags,
            max_in_flight,
            sweep_secs,
            chain,
        } => {
            if !(1..=86_400).contains(&sweep_secs) || max_in_flight == 0 {
                bail!("--sweep-secs must be 1..86400 and --max-in-flight at least 1");
            }
            proxy_cmd::run(proxy_cmd::ProxyArgs {
                dir: &dir,
                key: &key,
                listen,
                chain: &chain,
                max_kfrags,
                max_in_flight,
                sweep_secs,
            })
            .await
        }
        Command::Physician { command } => physician_cmd::run(command).await,
        Command::Dashboard(args) => dashboard_cmd::run(args).await,
        Command::EmergencyOpen {
            kit,
            shares,
            rpc,
            deployment,
        } => {
            let chain = deployment.map(|deployment| Chain { rpc, deployment });
            emergency_cmd::open(&kit, &shares, chain.as_ref()).await
        }
        Command::NodeId { dir } => {
            println!("{}", node_key(&dir)?.public());
            Ok(())
        }
        Command::AlertInbox {
            dir,
            listen,
            max_followers,
            max_in_flight,
            duty_roster,
            fleet,
            chain,
        } => {
            inbox_cmd::run(
                &dir,
                listen,
                &chain,
                (max_followers, max_in_flight),
                duty_roster.as_deref(),
                &fleet,
            )
            .await
        }
        Command::Fleet { command } => fleet_cmd::run(command).await,
        Command::EnrolNode {
            dir,
            entity_key,
            chain,
        } => {
            let store = ReplicaStore::open(&dir)?;
            let node = load_or_create_node_key(&store)?.public();
            let deployment = Deployment::load(&chain.deployment)?;
            let client = GlycoClient::new(
                chain.rpc.parse().context("--rpc")?,
                load_key(&entity_key)?,
                deployment,
            );
            let tx = client.enrol_node(B256::from(*node.as_bytes())).await?;
            println!("enrolled node {node} (tx {}, block {})", tx.hash, tx.block);
            Ok(())
        }
        Command::Verify {
            dir,
            cid,
            hub,
            batch,
            reading,
            chain,
        } => verify(dir, cid, hub, batch, reading, chain).await,
    }
}

async fn replica(dir: PathBuf, listen: SocketAddr, hubs: Vec<HubPeer>, poll_ms: u64) -> Result<()> {
    if !(50..=3_600_000).contains(&poll_ms) {
        bail!("--poll-ms must be between 50 and 3600000");
    }
    let store = ReplicaStore::open(&dir)?;
    let key = load_or_create_node_key(&store)?;
    let endpoint = bind(key, listen).await?;
    let bound = endpoint.bound_sockets();
    // One line on stdout that scripts and tests read.
    println!(
        "replica node {} listening on {}",
        endpoint.id(),
        bound.first().map(ToString::to_string).unwrap_or_default()
    );
    let replica = Replica {
        endpoint: endpoint.clone(),
        store,
        hubs,
        poll: Duration::from_millis(poll_ms),
    };
    let shutdown = CancellationToken::new();
    shutdown_on_signal(shutdown.clone());
    replica.run(shutdown).await;
    endpoint.close().await;
    Ok(())
}

async fn verify(
    dir: PathBuf,
    cid: Option<String>,
    hub: Option<Address>,
    batch: Option<u64>,
    reading: Option<u64>,
    chain: Chain,
) -> Result<()> {
    let store = ReplicaStore::open(&dir)?;
    let hash = match (cid, hub, batch, reading) {
        (Some(cid), ..) => match unhex32(&cid) {
            Some(hash) => hash,
            None => cid.parse::<BlobCid>()?.hash(),
        },
        (None, Some(hub), Some(batch), None) => store
            .batch_hash(hub, batch)?
            .with_context(|| format!("the replica has no batch {batch} of hub {hub}"))?,
        (None, Some(hub), None, Some(seq)) => find_reading(&store, hub, seq)?,
        _ => bail!("name a batch: --cid, or --hub with --batch or --reading"),
    };
    let blob = store.blob(&hash)?;
    let meta = store.meta(&hash)?;
    let proof: Option<InclusionProof> = meta.and_then(|m| m.anchor).map(|a| a.proof);
    let client = chain.read_only()?;
    match verify_batch(&blob, Some(&hash), proof.as_ref(), &client).await {
        Ok(v) => {
            print!("{}", glyco_seal::verify::render(&v));
            Ok(())
        }
        Err(e) => bail!("verification failed at {e}"),
    }
}

/// The batch holding a hub's reading (by journal sequence number).
fn find_reading(store: &ReplicaStore, hub: Address, seq: u64) -> Result<glyco_seal::BlobHash> {
    let cursor = store.cursor(hub)?;
    let (mut low, mut high) = (1u64, cursor.stored_through);
    // Batches cover consecutive journal ranges in order: binary search.
    while low <= high {
        let mid = low + (high - low) / 2;
        let hash = store
            .batch_hash(hub, mid)?
            .with_context(|| format!("batch {mid} of hub {hub} is missing from the replica"))?;
        let meta = store
            .meta(&hash)?
            .with_context(|| format!("batch {mid}'s metadata is missing"))?;
        if seq < meta.first_journal_seq {
            high = mid - 1;
        } else if seq > meta.last_journal_seq {
            low = mid + 1;
        } else {
            return Ok(hash);
        }
    }
    bail!("no batch of hub {hub} in the replica holds reading {seq}")
}

/// Cancels `token` on SIGTERM or Ctrl-C.
pub fn shutdown_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::error!(error = %e, "no SIGTERM handler; stop with Ctrl-C");
                    let _ = tokio::signal::ctrl_c().await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        token.cancel();
    });
}

/// The iroh node key in `dir` (`node.key`, 0600), made on first use.
pub fn node_key(dir: &std::path::Path) -> Result<iroh::SecretKey> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (secret, _) = glyco_contracts::keys::load_or_create_secret(&dir.join("node.key"))?;
    Ok(iroh::SecretKey::from_bytes(&secret.0))
}
