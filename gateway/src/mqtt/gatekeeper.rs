//! The gatekeeper: the only listener devices reach. It authenticates each
//! device at CONNECT, confines it to its own topics, and forwards the
//! connection to the internal broker. rumqttd has no per-client topic ACL,
//! and its router does not tell subscribers who published, so this is the one
//! place that knows which device sent which packet.
//!
//! At CONNECT it requires: the client id equals the username (the device
//! name), the password matches the provisioned secret's hash, the device is
//! registered to the patient on chain, and there is no last will (a will
//! would publish on the device's behalf, unchecked). After CONNECT every
//! PUBLISH must be on the device's readings topic, at QoS 0 or 1 (docs/WIRE.md;
//! QoS 2 would make the broker keep state for every unreleased packet), within
//! the per-connection rate, and every SUBSCRIBE on its ack topic; anything else
//! closes the connection. A device removed on chain is disconnected as soon
//! as the mirror sees the removal.
//!
//! Bounds (docs/HUB.md): connections in all and per address (over: closed at
//! once), a packet at most the payload limit plus its header, failed logins
//! answered late and banned addresses closed at once ([`super::logins`]), a
//! keep-alive of at most `limits.max_keep_alive_secs` (a CONNECT asking 0 gets
//! that, as rumqttd would otherwise drop it unanswered). Connection tasks are
//! tracked, so shutdown waits for each to close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use glyco_contracts::DeviceIdentity;
use rumqttd::protocol::{ConnAck, ConnectReturnCode, Login, Packet};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::framing::{Frame, Version, connect_level, next_frame};
use super::logins::LoginThrottle;
use super::sessions::Connected;
use super::slots::{ConnectionSlots, Slot};
use super::topics::{acks_topic, readings_topic};
use crate::behaviour::{Behaviour, Origin, RefusalReason};
use crate::config::LimitsConfig;
use crate::credentials::CredentialStore;
use crate::registry::{Registry, Standing};
use crate::throttle::{TokenBucket, accept_backoff};

/// Bytes a packet may carry beyond its payload (topic, header, properties).
const PACKET_OVERHEAD: usize = 1024;
/// Bytes buffered from the broker towards one device at a time.
const DOWNSTREAM_BUFFER: usize = 1024;
/// How long an ending session waits for the broker to close its side.
const UPSTREAM_CLOSE_WAIT: Duration = Duration::from_secs(1);
/// How long a device's new connection waits for its old session to end
/// (that session's close wait, with room to spare).
const HANDOVER_WAIT: Duration = Duration::from_secs(3);

pub struct Gatekeeper {
    pub broker_v4: SocketAddr,
    pub broker_v5: SocketAddr,
    pub internal_password: String,
    pub credentials: Arc<CredentialStore>,
    pub registry: Registry,
    pub behaviour: Behaviour,
    pub max_payload: usize,
    pub connect_timeout: Duration,
    pub connected: Connected,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub limits: LimitsConfig,
    pub slots: Arc<ConnectionSlots>,
    pub logins: Arc<LoginThrottle>,
    /// Every connection task, so shutdown can wait for them.
    pub connections: TaskTracker,
}

impl std::fmt::Debug for Gatekeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatekeeper")
            .field("broker_v4", &self.broker_v4)
            .field("broker_v5", &self.broker_v5)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a connection ended early; each is one node-behaviour event.
#[derive(Debug)]
struct Refusal {
    device: Option<String>,
    reason: RefusalReason,
    detail: String,
}

fn refusal(device: Option<&str>, reason: RefusalReason, detail: impl Into<String>) -> Refusal {
    Refusal {
        device: device.map(str::to_owned),
        reason,
        detail: detail.into(),
    }
}

