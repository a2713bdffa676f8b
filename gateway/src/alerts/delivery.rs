//! Delivering alerts to alert inboxes over iroh, and polling them for
//! acknowledgements.
//!
//! The hub may know several inboxes (its clinic's, another clinic's, an
//! emergency service's); a target goes to the inbox whose node the chain
//! enrols for the target's entity. Before an alert leaves the hub, the
//! physician's umbral key (on chain) seals what the alert says: the inbox
//! and the network see only the envelope. The inbox checks the hub's
//! signature, that the hub serves the patient and that the physician holds
//! a live grant; a refusal is kept on the target and retried.
//!
//! The emergency step: only with the patient's emergency policy enabled on
//! chain (their consent), the hub asks the emergency service's inbox for
//! its duty roster, keeps the names the chain confirms as the service's
//! active physicians, and delivers one envelope to each.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use glyco_contracts::{Address, B256, EntityKind, GlycoClient, PhysicianRecord};
use glyco_seal::alerts::{
    self, AckPoll, AlertAck, AlertAnswer, AlertDetails, AlertEnvelope, HubAlertMessage,
    MAX_ALERT_MESSAGE_BYTES, MAX_DUTY_ROSTER, RosterRequest, SealedDetails, Signed,
};
use glyco_seal::keys::public_key_from_bytes;
use iroh::endpoint::Connection;
use iroh::{Endpoint, EndpointAddr, EndpointId};

use super::engine::{AlertRecord, Target};

/// How long one exchange with an inbox may take.
const EXCHANGE_WAIT: Duration = Duration::from_secs(5);
/// Chain answers reused for this long.
const CHAIN_TTL: Duration = Duration::from_secs(30);

/// A delivery that was kept: when, and for each physician reached the
/// evidence digest of the signed envelope.
pub struct Delivered {
    pub at_ms: i64,
    pub reached: Vec<(Address, B256)>,
}

/// One inbox node and the connection to it.
struct InboxPeer {
    id: EndpointId,
    addr: SocketAddr,
    connection: Option<Connection>,
    /// The entity the chain enrols this node for, and when that was read.
    entity: Option<(Instant, Option<Address>)>,
    /// The inbox's ack numbers seen so far.
    ack_cursor: u64,
    /// When polling may be tried again after failing, and the wait.
    poll_retry: Option<(Instant, Duration)>,
}

impl InboxPeer {
    async fn exchange(
        &mut self,
        endpoint: &Endpoint,
        message: &HubAlertMessage,
    ) -> Result<AlertAnswer, String> {
        let bytes = alerts::encode(message).map_err(|e| e.to_string())?;
        for attempt in 0..2 {
            let connection = match &self.connection {
                Some(c) if c.close_reason().is_none() => c.clone(),
                _ => {
                    let to = EndpointAddr::new(self.id).with_ip_addr(self.addr);
                    let c = tokio::time::timeout(
                        EXCHANGE_WAIT,
                        endpoint.connect(to, alerts::ALERT_ALPN),
                    )
                    .await
                    .map_err(|_| "connecting to the inbox timed out".to_string())?
                    .map_err(|e| format!("connecting to the inbox: {e}"))?;
                    self.connection = Some(c.clone());
                    c
                }
            };
            let result = tokio::time::timeout(EXCHANGE_WAIT, async {
                let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
                send.write_all(&bytes).await.map_err(|e| e.to_string())?;
                send.finish().map_err(|e| e.to_string())?;
                let answer = recv
                    .read_to_end(MAX_ALERT_MESSAGE_BYTES)
                    .await
                    .map_err(|e| e.to_string())?;
                alerts::decode::<AlertAnswer>(&answer).map_err(|e| e.to_string())
            })
            .await
            .map_err(|_| "the inbox did not answer in time".to_string())
            .and_then(|r| r);
            match result {
                Ok(answer) => return Ok(answer),
                // A connection the inbox closed (restart): dial once more.
                Err(_) if attempt == 0 => self.connection = None,
                Err(e) => {
                    self.connection = None;
                    return Err(e);
                }
            }
        }
        Err("unreachable".into())
    }
}

