//! The embedded rumqttd broker. It listens only on loopback ports that the
//! gatekeeper forwards to, and accepts only connections that carry a
//! per-boot internal password the gatekeeper substitutes for the device's
//! secret: a local process that skips the gatekeeper cannot get in.
//!
//! Its memory is bounded: each topic's commit log keeps at most two small
//! segments (the hub's link reads them at once; a reading that falls out
//! before it is read is never acknowledged, so its device resends it), and
//! each connection at most a few packets in flight. The hub's own link has a
//! client id no device name can take (device names cannot contain ':').

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("no free loopback port for the internal broker: {0}")]
    NoPort(std::io::Error),
    #[error("no randomness for the internal password: {0}")]
    Random(String),
    #[error("creating the broker's local link: {0}")]
    Link(String),
    #[error("the internal broker did not start listening on {0}")]
    NotListening(SocketAddr),
    #[error("cannot start the broker thread: {0}")]
    Thread(std::io::Error),
}

/// Where the gatekeeper reaches the broker, and the link the hub uses.
pub struct EmbeddedBroker {
    /// Internal listener for MQTT 3.1.1 clients.
    pub v4: SocketAddr,
    /// Internal listener for MQTT 5 clients.
    pub v5: SocketAddr,
    /// The password the gatekeeper presents on behalf of every device.
    pub internal_password: String,
    pub link: (LinkTx, LinkRx),
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The internal password is a secret: never in logs.
        f.debug_struct("EmbeddedBroker")
            .field("v4", &self.v4)
            .field("v5", &self.v5)
            .finish_non_exhaustive()
    }
}

fn free_loopback_port() -> Result<SocketAddr, BrokerError> {
    // The port is released before rumqttd binds it; `start` then checks that
    // something answers there and gives up rather than guess.
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(BrokerError::NoPort)?;
    listener.local_addr().map_err(BrokerError::NoPort)
}

/// The client id of the hub's own link to the broker.
pub const LINK_CLIENT_ID: &str = "glyco-hub:ingest";
/// Packets in flight per connection.
const MAX_INFLIGHT: usize = 16;

fn server(name: &str, listen: SocketAddr, max_payload: usize, password: &str) -> ServerSettings {
    let expected = password.to_owned();
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: max_payload,
        max_inflight_count: MAX_INFLIGHT,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    connections.set_auth_handler(move |_client, _user, pass: String| {
        let ok = pass == expected;
        async move { ok }
    });
    ServerSettings {
        name: name.to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    }
}

impl EmbeddedBroker {
    /// Starts the broker on two fresh loopback ports (v4, v5) in its own
    /// threads, and opens the hub's local link. `max_connections` bounds the
    /// device connections the gatekeeper forwards.
    pub fn start(max_packet: usize, max_connections: usize) -> Result<Self, BrokerError> {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).map_err(|e| BrokerError::Random(e.to_string()))?;
        let internal_password = hex::encode(bytes);
        let (v4, v5) = (free_loopback_port()?, free_loopback_port()?);
        let config = Config {
            id: 0,
            router: RouterConfig {
                // The devices, the hub's link, and a margin for connections
                // that are closing.
                max_connections: max_connections + 16,
                max_outgoing_packet_count: 64,
                max_segment_size: (4 * max_packet).max(16 * 1024),
                max_segment_count: 2,
                custom_segment: None,
                initialized_filters: None,
                shared_subscriptions_strategy: Default::default(),
            },
            v4: Some(HashMap::from([(
                "internal-v4".to_owned(),
                server("internal-v4", v4, max_packet, &internal_password),
            )])),
            v5: Some(HashMap::from([(
                "internal-v5".to_owned(),
                server("internal-v5", v5, max_packet, &internal_password),
            )])),
            ..Config::default()
        };
        let mut broker = Broker::new(config);
        let link = broker
            .link(LINK_CLIENT_ID)
            .map_err(|e| BrokerError::Link(e.to_string()))?;
        std::thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || {
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded broker stopped");
                }
            })
            .map_err(BrokerError::Thread)?;
        for address in [v4, v5] {
            wait_listening(address)?;
        }
        tracing::info!(%v4, %v5, "internal broker listening");
        Ok(Self {
            v4,
            v5,
            internal_password,
            link,
        })
    }
}

/// Waits until the broker listens on `address`, looking at the kernel's socket
/// table rather than connecting: rumqttd logs every aborted connection as an
/// error, and a probe would be one.
fn wait_listening(address: SocketAddr) -> Result<(), BrokerError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if is_listening(address.port()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotListening(address))
}

/// Whether some socket listens on 127.0.0.1:`port` (the process's network
/// namespace's socket table). Read through /proc/self: the unit's
/// `ProcSubset=pid` hides /proc/net, and the hub then never saw its broker
/// listen (found by booting the appliance image, scripts/hil.sh).
fn is_listening(port: u16) -> bool {
    const LISTEN: &str = "0A";
    let wanted = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/self/net/tcp").is_ok_and(|table| {
        table.lines().skip(1).any(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1);
            let state = fields.nth(1);
            local == Some(wanted.as_str()) && state == Some(LISTEN)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_loopback_port_is_seen_in_the_socket_table() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(is_listening(port));
        drop(listener);
        assert!(!is_listening(port));
    }
}
