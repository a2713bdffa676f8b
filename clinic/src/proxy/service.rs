//! The proxy's two iroh protocols: kfrag delivery from hubs and
//! re-encryption requests from physicians. Anyone may connect (the
//! messages carry their own signatures, checked against the chain), so
//! every read is bounded in size and time and the work in flight is capped.

use std::sync::Arc;
use std::time::Duration;

use glyco_seal::sharing::{
    self, HubMessage, KfragAnswer, MAX_MESSAGE_BYTES, ProxyRefusal, ReencryptAnswer,
    ReencryptRequest,
};
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::Proxy;

/// Requests a connection may make before the proxy closes it.
const REQUESTS_PER_CONNECTION: usize = 256;
/// How long a peer may take to send one request.
const READ_WAIT: Duration = Duration::from_secs(20);

/// Serves both protocols for one proxy.
#[derive(Clone)]
pub struct ProxyService {
    pub proxy: Arc<Proxy>,
    /// Requests being worked on at once, across all peers.
    pub in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for ProxyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyService")
            .field("proxy", &self.proxy.address)
            .finish_non_exhaustive()
    }
}

/// The handler of one ALPN.
#[derive(Debug, Clone)]
pub struct Kfrags(pub ProxyService);
#[derive(Debug, Clone)]
pub struct Reencryption(pub ProxyService);

impl ProtocolHandler for Kfrags {
    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        let proxy = self.0.proxy.clone();
        serve_streams(
            &self.0,
            connection,
            move |m: HubMessage| {
                let proxy = proxy.clone();
                async move { proxy.on_hub_message(m).await }
            },
            |reason| KfragAnswer::Refused { reason },
        )
        .await;
        Ok(())
    }
}

impl ProtocolHandler for Reencryption {
    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        let proxy = self.0.proxy.clone();
        serve_streams(
            &self.0,
            connection,
            move |r: ReencryptRequest| {
                let proxy = proxy.clone();
                async move { proxy.on_request(r).await }
            },
            |reason| ReencryptAnswer::Refused { reason },
        )
        .await;
        Ok(())
    }
}

async fn serve_streams<Req, Ans, F, Fut>(
    service: &ProxyService,
    connection: Connection,
    handle: F,
    refused: impl Fn(ProxyRefusal) -> Ans,
) where
    Req: DeserializeOwned,
    Ans: Serialize,
    F: Fn(Req) -> Fut,
    Fut: std::future::Future<Output = Ans>,
{
    for _ in 0..REQUESTS_PER_CONNECTION {
        let Ok((mut send, mut recv)) = connection.accept_bi().await else {
            return;
        };
        let read = tokio::time::timeout(READ_WAIT, recv.read_to_end(MAX_MESSAGE_BYTES)).await;
        let answer = match read {
            Err(_) => refused(ProxyRefusal::Malformed {
                detail: "the request took too long to arrive".into(),
            }),
            Ok(Err(e)) => refused(ProxyRefusal::Malformed {
                detail: format!("reading the request: {e}"),
            }),
            Ok(Ok(bytes)) => match sharing::decode::<Req>(&bytes) {
                Err(e) => refused(ProxyRefusal::Malformed {
                    detail: e.to_string(),
                }),
                Ok(request) => match service.in_flight.clone().try_acquire_owned() {
                    Ok(_permit) => handle(request).await,
                    Err(_) => refused(ProxyRefusal::Busy),
                },
            },
        };
        let Ok(bytes) = sharing::encode(&answer) else {
            return;
        };
        if send.write_all(&bytes).await.is_err() || send.finish().is_err() {
            return;
        }
    }
    connection.close(0u32.into(), b"request limit per connection");
}
