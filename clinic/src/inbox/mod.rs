//! The clinic's alert inbox (`glyco-clinic alert-inbox`): hubs deliver
//! their patients' alerts for the physicians of a clinic; physicians follow
//! their inbox live and acknowledge; hubs poll for the acknowledgements,
//! which stop their escalation (docs/CLINIC.md, "Alerts").
//!
//! Anyone may connect, so every message carries its own signature and is
//! checked against the chain before anything is kept: a delivery must be
//! signed by the hub, the hub must serve the patient, and the recipient must
//! hold a live grant from the patient; a follow or an acknowledgement must
//! be signed by the physician it names, and be fresh. Reads are bounded in
//! size and time, followers and work in flight are capped.
//!
//! An emergency service's inbox also keeps a duty roster ([`roster`]): a
//! hub whose patient enabled an emergency policy on chain asks who is on
//! duty, and delivers to each; such a delivery needs no grant, but the
//! patient's emergency policy and the recipient's place in the service on
//! chain.

pub mod roster;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use glyco_contracts::Address;
use glyco_seal::alerts::{
    self, AlertAnswer, AlertRefusal, FRESHNESS_MS, HubAlertMessage, InboxFrame, InboxRequest,
    MAX_ACKS_PER_ANSWER, MAX_ALERT_MESSAGE_BYTES,
};
use iroh::endpoint::{Connection, SendStream};
use iroh::protocol::{AcceptError, ProtocolHandler};
use parking_lot::Mutex;
use tokio::sync::{Semaphore, broadcast};

use crate::proxy::chain_view::ChainView;
use roster::DutyRoster;
use store::{InboxStore, Kept, StoredAlert};

/// Requests one hub connection may make before it is closed.
const REQUESTS_PER_CONNECTION: usize = 1024;
/// How long a peer may take to send one request.
const READ_WAIT: Duration = Duration::from_secs(20);
/// A follower hears from the inbox at least this often.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Live feeds kept; beyond, those nobody follows are dropped.
const MAX_LIVE_FEEDS: usize = 10_000;
/// Signed physician requests remembered, so one cannot be replayed while fresh.
const REMEMBERED_REQUESTS: usize = 100_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Digests of recent signed requests: a set to look up, a queue to forget
/// the oldest.
type SeenRequests = (
    std::collections::HashSet<[u8; 32]>,
    std::collections::VecDeque<[u8; 32]>,
);

/// What the inbox counts (its log and the tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxCounts {
    pub kept: u64,
    pub duplicates: u64,
    pub acks: u64,
    pub refused: u64,
    pub rosters: u64,
}

pub struct Inbox {
    chain: ChainView,
    store: Mutex<InboxStore>,
    live: Mutex<HashMap<Address, broadcast::Sender<StoredAlert>>>,
    /// Digests of the signed follows and acks seen lately (replay guard).
    seen: Mutex<SeenRequests>,
    followers: Arc<Semaphore>,
    in_flight: Arc<Semaphore>,
    counts: Mutex<InboxCounts>,
    /// An emergency service's duty roster, if this inbox serves one.
    duty: Option<DutyRoster>,
}

impl Inbox {
    pub fn new(
        chain: ChainView,
        store: InboxStore,
        max_followers: usize,
        max_in_flight: usize,
    ) -> Self {
        Self {
            chain,
            store: Mutex::new(store),
            live: Mutex::new(HashMap::new()),
            seen: Mutex::default(),
            followers: Arc::new(Semaphore::new(max_followers)),
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            counts: Mutex::new(InboxCounts::default()),
            duty: None,
        }
    }

    /// This inbox names `duty` to hubs asking for an emergency service.
    pub fn with_duty_roster(mut self, duty: DutyRoster) -> Self {
        self.duty = Some(duty);
        self
    }

    pub fn counts(&self) -> InboxCounts {
        self.counts.lock().clone()
    }

