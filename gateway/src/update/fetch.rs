//! The hub's side of an offered release: fetch the bundle from the fleet
//! node over iroh-blobs (BLAKE3-verified as it streams, never more than
//! offered or `update.max_bundle_mib`), hash it, check it as any bundle is
//! checked, and leave a request for the installer. One fetch at a time, in
//! the background: heartbeats go on meanwhile, reporting `fetching`. When
//! the network, the chain or the disk fails rather than the bundle, the
//! hub tries again after a back-off, still reporting `fetching`; only a
//! bundle that fails its checks, or [`MAX_TRIES`] transient failures, end
//! in `refused`. The count outlives a restart ([`RETRIES`]), so a hub that
//! restarts in a loop still gives up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use glyco_contracts::{B256, GlycoClient};
use glyco_seal::fleet::{ReleaseOffer, UpdateOutcome};
use iroh::{Endpoint, EndpointAddr, EndpointId};
use iroh_blobs::get::request::{GetBlobItem, get_blob};
use n0_future::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::UpdateError;
use super::record::{self, INCOMING, InstallRequest, REQUEST, RETRIES};
use crate::config::UpdateConfig;

/// How long connecting to the node may take.
const CONNECT_WAIT: Duration = Duration::from_secs(20);
/// How long a whole fetch may take.
const FETCH_WAIT: Duration = Duration::from_secs(60 * 60);
/// Tries of one release before a transient failure counts as a refusal.
/// With the default first wait of a minute, doubling up to an hour, the
/// last try comes about two hours after the first.
pub const MAX_TRIES: u32 = 8;
/// The longest wait between two tries.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60 * 60);

/// The failed tries of the release being fetched, when they failed
/// transiently; saved as [`RETRIES`] after each change.
#[derive(Debug, Default)]
struct Tries {
    last: Option<Retry>,
}

/// [`Tries`] on disk: the count, not the time of the next try (the hub's
/// clock may be set at boot, a Pi having no RTC); a restarted hub waits
/// the back-off it had reached before trying again.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SavedTries {
    sha256: B256,
    failed: u32,
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    sha256: [u8; 32],
    failed: u32,
    not_before: Instant,
}

impl Tries {
    /// The count a previous run left; none when it left none or an
    /// unreadable one (counting afresh is the safe side: it only delays
    /// giving up).
    fn load(state_dir: &Path, first_wait: Duration, now: Instant) -> Self {
        let path = record::hub_dir(state_dir).join(RETRIES);
        match record::read_json::<SavedTries>(&path) {
            Ok(Some(saved)) if (1..MAX_TRIES).contains(&saved.failed) => Self {
                last: Some(Retry {
                    sha256: saved.sha256.0,
                    failed: saved.failed,
                    not_before: now + retry_wait(first_wait, saved.failed),
                }),
            },
            Ok(_) => Self::default(),
            Err(e) => {
                tracing::warn!(error = %e, "the update's retry count is unreadable; counting afresh");
                Self::default()
            }
        }
    }

    fn save(&self, state_dir: &Path) -> Result<(), UpdateError> {
        let path = record::hub_dir(state_dir).join(RETRIES);
        match self.last {
            Some(r) => record::write_json(
                &path,
                &SavedTries {
                    sha256: B256::from(r.sha256),
                    failed: r.failed,
                },
            ),
            None => record::remove(&path),
        }
    }

    /// Whether the release must wait before its next try.
    fn waiting(&self, sha256: &[u8; 32], now: Instant) -> bool {
        self.last
            .is_some_and(|r| r.sha256 == *sha256 && now < r.not_before)
    }

    /// Counts a failed try: the wait before the next one, or None when the
    /// failure is the bundle's or the tries are used up.
    fn failed(
        &mut self,
        sha256: [u8; 32],
        transient: bool,
        first_wait: Duration,
        now: Instant,
    ) -> Option<Duration> {
        let failed = match self.last {
            Some(r) if r.sha256 == sha256 => r.failed + 1,
            _ => 1,
        };
        if !transient || failed >= MAX_TRIES {
            self.last = None;
            return None;
        }
        let wait = retry_wait(first_wait, failed);
        self.last = Some(Retry {
            sha256,
            failed,
            not_before: now + wait,
        });
        Some(wait)
    }
}

