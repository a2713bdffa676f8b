//! A raw MQTT 3.1.1 peer for attack tests: hand-built packets from any
//! loopback source address (127.0.0.0/8 is all local on Linux), so an
//! "attacker" and a legitimate device can come from different addresses.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn remaining_length(mut len: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
}

fn string(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// A 3.1.1 CONNECT (clean session, no will).
pub fn connect(
    client_id: &str,
    username: Option<&str>,
    password: Option<&str>,
    keep_alive: u16,
) -> Vec<u8> {
    connect_at(4, client_id, username, password, keep_alive)
}

/// A CONNECT at protocol `level` 4 or 5 (clean session, no will, no properties).
pub fn connect_at(
    level: u8,
    client_id: &str,
    username: Option<&str>,
    password: Option<&str>,
    keep_alive: u16,
) -> Vec<u8> {
    let mut body = Vec::new();
    string(b"MQTT", &mut body);
    body.push(level);
    let mut flags = 0x02;
    if username.is_some() {
        flags |= 0x80;
    }
    if password.is_some() {
        flags |= 0x40;
    }
    body.push(flags);
    body.extend_from_slice(&keep_alive.to_be_bytes());
    if level == 5 {
        body.push(0); // no properties
    }
    string(client_id.as_bytes(), &mut body);
    if let Some(u) = username {
        string(u.as_bytes(), &mut body);
    }
    if let Some(p) = password {
        string(p.as_bytes(), &mut body);
    }
    let mut packet = vec![0x10];
    remaining_length(body.len(), &mut packet);
    packet.extend(body);
    packet
}

/// A PUBLISH at `qos` (packet id 1 when qos > 0).
pub fn publish(topic: &str, payload: &[u8], qos: u8, packet_id: u16) -> Vec<u8> {
    let mut body = Vec::new();
    string(topic.as_bytes(), &mut body);
    if qos > 0 {
        body.extend_from_slice(&packet_id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    let mut packet = vec![0x30 | (qos << 1)];
    remaining_length(body.len(), &mut packet);
    packet.extend(body);
    packet
}

/// A SUBSCRIBE to one topic at QoS 1.
pub fn subscribe(topic: &str, packet_id: u16) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    string(topic.as_bytes(), &mut body);
    body.push(1);
    let mut packet = vec![0x82];
    remaining_length(body.len(), &mut packet);
    packet.extend(body);
    packet
}

/// A TCP connection to the hub from `source` (a loopback address).
pub async fn dial(source: IpAddr, hub: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(hub).await
}

/// What came back for a CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// CONNACK with this return code (0 accepted).
    ConnAck(u8),
    /// Closed without an answer.
    Closed,
    /// Nothing within the wait.
    Silent,
}

pub async fn read_connack(stream: &mut TcpStream, wait: Duration) -> Answer {
    let mut header = [0u8; 4];
    match tokio::time::timeout(wait, stream.read_exact(&mut header)).await {
        Ok(Ok(_)) if header[0] == 0x20 && header[1] == 2 => Answer::ConnAck(header[3]),
        Ok(Ok(_)) => Answer::Closed,
        Ok(Err(_)) => Answer::Closed,
        Err(_) => Answer::Silent,
    }
}

/// Sends a CONNECT from `source` (client id = username) and reads the answer.
pub async fn try_login(
    source: IpAddr,
    hub: SocketAddr,
    name: &str,
    password: &str,
    wait: Duration,
) -> Answer {
    try_login_as(source, hub, name, name, password, wait).await
}

/// Sends a CONNECT from `source` and reads the answer.
pub async fn try_login_as(
    source: IpAddr,
    hub: SocketAddr,
    client_id: &str,
    username: &str,
    password: &str,
    wait: Duration,
) -> Answer {
    let Ok(mut stream) = dial(source, hub).await else {
        return Answer::Closed;
    };
    if stream
        .write_all(&connect(client_id, Some(username), Some(password), 60))
        .await
        .is_err()
    {
        return Answer::Closed;
    }
    read_connack(&mut stream, wait).await
}

/// Whether the hub closed the connection (reads until EOF or `wait`).
pub async fn closed_by_hub(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut sink = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}