    fn refused(&self, reason: AlertRefusal) -> AlertRefusal {
        self.counts.lock().refused += 1;
        tracing::info!(%reason, "refused");
        reason
    }

    /// Refuses a signed request seen before (within the remembered ones):
    /// a follow or an ack cannot be replayed by someone who saw it.
    fn first_time(&self, signature: &[u8]) -> Result<(), AlertRefusal> {
        let digest = *blake3::hash(signature).as_bytes();
        let mut seen = self.seen.lock();
        if !seen.0.insert(digest) {
            return Err(AlertRefusal::Stale { at_ms: now_ms() });
        }
        seen.1.push_back(digest);
        if seen.1.len() > REMEMBERED_REQUESTS
            && let Some(old) = seen.1.pop_front()
        {
            seen.0.remove(&old);
        }
        Ok(())
    }

    fn sender(&self, recipient: Address) -> broadcast::Sender<StoredAlert> {
        let mut live = self.live.lock();
        if live.len() >= MAX_LIVE_FEEDS && !live.contains_key(&recipient) {
            live.retain(|_, feed| feed.receiver_count() > 0);
        }
        live.entry(recipient)
            .or_insert_with(|| broadcast::channel(256).0)
            .clone()
    }

    /// Whether `physician` holds a live grant from `patient` (read per block).
    async fn granted(&self, patient: Address, physician: Address) -> Result<(), AlertRefusal> {
        match self.chain.grant(patient, physician).await {
            Ok(Some(grant)) if grant.live => Ok(()),
            Ok(_) => Err(AlertRefusal::NoLiveGrant),
            Err(e) => Err(AlertRefusal::ChainUnavailable {
                detail: e.to_string(),
            }),
        }
    }