pub struct Delivery {
    endpoint: Endpoint,
    hub: PrivateKeySigner,
    patient: Address,
    chain: GlycoClient,
    peers: Vec<InboxPeer>,
    keys: HashMap<Address, (Instant, Vec<u8>)>,
    physicians: HashMap<Address, (Instant, PhysicianRecord)>,
    /// Per target (a physician's or an emergency service's address): when
    /// it may be tried again after failing, and the wait.
    retry: HashMap<Address, (Instant, Duration)>,
}

fn now_ms() -> i64 {
    crate::reading::now_millis()
}

fn chain_error(e: impl std::fmt::Display) -> String {
    format!("chain: {e}")
}

impl Delivery {
    pub fn new(
        endpoint: Endpoint,
        inboxes: Vec<(EndpointId, SocketAddr)>,
        hub: PrivateKeySigner,
        patient: Address,
        chain: GlycoClient,
    ) -> Self {
        let peers = inboxes
            .into_iter()
            .map(|(id, addr)| InboxPeer {
                id,
                addr,
                connection: None,
                entity: None,
                ack_cursor: 0,
                poll_retry: None,
            })
            .collect();
        Self {
            endpoint,
            hub,
            patient,
            chain,
            peers,
            keys: HashMap::new(),
            physicians: HashMap::new(),
            retry: HashMap::new(),
        }
    }

    fn retry_key(target: &Target) -> Option<Address> {
        match target {
            Target::Physician { address } => Some(*address),
            Target::Emergency { entity } => Some(*entity),
            _ => None,
        }
    }

    /// False while deliveries to `target` are in back-off after a failure.
    pub fn may_try(&self, target: &Target) -> bool {
        Self::retry_key(target)
            .and_then(|key| self.retry.get(&key))
            .is_none_or(|(at, _)| Instant::now() >= *at)
    }

    fn settle(&mut self, target: &Target, ok: bool) {
        let Some(key) = Self::retry_key(target) else {
            return;
        };
        if ok {
            self.retry.remove(&key);
            return;
        }
        let wait = self
            .retry
            .get(&key)
            .map_or(Duration::from_millis(500), |(_, w)| {
                (*w * 2).min(Duration::from_secs(30))
            });
        self.retry.insert(key, (Instant::now() + wait, wait));
    }

    async fn physician_key(&mut self, physician: Address) -> Result<Vec<u8>, String> {
        if let Some((at, key)) = self.keys.get(&physician)
            && at.elapsed() < CHAIN_TTL
        {
            return Ok(key.clone());
        }
        let bytes = self
            .chain
            .physician_pre_key(physician)
            .await
            .map_err(chain_error)?
            .ok_or("the physician has published no umbral key on chain")?;
        public_key_from_bytes(&bytes).map_err(|e| e.to_string())?;
        self.keys.insert(physician, (Instant::now(), bytes.clone()));
        Ok(bytes)
    }

    async fn physician(&mut self, physician: Address) -> Result<PhysicianRecord, String> {
        if let Some((at, record)) = self.physicians.get(&physician)
            && at.elapsed() < CHAIN_TTL
        {
            return Ok(*record);
        }
        let record = self
            .chain
            .physician_of(physician)
            .await
            .map_err(chain_error)?;
        self.physicians.insert(physician, (Instant::now(), record));
        Ok(record)
    }

    /// The configured inbox whose node the chain enrols for `entity`.
    async fn peer_for(&mut self, entity: Address) -> Result<usize, String> {
        for index in 0..self.peers.len() {
            let peer = &self.peers[index];
            let serves = match peer.entity {
                Some((at, serves)) if at.elapsed() < CHAIN_TTL => serves,
                _ => {
                    let node = B256::from(*peer.id.as_bytes());
                    let serves = self
                        .chain
                        .active_node_entity(node)
                        .await
                        .map_err(chain_error)?;
                    self.peers[index].entity = Some((Instant::now(), serves));
                    serves
                }
            };
            if serves == Some(entity) {
                return Ok(index);
            }
        }
        Err(format!(
            "no configured inbox is enrolled on chain for entity {entity}"
        ))
    }