/// Reads until `buf` holds one whole packet; returns its length.
async fn fill_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    max_packet: usize,
) -> Result<Option<usize>, Refusal> {
    loop {
        match next_frame(buf, max_packet) {
            Frame::Whole(len) => return Ok(Some(len)),
            Frame::Incomplete => {}
            Frame::TooLarge(size) => {
                return Err(refusal(
                    None,
                    RefusalReason::InvalidPayload,
                    format!("packet of {size} bytes exceeds the {max_packet}-byte limit"),
                ));
            }
            Frame::Bad(e) => {
                return Err(refusal(
                    None,
                    RefusalReason::ProtocolViolation,
                    format!("bad framing: {e}"),
                ));
            }
        }
        match reader.read_buf(buf).await {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            // A reset link (Wi-Fi dropping, a device rebooting) is a close,
            // not misbehaviour.
            Err(e) if is_reset(&e) => {
                tracing::debug!(error = %e, "connection reset by the device");
                return Ok(None);
            }
            Err(e) => {
                return Err(refusal(
                    None,
                    RefusalReason::ProtocolViolation,
                    format!("read: {e}"),
                ));
            }
        }
    }
}

fn is_reset(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe)
}

/// Answers a CONNECT with a refusal (best effort: the connection closes
/// next either way).
async fn refuse_connect<S: AsyncWrite + Unpin>(
    stream: &mut S,
    version: Version,
    code: ConnectReturnCode,
) {
    let mut out = BytesMut::new();
    let nack = ConnAck {
        session_present: false,
        code,
    };
    if version.write(Packet::ConnAck(nack, None), &mut out).is_ok() {
        let _ = stream.write_all(&out).await;
        let _ = stream.flush().await;
    }
}

impl Gatekeeper {
    fn max_packet(&self) -> usize {
        self.max_payload + PACKET_OVERHEAD
    }

