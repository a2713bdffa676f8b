//! Delivering alerts to the clinic's alert inbox over iroh, and polling it
//! for acknowledgements.
//!
//! Before an alert leaves the hub for a physician, the chain must say the
//! inbox node is an active node of the physician's medical entity, and the
//! physician's umbral key (on chain) seals what the alert says: the inbox
//! and the network see only the envelope. The inbox checks the hub's
//! signature, that the hub serves the patient and that the physician holds
//! a live grant; a refusal is kept on the target and retried.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use glyco_contracts::{Address, B256, GlycoClient};
use glyco_seal::alerts::{
    self, AckPoll, AlertAck, AlertAnswer, AlertDetails, AlertEnvelope, HubAlertMessage,
    MAX_ALERT_MESSAGE_BYTES, SealedDetails, Signed,
};
use glyco_seal::keys::public_key_from_bytes;
use iroh::endpoint::Connection;
use iroh::{Endpoint, EndpointAddr, EndpointId};

use super::engine::AlertRecord;

/// How long one exchange with the inbox may take.
const EXCHANGE_WAIT: Duration = Duration::from_secs(5);
/// Chain answers reused for this long.
const CHAIN_TTL: Duration = Duration::from_secs(30);

pub struct Delivery {
    pub endpoint: Endpoint,
    pub inbox: EndpointId,
    pub inbox_addr: std::net::SocketAddr,
    pub hub: PrivateKeySigner,
    pub patient: Address,
    pub chain: GlycoClient,
    connection: Option<Connection>,
    keys: HashMap<Address, (Instant, Vec<u8>)>,
    inbox_entity: Option<(Instant, Option<Address>)>,
    physician_entity: HashMap<Address, (Instant, Address)>,
    /// When the inbox may be tried again after failing, and the wait.
    retry: Option<(Instant, Duration)>,
    /// The inbox's ack numbers seen so far.
    ack_cursor: u64,
}

fn now_ms() -> i64 {
    crate::reading::now_millis()
}

impl Delivery {
    pub fn new(
        endpoint: Endpoint,
        inbox: (EndpointId, std::net::SocketAddr),
        hub: PrivateKeySigner,
        patient: Address,
        chain: GlycoClient,
    ) -> Self {
        Self {
            endpoint,
            inbox: inbox.0,
            inbox_addr: inbox.1,
            hub,
            patient,
            chain,
            connection: None,
            keys: HashMap::new(),
            inbox_entity: None,
            physician_entity: HashMap::new(),
            retry: None,
            ack_cursor: 0,
        }
    }

    /// False while the inbox is in back-off after a failure.
    pub fn may_try(&self) -> bool {
        self.retry.is_none_or(|(at, _)| Instant::now() >= at)
    }

    fn failed(&mut self) {
        let wait = self.retry.map_or(Duration::from_millis(500), |(_, w)| {
            (w * 2).min(Duration::from_secs(30))
        });
        self.retry = Some((Instant::now() + wait, wait));
        self.connection = None;
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
            .map_err(|e| format!("chain: {e}"))?
            .ok_or("the physician has published no umbral key on chain")?;
        public_key_from_bytes(&bytes).map_err(|e| e.to_string())?;
        self.keys.insert(physician, (Instant::now(), bytes.clone()));
        Ok(bytes)
    }

    /// The inbox node must serve the physician's entity (enrolled on chain).
    async fn check_inbox_serves(&mut self, physician: Address) -> Result<(), String> {
        let inbox_entity = match self.inbox_entity {
            Some((at, entity)) if at.elapsed() < CHAIN_TTL => entity,
            _ => {
                let node = B256::from(*self.inbox.as_bytes());
                let entity = self
                    .chain
                    .active_node_entity(node)
                    .await
                    .map_err(|e| format!("chain: {e}"))?;
                self.inbox_entity = Some((Instant::now(), entity));
                entity
            }
        };
        let entity = match self.physician_entity.get(&physician) {
            Some((at, entity)) if at.elapsed() < CHAIN_TTL => *entity,
            _ => {
                let record = self
                    .chain
                    .physician_of(physician)
                    .await
                    .map_err(|e| format!("chain: {e}"))?;
                if !record.active {
                    return Err("not an active physician on chain".into());
                }
                self.physician_entity
                    .insert(physician, (Instant::now(), record.entity));
                record.entity
            }
        };
        match inbox_entity {
            Some(e) if e == entity => Ok(()),
            Some(e) => Err(format!(
                "the inbox node serves entity {e}, not the physician's {entity}"
            )),
            None => Err("the inbox node is not enrolled on chain for any active entity".into()),
        }
    }

    async fn exchange(&mut self, message: &HubAlertMessage) -> Result<AlertAnswer, String> {
        let bytes = alerts::encode(message).map_err(|e| e.to_string())?;
        for attempt in 0..2 {
            let connection = match &self.connection {
                Some(c) if c.close_reason().is_none() => c.clone(),
                _ => {
                    let to = EndpointAddr::new(self.inbox).with_ip_addr(self.inbox_addr);
                    let c = tokio::time::timeout(
                        EXCHANGE_WAIT,
                        self.endpoint.connect(to, alerts::ALERT_ALPN),
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
                Err(e) => return Err(e),
            }
        }
        Err("unreachable".into())
    }

    /// Delivers `record` to `physician`: when it was kept and the evidence
    /// digest of the signed envelope, or why not.
    pub async fn deliver(
        &mut self,
        record: &AlertRecord,
        step: u8,
        physician: Address,
    ) -> Result<(i64, B256), String> {
        let result = self.try_deliver(record, step, physician).await;
        match &result {
            Ok(_) => self.retry = None,
            Err(_) => self.failed(),
        }
        result
    }

    async fn try_deliver(
        &mut self,
        record: &AlertRecord,
        step: u8,
        physician: Address,
    ) -> Result<(i64, B256), String> {
        self.check_inbox_serves(physician).await?;
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
        };
        let signed = Signed::sign(envelope, &self.hub).map_err(|e| e.to_string())?;
        let evidence = signed.evidence().map_err(|e| e.to_string())?;
        match self
            .exchange(&HubAlertMessage::Deliver(Box::new(signed)))
            .await?
        {
            AlertAnswer::Kept { .. } => Ok((now_ms(), evidence)),
            AlertAnswer::Refused { reason } => Err(format!("the inbox refused: {reason}")),
            other => Err(format!("unexpected answer: {other:?}")),
        }
    }

    /// Acknowledgements of this hub's alerts that arrived at the inbox,
    /// each checked: signed by the physician it names, for this hub.
    pub async fn poll_acks(&mut self) -> Result<Vec<Signed<AlertAck>>, String> {
        let hub = self.hub.address();
        let mut out = Vec::new();
        loop {
            let poll = Signed::sign(
                AckPoll {
                    hub,
                    after: self.ack_cursor,
                    at_ms: now_ms(),
                },
                &self.hub,
            )
            .map_err(|e| e.to_string())?;
            let answer = match self.exchange(&HubAlertMessage::Poll(poll)).await {
                Ok(answer) => answer,
                Err(e) => {
                    self.failed();
                    return Err(e);
                }
            };
            let AlertAnswer::Acks { acks } = answer else {
                return Err(format!("unexpected answer: {answer:?}"));
            };
            let full = acks.len() >= alerts::MAX_ACKS_PER_ANSWER;
            for numbered in acks {
                self.ack_cursor = self.ack_cursor.max(numbered.no);
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
                return Ok(out);
            }
        }
    }
}
