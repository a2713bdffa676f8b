//! The physician's side of a clinic alert inbox: follow one's alerts (the
//! backlog after a sequence number, then live ones) and acknowledge one.
//! Used by `glyco-clinic physician alerts|ack` and by the dashboard.

use glyco_contracts::Address;
use glyco_contracts::keys::Signer as PrivateKeySigner;
use glyco_seal::PhysicianKey;
use glyco_seal::alerts::{
    self, AlertAck, AlertEnvelope, FollowRequest, INBOX_ALPN, InboxFrame, InboxRequest, Signed,
};
use iroh::Endpoint;
use iroh::endpoint::{Connection, RecvStream};

use crate::replica::HubPeer;

#[derive(Debug, thiserror::Error)]
pub enum AlertClientError {
    #[error("connecting to the alert inbox: {0}")]
    Connect(String),
    #[error("talking to the alert inbox: {0}")]
    Stream(String),
    #[error("the inbox refused: {0}")]
    Refused(alerts::AlertRefusal),
    #[error("signing: {0}")]
    Sign(String),
    #[error("unexpected answer from the inbox: {0}")]
    Unexpected(String),
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Sends `request` to the inbox; the stream its answers come on.
async fn open(
    endpoint: &Endpoint,
    inbox: &HubPeer,
    request: &InboxRequest,
) -> Result<(Connection, RecvStream), AlertClientError> {
    let connection = endpoint
        .connect(inbox.endpoint_addr(), INBOX_ALPN)
        .await
        .map_err(|e| AlertClientError::Connect(e.to_string()))?;
    let stream = |e: &dyn std::fmt::Display| AlertClientError::Stream(e.to_string());
    let (mut send, recv) = connection.open_bi().await.map_err(|e| stream(&e))?;
    let bytes = alerts::encode(request).map_err(|e| stream(&e))?;
    send.write_all(&bytes).await.map_err(|e| stream(&e))?;
    send.finish().map_err(|e| stream(&e))?;
    Ok((connection, recv))
}

/// An alert from the inbox, checked and opened.
#[derive(Debug, Clone)]
pub struct ReceivedAlert {
    pub seq: u64,
    pub id: String,
    pub envelope: Box<Signed<AlertEnvelope>>,
    /// The sealed details opened with the physician's umbral key:
    /// (device, explanation), or why they could not be.
    pub details: Result<(String, String), String>,
}

/// What the inbox sent on a follow stream.
#[derive(Debug)]
pub enum Followed {
    Alert(ReceivedAlert),
    /// An alert not signed by its hub or not for this physician.
    Skipped {
        seq: u64,
    },
    CaughtUp,
}

/// A follow stream: the physician's alerts after a sequence number.
pub struct Follow {
    connection: Connection,
    recv: RecvStream,
    me: Address,
}

impl Follow {
    /// Asks `inbox` for `signer`'s alerts after `after`; with `live`, the
    /// stream stays open for new ones.
    pub async fn start(
        endpoint: &Endpoint,
        inbox: &HubPeer,
        signer: &PrivateKeySigner,
        after: u64,
        live: bool,
    ) -> Result<Self, AlertClientError> {
        let me = signer.address();
        let request = InboxRequest::Follow(
            Signed::sign(
                FollowRequest {
                    physician: me,
                    after,
                    live,
                    at_ms: now_ms(),
                },
                signer,
            )
            .map_err(|e| AlertClientError::Sign(e.to_string()))?,
        );
        let (connection, recv) = open(endpoint, inbox, &request).await?;
        Ok(Self {
            connection,
            recv,
            me,
        })
    }

    /// The next thing the inbox sent (`None` when the stream ended).
    pub async fn next(
        &mut self,
        umbral: &PhysicianKey,
    ) -> Result<Option<Followed>, AlertClientError> {
        loop {
            let frame = alerts::read_frame(&mut self.recv)
                .await
                .map_err(|e| AlertClientError::Stream(e.to_string()))?;
            match frame {
                None => return Ok(None),
                Some(InboxFrame::Alert { seq, envelope }) => {
                    let body = &envelope.body;
                    let signed_by_hub = envelope.signer().is_ok_and(|s| s == body.hub);
                    if !signed_by_hub || body.recipient != self.me {
                        return Ok(Some(Followed::Skipped { seq }));
                    }
                    let details = body
                        .details
                        .open(umbral.secret())
                        .map(|d| (d.device, d.explanation))
                        .map_err(|e| e.to_string());
                    return Ok(Some(Followed::Alert(ReceivedAlert {
                        seq,
                        id: alerts::id_hex(&body.id),
                        envelope,
                        details,
                    })));
                }
                Some(InboxFrame::CaughtUp { .. }) => return Ok(Some(Followed::CaughtUp)),
                Some(InboxFrame::Refused { reason }) => {
                    return Err(AlertClientError::Refused(reason));
                }
                Some(InboxFrame::Heartbeat { .. } | InboxFrame::Recorded { .. }) => {}
            }
        }
    }

    pub fn close(self) {
        self.connection.close(0u32.into(), b"done");
    }
}

/// Acknowledges alert `alert` of `hub` at `inbox`: whether it had been
/// already, and the acknowledgement's evidence digest.
pub async fn acknowledge(
    endpoint: &Endpoint,
    inbox: &HubPeer,
    signer: &PrivateKeySigner,
    alert: [u8; 16],
    hub: Address,
) -> Result<(bool, String), AlertClientError> {
    let signed = Signed::sign(
        AlertAck {
            alert,
            hub,
            by: signer.address(),
            at_ms: now_ms(),
        },
        signer,
    )
    .map_err(|e| AlertClientError::Sign(e.to_string()))?;
    let evidence = signed
        .evidence()
        .map_err(|e| AlertClientError::Sign(e.to_string()))?
        .to_string();
    let (connection, mut recv) = open(endpoint, inbox, &InboxRequest::Ack(signed)).await?;
    let answer = alerts::read_frame(&mut recv)
        .await
        .map_err(|e| AlertClientError::Stream(e.to_string()));
    connection.close(0u32.into(), b"done");
    match answer? {
        Some(InboxFrame::Recorded { already }) => Ok((already, evidence)),
        Some(InboxFrame::Refused { reason }) => Err(AlertClientError::Refused(reason)),
        other => Err(AlertClientError::Unexpected(format!("{other:?}"))),
    }
}
