//! The physician's side of enrolling a hub (docs/APPLIANCE.md,
//! "Enrolment"): one-time tokens kept in a bounded book, and the enrolment
//! node that spends a token, offers the patient role on chain and hands the
//! hub the consortium's device-id key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use glyco_contracts::consent::roles_domain;
use glyco_contracts::{Address, B256, DeviceIdKey, GlycoClient, Role};
use glyco_seal::enrolment::{
    self, EnrolAnswer, EnrolRefusal, EnrolRequest, MAX_ENROL_MESSAGE_BYTES,
};
use glyco_seal::sharing;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Tokens the book keeps at most; spent and expired ones go first.
pub const MAX_TOKENS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum TokenBookError {
    #[error("reading {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{MAX_TOKENS} enrolment tokens are outstanding; wait for some to expire")]
    Full,
}

/// Who used a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spent {
    pub at: u64,
    pub hub: Option<Address>,
    pub patient: Option<Address>,
    pub hub_node: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    /// BLAKE3 of the token: the book never holds a live token.
    pub digest: B256,
    pub issued_at: u64,
    pub expires_at: u64,
    pub spent: Option<Spent>,
}

/// The physician's enrolment tokens, in `<dir>/enrolment-tokens.json` (0600).
#[derive(Debug)]
pub struct TokenBook {
    path: PathBuf,
    entries: Vec<TokenEntry>,
}

impl TokenBook {
    pub fn open(dir: &Path) -> Result<Self, TokenBookError> {
        let path = dir.join("enrolment-tokens.json");
        let entries = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| TokenBookError::Read {
                path: path.clone(),
                detail: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(TokenBookError::Read {
                    path,
                    detail: e.to_string(),
                });
            }
        };
        Ok(Self { path, entries })
    }

    pub fn entries(&self) -> &[TokenEntry] {
        &self.entries
    }

    /// A new token valid for `valid_secs` from `now`, recorded before it is
    /// returned.
    pub fn issue(&mut self, now: u64, valid_secs: u64) -> Result<String, TokenBookError> {
        if self.entries.len() >= MAX_TOKENS {
            // Used or dead tokens make room, oldest first.
            self.entries
                .retain(|e| e.spent.is_none() && e.expires_at > now);
        }
        if self.entries.len() >= MAX_TOKENS {
            return Err(TokenBookError::Full);
        }
        let token = enrolment::new_token();
        self.entries.push(TokenEntry {
            digest: enrolment::token_digest(&token),
            issued_at: now,
            expires_at: now + valid_secs,
            spent: None,
        });
        self.save()?;
        Ok(token)
    }

    /// Spends `token` (the first attempt does, whatever follows), or says
    /// why it cannot be.
    pub fn spend(&mut self, token: &str, now: u64, hub_node: &str) -> Result<(), EnrolRefusal> {
        let digest = enrolment::token_digest(token);
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.digest == digest)
            .ok_or(EnrolRefusal::UnknownToken)?;
        if entry.spent.is_some() {
            return Err(EnrolRefusal::TokenSpent);
        }
        if entry.expires_at <= now {
            return Err(EnrolRefusal::TokenExpired);
        }
        entry.spent = Some(Spent {
            at: now,
            hub: None,
            patient: None,
            hub_node: hub_node.to_owned(),
        });
        self.save()
            .map_err(|e| EnrolRefusal::Malformed(format!("the token book: {e}")))
    }

    /// Records whom a spent token enrolled.
    pub fn record(&mut self, token: &str, hub: Address, patient: Address) {
        let digest = enrolment::token_digest(token);
        if let Some(spent) = self
            .entries
            .iter_mut()
            .find(|e| e.digest == digest)
            .and_then(|e| e.spent.as_mut())
        {
            spent.hub = Some(hub);
            spent.patient = Some(patient);
        }
        // A failed write loses only who used the token, not that it is spent.
        let _ = self.save();
    }

    fn save(&self) -> Result<(), TokenBookError> {
        let bytes = serde_json::to_vec_pretty(&self.entries).unwrap_or_default();
        let write = |source| TokenBookError::Write {
            path: self.path.clone(),
            source,
        };
        glyco_contracts::files::write_atomically(&self.path, &bytes).map_err(write)
    }
}

/// One hub's enrolment as the node finished it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub hub: Address,
    pub patient: Address,
    pub hub_node: String,
    pub offer_tx: B256,
}

/// What the enrolment node did with one request (for the tool's output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Enrolled(Enrolled),
    Refused { hub_node: String, why: EnrolRefusal },
}

/// The enrolment node's protocol handler ([`glyco_seal::enrolment::ENROL_ALPN`]).
#[derive(Clone)]
pub struct EnrolService {
    book: Arc<Mutex<TokenBook>>,
    /// The physician's chain client (offers the patient role).
    chain: Arc<GlycoClient>,
    device_id_key: DeviceIdKey,
    outcomes: tokio::sync::mpsc::Sender<Outcome>,
    /// One enrolment at a time: each sends a transaction.
    busy: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for EnrolService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolService").finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl EnrolService {
    pub fn new(
        book: TokenBook,
        chain: GlycoClient,
        device_id_key: DeviceIdKey,
    ) -> (Self, tokio::sync::mpsc::Receiver<Outcome>) {
        let (outcomes, receiver) = tokio::sync::mpsc::channel(64);
        (
            Self {
                book: Arc::new(Mutex::new(book)),
                chain: Arc::new(chain),
                device_id_key,
                outcomes,
                busy: Arc::new(tokio::sync::Mutex::new(())),
            },
            receiver,
        )
    }