/// The wait after `failed` transient failures: `first`, doubled each time,
/// at most an hour.
fn retry_wait(first: Duration, failed: u32) -> Duration {
    let doublings = failed.saturating_sub(1).min(16);
    first.saturating_mul(1 << doublings).min(MAX_RETRY_WAIT)
}

#[derive(Clone)]
pub struct Updater {
    pub endpoint: Endpoint,
    pub node: (EndpointId, SocketAddr),
    pub config: UpdateConfig,
    pub state_dir: PathBuf,
    pub chain: GlycoClient,
    /// The image release this hub runs.
    pub release: Option<String>,
    busy: Arc<AtomicBool>,
    /// The bundle this run handed to the installer: the node offers it
    /// until the hub reports an outcome, and between the installer taking
    /// the request and recording `installing` the record still says
    /// `fetching`, so without this the hub would fetch it again.
    handed_over: Arc<parking_lot::Mutex<Option<[u8; 32]>>>,
    tries: Arc<parking_lot::Mutex<Tries>>,
}

impl Updater {
    pub fn new(
        endpoint: Endpoint,
        node: (EndpointId, SocketAddr),
        config: UpdateConfig,
        state_dir: PathBuf,
        chain: GlycoClient,
        release: Option<String>,
    ) -> Self {
        Self {
            handed_over: Arc::default(),
            tries: Arc::new(parking_lot::Mutex::new(Tries::load(
                &state_dir,
                Duration::from_secs(config.retry_secs),
                Instant::now(),
            ))),
            endpoint,
            node,
            config,
            state_dir,
            chain,
            release,
            busy: Arc::default(),
        }
    }

    /// A release the node offers: fetched and checked in the background
    /// unless this hub runs it, is done with it, is busy, or takes no
    /// offers. Returns at once.
    pub fn offered(&self, offer: ReleaseOffer, token: &CancellationToken) {
        if self.release.as_deref() == Some(offer.version.as_str())
            || *self.handed_over.lock() == Some(offer.sha256)
        {
            return;
        }
        let sha256 = B256::from(offer.sha256);
        let last = record::load_outcome(&self.state_dir);
        if last.as_ref().is_some_and(|l| {
            l.sha256 == offer.sha256 && !matches!(l.outcome, UpdateOutcome::Fetching)
        }) {
            return;
        }
        if !self.config.accept_offers {
            let why = "updates are off on this hub ([update] accept_offers)".to_owned();
            if let Err(e) = record::save_outcome(
                &self.state_dir,
                &offer.version,
                sha256,
                UpdateOutcome::Refused { why },
            ) {
                tracing::error!(error = %e, "the update outcome was not recorded");
            }
            return;
        }
        if self.tries.lock().waiting(&offer.sha256, Instant::now())
            || record::hub_dir(&self.state_dir).join(REQUEST).exists()
            || self.busy.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let (this, token) = (self.clone(), token.clone());
        tokio::spawn(async move {
            tracing::info!(version = %offer.version, %sha256, bytes = offer.bytes, "fetching a release the fleet node offers");
            let result = tokio::select! {
                _ = token.cancelled() => None,
                result = this.fetch_and_check(&offer) => Some(result),
            };
            let recorded = match result {
                None => Ok(()),
                Some(Ok(request)) => {
                    tracing::info!(version = %request.version, "the release checks; asking for its install");
                    this.change_tries(|tries| *tries = Tries::default());
                    *this.handed_over.lock() = Some(request.sha256.0);
                    record::write_json(&record::hub_dir(&this.state_dir).join(REQUEST), &request)
                }
                Some(Err(e)) => {
                    let _ = record::remove(&record::hub_dir(&this.state_dir).join(INCOMING));
                    let retry_in = this.change_tries(|tries| {
                        tries.failed(
                            offer.sha256,
                            e.is_transient(),
                            Duration::from_secs(this.config.retry_secs),
                            Instant::now(),
                        )
                    });
                    match retry_in {
                        // The record keeps saying `fetching`.
                        Some(wait) => {
                            tracing::warn!(version = %offer.version, error = %e, retry_in = ?wait, "fetching the offered release failed; trying again later");
                            Ok(())
                        }
                        None => {
                            tracing::warn!(version = %offer.version, error = %e, "the offered release is refused");
                            let why = if e.is_transient() {
                                format!("gave up after {MAX_TRIES} tries: {e}")
                            } else {
                                e.to_string()
                            };
                            record::save_outcome(
                                &this.state_dir,
                                &offer.version,
                                sha256,
                                UpdateOutcome::Refused { why },
                            )
                        }
                    }
                }
            };
            if let Err(e) = recorded {
                tracing::error!(error = %e, "the update was not recorded");
            }
            this.busy.store(false, Ordering::SeqCst);
        });
    }

