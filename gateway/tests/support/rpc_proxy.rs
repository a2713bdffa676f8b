//! A JSON-RPC proxy in front of anvil that can lie, for follower tests: a
//! head 1000 blocks ahead of the real one, no logs at all, or logs whose
//! data is cut short. One request per connection, `Connection: close`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Lie {
    None = 0,
    HeadAhead = 1,
    NoLogs = 2,
    GarbledLogs = 3,
    /// Not a lie: the chain is down (connections dropped unanswered).
    Down = 4,
}

pub struct RpcProxy {
    pub address: SocketAddr,
    lie: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RpcProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let lie = Arc::new(AtomicU8::new(Lie::None as u8));
        let mode = lie.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let mode = mode.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, upstream, &mode).await;
                });
            }
        });
        Self { address, lie, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    pub fn lie(&self, lie: Lie) {
        self.lie.store(lie as u8, Ordering::SeqCst);
    }
}

async fn read_http(stream: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = data[..end].to_vec();
            let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let length: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let mut body = data[end + 4..].to_vec();
            while body.len() < length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            return Ok((head, body));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok((data, Vec::new()));
        }
        data.extend_from_slice(&chunk[..n]);
    }
}

async fn forward(upstream: SocketAddr, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {upstream}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    stream.write_all(body).await?;
    let (_, response) = read_http(&mut stream).await?;
    Ok(response)
}

fn tamper(request: &Value, response: &mut Value, lie: Lie) {
    let method = request["method"].as_str().unwrap_or_default();
    match (lie, method) {
        (Lie::HeadAhead, "eth_blockNumber") => {
            if let Some(head) = response["result"]
                .as_str()
                .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
            {
                response["result"] = Value::String(format!("0x{:x}", head + 1000));
            }
        }
        (Lie::NoLogs, "eth_getLogs") => response["result"] = Value::Array(Vec::new()),
        (Lie::GarbledLogs, "eth_getLogs") => {
            if let Some(logs) = response["result"].as_array_mut() {
                for log in logs {
                    log["data"] = Value::String("0x01".into());
                }
            }
        }
        _ => {}
    }
}

async fn serve(
    mut stream: TcpStream,
    upstream: SocketAddr,
    mode: &AtomicU8,
) -> std::io::Result<()> {
    if mode.load(Ordering::SeqCst) == Lie::Down as u8 {
        return Ok(());
    }
    let (_, body) = read_http(&mut stream).await?;
    let upstream_body = forward(upstream, &body).await?;
    let lie = match mode.load(Ordering::SeqCst) {
        1 => Lie::HeadAhead,
        2 => Lie::NoLogs,
        3 => Lie::GarbledLogs,
        _ => Lie::None,
    };
    let answer = match (
        serde_json::from_slice::<Value>(&body),
        serde_json::from_slice::<Value>(&upstream_body),
    ) {
        (Ok(request), Ok(mut response)) if lie != Lie::None => {
            match (&request, &mut response) {
                (Value::Array(requests), Value::Array(responses)) => {
                    for (req, resp) in requests.iter().zip(responses.iter_mut()) {
                        tamper(req, resp, lie);
                    }
                }
                (req, resp) => tamper(req, resp, lie),
            }
            serde_json::to_vec(&response).unwrap_or(upstream_body)
        }
        _ => upstream_body,
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&answer).await?;
    stream.shutdown().await
}