    /// Whether the patient's emergency policy is enabled on chain.
    async fn emergency_consent(&self, patient: Address) -> Result<(), AlertRefusal> {
        match self.chain.emergency_consent(patient).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(AlertRefusal::NoEmergencyConsent),
            Err(e) => Err(AlertRefusal::ChainUnavailable {
                detail: e.to_string(),
            }),
        }
    }

    /// Whether `physician` is an active physician of emergency service `entity`.
    async fn on_duty_for(&self, physician: Address, entity: Address) -> Result<bool, AlertRefusal> {
        self.chain
            .emergency_service_of(physician)
            .await
            .map(|service| service == Some(entity))
            .map_err(|e| AlertRefusal::ChainUnavailable {
                detail: e.to_string(),
            })
    }

    /// The hub's patient, if the chain says the hub serves one.
    async fn patient_of_hub(&self, hub: Address) -> Result<Option<Address>, AlertRefusal> {
        self.chain
            .hub_patient(hub)
            .await
            .map_err(|e| AlertRefusal::ChainUnavailable {
                detail: e.to_string(),
            })
    }

    /// The duty roster for `entity`, to a hub whose patient consented:
    /// only the names the chain confirms.
    async fn roster(
        &self,
        signed: glyco_seal::alerts::Signed<alerts::RosterRequest>,
    ) -> Result<AlertAnswer, AlertRefusal> {
        let request = &signed.body;
        let signer = signed.signer().map_err(|e| AlertRefusal::BadSignature {
            detail: e.to_string(),
        })?;
        if signer != request.hub {
            return Err(AlertRefusal::WrongSigner {
                expected: request.hub,
                actual: signer,
            });
        }
        fresh(request.at_ms)?;
        let Some(patient) = self.patient_of_hub(request.hub).await? else {
            return Err(AlertRefusal::NotPatientsHub {
                hub: request.hub,
                patient: Address::ZERO,
            });
        };
        self.emergency_consent(patient).await?;
        let duty = self.duty.as_ref().ok_or(AlertRefusal::NoRoster {
            entity: request.entity,
        })?;
        let named = duty.read().map_err(|e| AlertRefusal::Storage {
            detail: e.to_string(),
        })?;
        let mut physicians = Vec::new();
        for physician in named {
            if self.on_duty_for(physician, request.entity).await? {
                physicians.push(physician);
            }
        }
        self.counts.lock().rosters += 1;
        tracing::info!(hub = %request.hub, entity = %request.entity, on_duty = physicians.len(), "duty roster given");
        Ok(AlertAnswer::Roster { physicians })
    }

    pub async fn on_hub_message(&self, message: HubAlertMessage) -> AlertAnswer {
        match self.hub_message(message).await {
            Ok(answer) => answer,
            Err(reason) => AlertAnswer::Refused {
                reason: self.refused(reason),
            },
        }
    }

    async fn hub_message(&self, message: HubAlertMessage) -> Result<AlertAnswer, AlertRefusal> {
        match message {
            HubAlertMessage::Deliver(signed) => {
                let envelope = &signed.body;
                let signer = signed.signer().map_err(|e| AlertRefusal::BadSignature {
                    detail: e.to_string(),
                })?;
                if signer != envelope.hub {
                    return Err(AlertRefusal::WrongSigner {
                        expected: envelope.hub,
                        actual: signer,
                    });
                }
                if envelope.id != alerts::alert_id(envelope.hub, envelope.alert_no) {
                    return Err(AlertRefusal::Malformed {
                        detail: "the id is not the hub's id of that alert number".into(),
                    });
                }
                if self.patient_of_hub(envelope.hub).await? != Some(envelope.patient) {
                    return Err(AlertRefusal::NotPatientsHub {
                        hub: envelope.hub,
                        patient: envelope.patient,
                    });
                }
                match envelope.emergency {
                    // The emergency step: the patient's emergency policy is
                    // the consent, the service's membership the recipient's.
                    Some(entity) => {
                        self.emergency_consent(envelope.patient).await?;
                        if !self.on_duty_for(envelope.recipient, entity).await? {
                            return Err(AlertRefusal::NotOnDuty {
                                physician: envelope.recipient,
                                entity,
                            });
                        }
                    }
                    None => self.granted(envelope.patient, envelope.recipient).await?,
                }
                let recipient = envelope.recipient;
                let kept = self.store.lock().keep(*signed, now_ms()).map_err(|e| {
                    AlertRefusal::Storage {
                        detail: e.to_string(),
                    }
                })?;
                match kept {
                    Kept::New(stored) => {
                        self.counts.lock().kept += 1;
                        tracing::info!(
                            recipient = %recipient,
                            kind = %stored.envelope.body.kind,
                            id = %alerts::id_hex(&stored.envelope.body.id),
                            "alert kept"
                        );
                        let _ = self.sender(recipient).send(*stored);
                        Ok(AlertAnswer::Kept { already: false })
                    }
                    Kept::Already => {
                        self.counts.lock().duplicates += 1;
                        Ok(AlertAnswer::Kept { already: true })
                    }
                    Kept::Full => Err(AlertRefusal::Full {
                        limit: store::MAX_ALERTS_PER_RECIPIENT,
                    }),
                }
            }
            HubAlertMessage::Poll(signed) => {
                let signer = signed.signer().map_err(|e| AlertRefusal::BadSignature {
                    detail: e.to_string(),
                })?;
                if signer != signed.body.hub {
                    return Err(AlertRefusal::WrongSigner {
                        expected: signed.body.hub,
                        actual: signer,
                    });
                }
                fresh(signed.body.at_ms)?;
                let acks = self.store.lock().acks_for(
                    signed.body.hub,
                    signed.body.after,
                    MAX_ACKS_PER_ANSWER,
                );
                Ok(AlertAnswer::Acks { acks })
            }
            HubAlertMessage::Roster(signed) => self.roster(signed).await,
        }
    }

    /// Serves one physician request on its stream.
    async fn on_physician_request(&self, request: InboxRequest, send: &mut SendStream) {
        let result = match request {
            InboxRequest::Ack(signed) => self
                .ack(signed)
                .map(|already| InboxFrame::Recorded { already }),
            InboxRequest::Follow(signed) => match self.follow_check(&signed) {
                Ok(()) => {
                    self.follow(signed.body, send).await;
                    return;
                }
                Err(reason) => Err(reason),
            },
        };
        let frame = match result {
            Ok(frame) => frame,
            Err(reason) => InboxFrame::Refused {
                reason: self.refused(reason),
            },
        };
        if let Ok(bytes) = alerts::frame(&frame) {
            let _ = send.write_all(&bytes).await;
        }
        let _ = send.finish();
    }

    fn ack(
        &self,
        signed: glyco_seal::alerts::Signed<alerts::AlertAck>,
    ) -> Result<bool, AlertRefusal> {
        let signer = signed.signer().map_err(|e| AlertRefusal::BadSignature {
            detail: e.to_string(),
        })?;
        if signer != signed.body.by {
            return Err(AlertRefusal::WrongSigner {
                expected: signed.body.by,
                actual: signer,
            });
        }
        fresh(signed.body.at_ms)?;
        self.first_time(&signed.signature)?;
        let mut store = self.store.lock();
        let known = store
            .find(signed.body.by, &signed.body.alert)
            .is_some_and(|a| a.envelope.body.hub == signed.body.hub);
        if !known {
            return Err(AlertRefusal::UnknownAlert);
        }
        let id = signed.body.alert;
        let new = store
            .record_ack(signed)
            .map_err(|e| AlertRefusal::Storage {
                detail: e.to_string(),
            })?;
        if new {
            self.counts.lock().acks += 1;
            tracing::info!(id = %alerts::id_hex(&id), "acknowledged");
        }
        Ok(!new)
    }

    fn follow_check(
        &self,
        signed: &glyco_seal::alerts::Signed<alerts::FollowRequest>,
    ) -> Result<(), AlertRefusal> {
        let signer = signed.signer().map_err(|e| AlertRefusal::BadSignature {
            detail: e.to_string(),
        })?;
        if signer != signed.body.physician {
            return Err(AlertRefusal::WrongSigner {
                expected: signed.body.physician,
                actual: signer,
            });
        }
        fresh(signed.body.at_ms)?;
        self.first_time(&signed.signature)
    }

    /// The backlog after `after`, then (if asked) live alerts and heartbeats
    /// until the follower goes away.
    async fn follow(&self, request: alerts::FollowRequest, send: &mut SendStream) {
        let Ok(_follower) = self.followers.clone().try_acquire_owned() else {
            if let Ok(bytes) = alerts::frame(&InboxFrame::Refused {
                reason: self.refused(AlertRefusal::Busy),
            }) {
                let _ = send.write_all(&bytes).await;
            }
            let _ = send.finish();
            return;
        };
        // Subscribed before the backlog is read, so nothing falls between.
        let mut live = self.sender(request.physician).subscribe();
        let backlog = self
            .store
            .lock()
            .alerts_after(request.physician, request.after);
        let mut last = request.after;
        for stored in backlog {
            last = stored.seq;
            if write(send, &alert_frame(stored)).await.is_err() {
                return;
            }
        }
        if write(send, &InboxFrame::CaughtUp { seq: last })
            .await
            .is_err()
            || !request.live
        {
            let _ = send.finish();
            return;
        }
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.tick().await;
        loop {
            let frame = tokio::select! {
                _ = heartbeat.tick() => InboxFrame::Heartbeat { at_ms: now_ms() },
                received = live.recv() => match received {
                    Ok(stored) if stored.seq > last => {
                        last = stored.seq;
                        alert_frame(stored)
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow for the live feed: catch up from the store.
                        let missed = self.store.lock().alerts_after(request.physician, last);
                        let mut failed = false;
                        for stored in missed {
                            last = stored.seq;
                            failed |= write(send, &alert_frame(stored)).await.is_err();
                        }
                        if failed {
                            return;
                        }
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            if write(send, &frame).await.is_err() {
                return;
            }
        }
    }
}

fn alert_frame(stored: StoredAlert) -> InboxFrame {
    InboxFrame::Alert {
        seq: stored.seq,
        envelope: Box::new(stored.envelope),
    }
}

async fn write(send: &mut SendStream, frame: &InboxFrame) -> Result<(), ()> {
    let bytes = alerts::frame(frame).map_err(|_| ())?;
    send.write_all(&bytes).await.map_err(|_| ())
}

fn fresh(at_ms: i64) -> Result<(), AlertRefusal> {
    if (now_ms().saturating_sub(at_ms)).abs() > FRESHNESS_MS {
        return Err(AlertRefusal::Stale { at_ms });
    }
    Ok(())
}

/// The hubs' side ([`alerts::ALERT_ALPN`]).
#[derive(Clone)]
pub struct AlertsFromHubs(pub Arc<Inbox>);

/// The physicians' side ([`alerts::INBOX_ALPN`]).
#[derive(Clone)]
pub struct InboxForPhysicians(pub Arc<Inbox>);

impl std::fmt::Debug for AlertsFromHubs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertsFromHubs")
    }
}