    /// Accepts device connections on `listener` until shutdown, then waits
    /// for every connection to close.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), std::convert::Infallible> {
        let mut backoff = accept_backoff(Duration::from_secs(1));
        let mut accept_errors_logged = TokenBucket::new(1, 0.2, Instant::now());
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => {
                        backoff.reset();
                        a
                    }
                    Err(e) => {
                        // Out of descriptors (or memory): back off instead of
                        // spinning, and say so at most every few seconds.
                        if accept_errors_logged.take(Instant::now()) {
                            tracing::warn!(error = %e, "accept failed; backing off");
                        }
                        tokio::time::sleep(backoff.next_delay(0.0)).await;
                        continue;
                    }
                },
            };
            let address = peer.ip();
            if self.logins.is_banned(address, Instant::now()) {
                self.behaviour.record(
                    Origin::mqtt(address, None),
                    RefusalReason::LoginThrottled,
                    "connection from a banned address closed",
                );
                continue;
            }
            let slot = match self.slots.acquire(address) {
                Ok(slot) => slot,
                Err(full) => {
                    self.behaviour.record(
                        Origin::mqtt(address, None),
                        RefusalReason::OverLimit,
                        &format!("connection closed: {full}"),
                    );
                    continue;
                }
            };
            let this = self.clone();
            let shutdown = shutdown.clone();
            let span = tracing::info_span!("mqtt", %peer, device = tracing::field::Empty);
            self.connections.spawn(
                async move {
                    let mut slot: Slot = slot;
                    let _ = stream.set_nodelay(true);
                    match this.tls.clone() {
                        Some(acceptor) => {
                            match tokio::time::timeout(
                                this.connect_timeout,
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                Ok(Ok(tls)) => {
                                    this.connection(tls, peer, shutdown, &mut slot).await
                                }
                                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
                        }
                        None => this.connection(stream, peer, shutdown, &mut slot).await,
                    }
                }
                .instrument(span),
            );
        }
        self.connections.close();
        self.connections.wait().await;
        Ok(())
    }

    async fn connection<S>(
        &self,
        stream: S,
        peer: SocketAddr,
        shutdown: CancellationToken,
        slot: &mut Slot,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if let Err(r) = self.gate(stream, peer, shutdown, slot).await {
            self.behaviour.record(
                Origin::mqtt(peer.ip(), r.device.as_deref()),
                r.reason,
                &r.detail,
            );
        }
    }

    /// Reads the first packet, which must be a whole CONNECT; `None` if the
    /// connection closed first.
    async fn read_connect<S>(
        &self,
        stream: &mut S,
        buf: &mut BytesMut,
    ) -> Result<Option<usize>, Refusal>
    where
        S: AsyncRead + Unpin,
    {
        // The first byte already tells a CONNECT from anything else (an HTTP
        // request, a scanner): no need to wait for a whole frame to refuse.
        match stream.read_buf(buf).await {
            Ok(n) if n > 0 => {}
            _ => return Ok(None),
        }
        if buf[0] >> 4 != 1 {
            return Err(refusal(
                None,
                RefusalReason::ProtocolViolation,
                "first packet is not CONNECT",
            ));
        }
        fill_frame(stream, buf, self.max_packet()).await
    }

    async fn gate<S>(
        &self,
        mut stream: S,
        peer: SocketAddr,
        shutdown: CancellationToken,
        slot: &mut Slot,
    ) -> Result<(), Refusal>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut buf = BytesMut::with_capacity(1024);
        let evicted = slot.evicted.clone();
        let read = tokio::time::timeout(
            self.connect_timeout,
            self.read_connect(&mut stream, &mut buf),
        );
        let frame_len = tokio::select! {
            _ = evicted.cancelled() => {
                return Err(refusal(
                    None,
                    RefusalReason::OverLimit,
                    "closed while idle before CONNECT, to make room",
                ));
            }
            _ = shutdown.cancelled() => return Ok(()),
            read = read => match read {
                Ok(Ok(Some(len))) => len,
                // Closed before a whole packet, or timed out: a probe or a
                // slow start, not a device misbehaving.
                Ok(Ok(None)) | Err(_) => {
                    tracing::debug!("connection closed before CONNECT");
                    return Ok(());
                }
                Ok(Err(r)) => return Err(r),
            },
        };
        let version = match connect_level(&buf[..frame_len]) {
            Some(4) => Version::V4,
            Some(5) => Version::V5,
            Some(level) => {
                refuse_connect(
                    &mut stream,
                    Version::V4,
                    ConnectReturnCode::RefusedProtocolVersion,
                )
                .await;
                return Err(refusal(
                    None,
                    RefusalReason::ProtocolViolation,
                    format!("MQTT protocol level {level} is not supported (use 3.1.1 or 5)"),
                ));
            }
            None => {
                return Err(refusal(
                    None,
                    RefusalReason::ProtocolViolation,
                    "first packet is not CONNECT",
                ));
            }
        };
        let packet = version.read(&mut buf, self.max_packet()).map_err(|e| {
            refusal(
                None,
                RefusalReason::ProtocolViolation,
                format!("malformed CONNECT: {e}"),
            )
        })?;
        let Packet::Connect(mut connect, properties, will, _will_properties, login) = packet else {
            return Err(refusal(
                None,
                RefusalReason::ProtocolViolation,
                "first packet is not CONNECT",
            ));
        };

        let device = match self.authenticate(&connect.client_id, login.as_ref(), will.is_some()) {
            Ok(device) => {
                self.logins.succeeded(&connect.client_id);
                if let Err(full) = slot.promote() {
                    refuse_connect(&mut stream, version, ConnectReturnCode::ServiceUnavailable)
                        .await;
                    return Err(refusal(
                        Some(&connect.client_id),
                        RefusalReason::OverLimit,
                        full.to_string(),
                    ));
                }
                device
            }
            Err((code, mut r)) => {
                if r.reason == RefusalReason::BadCredentials {
                    let claimed = login.as_ref().map_or("", |l| l.username.as_str());
                    let penalty = self.logins.failed(peer.ip(), claimed, Instant::now());
                    if penalty.banned {
                        r.detail
                            .push_str("; address banned after repeated failures");
                        r.reason = RefusalReason::LoginThrottled;
                    }
                    // Answer late: the connection holds one of its address's
                    // few slots meanwhile, which bounds the guessing rate. It
                    // is still pending, so it can be evicted like any idle
                    // connection: waiting guessers are bounded by the
                    // pending slots, not by how fast they arrive.
                    tokio::select! {
                        _ = tokio::time::sleep(penalty.delay) => {}
                        _ = evicted.cancelled() => return Err(r),
                        _ = shutdown.cancelled() => return Ok(()),
                    }
                }
                refuse_connect(&mut stream, version, code).await;
                return Err(r);
            }
        };
        let name = connect.client_id.clone();
        tracing::Span::current().record("device", name.as_str());
        // rumqttd drops a CONNECT with keep-alive 0 without an answer, and a
        // long one holds a silent connection for hours: cap both.
        let max_keep_alive = self.limits.max_keep_alive_secs;
        if connect.keep_alive == 0 || connect.keep_alive > max_keep_alive {
            connect.keep_alive = max_keep_alive;
        }

        let session = match self
            .connected
            .take_over(&name, Some(peer.ip()), HANDOVER_WAIT)
            .await
        {
            Ok(session) if session.replaced.is_cancelled() => {
                tracing::debug!("replaced by a newer connection before its turn");
                return Ok(());
            }
            Ok(session) => session,
            Err(e) => {
                // Not the device's doing: a warning, no node-behaviour event.
                tracing::warn!(error = %e, "session handover timed out");
                refuse_connect(&mut stream, version, ConnectReturnCode::ServiceUnavailable).await;
                return Ok(());
            }
        };
        let upstream_addr = match version {
            Version::V4 => self.broker_v4,
            Version::V5 => self.broker_v5,
        };
        let mut upstream = match TcpStream::connect(upstream_addr).await {
            Ok(upstream) => upstream,
            Err(e) => {
                // Not the device's doing: an error log, no node-behaviour event.
                tracing::error!(error = %e, "internal broker unreachable");
                return Ok(());
            }
        };
        let _ = upstream.set_nodelay(true);
        let login = Login {
            username: name.clone(),
            password: self.internal_password.clone(),
        };
        let mut out = BytesMut::new();
        version
            .write(
                Packet::Connect(connect, properties, None, None, Some(login)),
                &mut out,
            )
            .map_err(|e| {
                refusal(
                    Some(&name),
                    RefusalReason::ProtocolViolation,
                    format!("CONNECT: {e}"),
                )
            })?;
        if upstream.write_all(&out).await.is_err() {
            return Ok(());
        }

        tracing::info!("device connected");
        let watch = self.behaviour.watch();
        watch.session_start(&name, Some(peer.ip()), session.took_over_from);
        let result = self
            .pump(
                stream,
                upstream,
                buf,
                version,
                &name,
                device,
                &session.replaced,
                shutdown,
            )
            .await;
        drop(session);
        watch.session_end(&name);
        tracing::info!("device disconnected");
        result
    }

    /// Checks a CONNECT; on refusal returns the CONNACK code to answer with.
    fn authenticate(
        &self,
        client_id: &str,
        login: Option<&Login>,
        has_will: bool,
    ) -> Result<DeviceIdentity, (ConnectReturnCode, Refusal)> {
        let bad = |device: Option<&str>, detail: &str| {
            (
                ConnectReturnCode::BadUserNamePassword,
                refusal(device, RefusalReason::BadCredentials, detail),
            )
        };
        let Some(login) = login else {
            return Err(bad(Some(client_id), "no username and password"));
        };
        let name = login.username.as_str();
        if name != client_id {
            return Err(bad(
                Some(name),
                "client id must equal the username (the device name)",
            ));
        }
        let Ok(identity) = DeviceIdentity::name(name) else {
            return Err(bad(Some(name), "username is not a valid device name"));
        };
        if !self.credentials.verify(name, &login.password) {
            return Err(bad(Some(name), "unknown device or wrong secret"));
        }
        match self.registry.standing(&identity) {
            Standing::Registered => {}
            Standing::Removed => {
                return Err((
                    ConnectReturnCode::NotAuthorized,
                    refusal(
                        Some(name),
                        RefusalReason::Removed,
                        "device was removed from the patient's registry",
                    ),
                ));
            }
            Standing::Unknown => {
                return Err((
                    ConnectReturnCode::NotAuthorized,
                    refusal(
                        Some(name),
                        RefusalReason::Unregistered,
                        "device is not registered to this patient on chain",
                    ),
                ));
            }
        }
        if has_will {
            return Err((
                ConnectReturnCode::NotAuthorized,
                refusal(
                    Some(name),
                    RefusalReason::WrongTopic,
                    "a last will is not allowed",
                ),
            ));
        }
        Ok(identity)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pump<S>(
        &self,
        stream: S,
        upstream: TcpStream,
        mut buf: BytesMut,
        version: Version,
        name: &str,
        device: DeviceIdentity,
        replaced: &CancellationToken,
        shutdown: CancellationToken,
    ) -> Result<(), Refusal>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut client_read, mut client_write) = tokio::io::split(stream);
        let (broker_read, mut broker_write) = upstream.into_split();
        // What the broker sends a device is small (acknowledgements and the
        // hub's acks); tokio::io::copy would hold 8 KiB per connection.
        let mut broker_read = tokio::io::BufReader::with_capacity(DOWNSTREAM_BUFFER, broker_read);
        let own_readings = readings_topic(name);
        let own_acks = acks_topic(name);
        let max_packet = self.max_packet();
        let rate = self.limits.max_publishes_per_second;
        let mut publishes =
            TokenBucket::new(rate.saturating_mul(5), f64::from(rate), Instant::now());

        let downstream = async { tokio::io::copy_buf(&mut broker_read, &mut client_write).await };
        let upstream = async {
            loop {
                let Some(len) = fill_frame(&mut client_read, &mut buf, max_packet)
                    .await
                    .map_err(|mut r| {
                        r.device = Some(name.to_owned());
                        r
                    })?
                else {
                    return Ok(());
                };
                let frame = buf.split_to(len);
                let mut copy = frame.clone();
                let packet = version.read(&mut copy, max_packet).map_err(|e| {
                    refusal(
                        Some(name),
                        RefusalReason::ProtocolViolation,
                        format!("malformed packet: {e}"),
                    )
                })?;
                match &packet {
                    Packet::Publish(publish, _)
                        if publish.topic.as_ref() != own_readings.as_bytes() =>
                    {
                        return Err(refusal(
                            Some(name),
                            RefusalReason::WrongTopic,
                            format!("published to {:?}", String::from_utf8_lossy(&publish.topic)),
                        ));
                    }
                    // The QoS is in the fixed header (bits 1-2 of the first byte).
                    Packet::Publish(..) if (frame[0] >> 1) & 0b11 == 2 => {
                        return Err(refusal(
                            Some(name),
                            RefusalReason::ProtocolViolation,
                            "QoS 2 is not accepted (use QoS 1: docs/WIRE.md)",
                        ));
                    }
                    Packet::Publish(..) if !publishes.take(Instant::now()) => {
                        return Err(refusal(
                            Some(name),
                            RefusalReason::OverLimit,
                            format!("more than {rate} publishes per second"),
                        ));
                    }
                    Packet::PubRel(..) | Packet::PubRec(..) | Packet::PubComp(..) => {
                        return Err(refusal(
                            Some(name),
                            RefusalReason::ProtocolViolation,
                            "QoS 2 flow packets are not accepted",
                        ));
                    }
                    Packet::Subscribe(subscribe, _) => {
                        if let Some(f) = subscribe.filters.iter().find(|f| f.path != own_acks) {
                            return Err(refusal(
                                Some(name),
                                RefusalReason::WrongTopic,
                                format!("subscribed to {:?}", f.path),
                            ));
                        }
                    }
                    Packet::Connect(..) => {
                        return Err(refusal(
                            Some(name),
                            RefusalReason::ProtocolViolation,
                            "second CONNECT",
                        ));
                    }
                    _ => {}
                }
                if broker_write.write_all(&frame).await.is_err() {
                    return Ok(());
                }
            }
        };
        let mut changes = self.registry.subscribe();
        let device_identity = device.clone();
        let removed = async {
            loop {
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
                if self.registry.standing(&device_identity) != Standing::Registered {
                    return;
                }
            }
        };
        let result = tokio::select! {
            _ = downstream => Ok(()),
            result = upstream => result,
            _ = removed => {
                tracing::info!("disconnecting: no longer registered on chain");
                Ok(())
            }
            _ = replaced.cancelled() => {
                tracing::info!("replaced by a newer connection of this device");
                Ok(())
            }
            _ = shutdown.cancelled() => Ok(()),
        };
        // The device is told at once; the broker is closed and waited for:
        // rumqttd queues the session's end before closing its side, so the
        // device's next session, forwarded only after this, cannot be cut by
        // it (module docs of `super::sessions`).
        drop(client_read);
        drop(client_write);
        let _ = broker_write.shutdown().await;
        let mut sink = [0u8; 256];
        let _ = tokio::time::timeout(UPSTREAM_CLOSE_WAIT, async {
            while matches!(broker_read.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
        result
    }
}
