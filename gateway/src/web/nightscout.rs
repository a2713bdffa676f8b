//! The read side of Nightscout's API v1, so the follower apps patients
//! already use (xDrip+, Nightguard, Sugarmate, …) can read the hub:
//! `GET /api/v1/status.json`, `/api/v1/entries.json`,
//! `/api/v1/entries/sgv.json`, `/api/v1/entries/current.json` (docs/WEB.md).
//!
//! Every request must carry the API secret as Nightscout clients send it
//! (`API-SECRET: <SHA-1 of the secret, hex>`) or the read token
//! (`?token=…`, or `API-SECRET: token=…`). Failures are throttled like PINs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use super::WebState;
use super::glucose::{Sgv, newest_sgvs};
use crate::reading::now_millis;
use glyco_webkit::same_secret;

/// Entries one request returns at most.
pub const MAX_COUNT: usize = 10_000;
/// Entries returned when the request names no count (Nightscout's default).
const DEFAULT_COUNT: usize = 10;
/// How far back a request without a date filter looks.
const DEFAULT_LOOKBACK_MS: i64 = 30 * 86_400_000;

/// The API secret and the read token, kept 0600 in the state directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NightscoutSecrets {
    pub secret: String,
    pub token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("the Nightscout secrets file {path}: {detail}")]
    File { path: String, detail: String },
}

