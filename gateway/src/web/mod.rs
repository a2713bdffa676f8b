//! The hub's web app (docs/WEB.md): pages for the patient, served on the
//! local network, and the read side of Nightscout's API for follower apps.
//!
//! Server-rendered HTML (maud) with inline SVG, no script, the stylesheet
//! embedded in the binary. Only local-network peers are served (unless the
//! config says otherwise). The patient signs in with the PIN set at
//! enrolment; sessions live in memory; every form carries the session's
//! CSRF token and must come from the hub's own origin; every change is
//! logged (journal meta `web-actions`, and the hub's log).

pub mod actions;
pub mod auth;
pub mod bluetooth;
pub mod family;
pub mod glucose;
pub mod metrics;
pub mod nightscout;
pub mod pages;
pub mod sharing;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{self};
use axum::routing::{get, post};
use glyco_seal::reading::GlucoseUnit;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::alerts::AlertSink;
use crate::device_admin::DeviceAdmin;
use crate::journal::{Journal, JournalWriter};
use crate::status::StatusReport;

/// The largest request body taken (forms are small).
const MAX_BODY_BYTES: usize = 16 * 1024;
/// Journal meta key of the patient's display settings.
pub const SETTINGS_META: &str = "web-settings";

/// What the patient chose to see.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WebSettings {
    pub unit: GlucoseUnit,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            unit: GlucoseUnit::MgPerDl,
        }
    }
}

/// What the web app counts (status and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebCounts {
    pub signed_in: u64,
    pub pin_refused: u64,
    pub csrf_refused: u64,
    pub not_local: u64,
    pub api_refused: u64,
}

/// The web app in `glyco-hub status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebStatus {
    pub enabled: bool,
    /// The address it listens on, once bound.
    pub listen: Option<String>,
    /// Why it does not serve (the hub runs on without it).
    pub error: Option<String>,
    pub pin_set: bool,
    pub nightscout: bool,
    pub counts: WebCounts,
}

/// Everything the pages and the API read or change.
pub struct WebState {
    pub journal: Journal,
    pub writer: JournalWriter,
    pub report: Box<dyn Fn() -> StatusReport + Send + Sync>,
    pub alerts: AlertSink,
    /// Registering devices on chain; `None` when the hub has no chain client.
    pub devices: Option<DeviceAdmin>,
    /// Where MQTT devices connect (shown with new credentials).
    pub mqtt_port: Option<u16>,
    /// Grants, the emergency policy and the access log on chain.
    pub sharing: Option<sharing::SharingChain>,
    /// Makes the offline emergency kit and its family shares (sealing on).
    pub kits: Option<family::KitMaker>,
    /// Scans and bonds Bluetooth devices (BLE on).
    pub pairing: Option<Arc<glyco_ble::pairing::Pairer>>,
    pub pin_path: PathBuf,
    /// The hub's state directory (free space on the Hub page).
    pub state_dir: PathBuf,
    pub sessions: auth::Sessions,
    pub login_throttle: auth::LoginThrottle,
    pub api_throttle: auth::LoginThrottle,
    pub nightscout: Option<nightscout::NightscoutSecrets>,
    pub settings: Mutex<WebSettings>,
    pub actions: actions::ActionLog,
    pub status: Arc<Mutex<WebStatus>>,
    pub time_zone: jiff::tz::TimeZone,
    pub lan_only: bool,
    /// Served over TLS: the session cookie is marked `Secure`.
    pub secure_cookies: bool,
}

