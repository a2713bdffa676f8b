//! `glyco-clinic alert-inbox`: a clinic's node. Hubs deliver alerts to it
//! and send it their heartbeats; physicians follow their inbox on it; the
//! fleet view and Prometheus metrics are served beside it over HTTP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use glyco_clinic::fleet::book::FleetBook;
use glyco_clinic::fleet::http::NodeHttp;
use glyco_clinic::fleet::rollout::{ReleaseShelf, Rollout, RolloutPlan};
use glyco_clinic::fleet::{FleetFromHubs, FleetNode};
use glyco_clinic::inbox::roster::DutyRoster;
use glyco_clinic::inbox::store::InboxStore;
use glyco_clinic::inbox::{AlertsFromHubs, Inbox, InboxForPhysicians};
use glyco_clinic::proxy::chain_view::ChainView;
use glyco_clinic::replica::bind;
use glyco_seal::alerts::{ALERT_ALPN, INBOX_ALPN};
use glyco_seal::fleet::FLEET_ALPN;
use iroh::protocol::Router;
use tokio_util::sync::CancellationToken;

use crate::{Chain, node_key, shutdown_on_signal};

/// How often the fleet roster is written to disk.
const ROSTER_SAVE_EVERY: Duration = Duration::from_secs(60);

/// The fleet side of the node (docs/FLEET.md).
#[derive(clap::Args)]
pub struct FleetArgs {
    /// Serve `/metrics` (Prometheus) and `/fleet.json` here, e.g.
    /// 0.0.0.0:9464; the clinic's local network only.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// A file holding the bearer token HTTP requests must carry.
    #[arg(long)]
    pub http_token_file: Option<PathBuf>,
    /// Serve HTTP to peers outside the local network too.
    #[arg(long)]
    pub http_any_network: bool,
    /// A hub without a heartbeat for this long is silent.
    #[arg(long, default_value_t = 300)]
    pub silent_after_secs: u64,
    /// Hubs the fleet book keeps at most.
    #[arg(long, default_value_t = 100_000)]
    pub max_hubs: usize,
    /// The image release hubs should run (their `IMAGE_VERSION`): others
    /// are outdated.
    #[arg(long)]
    pub current_release: Option<String>,
    /// Or the hub software version they should run.
    #[arg(long)]
    pub current_version: Option<String>,
    /// A RAUC bundle to roll out to the fleet (docs/FLEET.md, "Updates"):
    /// offered with heartbeats' answers, served to the fleet's hubs over
    /// iroh. Each hub installs it only if the consortium published its
    /// SHA-256 on chain and it is signed by the hub's release keyring.
    #[arg(long, requires = "release_version")]
    pub release_bundle: Option<PathBuf>,
    /// The bundle's version (its manifest's, and the chain's).
    #[arg(long)]
    pub release_version: Option<String>,
    /// The share of the fleet offered the release, in percent.
    #[arg(long, default_value_t = 100)]
    pub rollout_percent: u8,
    /// Stop offering the release after this many hubs refuse it or roll
    /// it back.
    #[arg(long, default_value_t = 1)]
    pub rollout_stop_after: usize,
}

