//! Webhook targets: an HTTP POST of the alert, signed with HMAC-SHA256, for
//! a clinic's or a caregiver's own paging system (docs/WIRE.md, "Alert
//! webhooks").
//!
//! The body is JSON and carries the alert's details in the clear: a webhook
//! is the patient's choice, configured on the hub with its secret in a file
//! (never in a policy, never logged). The receiver checks
//! `X-Glyco-Signature: sha256=<hex HMAC-SHA256(secret, timestamp "." body)>`
//! and de-duplicates on `X-Glyco-Alert-Id` (delivery is at least once).

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::engine::AlertRecord;

/// How long a webhook may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest body sent (the explanation is cut to fit).
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// A configured webhook, its secret loaded.
#[derive(Clone)]
pub struct Webhook {
    pub name: String,
    pub url: reqwest::Url,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize)]
struct Body<'a> {
    id: &'a str,
    hub: String,
    patient: String,
    device: &'a str,
    kind: &'a str,
    severity: &'a str,
    explanation: &'a str,
    confidence: f32,
    at_ms: i64,
    created_at_ms: i64,
    step: u8,
}

/// The signature header's value for `timestamp` and `body`.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", alloy::hex::encode(mac.finalize().into_bytes()))
}

impl Webhook {
    pub fn new(name: String, url: reqwest::Url, secret: Vec<u8>) -> Self {
        Self { name, url, secret }
    }

    /// Posts the alert; `Ok` on a 2xx answer.
    pub async fn post(
        &self,
        client: &reqwest::Client,
        record: &AlertRecord,
        step: u8,
        hub: glyco_contracts::Address,
        patient: glyco_contracts::Address,
        now_ms: i64,
    ) -> Result<(), String> {
        let mut explanation = record.explanation.as_str();
        let body = loop {
            let body = serde_json::to_vec(&Body {
                id: &record.id,
                hub: hub.to_string(),
                patient: patient.to_string(),
                device: &record.device,
                kind: &record.kind,
                severity: &record.severity,
                explanation,
                confidence: record.confidence,
                at_ms: record.at_ms,
                created_at_ms: record.created_at_ms,
                step,
            })
            .map_err(|e| e.to_string())?;
            if body.len() <= MAX_BODY_BYTES || explanation.is_empty() {
                break body;
            }
            let keep = explanation.len() / 2;
            let cut = (0..=keep)
                .rev()
                .find(|i| explanation.is_char_boundary(*i))
                .unwrap_or(0);
            explanation = &explanation[..cut];
        };
        let timestamp = now_ms.to_string();
        let signature = signature(&self.secret, &timestamp, &body);
        let answer = client
            .post(self.url.clone())
            .timeout(TIMEOUT)
            .header("content-type", "application/json")
            .header("x-glyco-alert-id", &record.id)
            .header("x-glyco-timestamp", &timestamp)
            .header("x-glyco-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("webhook {}: {}", self.name, e.without_url()))?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "webhook {} answered {}",
                self.name,
                answer.status()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Expected value from Python's hmac module (an independent implementation).
        assert_eq!(
            signature(b"Jefe", "1700000000000", br#"{"a":1}"#),
            "sha256=2e2c3965aaac4895200c348195276213e958abd6dce3b8dc194223735af4bc81"
        );
        assert_ne!(
            signature(b"jefe", "1700000000000", br#"{"a":1}"#),
            signature(b"Jefe", "1700000000000", br#"{"a":1}"#)
        );
    }
}
