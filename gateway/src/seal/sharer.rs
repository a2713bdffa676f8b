//! Grants become kfrags: the hub follows its patient's grants on chain and,
//! for each live one, makes umbral kfrags for the grantee's public key (M of
//! the N configured proxies) and hands each proxy its share over iroh,
//! signed with the hub's key. A grant that is no longer live (revoked,
//! expired, the physician's enrolment ended) is dropped at every proxy.
//! Emergency grants, opened on chain without the patient, take the same
//! path, so the emergency physician can read within the window.
//!
//! The proxies are the enforcement point (they check the chain again and log
//! every access on chain); this stage only decides what to hand out. Kfrags
//! are deterministic per grant, so a restart re-sends the same shares.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use glyco_contracts::{Address, Expiry, GlycoClient, GrantRecord, UnixSeconds};
use glyco_seal::PatientKey;
use glyco_seal::keys::public_key_from_bytes;
use glyco_seal::sharing::{
    self, GrantTarget, HubMessage, HubSigned, KfragAnswer, KfragDelivery, KfragDrop,
};
use iroh::{Endpoint, EndpointAddr, EndpointId};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::SealState;

/// The newest grants looked at (a patient's grants are few; this bounds a
/// hostile or runaway history).
const MAX_GRANTS_FOLLOWED: usize = 256;
/// How long a proxy may take to answer (connection included).
const PROXY_WAIT: Duration = Duration::from_secs(5);

/// A proxy as configured: its Ethereum address (the chain gives its node id)
/// and where it listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyTarget {
    pub address: Address,
    pub addr: SocketAddr,
}

impl std::str::FromStr for ProxyTarget {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?}: expected <proxy ethereum address>@<ip:port>");
        let (address, addr) = text.split_once('@').ok_or_else(bad)?;
        Ok(Self {
            address: address.parse().map_err(|_| bad())?,
            addr: addr.parse().map_err(|_| bad())?,
        })
    }
}

/// What the sharing stage reports (status).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShareStatus {
    pub proxies: usize,
    pub threshold: usize,
    /// Live grants, and those whose kfrags every proxy keeps.
    pub live_grants: usize,
    pub delivered_grants: usize,
    /// Grants dropped at the proxies since start.
    pub dropped_grants: usize,
    pub last_error: Option<String>,
}

pub struct Sharer {
    pub chain: GlycoClient,
    pub endpoint: Endpoint,
    pub signer: PrivateKeySigner,
    pub patient: Address,
    pub key: Arc<PatientKey>,
    pub proxies: Vec<ProxyTarget>,
    pub threshold: usize,
    pub poll: Duration,
    pub state: SealState,
}

#[derive(Default)]
struct Progress {
    /// Grant id → which proxies keep their share.
    delivered: HashMap<u64, Vec<bool>>,
    /// Grant id → which proxies dropped it (or never had it).
    dropping: HashMap<u64, Vec<bool>>,
    /// Grants dropped at every proxy.
    dropped: HashSet<u64>,
    /// Per proxy: when it may be tried again after failing, and the wait.
    retry: HashMap<Address, (Instant, Duration)>,
}

impl Progress {
    fn may_try(&self, proxy: Address) -> bool {
        self.retry
            .get(&proxy)
            .is_none_or(|(at, _)| Instant::now() >= *at)
    }

    /// A proxy that failed waits from 2 s, doubling, up to a minute: a dead
    /// proxy does not slow the others or the grants that need it.
    fn failed(&mut self, proxy: Address) {
        let wait = self
            .retry
            .get(&proxy)
            .map_or(Duration::from_secs(2), |(_, w)| {
                (*w * 2).min(Duration::from_secs(60))
            });
        self.retry.insert(proxy, (Instant::now() + wait, wait));
    }

    fn answered(&mut self, proxy: Address) {
        self.retry.remove(&proxy);
    }
}

