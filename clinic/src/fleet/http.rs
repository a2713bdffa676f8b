//! The clinic node's HTTP side, on the clinic's network only: `/metrics`
//! for Prometheus and `/fleet.json` for `glyco-clinic fleet`, the
//! dashboard's fleet page and scripts. With a token configured, every
//! request must carry it as `Authorization: Bearer <token>` (Prometheus's
//! `authorization` setting sends it).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use glyco_contracts::Address;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::FleetNode;
use super::view::{self, Flag, FleetFilter, HubRow};
use crate::inbox::Inbox;

#[derive(Clone)]
pub struct NodeHttp {
    pub fleet: Arc<FleetNode>,
    pub inbox: Option<Arc<Inbox>>,
    /// The bearer token every request must carry, if set.
    pub token: Option<Arc<str>>,
    pub lan_only: bool,
}

/// `/fleet.json`'s query: `flags=silent,lagging`, `version=…`, `hub=0x…`.
#[derive(Debug, Default, Deserialize)]
pub struct FleetQuery {
    pub flags: Option<String>,
    pub version: Option<String>,
    pub hub: Option<String>,
}

impl FleetQuery {
    pub fn filter(&self) -> Result<FleetFilter, String> {
        let mut flags = BTreeSet::new();
        for name in self.flags.iter().flat_map(|f| f.split(',')) {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            flags.insert(
                <Flag as clap::ValueEnum>::from_str(name, true)
                    .map_err(|_| format!("unknown flag {name:?}"))?,
            );
        }
        let hub = self
            .hub
            .as_deref()
            .map(|h| h.parse::<Address>().map_err(|e| format!("hub: {e}")))
            .transpose()?;
        Ok(FleetFilter {
            flags,
            version: self.version.clone(),
            hub,
        })
    }
}

/// Reads a clinic node's `/fleet.json`: `glyco-clinic fleet show` and the
/// dashboard's Fleet page.
#[derive(Debug, Clone)]
pub struct FleetClient {
    /// The node's HTTP address (its `--http`), e.g. `http://10.0.0.5:9464`.
    pub url: String,
    /// Its bearer token, if it wants one.
    pub token: Option<String>,
}

impl FleetClient {
    pub async fn fetch(&self, query: &FleetQuery) -> Result<FleetJson, String> {
        glyco_contracts::client::install_tls_provider();
        let mut url = reqwest::Url::parse(&self.url)
            .and_then(|u| u.join("/fleet.json"))
            .map_err(|e| format!("the fleet node's address {:?}: {e}", self.url))?;
        {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in [
                ("flags", &query.flags),
                ("version", &query.version),
                ("hub", &query.hub),
            ] {
                if let Some(value) = value {
                    pairs.append_pair(key, value);
                }
            }
        }
        let mut request = reqwest::Client::new()
            .get(url.clone())
            .timeout(std::time::Duration::from_secs(10));
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("asking {url}: {e}"))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!(
                "{url}: {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("the node's /fleet.json: {e}"))
    }
}

/// What `/fleet.json` answers.
#[derive(Debug, serde::Serialize, Deserialize)]
pub struct FleetJson {
    pub at_ms: i64,
    pub silent_after_s: i64,
    pub current_release: Option<String>,
    pub current_version: Option<String>,
    pub tally: std::collections::BTreeMap<Flag, usize>,
    pub hubs: Vec<HubRow>,
    /// The release being rolled out, if any.
    #[serde(default)]
    pub rollout: Option<super::rollout::RolloutSummary>,
}

async fn metrics(State(node): State<NodeHttp>) -> Response {
    let inbox = node.inbox.as_ref().map(|i| i.counts());
    let text = super::metrics::render(&node.fleet, inbox.as_ref(), super::now_ms());
    (
        [(header::CONTENT_TYPE, glyco_webkit::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response()
}

async fn fleet_json(State(node): State<NodeHttp>, Query(query): Query<FleetQuery>) -> Response {
    let filter = match query.filter() {
        Ok(filter) => filter,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let at_ms = super::now_ms();
    let answer = node.fleet.with_book(|book| {
        let all = view::view(book, &FleetFilter::default(), at_ms);
        FleetJson {
            at_ms,
            silent_after_s: book.settings.silent_after_ms / 1000,
            current_release: book.settings.current_release.clone(),
            current_version: book.settings.current_version.clone(),
            tally: view::tally(&all),
            hubs: all.into_iter().filter(|r| filter.keeps(r)).collect(),
            rollout: None,
        }
    });
    let answer = FleetJson {
        rollout: node.fleet.rollout(),
        ..answer
    };
    axum::Json(answer).into_response()
}

async fn bearer(State(node): State<NodeHttp>, request: Request, next: Next) -> Response {
    if let Some(token) = &node.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !glyco_webkit::same_secret(given, token) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is required",
            )
                .into_response();
        }
    }
    next.run(request).await
}

pub fn router(node: NodeHttp) -> Router {
    let guard = glyco_webkit::guard::LocalGuard::new(
        node.lan_only,
        "the clinic node serves the clinic's local network only",
        glyco_webkit::headers::CSP_NO_SCRIPT,
    );
    Router::new()
        .route("/metrics", get(metrics))
        .route("/fleet.json", get(fleet_json))
        .layer(middleware::from_fn_with_state(node.clone(), bearer))
        .layer(middleware::from_fn_with_state(
            guard,
            glyco_webkit::guard::local_only,
        ))
        .with_state(node)
}

/// Serves until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    node: NodeHttp,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(node).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}