impl NightscoutSecrets {
    /// New random secrets written to `path` (replacing any before).
    pub fn create(path: &Path) -> Result<Self, SecretsError> {
        let mut bytes = [0u8; 18];
        getrandom::fill(&mut bytes).map_err(|e| SecretsError::File {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        let secret = hex::encode(&bytes[..12]);
        let token = format!("glyco-read-{}", hex::encode(&bytes[12..]));
        let secrets = Self { secret, token };
        let json = serde_json::to_vec(&secrets).unwrap_or_default();
        glyco_contracts::files::write_atomically(path, &json).map_err(|e| SecretsError::File {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        Ok(secrets)
    }

    pub fn load(path: &Path) -> Result<Option<Self>, SecretsError> {
        let bad = |detail: String| SecretsError::File {
            path: path.display().to_string(),
            detail,
        };
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| bad(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(bad(e.to_string())),
        }
    }

    /// The SHA-1 of the secret, hex, as clients send it.
    pub fn secret_sha1(&self) -> String {
        hex::encode(Sha1::digest(self.secret.as_bytes()))
    }

    fn admits(&self, headers: &HeaderMap, query: &HashMap<String, String>) -> bool {
        let header = headers
            .get("api-secret")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        let token = query
            .get("token")
            .map(String::as_str)
            .or_else(|| header.and_then(|h| h.strip_prefix("token=")));
        if let Some(token) = token {
            return same_secret(token, &self.token);
        }
        header.is_some_and(|h| same_secret(&h.to_ascii_lowercase(), &self.secret_sha1()))
    }
}

/// A refused API request: its status and why, answered as Nightscout does.
#[derive(Debug)]
pub struct ApiRefusal(StatusCode, String);

impl IntoResponse for ApiRefusal {
    fn into_response(self) -> Response {
        let ApiRefusal(status, message) = self;
        (
            status,
            Json(serde_json::json!({"status": status.as_u16(), "message": message})),
        )
            .into_response()
    }
}

fn refusal(status: StatusCode, message: &str) -> ApiRefusal {
    ApiRefusal(status, message.to_owned())
}

/// Checks the request's credentials; `Err` is the answer to send.
fn check(
    web: &WebState,
    peer: SocketAddr,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(), ApiRefusal> {
    let Some(secrets) = &web.nightscout else {
        return Err(refusal(
            StatusCode::NOT_FOUND,
            "the Nightscout API is off (glyco-hub web api-secret turns it on)",
        ));
    };
    if let Err(wait) = web.api_throttle.check(peer.ip()) {
        return Err(refusal(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("too many failed attempts; wait {} s", wait.as_secs() + 1),
        ));
    }
    if !secrets.admits(headers, query) {
        web.api_throttle.failed(peer.ip());
        web.status.lock().counts.api_refused += 1;
        return Err(refusal(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }
    web.api_throttle.succeeded(peer.ip());
    Ok(())
}

fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| format!("{t:.3}"))
        .unwrap_or_default()
}

/// One entry as Nightscout serves it.
fn entry(sgv: &Sgv) -> serde_json::Value {
    let id = blake3::hash(format!("{}|{}", sgv.device, sgv.at_ms).as_bytes());
    serde_json::json!({
        "_id": &id.to_hex()[..24],
        "type": "sgv",
        "sgv": sgv.mg_dl.round() as i64,
        "delta": (sgv.delta * 10.0).round() / 10.0,
        "direction": sgv.trend.name(),
        "trend": sgv.trend.number(),
        "date": sgv.at_ms,
        "mills": sgv.at_ms,
        "dateString": iso(sgv.at_ms),
        "sysTime": iso(sgv.at_ms),
        "utcOffset": 0,
        "device": format!("glyco-hub/{}", sgv.device),
    })
}

/// `find[date][$gte]`-style bounds, in ms; `None` when absent.
fn date_bound(query: &HashMap<String, String>, ops: &[&str]) -> Result<Option<i64>, ApiRefusal> {
    for field in ["date", "mills"] {
        for op in ops {
            if let Some(text) = query.get(&format!("find[{field}][{op}]")) {
                return text
                    .parse::<i64>()
                    .map(|v| {
                        Some(if *op == "$gt" {
                            v + 1
                        } else if *op == "$lt" {
                            v - 1
                        } else {
                            v
                        })
                    })
                    .map_err(|_| {
                        refusal(StatusCode::BAD_REQUEST, "a date bound is unix milliseconds")
                    });
            }
        }
    }
    if let Some(text) = query
        .get("find[dateString][$gte]")
        .or_else(|| query.get("find[dateString][$gt]"))
    {
        return text
            .parse::<jiff::Timestamp>()
            .map(|t| Some(t.as_millisecond()))
            .map_err(|_| refusal(StatusCode::BAD_REQUEST, "dateString is RFC 3339"));
    }
    Ok(None)
}

async fn entries_answer(
    web: &WebState,
    query: &HashMap<String, String>,
    count: Option<usize>,
) -> Response {
    let count = match query.get("count") {
        Some(text) => match text.parse::<usize>() {
            Ok(n) => n.min(MAX_COUNT),
            Err(_) => {
                return refusal(StatusCode::BAD_REQUEST, "count is a whole number").into_response();
            }
        },
        None => count.unwrap_or(DEFAULT_COUNT),
    };
    let now = now_millis();
    let from = match date_bound(query, &["$gte", "$gt"]) {
        Ok(v) => v.unwrap_or(now - DEFAULT_LOOKBACK_MS),
        Err(r) => return r.into_response(),
    };
    let to = match date_bound(query, &["$lte", "$lt"]) {
        Ok(v) => v.unwrap_or(now + 60_000),
        Err(r) => return r.into_response(),
    };
    let journal = web.journal.clone();
    let found = tokio::task::spawn_blocking(move || newest_sgvs(&journal, count, from, to)).await;
    match found {
        Ok(Ok(sgvs)) => Json(sgvs.iter().map(entry).collect::<Vec<_>>()).into_response(),
        Ok(Err(e)) => {
            refusal(StatusCode::SERVICE_UNAVAILABLE, &format!("journal: {e}")).into_response()
        }
        Err(_) => refusal(StatusCode::INTERNAL_SERVER_ERROR, "the read failed").into_response(),
    }
}

pub async fn entries(
    State(web): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = check(&web, peer, &headers, &query) {
        return r.into_response();
    }
    entries_answer(&web, &query, None).await
}

pub async fn current(
    State(web): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = check(&web, peer, &headers, &query) {
        return r.into_response();
    }
    entries_answer(&web, &HashMap::new(), Some(1)).await
}

pub async fn status(
    State(web): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = check(&web, peer, &headers, &query) {
        return r.into_response();
    }
    let now = now_millis();
    let units = match web.settings.lock().unit {
        glyco_seal::reading::GlucoseUnit::MgPerDl => "mg/dl",
        glyco_seal::reading::GlucoseUnit::MmolPerL => "mmol",
    };
    Json(serde_json::json!({
        "status": "ok",
        "name": "glyco-hub",
        "version": env!("CARGO_PKG_VERSION"),
        "serverTime": iso(now),
        "serverTimeEpoch": now,
        "apiEnabled": true,
        "careportalEnabled": false,
        "boluscalcEnabled": false,
        "settings": {
            "units": units,
            "thresholds": {"bgHigh": 250, "bgTargetTop": 180, "bgTargetBottom": 70, "bgLow": 54},
            "enable": [],
        },
        "extendedSettings": {},
        "authorized": null,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_taken_as_its_sha1_and_the_token_as_itself() {
        let secrets = NightscoutSecrets {
            secret: "a-long-api-secret".into(),
            token: "glyco-read-1234".into(),
        };
        let mut headers = HeaderMap::new();
        let none = HashMap::new();
        assert!(!secrets.admits(&headers, &none));
        headers.insert(
            "api-secret",
            secrets.secret_sha1().to_uppercase().parse().unwrap(),
        );
        assert!(secrets.admits(&headers, &none), "hex in either case");
        headers.insert("api-secret", "a-long-api-secret".parse().unwrap());
        assert!(
            !secrets.admits(&headers, &none),
            "the secret itself is not sent"
        );
        headers.insert("api-secret", "token=glyco-read-1234".parse().unwrap());
        assert!(secrets.admits(&headers, &none));
        let query = HashMap::from([("token".to_owned(), "glyco-read-1234".to_owned())]);
        assert!(secrets.admits(&HeaderMap::new(), &query));
        let wrong = HashMap::from([("token".to_owned(), "glyco-read-9999".to_owned())]);
        assert!(!secrets.admits(&HeaderMap::new(), &wrong));
        // sha1("a-long-api-secret"), as Python's hashlib computes it.
        assert_eq!(secrets.secret_sha1().len(), 40);
    }
}