    /// Changes the count and saves it, so a restart goes on from it.
    fn change_tries<T>(&self, change: impl FnOnce(&mut Tries) -> T) -> T {
        let mut tries = self.tries.lock();
        let result = change(&mut tries);
        if let Err(e) = tries.save(&self.state_dir) {
            tracing::warn!(error = %e, "the update's retry count was not saved");
        }
        result
    }

    async fn fetch_and_check(&self, offer: &ReleaseOffer) -> Result<InstallRequest, UpdateError> {
        let sha256 = B256::from(offer.sha256);
        record::save_outcome(
            &self.state_dir,
            &offer.version,
            sha256,
            UpdateOutcome::Fetching,
        )?;
        let max = self.config.max_bundle_mib * 1024 * 1024;
        if offer.bytes > max {
            return Err(UpdateError::TooLarge { max });
        }
        let path = record::hub_dir(&self.state_dir).join(INCOMING);
        let (fetched, bytes) = tokio::time::timeout(FETCH_WAIT, self.fetch(offer, &path))
            .await
            .map_err(|_| UpdateError::Fetch("it took over an hour".into()))??;
        if fetched != sha256 {
            return Err(UpdateError::NotAsOffered(format!(
                "its SHA-256 is {fetched}, the offer said {sha256}"
            )));
        }
        let checked = super::verify(path, fetched, bytes, &self.config, &self.chain).await?;
        Ok(InstallRequest {
            version: checked.version,
            sha256: checked.sha256,
        })
    }

