//! `glyco-clinic alert-inbox`: a clinic's alert inbox node.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use glyco_clinic::inbox::roster::DutyRoster;
use glyco_clinic::inbox::store::InboxStore;
use glyco_clinic::inbox::{AlertsFromHubs, Inbox, InboxForPhysicians};
use glyco_clinic::proxy::chain_view::ChainView;
use glyco_clinic::replica::bind;
use glyco_seal::alerts::{ALERT_ALPN, INBOX_ALPN};
use iroh::protocol::Router;
use tokio_util::sync::CancellationToken;

use crate::{Chain, node_key, shutdown_on_signal};

pub async fn run(
    dir: &Path,
    listen: SocketAddr,
    chain: &Chain,
    (max_followers, max_in_flight): (usize, usize),
    duty_roster: Option<&Path>,
) -> Result<()> {
    // Checked before anything is opened or bound.
    let duty = duty_roster.map(DutyRoster::open).transpose()?;
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
    let endpoint = bind(node_key(dir)?, listen).await?;
    let router = Router::builder(endpoint.clone())
        .accept(ALERT_ALPN, AlertsFromHubs(inbox.clone()))
        .accept(INBOX_ALPN, InboxForPhysicians(inbox.clone()))
        .spawn();
    let bound = endpoint.bound_sockets();
    // One line on stdout that scripts and tests read.
    println!(
        "alert inbox node {} listening on {}",
        endpoint.id(),
        bound.first().map(ToString::to_string).unwrap_or_default()
    );
    let shutdown = CancellationToken::new();
    shutdown_on_signal(shutdown.clone());
    shutdown.cancelled().await;
    tracing::info!(counts = ?inbox.counts(), "alert inbox stopping");
    router.shutdown().await.ok();
    Ok(())
}