impl Sharer {
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), std::convert::Infallible> {
        let mut progress = Progress::default();
        let mut last_error: Option<String> = None;
        let mut tick = tokio::time::interval(self.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            // A round may wait on a frozen chain node or proxy; shutdown does
            // not wait for it (the kfrags are deterministic: the next start
            // sends the same ones).
            let error = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                result = self.round(&mut progress) => result.err(),
            };
            // Logged when it changes, not every round: a proxy down for a
            // day would otherwise write a line every poll.
            if error != last_error {
                match &error {
                    Some(e) => tracing::warn!(error = %e, "sharing grants with the proxies"),
                    None => tracing::info!("sharing with the proxies works again"),
                }
                last_error = error.clone();
            }
            let live = progress.delivered.len();
            let delivered = progress
                .delivered
                .values()
                .filter(|d| d.iter().all(|&x| x))
                .count();
            self.state.update(|s| {
                s.sharing = Some(ShareStatus {
                    proxies: self.proxies.len(),
                    threshold: self.threshold,
                    live_grants: live,
                    delivered_grants: delivered,
                    dropped_grants: progress.dropped.len(),
                    last_error: error,
                });
            });
        }
    }

    /// One pass over the patient's grants.
    async fn round(&self, progress: &mut Progress) -> Result<(), String> {
        let mut grants = self
            .chain
            .grants_of_patient(self.patient)
            .await
            .map_err(|e| e.to_string())?;
        let skip = grants.len().saturating_sub(MAX_GRANTS_FOLLOWED);
        grants.drain(..skip);
        let now = UnixSeconds::now();
        let mut errors = Vec::new();
        for grant in grants {
            let maybe_live = !grant.revoked
                && match grant.expiry {
                    Expiry::Never => true,
                    Expiry::At(t) => t > now,
                };
            let live = maybe_live
                && self
                    .chain
                    .is_grant_live(grant.id)
                    .await
                    .map_err(|e| e.to_string())?;
            if live {
                progress.dropped.remove(&grant.id);
                progress.dropping.remove(&grant.id);
                let mut done = progress
                    .delivered
                    .remove(&grant.id)
                    .unwrap_or_else(|| vec![false; self.proxies.len()]);
                if !done.iter().all(|&d| d)
                    && let Err(e) = self.deliver(&grant, &mut done, progress).await
                {
                    errors.push(format!("grant {}: {e}", grant.id));
                }
                progress.delivered.insert(grant.id, done);
            } else if !progress.dropped.contains(&grant.id) {
                progress.delivered.remove(&grant.id);
                let mut done = progress
                    .dropping
                    .remove(&grant.id)
                    .unwrap_or_else(|| vec![false; self.proxies.len()]);
                if let Err(e) = self.drop_everywhere(&grant, &mut done, progress).await {
                    errors.push(format!("dropping grant {}: {e}", grant.id));
                }
                if done.iter().all(|&d| d) {
                    progress.dropped.insert(grant.id);
                } else {
                    progress.dropping.insert(grant.id, done);
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Sends `messages[i]` to proxy `i` wherever `done[i]` is false and the
    /// proxy is not waiting out a failure, all at once; `accept` says
    /// whether an answer completes it.
    async fn send_all(
        &self,
        messages: Vec<Option<HubMessage>>,
        done: &mut [bool],
        progress: &mut Progress,
        accept: impl Fn(&KfragAnswer) -> bool,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        let mut asks = Vec::new();
        for (i, (proxy, message)) in self.proxies.iter().zip(messages).enumerate() {
            let Some(message) = message else { continue };
            if done[i] {
                continue;
            }
            if !progress.may_try(proxy.address) {
                errors.push(format!(
                    "proxy {}: waiting before trying again",
                    proxy.address
                ));
                continue;
            }
            asks.push(async move { (i, self.send(proxy, &message).await) });
        }
        for (i, answer) in n0_future::join_all(asks).await {
            let proxy = self.proxies[i].address;
            match answer {
                Ok(answer) if accept(&answer) => {
                    progress.answered(proxy);
                    done[i] = true;
                }
                Ok(other) => {
                    progress.answered(proxy);
                    errors.push(format!("proxy {proxy}: {other:?}"));
                }
                Err(e) => {
                    progress.failed(proxy);
                    errors.push(format!("proxy {proxy}: {e}"));
                }
            }
        }
        errors
    }

    async fn deliver(
        &self,
        grant: &GrantRecord,
        done: &mut [bool],
        progress: &mut Progress,
    ) -> Result<(), String> {
        let grantee_key = self
            .chain
            .physician_pre_key(grant.grantee)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("physician {} has no umbral key on chain", grant.grantee))?;
        let grantee_key = public_key_from_bytes(&grantee_key).map_err(|e| e.to_string())?;
        let kfrags = sharing::make_kfrags(
            &self.key,
            GrantTarget {
                grant_id: grant.id,
                policy_id: grant.policy_id,
                grantee: grant.grantee,
                grantee_key: &grantee_key,
            },
            self.threshold,
            self.proxies.len(),
        )
        .map_err(|e| e.to_string())?;
        let verifying_key = self
            .key
            .kfrag_signer()
            .verifying_key()
            .to_compressed_bytes()
            .into_vec();
        let mut messages = Vec::new();
        for (proxy, kfrag) in self.proxies.iter().zip(kfrags) {
            let delivery = KfragDelivery {
                patient: self.patient,
                hub: self.signer.address(),
                grantee: grant.grantee,
                grant_id: grant.id,
                policy_id: grant.policy_id,
                proxy: proxy.address,
                threshold: self.threshold as u8,
                shares: self.proxies.len() as u8,
                verifying_key: verifying_key.clone(),
                kfrag: kfrag.unverify(),
            };
            let signed = HubSigned::sign(delivery, &self.signer).map_err(|e| e.to_string())?;
            messages.push(Some(HubMessage::Deliver(Box::new(signed))));
        }
        let before = done.to_vec();
        let errors = self
            .send_all(messages, done, progress, |a| matches!(a, KfragAnswer::Kept))
            .await;
        for (i, proxy) in self.proxies.iter().enumerate() {
            if done[i] && !before[i] {
                tracing::info!(
                    grant = grant.id,
                    grantee = %grant.grantee,
                    proxy = %proxy.address,
                    emergency = grant.emergency,
                    "kfrag delivered"
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    async fn drop_everywhere(
        &self,
        grant: &GrantRecord,
        done: &mut [bool],
        progress: &mut Progress,
    ) -> Result<(), String> {
        let mut messages = Vec::new();
        for proxy in &self.proxies {
            let body = KfragDrop {
                patient: self.patient,
                hub: self.signer.address(),
                grant_id: grant.id,
                proxy: proxy.address,
            };
            let signed = HubSigned::sign(body, &self.signer).map_err(|e| e.to_string())?;
            messages.push(Some(HubMessage::Drop(signed)));
        }
        let before = done.to_vec();
        let errors = self
            .send_all(messages, done, progress, |a| {
                matches!(a, KfragAnswer::Dropped { .. })
            })
            .await;
        for (i, proxy) in self.proxies.iter().enumerate() {
            if done[i] && !before[i] {
                tracing::info!(grant = grant.id, proxy = %proxy.address, "kfrag dropped (or never held)");
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Sends one message to the proxy whose node id the chain names.
    async fn send(&self, proxy: &ProxyTarget, message: &HubMessage) -> Result<KfragAnswer, String> {
        let record = self
            .chain
            .proxy_of(proxy.address)
            .await
            .map_err(|e| e.to_string())?;
        if !record.active {
            return Err("not an active proxy on chain".into());
        }
        let node = EndpointId::from_bytes(&record.node_id.0).map_err(|e| e.to_string())?;
        let to = EndpointAddr::new(node).with_ip_addr(proxy.addr);
        let exchange = sharing::exchange::<_, KfragAnswer>(
            &self.endpoint,
            to,
            sharing::KFRAG_ALPN,
            message,
            64 * 1024,
        );
        tokio::time::timeout(PROXY_WAIT, exchange)
            .await
            .map_err(|_| format!("no answer within {} s", PROXY_WAIT.as_secs()))?
    }
}