    /// Seals `record` for `physician` and hands it to the inbox at `peer`:
    /// the evidence digest of the kept envelope, or why not.
    async fn hand_over(
        &mut self,
        peer: usize,
        record: &AlertRecord,
        step: u8,
        physician: Address,
        emergency: Option<Address>,
    ) -> Result<B256, String> {
        let key = public_key_from_bytes(&self.physician_key(physician).await?)
            .map_err(|e| e.to_string())?;
        let details = AlertDetails {
            device: record.device.clone(),
            explanation: record.explanation.clone(),
            confidence: record.confidence,
            at_ms: record.at_ms,
        };
        let hub = self.hub.address();
        let envelope = AlertEnvelope {
            id: alerts::alert_id(hub, record.no),
            hub,
            patient: self.patient,
            alert_no: record.no,
            recipient: physician,
            step,
            kind: record.kind.clone(),
            severity: record.severity.clone(),
            created_at_ms: record.created_at_ms,
            reading_received_at_ms: record.reading_received_at_ms,
            details: SealedDetails::seal(&details, &key).map_err(|e| e.to_string())?,
            emergency,
        };
        let signed = Signed::sign(envelope, &self.hub).map_err(|e| e.to_string())?;
        let evidence = signed.evidence().map_err(|e| e.to_string())?;
        let message = HubAlertMessage::Deliver(Box::new(signed));
        match self.peers[peer].exchange(&self.endpoint, &message).await? {
            AlertAnswer::Kept { .. } => Ok(evidence),
            AlertAnswer::Refused { reason } => Err(format!("the inbox refused: {reason}")),
            other => Err(format!("unexpected answer: {other:?}")),
        }
    }

    /// Delivers `record` to `target` (a physician or an emergency service).
    pub async fn deliver(
        &mut self,
        record: &AlertRecord,
        step: u8,
        target: &Target,
    ) -> Result<Delivered, String> {
        let result = match target {
            Target::Physician { address } => {
                self.deliver_to_physician(record, step, *address).await
            }
            Target::Emergency { entity } => self.deliver_to_emergency(record, step, *entity).await,
            other => Err(format!("{other} is not delivered through an inbox")),
        };
        self.settle(target, result.is_ok());
        result
    }

    async fn deliver_to_physician(
        &mut self,
        record: &AlertRecord,
        step: u8,
        physician: Address,
    ) -> Result<Delivered, String> {
        let enrolment = self.physician(physician).await?;
        if !enrolment.active {
            return Err("not an active physician on chain".into());
        }
        let peer = self.peer_for(enrolment.entity).await?;
        let evidence = self.hand_over(peer, record, step, physician, None).await?;
        Ok(Delivered {
            at_ms: now_ms(),
            reached: vec![(physician, evidence)],
        })
    }

