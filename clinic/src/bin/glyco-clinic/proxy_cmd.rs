//! `glyco-clinic proxy`: a hospital's re-encryption proxy.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use glyco_clinic::proxy::Proxy;
use glyco_clinic::proxy::kfrags::KfragStore;
use glyco_clinic::proxy::service::{Kfrags, ProxyService, Reencryption};
use glyco_clinic::replica::bind;
use glyco_contracts::keys::load_key;
use glyco_contracts::{Deployment, GlycoClient};
use glyco_seal::sharing::{KFRAG_ALPN, REENCRYPT_ALPN};
use iroh::protocol::Router;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::{Chain, node_key, shutdown_on_signal};

pub struct ProxyArgs<'a> {
    pub dir: &'a Path,
    pub key: &'a Path,
    pub listen: SocketAddr,
    pub chain: &'a Chain,
    pub max_kfrags: usize,
    pub max_in_flight: usize,
    pub sweep_secs: u64,
}

pub async fn run(args: ProxyArgs<'_>) -> Result<()> {
    let signer = load_key(args.key)?;
    let address = signer.address();
    let deployment = Deployment::load(&args.chain.deployment)?;
    let url: glyco_contracts::RpcUrl = args.chain.rpc.parse().context("--rpc")?;
    let sender = GlycoClient::new(url.clone(), signer, deployment.clone());
    let reader = GlycoClient::read_only(url, deployment);
    let (kfrags, problems) = KfragStore::open(&args.dir.join("kfrags"), args.max_kfrags)?;
    for problem in problems {
        tracing::error!(%problem, "a kept kfrag file does not decode; left in place");
    }
    let proxy = Arc::new(Proxy::new(address, sender, reader, kfrags));
    let endpoint = bind(node_key(args.dir)?, args.listen).await?;
    let service = ProxyService {
        proxy: proxy.clone(),
        in_flight: Arc::new(Semaphore::new(args.max_in_flight)),
    };
    let router = Router::builder(endpoint.clone())
        .accept(KFRAG_ALPN, Kfrags(service.clone()))
        .accept(REENCRYPT_ALPN, Reencryption(service))
        .spawn();
    let bound = endpoint.bound_sockets();
    // One line on stdout that scripts and tests read.
    println!(
        "proxy {address} node {} listening on {} ({} kfrags kept)",
        endpoint.id(),
        bound.first().map(ToString::to_string).unwrap_or_default(),
        proxy.kfrags.len()
    );
    let shutdown = CancellationToken::new();
    shutdown_on_signal(shutdown.clone());
    let sweeper = tokio::spawn(
        proxy
            .clone()
            .run_sweeper(Duration::from_secs(args.sweep_secs), shutdown.clone()),
    );
    shutdown.cancelled().await;
    let _ = sweeper.await;
    let counts = proxy.counts();
    tracing::info!(?counts, "proxy stopping");
    router.shutdown().await.ok();
    Ok(())
}
