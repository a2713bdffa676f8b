//! The physician's dashboard (docs/CLINIC.md, "Dashboard"): served by
//! `glyco-clinic dashboard` on the clinic's network for one physician,
//! with the same keys as the physician's CLI (`--dir`, `--key`).
//!
//! Signing in is Sign-In with Ethereum (EIP-4361): the browser's wallet
//! (or `glyco-clinic physician sign-in` on the command line) signs a
//! message naming this dashboard, the chain and a one-time nonce, with the
//! physician's Ethereum key; the chain must show an active physician. So a
//! shared workstation or the clinic's network exposes nothing to whoever
//! does not hold that key.
//!
//! Pages: my patients (grants, newest anchored data, open alerts), the
//! alert inbox with Acknowledge, a patient's AGP report opened through the
//! re-encryption proxies (each opening is an access in the patient's
//! on-chain log, and the page says so before), and the access log.

pub mod alerts;
pub mod fleet;
pub mod pages;
pub mod report;
pub mod signin;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{self};
use axum::routing::{get, post};
use glyco_contracts::keys::Signer;
use glyco_contracts::{Address, GlycoClient};
use glyco_seal::PhysicianKey;
use parking_lot::Mutex;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::physician::ProxyPeer;
use crate::replica::HubPeer;

/// Forms are small.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// Where a patient's sealed batches are read from.
#[derive(Debug, Clone)]
pub enum BatchSource {
    /// A clinic replica's directory.
    Replica(PathBuf),
    /// The patient's hub over iroh.
    Hub(HubPeer),
}

/// What the dashboard counts (its log line at exit, and tests).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DashboardCounts {
    pub signed_in: u64,
    pub sign_in_refused: u64,
    pub csrf_refused: u64,
    pub not_local: u64,
    pub reports_opened: u64,
    pub alerts_acknowledged: u64,
}

/// Everything the pages read or change.
pub struct Dashboard {
    pub physician: Address,
    /// Signs access requests and acknowledgements as the physician.
    pub signer: Signer,
    pub chain: GlycoClient,
    pub chain_id: u64,
    pub umbral: PhysicianKey,
    pub endpoint: iroh::Endpoint,
    pub proxies: Vec<ProxyPeer>,
    pub threshold: usize,
    pub source: BatchSource,
    pub inbox: Option<HubPeer>,
    pub alerts: alerts::AlertBook,
    pub sessions: glyco_webkit::Sessions<Address>,
    pub throttle: glyco_webkit::LoginThrottle,
    pub nonces: signin::Nonces,
    /// The newest glucose each patient's last opened report showed.
    pub last_seen: Mutex<std::collections::HashMap<Address, report::LastSeen>>,
    pub counts: Mutex<DashboardCounts>,
    pub time_zone: jiff::tz::TimeZone,
    pub unit: glyco_seal::reading::GlucoseUnit,
    pub lan_only: bool,
    /// The clinic node's fleet view, if the page should show it.
    pub fleet: Option<crate::fleet::http::FleetClient>,
}

impl Dashboard {
    fn count(&self, bump: impl FnOnce(&mut DashboardCounts)) {
        bump(&mut self.counts.lock());
    }
}

/// The dashboard's routes.
pub fn router(state: Arc<Dashboard>) -> Router {
    Router::new()
        .route("/", get(pages::patients))
        .route("/login", get(signin::form).post(signin::sign_in))
        .route("/logout", post(pages::logout))
        .route("/alerts", get(pages::alerts))
        .route("/fleet", get(fleet::page))
        .route("/alerts/ack", post(pages::ack))
        .route("/patients/:patient", get(pages::patient))
        .route("/patients/:patient/report", post(report::open))
        .route("/style.css", get(pages::stylesheet))
        .route("/signin.js", get(signin::script))
        .layer(middleware::from_fn_with_state(
            {
                let dash = state.clone();
                glyco_webkit::guard::LocalGuard::new(
                    state.lan_only,
                    "the dashboard serves the clinic's local network only",
                    glyco_webkit::headers::CSP_OWN_SCRIPTS,
                )
                .counting(move || dash.count(|c| c.not_local += 1))
            },
            glyco_webkit::guard::local_only,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves the dashboard on `listener` until `shutdown`; the alert follower
/// runs beside it.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<Dashboard>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let follower = tokio::spawn(alerts::follow(state.clone(), shutdown.clone()));
    let served = axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await;
    follower.abort();
    served
}
