//! `glyco-clinic dashboard`: the physician's dashboard in a browser, and
//! `glyco-clinic physician sign-in`: signing its sign-in message without a
//! browser wallet.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use glyco_clinic::dashboard::{self, BatchSource, Dashboard};
use glyco_clinic::physician::ProxyPeer;
use glyco_clinic::replica::{HubPeer, bind};
use glyco_contracts::keys::{load_key, sign_personal_message};
use glyco_contracts::{Deployment, GlycoClient};
use glyco_seal::reading::GlucoseUnit;
use tokio_util::sync::CancellationToken;

use crate::{Chain, node_key, shutdown_on_signal};

#[derive(clap::Args)]
pub struct DashboardArgs {
    /// The physician's directory (umbral key, iroh node key), as for
    /// `physician read`; acknowledgements made here are kept in it.
    #[arg(long)]
    dir: PathBuf,
    /// The physician's Ethereum key file: only a sign-in signed by this
    /// account is taken, and it signs access requests and acknowledgements.
    #[arg(long)]
    key: PathBuf,
    /// Where the pages are served (the clinic's network; loopback by default).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// The clinic's alert inbox: <iroh node id>@<ip:port>.
    #[arg(long)]
    inbox: Option<HubPeer>,
    /// Read batches from a clinic replica's directory...
    #[arg(long, conflicts_with = "hub")]
    replica: Option<PathBuf>,
    /// ...or from the patient's hub: <iroh node id>@<ip:port>.
    #[arg(long)]
    hub: Option<HubPeer>,
    /// A proxy: <ethereum address>@<ip:port> (repeatable; asked in order).
    #[arg(long = "proxy", required = true)]
    proxies: Vec<ProxyPeer>,
    /// Fragments needed per batch (the grant's M of N).
    #[arg(long, default_value_t = 1)]
    threshold: usize,
    /// The time zone reports are drawn in (IANA name; the system's if unset).
    #[arg(long)]
    time_zone: Option<String>,
    /// mg/dL or mmol/L.
    #[arg(long, default_value = "mg/dL", value_parser = parse_unit)]
    unit: GlucoseUnit,
    /// The clinic node's HTTP address (its `--http`), for the Fleet page.
    #[arg(long)]
    fleet: Option<String>,
    /// The file holding that node's bearer token.
    #[arg(long, requires = "fleet")]
    fleet_token_file: Option<PathBuf>,
    /// Serve peers outside the local network too.
    #[arg(long)]
    any_network: bool,
    #[command(flatten)]
    chain: Chain,
}

fn parse_unit(text: &str) -> Result<GlucoseUnit, String> {
    match text {
        "mg/dL" | "mgdl" => Ok(GlucoseUnit::MgPerDl),
        "mmol/L" | "mmol" => Ok(GlucoseUnit::MmolPerL),
        _ => Err("mg/dL or mmol/L".into()),
    }
}

pub async fn run(args: DashboardArgs) -> Result<()> {
    // Everything is checked before anything is bound.
    if args.threshold == 0 || args.threshold > args.proxies.len() {
        bail!("--threshold must be between 1 and the number of --proxy");
    }
    let source = match (&args.replica, &args.hub) {
        (Some(dir), None) => BatchSource::Replica(dir.clone()),
        (None, Some(hub)) => BatchSource::Hub(hub.clone()),
        _ => bail!("name where the batches are: --replica or --hub"),
    };
    let time_zone = match &args.time_zone {
        Some(name) => {
            jiff::tz::TimeZone::get(name).with_context(|| format!("--time-zone {name}"))?
        }
        None => jiff::tz::TimeZone::system(),
    };
    let signer = load_key(&args.key)?;
    let physician = signer.address();
    let umbral = crate::physician_cmd::umbral_key(&args.dir)?;
    let chain = GlycoClient::new(
        args.chain.rpc.parse().context("--rpc")?,
        signer.clone(),
        Deployment::load(&args.chain.deployment)?,
    );
    let chain_id = chain.chain_id().await.context("asking the chain its id")?;
    if !chain.is_active_physician(physician).await? {
        bail!("the chain does not show {physician} as an active physician");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let endpoint = bind(node_key(&args.dir)?, "127.0.0.1:0".parse()?).await?;
    let bound = listener.local_addr()?;
    // One line on stdout that scripts and tests read.
    println!("dashboard for physician {physician:#x} on http://{bound}/");
    let fleet = match (&args.fleet, &args.fleet_token_file) {
        (Some(url), token_file) => Some(glyco_clinic::fleet::http::FleetClient {
            url: url.clone(),
            token: token_file
                .as_ref()
                .map(|path| {
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))
                        .map(|t| t.trim().to_owned())
                })
                .transpose()?,
        }),
        (None, _) => None,
    };
    let state = Arc::new(Dashboard {
        physician,
        signer,
        chain,
        chain_id,
        umbral,
        endpoint: endpoint.clone(),
        proxies: args.proxies,
        threshold: args.threshold,
        source,
        inbox: args.inbox,
        alerts: dashboard::alerts::AlertBook::load(args.dir.join("dashboard.acked")),
        sessions: glyco_webkit::Sessions::with_max(16),
        throttle: glyco_webkit::LoginThrottle::default(),
        nonces: dashboard::signin::Nonces::default(),
        last_seen: Default::default(),
        counts: Default::default(),
        time_zone,
        unit: args.unit,
        lan_only: !args.any_network,
        fleet,
    });
    let shutdown = CancellationToken::new();
    shutdown_on_signal(shutdown.clone());
    let served = dashboard::serve(listener, state.clone(), shutdown).await;
    endpoint.close().await;
    tracing::info!(counts = ?state.counts.lock(), "dashboard stopped");
    served.context("serving the dashboard")
}

/// Signs a sign-in message read from stdin (or `file`) with `key`; prints
/// the signature to paste into the sign-in page.
pub fn sign_in(key: &Path, file: Option<&Path>) -> Result<()> {
    let mut message = String::new();
    match file {
        Some(path) => {
            message = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
        }
        None => {
            std::io::stdin().read_to_string(&mut message)?;
        }
    }
    // Editors and shells add a final newline the page's message lacks.
    let message = message.trim_end_matches(['\n', '\r']);
    if !message.contains(" wants you to sign in with your Ethereum account:\n") {
        bail!("this is not a Sign-In with Ethereum message");
    }
    let signer = load_key(key)?;
    eprintln!(
        "signing in as {:#x} to: {}",
        signer.address(),
        message.lines().next().unwrap_or_default()
    );
    println!(
        "0x{}",
        hex::encode(sign_personal_message(&signer, message.as_bytes())?)
    );
    Ok(())
}