    /// Issues a token through the service's book.
    pub fn issue(&self, valid_secs: u64) -> Result<String, TokenBookError> {
        self.book.lock().issue(now_secs(), valid_secs)
    }

    /// Handles one request from the hub whose node is `hub_node`.
    pub async fn enrol(&self, request: EnrolRequest, hub_node: &str) -> EnrolAnswer {
        let _one_at_a_time = self.busy.lock().await;
        let answer = self.decide(&request, hub_node).await;
        let outcome = match &answer {
            EnrolAnswer::Accepted { offer_tx, .. } => {
                self.book.lock().record(
                    &request.token,
                    request.consent.hub,
                    request.consent.patient,
                );
                Outcome::Enrolled(Enrolled {
                    hub: request.consent.hub,
                    patient: request.consent.patient,
                    hub_node: hub_node.to_owned(),
                    offer_tx: *offer_tx,
                })
            }
            EnrolAnswer::Refused(why) => Outcome::Refused {
                hub_node: hub_node.to_owned(),
                why: why.clone(),
            },
        };
        let _ = self.outcomes.try_send(outcome);
        answer
    }

    async fn decide(&self, request: &EnrolRequest, hub_node: &str) -> EnrolAnswer {
        let refuse = EnrolAnswer::Refused;
        if let Err(why) = self.book.lock().spend(&request.token, now_secs(), hub_node) {
            return refuse(why);
        }
        let deployment = self.chain.deployment();
        let domain = roles_domain(deployment.chain_id, deployment.contracts.roles);
        let consent = &request.consent;
        if !consent.is_signed_by_hub(&domain) || consent.deadline.get() <= now_secs() {
            return refuse(EnrolRefusal::BadConsent);
        }
        match self.chain.role_of(consent.patient).await {
            Ok(Some(Role::None)) => {}
            Ok(_) => return refuse(EnrolRefusal::PatientTaken),
            Err(e) => return refuse(EnrolRefusal::Chain(e.to_string())),
        }
        match self.chain.register_patient(consent.patient).await {
            Ok(outcome) => EnrolAnswer::Accepted {
                device_id_key: self.device_id_key.to_bytes(),
                offer_tx: outcome.hash,
            },
            Err(e) => refuse(EnrolRefusal::Chain(e.to_string())),
        }
    }
}

impl ProtocolHandler for EnrolService {
    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        let hub_node = connection.remote_id().to_string();
        let Ok((mut send, mut recv)) = connection.accept_bi().await else {
            return Ok(());
        };
        let answer = match tokio::time::timeout(
            std::time::Duration::from_secs(30),
            recv.read_to_end(MAX_ENROL_MESSAGE_BYTES),
        )
        .await
        {
            Ok(Ok(bytes)) => match sharing::decode::<EnrolRequest>(&bytes) {
                Ok(request) => self.enrol(request, &hub_node).await,
                Err(e) => EnrolAnswer::Refused(EnrolRefusal::Malformed(e.to_string())),
            },
            Ok(Err(e)) => EnrolAnswer::Refused(EnrolRefusal::Malformed(e.to_string())),
            Err(_) => EnrolAnswer::Refused(EnrolRefusal::Malformed("no request in 30 s".into())),
        };
        if let Ok(bytes) = sharing::encode(&answer) {
            let _ = send.write_all(&bytes).await;
            let _ = send.finish();
        }
        connection.closed().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_spent_once_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = TokenBook::open(dir.path()).unwrap();
        let token = book.issue(1000, 600).unwrap();
        let late = book.issue(1000, 10).unwrap();
        assert_eq!(
            book.spend("AAAA", 1001, "n"),
            Err(EnrolRefusal::UnknownToken)
        );
        assert_eq!(
            book.spend(&late, 1010, "n"),
            Err(EnrolRefusal::TokenExpired)
        );
        book.spend(&token, 1001, "n").unwrap();
        // Kept across a restart of the tool.
        let mut book = TokenBook::open(dir.path()).unwrap();
        assert_eq!(book.spend(&token, 1002, "m"), Err(EnrolRefusal::TokenSpent));
        let text = std::fs::read_to_string(dir.path().join("enrolment-tokens.json")).unwrap();
        assert!(!text.contains(&token), "the book holds only digests");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("enrolment-tokens.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn the_book_is_bounded_and_makes_room_from_dead_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = TokenBook::open(dir.path()).unwrap();
        for _ in 0..MAX_TOKENS {
            book.issue(1000, 60).unwrap();
        }
        assert!(matches!(book.issue(1000, 60), Err(TokenBookError::Full)));
        // Once they expire, new ones fit.
        book.issue(2000, 60).unwrap();
        assert_eq!(book.entries().len(), 1);
    }
}