    async fn deliver_to_emergency(
        &mut self,
        record: &AlertRecord,
        step: u8,
        entity: Address,
    ) -> Result<Delivered, String> {
        // Nothing about the patient leaves without their consent on chain.
        let policy = self
            .chain
            .emergency_policy_of(self.patient)
            .await
            .map_err(chain_error)?;
        if !policy.enabled {
            return Err("the patient's emergency policy is not enabled on chain (no consent to tell an emergency service)".into());
        }
        let service = self.chain.entity_of(entity).await.map_err(chain_error)?;
        if !service.active || service.kind != Some(EntityKind::EmergencyService) {
            return Err(format!(
                "{entity} is not an active emergency service on chain"
            ));
        }
        let peer = self.peer_for(entity).await?;
        let request = Signed::sign(
            RosterRequest {
                hub: self.hub.address(),
                entity,
                at_ms: now_ms(),
            },
            &self.hub,
        )
        .map_err(|e| e.to_string())?;
        let named = match self.peers[peer]
            .exchange(&self.endpoint, &HubAlertMessage::Roster(request))
            .await?
        {
            AlertAnswer::Roster { physicians } => physicians,
            AlertAnswer::Refused { reason } => {
                return Err(format!("the inbox refused the roster: {reason}"));
            }
            other => return Err(format!("unexpected answer: {other:?}")),
        };
        // The chain, not the inbox, says who belongs to the service.
        let mut on_duty = Vec::new();
        for physician in named.into_iter().take(MAX_DUTY_ROSTER) {
            let enrolment = self.physician(physician).await?;
            if enrolment.active && enrolment.entity == entity && !on_duty.contains(&physician) {
                on_duty.push(physician);
            }
        }
        if on_duty.is_empty() {
            return Err(format!(
                "no physician of {entity} is on duty (the inbox's roster, checked on chain)"
            ));
        }
        let mut reached = Vec::new();
        let mut last_error = None;
        for physician in on_duty {
            match self
                .hand_over(peer, record, step, physician, Some(entity))
                .await
            {
                Ok(evidence) => reached.push((physician, evidence)),
                Err(e) => {
                    tracing::warn!(%physician, error = %e, "an emergency physician on duty not told");
                    last_error = Some(e);
                }
            }
        }
        if reached.is_empty() {
            return Err(last_error.unwrap_or_else(|| "no one told".into()));
        }
        Ok(Delivered {
            at_ms: now_ms(),
            reached,
        })
    }

    /// Acknowledgements of this hub's alerts that arrived at any inbox,
    /// each checked: signed by the physician it names, for this hub. The
    /// engine then checks that the alert reached that physician.
    pub async fn poll_acks(&mut self) -> Vec<Signed<AlertAck>> {
        let mut out = Vec::new();
        for index in 0..self.peers.len() {
            let may = self.peers[index]
                .poll_retry
                .is_none_or(|(at, _)| Instant::now() >= at);
            if !may {
                continue;
            }
            match self.poll_peer(index, &mut out).await {
                Ok(()) => self.peers[index].poll_retry = None,
                Err(e) => {
                    tracing::debug!(inbox = %self.peers[index].id, error = %e, "acknowledgements not polled");
                    let peer = &mut self.peers[index];
                    let wait = peer
                        .poll_retry
                        .map_or(Duration::from_millis(500), |(_, w)| {
                            (w * 2).min(Duration::from_secs(30))
                        });
                    peer.poll_retry = Some((Instant::now() + wait, wait));
                }
            }
        }
        out
    }

    async fn poll_peer(
        &mut self,
        index: usize,
        out: &mut Vec<Signed<AlertAck>>,
    ) -> Result<(), String> {
        let hub = self.hub.address();
        loop {
            let poll = Signed::sign(
                AckPoll {
                    hub,
                    after: self.peers[index].ack_cursor,
                    at_ms: now_ms(),
                },
                &self.hub,
            )
            .map_err(|e| e.to_string())?;
            let answer = self.peers[index]
                .exchange(&self.endpoint, &HubAlertMessage::Poll(poll))
                .await?;
            let AlertAnswer::Acks { acks } = answer else {
                return Err(format!("unexpected answer: {answer:?}"));
            };
            let full = acks.len() >= alerts::MAX_ACKS_PER_ANSWER;
            for numbered in acks {
                let peer = &mut self.peers[index];
                peer.ack_cursor = peer.ack_cursor.max(numbered.no);
                let ack = numbered.ack;
                if ack.body.hub == hub && ack.signer().is_ok_and(|s| s == ack.body.by) {
                    out.push(ack);
                } else {
                    tracing::warn!(
                        no = numbered.no,
                        "an acknowledgement from the inbox does not check; ignored"
                    );
                }
            }
            if !full {
                return Ok(());
            }
        }
    }
}