/// The app's routes.
pub fn router(state: Arc<WebState>) -> Router {
    Router::new()
        .route("/", get(pages::now))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/alerts/ack", post(pages::ack_alert))
        .route("/devices", get(pages::devices).post(pages::add_device))
        .route("/devices/remove", post(pages::remove_device))
        .route("/devices/bluetooth/scan", post(bluetooth::scan))
        .route("/devices/bluetooth/pair", post(bluetooth::pair))
        .route("/sharing", get(sharing::sharing))
        .route("/sharing/grant", post(sharing::grant))
        .route("/sharing/revoke", post(sharing::revoke))
        .route("/sharing/emergency", post(sharing::emergency))
        .route("/sharing/family", post(family::make_shares))
        .route("/report", get(pages::report))
        .route("/hub", get(pages::hub))
        .route("/settings", post(pages::settings))
        .route("/style.css", get(pages::stylesheet))
        .route("/api/v1/status.json", get(nightscout::status))
        .route("/api/v1/status", get(nightscout::status))
        .route("/api/v1/entries.json", get(nightscout::entries))
        .route("/api/v1/entries", get(nightscout::entries))
        .route("/api/v1/entries/sgv.json", get(nightscout::entries))
        .route("/api/v1/entries/sgv", get(nightscout::entries))
        .route("/api/v1/entries/current.json", get(nightscout::current))
        .route("/metrics", get(metrics::metrics))
        .layer(middleware::from_fn_with_state(
            {
                let web = state.clone();
                glyco_webkit::guard::LocalGuard::new(
                    state.lan_only,
                    "the hub serves its local network only",
                    glyco_webkit::headers::CSP_NO_SCRIPT,
                )
                .counting(move || web.status.lock().counts.not_local += 1)
            },
            glyco_webkit::guard::local_only,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// What the daemon hands the web app.
pub struct WebParts {
    pub journal: Journal,
    pub writer: JournalWriter,
    pub report: Box<dyn Fn() -> StatusReport + Send + Sync>,
    pub alerts: AlertSink,
    pub devices: Option<DeviceAdmin>,
    pub mqtt_port: Option<u16>,
    pub sharing: Option<sharing::SharingChain>,
    pub kits: Option<family::KitMaker>,
    pub pairing: Option<Arc<glyco_ble::pairing::Pairer>>,
    pub status: Arc<Mutex<WebStatus>>,
}

/// Binds the app and serves it in the background until `shutdown`. A
/// failure to bind (or later to serve) is logged and shown in the status;
/// the hub runs on without its pages.
pub async fn start(
    config: &crate::config::HubConfig,
    parts: WebParts,
    shutdown: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let web = &config.web;
    let status = parts.status.clone();
    status.lock().enabled = web.enabled;
    if !web.enabled {
        return None;
    }
    let fail = |message: String| {
        tracing::error!(error = %message, "the web app does not serve");
        status.lock().error = Some(message);
        None
    };
    let nightscout = match nightscout::NightscoutSecrets::load(&config.nightscout_path()) {
        Ok(secrets) => secrets,
        Err(e) => return fail(e.to_string()),
    };
    let time_zone = match web.time_zone() {
        Ok(tz) => tz,
        Err(e) => return fail(e.to_string()),
    };
    let tls = match web.tls.as_ref().map(crate::mqtt::tls::acceptor).transpose() {
        Ok(tls) => tls,
        Err(e) => return fail(e.to_string()),
    };
    let listener = match tokio::net::TcpListener::bind(web.listen).await {
        Ok(listener) => listener,
        Err(e) => return fail(format!("binding {}: {e}", web.listen)),
    };
    let bound = listener.local_addr().map(|a| a.to_string()).ok();
    let settings = parts
        .journal
        .meta(SETTINGS_META)
        .ok()
        .flatten()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    {
        let mut s = status.lock();
        s.listen = bound.clone();
        s.pin_set = auth::load_pin(&config.web_pin_path())
            .ok()
            .flatten()
            .is_some();
        s.nightscout = nightscout.is_some();
    }
    let state = Arc::new(WebState {
        actions: actions::ActionLog::load(&parts.journal),
        journal: parts.journal,
        writer: parts.writer,
        report: parts.report,
        alerts: parts.alerts,
        devices: parts.devices,
        mqtt_port: parts.mqtt_port,
        sharing: parts.sharing,
        kits: parts.kits,
        pairing: parts.pairing,
        pin_path: config.web_pin_path(),
        state_dir: config.state_dir.clone(),
        sessions: auth::Sessions::default(),
        login_throttle: auth::LoginThrottle::default(),
        api_throttle: auth::LoginThrottle::default(),
        nightscout,
        settings: Mutex::new(settings),
        status: parts.status,
        time_zone,
        lan_only: web.lan_only,
        secure_cookies: tls.is_some(),
    });
    tracing::info!(listen = bound.as_deref().unwrap_or("?"), "web app serving");
    Some(tokio::spawn(async move {
        let served = match tls {
            Some(acceptor) => tls::serve(listener, router(state.clone()), acceptor, shutdown).await,
            None => serve(listener, state.clone(), shutdown).await,
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "the web app stopped");
            state.status.lock().error = Some(e.to_string());
        }
    }))
}

/// Serves the app on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<WebState>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}