    /// Streams the blob into `into` (0600), in order, hashing as it goes.
    async fn fetch(&self, offer: &ReleaseOffer, into: &Path) -> Result<(B256, u64), UpdateError> {
        let failed = |what: &str, e: String| UpdateError::Fetch(format!("{what}: {e}"));
        let to = EndpointAddr::new(self.node.0).with_ip_addr(self.node.1);
        let connection =
            tokio::time::timeout(CONNECT_WAIT, self.endpoint.connect(to, iroh_blobs::ALPN))
                .await
                .map_err(|_| failed("connecting", "timed out".into()))?
                .map_err(|e| failed("connecting", e.to_string()))?;
        if let Some(dir) = into.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(super::check::io(dir))?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(into)
            .await
            .map_err(super::check::io(into))?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut stream = get_blob(
            connection.clone(),
            iroh_blobs::Hash::from_bytes(offer.blake3),
        );
        let result = loop {
            match stream.next().await {
                Some(GetBlobItem::Item(bao_tree::io::BaoContentItem::Leaf(leaf))) => {
                    if leaf.offset != written {
                        break Err(UpdateError::NotAsOffered("data out of order".into()));
                    }
                    written += leaf.data.len() as u64;
                    if written > offer.bytes {
                        break Err(UpdateError::NotAsOffered("longer than offered".into()));
                    }
                    hasher.update(&leaf.data);
                    file.write_all(&leaf.data)
                        .await
                        .map_err(super::check::io(into))?;
                }
                Some(GetBlobItem::Item(_)) => {}
                Some(GetBlobItem::Done(_)) => break Ok(()),
                Some(GetBlobItem::Error(e)) => break Err(failed("the stream", e.to_string())),
                None => break Err(failed("the stream", "ended early".into())),
            }
        };
        connection.close(0u32.into(), b"done");
        result?;
        if written != offer.bytes {
            return Err(UpdateError::NotAsOffered(format!(
                "{written} bytes, {} offered",
                offer.bytes
            )));
        }
        file.sync_all().await.map_err(super::check::io(into))?;
        Ok((B256::from_slice(&hasher.finalize()), written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_secs(60);

    #[test]
    fn waits_double_from_the_first_up_to_an_hour() {
        let waits: Vec<u64> = (1..MAX_TRIES)
            .map(|n| retry_wait(FIRST, n).as_secs())
            .collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600]);
        assert_eq!(retry_wait(FIRST, u32::MAX), MAX_RETRY_WAIT);
        // The last try comes about two hours after the first.
        assert_eq!(waits.iter().sum::<u64>(), 7380);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_wait_then_give_up_and_the_bundle_own_do_not_wait() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let mut tries = Tries::default();
        let now = Instant::now();
        assert!(!tries.waiting(&a, now));
        assert_eq!(tries.failed(a, true, FIRST, now), Some(FIRST));
        assert!(tries.waiting(&a, now));
        assert!(tries.waiting(&a, now + FIRST - Duration::from_millis(1)));
        assert!(!tries.waiting(&a, now + FIRST));
        // Another release is not held back by this one's wait.
        assert!(!tries.waiting(&b, now));
        for n in 2..MAX_TRIES {
            assert_eq!(
                tries.failed(a, true, FIRST, now),
                Some(retry_wait(FIRST, n))
            );
        }
        // The eighth transient failure is final.
        assert_eq!(tries.failed(a, true, FIRST, now), None);
        assert!(!tries.waiting(&a, now));
        // A failure of the bundle itself is final at once.
        assert_eq!(tries.failed(b, true, FIRST, now), Some(FIRST));
        assert_eq!(tries.failed(b, false, FIRST, now), None);
        // A new release starts counting afresh.
        assert_eq!(tries.failed(a, true, FIRST, now), Some(FIRST));
        assert_eq!(tries.failed(b, true, FIRST, now), Some(FIRST));
    }

    #[tokio::test(start_paused = true)]
    async fn the_count_outlives_a_restart_and_is_gone_once_settled() {
        let state = tempfile::tempdir().unwrap();
        let a = [7u8; 32];
        let now = Instant::now();
        let mut tries = Tries::load(state.path(), FIRST, now);
        assert!(tries.last.is_none());
        for _ in 0..3 {
            tries.failed(a, true, FIRST, now);
        }
        tries.save(state.path()).unwrap();
        let saved = record::hub_dir(state.path()).join(RETRIES);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // A restarted hub waits the back-off it had reached, then goes on
        // counting from there.
        let later = now + Duration::from_secs(5);
        let mut restarted = Tries::load(state.path(), FIRST, later);
        assert!(restarted.waiting(&a, later + retry_wait(FIRST, 3) - Duration::from_millis(1)));
        assert!(!restarted.waiting(&a, later + retry_wait(FIRST, 3)));
        for n in 4..MAX_TRIES {
            assert_eq!(
                restarted.failed(a, true, FIRST, later),
                Some(retry_wait(FIRST, n))
            );
        }
        assert_eq!(restarted.failed(a, true, FIRST, later), None);
        restarted.save(state.path()).unwrap();
        assert!(!saved.exists());

        // A count that makes no sense is not trusted.
        for bad in [r#"{"sha256":"0x01","failed":2}"#, "not json"] {
            std::fs::write(&saved, bad).unwrap();
            assert!(Tries::load(state.path(), FIRST, now).last.is_none());
        }
        for failed in [0, MAX_TRIES, u32::MAX] {
            record::write_json(
                &saved,
                &SavedTries {
                    sha256: B256::from(a),
                    failed,
                },
            )
            .unwrap();
            assert!(Tries::load(state.path(), FIRST, now).last.is_none());
        }
    }

    #[test]
    fn the_network_the_chain_and_the_disk_are_transient_and_the_bundle_is_not() {
        let transient = [
            UpdateError::Fetch("connecting: timed out".into()),
            UpdateError::Chain("connection refused".into()),
            UpdateError::Io {
                path: "/x".into(),
                source: std::io::Error::other("disk full"),
            },
        ];
        assert!(transient.iter().all(UpdateError::is_transient));
        let sha256 = B256::ZERO;
        let final_ = [
            UpdateError::NotPublished { sha256 },
            UpdateError::Withdrawn {
                sha256,
                version: "1".into(),
            },
            UpdateError::Signature("bad".into()),
            UpdateError::NotAsOffered("longer than offered".into()),
            UpdateError::TooLarge { max: 1 },
            UpdateError::Incompatible {
                bundle: "a".into(),
                hub: "b".into(),
            },
        ];
        assert!(!final_.iter().any(UpdateError::is_transient));
    }
}
