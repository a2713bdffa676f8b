//! `glyco-clinic physician enrol`: issue a one-time enrolment code for a new
//! hub (QR code as PNG and on the terminal), then serve the enrolment node
//! until a hub has used it or it expired.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use glyco_clinic::enrolment::{EnrolService, Outcome, TokenBook};
use glyco_clinic::replica::{HubPeer, bind};
use glyco_contracts::keys::load_key;
use glyco_contracts::{Deployment, DeviceIdKey, GlycoClient};
use glyco_seal::enrolment::{ENROL_ALPN, Invitation, MAX_VALIDITY_SECS};
use iroh::protocol::Router;

use crate::{Chain, node_key};

#[derive(Args)]
pub struct EnrolArgs {
    /// The physician's directory (its iroh node key: the enrolment node).
    #[arg(long)]
    dir: PathBuf,
    /// The physician's Ethereum key file (offers the patient role).
    #[arg(long)]
    key: PathBuf,
    #[command(flatten)]
    chain: Chain,
    /// The consortium's device-id key file, handed to the hub once its token
    /// checks (never put in the QR code).
    #[arg(long)]
    device_id_key: PathBuf,
    /// RPC endpoint as the hub reaches it (repeatable; default: --rpc).
    #[arg(long = "hub-rpc")]
    hub_rpc: Vec<String>,
    /// The clinic's re-encryption proxies: <ethereum address>@<ip:port>.
    #[arg(long = "proxy")]
    proxies: Vec<String>,
    /// Proxies needed per read (M of N).
    #[arg(long, default_value_t = 1)]
    threshold: u32,
    /// The clinic's alert inbox: <iroh node id>@<ip:port>.
    #[arg(long)]
    inbox: Option<HubPeer>,
    /// Where the enrolment node listens.
    #[arg(long, default_value = "0.0.0.0:7450")]
    listen: SocketAddr,
    /// The address the hub reaches the enrolment node at (repeatable;
    /// default: --listen, which must then not be 0.0.0.0).
    #[arg(long)]
    advertise: Vec<SocketAddr>,
    /// How long the code stays valid.
    #[arg(long, default_value_t = 30)]
    valid_minutes: u64,
    /// Write the QR code here as a PNG (mode 0600).
    #[arg(long)]
    out: PathBuf,
    /// Also write the code's text here (mode 0600), for a hub given text.
    #[arg(long)]
    text_out: Option<PathBuf>,
    /// Do not draw the code on the terminal.
    #[arg(long)]
    quiet: bool,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Mode 0600: the code carries a live token.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    glyco_contracts::files::write_atomically(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}

pub async fn run(args: EnrolArgs) -> Result<()> {
    // Everything checked before a token is issued or a port bound.
    let valid_secs = args.valid_minutes.saturating_mul(60);
    if valid_secs == 0 || valid_secs > MAX_VALIDITY_SECS {
        bail!("--valid-minutes must be between 1 and a week");
    }
    let advertise = if args.advertise.is_empty() {
        if args.listen.ip().is_unspecified() {
            bail!(
                "--listen {} is every interface: say --advertise <ip:port> the hub reaches",
                args.listen
            );
        }
        vec![args.listen]
    } else {
        args.advertise.clone()
    };
    let hub_rpc = if args.hub_rpc.is_empty() {
        vec![args.chain.rpc.clone()]
    } else {
        args.hub_rpc.clone()
    };
    let n = args.proxies.len() as u32;
    if n > 0 && !(1..=n).contains(&args.threshold) {
        bail!("--threshold must be between 1 and the {n} proxies");
    }
    for proxy in &args.proxies {
        proxy
            .parse::<glyco_clinic::physician::ProxyPeer>()
            .map_err(|e| anyhow::anyhow!("--proxy {proxy:?}: {e}"))?;
    }
    let deployment = Deployment::load(&args.chain.deployment)?;
    let device_id_key = DeviceIdKey::load(&args.device_id_key)
        .with_context(|| format!("--device-id-key {}", args.device_id_key.display()))?;
    if device_id_key.fingerprint() != deployment.device_id_key_fingerprint {
        bail!("--device-id-key is not the deployment's (its fingerprint differs)");
    }
    let signer = load_key(&args.key)?;
    let physician = signer.address();
    let chain = GlycoClient::new(
        args.chain.rpc.parse().context("--rpc")?,
        signer,
        deployment.clone(),
    );
    if chain.chain_id().await? != deployment.chain_id {
        bail!("the chain at --rpc is not the deployment's");
    }
    if !chain.is_active_physician(physician).await? {
        bail!("{physician:#x} is not an active physician on chain");
    }
    let node = node_key(&args.dir)?;
    let mut book = TokenBook::open(&args.dir)?;
    let expires_at = now_secs() + valid_secs;
    let token = book.issue(now_secs(), valid_secs)?;
    let endpoint = bind(node, args.listen).await?;
    let invitation = Invitation {
        physician,
        rpc_urls: hub_rpc,
        deployment,
        enrol_node: endpoint.id().to_string(),
        enrol_addrs: advertise,
        proxies: args.proxies.clone(),
        proxy_threshold: if n == 0 { 1 } else { args.threshold },
        inbox: args
            .inbox
            .as_ref()
            .map(|i| format!("{}@{}", i.node, i.addr)),
        token: token.clone(),
        expires_at,
    };
    let text = invitation.to_text();
    Invitation::parse(&text, now_secs()).context("the code as issued")?;
    let png = glyco_webkit::qr::png(&text).context("drawing the QR code")?;
    write_private(&args.out, &png)?;
    if let Some(path) = &args.text_out {
        write_private(path, text.as_bytes())?;
    }
    if !args.quiet {
        println!("{}", glyco_webkit::qr::terminal(&text)?);
    }
    let (service, mut outcomes) = EnrolService::new(book, chain, device_id_key);
    let router = Router::builder(endpoint.clone())
        .accept(ENROL_ALPN, service)
        .spawn();
    // Lines scripts and tests read.
    println!(
        "enrolment code for physician {physician:#x} written to {} ({} bytes of text), valid {} min",
        args.out.display(),
        text.len(),
        args.valid_minutes
    );
    println!(
        "enrolment node {} listening on {}",
        endpoint.id(),
        endpoint
            .bound_sockets()
            .first()
            .map(ToString::to_string)
            .unwrap_or_default()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(valid_secs);
    let result = loop {
        let outcome = tokio::select! {
            outcome = outcomes.recv() => outcome,
            _ = tokio::time::sleep_until(deadline) => None,
            _ = tokio::signal::ctrl_c() => None,
        };
        match outcome {
            Some(Outcome::Enrolled(done)) => {
                println!(
                    "enrolled hub {:#x} (node {}) for patient {:#x}: patient role offered in tx {}",
                    done.hub, done.hub_node, done.patient, done.offer_tx
                );
                // The hub answers the offer itself; stay a moment so its
                // connection closes cleanly.
                break Ok(());
            }
            Some(Outcome::Refused { hub_node, why }) => {
                println!("refused hub node {hub_node}: {why}");
            }
            None => break Err(anyhow::anyhow!("the enrolment code expired unused")),
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    router.shutdown().await.ok();
    result
}