pub async fn run(
    dir: &Path,
    listen: SocketAddr,
    chain: &Chain,
    (max_followers, max_in_flight): (usize, usize),
    duty_roster: Option<&Path>,
    fleet: &FleetArgs,
) -> Result<()> {
    // Checked before anything is opened or bound.
    let duty = duty_roster.map(DutyRoster::open).transpose()?;
    let settings = glyco_clinic::fleet::settings(
        fleet.silent_after_secs,
        fleet.max_hubs,
        fleet.current_release.clone(),
        fleet.current_version.clone(),
    )
    .map_err(anyhow::Error::msg)?;
    let token = match &fleet.http_token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?
                .trim()
                .to_owned();
            if token.len() < 16 {
                bail!(
                    "the HTTP token in {} is shorter than 16 characters",
                    path.display()
                );
            }
            Some(Arc::<str>::from(token))
        }
        None => None,
    };
    let store = InboxStore::open(&dir.join("inbox")).context("opening the inbox store")?;
    let mut inbox = Inbox::new(
        ChainView::new(chain.read_only()?),
        store,
        max_followers,
        max_in_flight,
    );
    if let Some(duty) = duty {
        inbox = inbox.with_duty_roster(duty);
    }
    let inbox = Arc::new(inbox);
    let roster = dir.join("fleet-roster.cbor");
    let book = FleetBook::load(settings, &roster)?;
    let mut fleet_node = FleetNode::new(ChainView::new(chain.read_only()?), book, Some(roster));
    let shelf = match (&fleet.release_bundle, &fleet.release_version) {
        (Some(bundle), Some(version)) => {
            let shelf = release_shelf(dir, bundle, version, fleet, chain).await?;
            fleet_node = fleet_node.with_rollout(Rollout::new(RolloutPlan::new(
                shelf.offer.clone(),
                fleet.rollout_percent,
                fleet.rollout_stop_after,
            )?));
            Some(shelf)
        }
        _ => None,
    };
    let fleet_node = Arc::new(fleet_node);
    let http_listener = match fleet.http {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding --http {addr}"))?,
        ),
        None => None,
    };
    let endpoint = bind(node_key(dir)?, listen).await?;
    let mut router = Router::builder(endpoint.clone())
        .accept(ALERT_ALPN, AlertsFromHubs(inbox.clone()))
        .accept(INBOX_ALPN, InboxForPhysicians(inbox.clone()))
        .accept(FLEET_ALPN, FleetFromHubs(fleet_node.clone()));
    if let Some(shelf) = &shelf {
        let gate = ReleaseShelf::gate(fleet_node.peers());
        router = router.accept(
            iroh_blobs::ALPN,
            iroh_blobs::BlobsProtocol::new(&shelf.store, Some(gate)),
        );
    }
    let router = router.spawn();
    let bound = endpoint.bound_sockets();
    // One line on stdout that scripts and tests read (and one for HTTP).
    println!(
        "alert inbox node {} listening on {}",
        endpoint.id(),
        bound.first().map(ToString::to_string).unwrap_or_default()
    );
    let shutdown = CancellationToken::new();
    shutdown_on_signal(shutdown.clone());
    let mut http_task = None;
    if let Some(listener) = http_listener {
        println!("fleet http on {}", listener.local_addr()?);
        let node = NodeHttp {
            fleet: fleet_node.clone(),
            inbox: Some(inbox.clone()),
            token,
            lan_only: !fleet.http_any_network,
        };
        let stop = shutdown.clone();
        http_task = Some(tokio::spawn(async move {
            if let Err(e) = glyco_clinic::fleet::http::serve(listener, node, stop).await {
                tracing::error!(error = %e, "the fleet's HTTP side stopped");
            }
        }));
    }
    let saver = {
        let (fleet_node, stop) = (fleet_node.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ROSTER_SAVE_EVERY);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {
                        let node = fleet_node.clone();
                        match tokio::task::spawn_blocking(move || node.save()).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => tracing::error!(error = %e, "the fleet roster was not saved"),
                            Err(e) => tracing::error!(error = %e, "the fleet roster save failed"),
                        }
                    }
                }
            }
        })
    };
    shutdown.cancelled().await;
    tracing::info!(counts = ?inbox.counts(), hubs = fleet_node.with_book(|b| b.len()), "clinic node stopping");
    router.shutdown().await.ok();
    saver.abort();
    if let Some(task) = http_task {
        let _ = task.await;
    }
    fleet_node.save().context("saving the fleet roster")?;
    if let Some(shelf) = shelf {
        shelf.store.shutdown().await.ok();
    }
    Ok(())
}

/// The bundle to roll out, in the node's release store; the chain is asked
/// whether the consortium published it (hubs refuse it otherwise).
async fn release_shelf(
    dir: &Path,
    bundle: &Path,
    version: &str,
    fleet: &FleetArgs,
    chain: &Chain,
) -> Result<ReleaseShelf> {
    // The plan's bounds, before the bundle is read.
    RolloutPlan::new(
        glyco_seal::fleet::ReleaseOffer {
            version: version.to_owned(),
            sha256: [0; 32],
            blake3: [0; 32],
            bytes: 0,
        },
        fleet.rollout_percent,
        fleet.rollout_stop_after,
    )?;
    let shelf = ReleaseShelf::open(&dir.join("releases"), bundle, version.to_owned())
        .await
        .context("the release bundle")?;
    let sha256 = glyco_contracts::B256::from(shelf.offer.sha256);
    match chain.read_only()?.release_of(sha256).await {
        Ok(Some(release)) if release.withdrawn_at.is_none() && release.version == version => {
            tracing::info!(%sha256, version, "rolling out a release published on chain");
        }
        Ok(Some(release)) => tracing::warn!(
            %sha256, chain_version = %release.version, withdrawn = release.withdrawn_at.is_some(),
            "the release on chain is withdrawn or names another version: hubs will refuse it"
        ),
        Ok(None) => {
            tracing::warn!(%sha256, "the bundle is not published on chain: hubs will refuse it")
        }
        Err(e) => {
            tracing::warn!(error = %e, "the chain cannot say whether the bundle is published")
        }
    }
    tracing::info!(
        version,
        bytes = shelf.offer.bytes,
        percent = fleet.rollout_percent,
        "offering the release with heartbeats' answers"
    );
    Ok(shelf)
}