impl std::fmt::Debug for InboxForPhysicians {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InboxForPhysicians")
    }
}

async fn read_request<T: for<'de> serde::Deserialize<'de>>(
    recv: &mut iroh::endpoint::RecvStream,
) -> Result<T, AlertRefusal> {
    match tokio::time::timeout(READ_WAIT, recv.read_to_end(MAX_ALERT_MESSAGE_BYTES)).await {
        Err(_) => Err(AlertRefusal::Malformed {
            detail: "the request took too long to arrive".into(),
        }),
        Ok(Err(e)) => Err(AlertRefusal::Malformed {
            detail: format!("reading the request: {e}"),
        }),
        Ok(Ok(bytes)) => alerts::decode(&bytes).map_err(|e| AlertRefusal::Malformed {
            detail: e.to_string(),
        }),
    }
}

impl ProtocolHandler for AlertsFromHubs {
    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        for _ in 0..REQUESTS_PER_CONNECTION {
            let Ok((mut send, mut recv)) = connection.accept_bi().await else {
                return Ok(());
            };
            let answer = match read_request::<HubAlertMessage>(&mut recv).await {
                Err(reason) => AlertAnswer::Refused {
                    reason: self.0.refused(reason),
                },
                Ok(message) => match self.0.in_flight.clone().try_acquire_owned() {
                    Ok(_permit) => self.0.on_hub_message(message).await,
                    Err(_) => AlertAnswer::Refused {
                        reason: self.0.refused(AlertRefusal::Busy),
                    },
                },
            };
            let Ok(bytes) = alerts::encode(&answer) else {
                return Ok(());
            };
            if send.write_all(&bytes).await.is_err() || send.finish().is_err() {
                return Ok(());
            }
        }
        connection.close(0u32.into(), b"request limit per connection");
        Ok(())
    }
}

impl ProtocolHandler for InboxForPhysicians {
    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        // One request per connection: a follow holds its stream.
        let Ok((mut send, mut recv)) = connection.accept_bi().await else {
            return Ok(());
        };
        match read_request::<InboxRequest>(&mut recv).await {
            Ok(request) => self.0.on_physician_request(request, &mut send).await,
            Err(reason) => {
                let frame = InboxFrame::Refused {
                    reason: self.0.refused(reason),
                };
                if let Ok(bytes) = alerts::frame(&frame) {
                    let _ = send.write_all(&bytes).await;
                }
                let _ = send.finish();
            }
        }
        // Let the last frames reach the peer before the connection goes.
        let _ = tokio::time::timeout(Duration::from_secs(5), connection.closed()).await;
        Ok(())
    }
}
