//! The hub under systemd's service protocol, without systemd: a datagram
//! socket as NOTIFY_SOCKET and WATCHDOG_USEC / WATCHDOG_PID as systemd sets
//! them for `Type=notify` with `WatchdogSec=` (systemd/glyco-hub.service).
//! The real hub says READY=1 once it serves, WATCHDOG=1 at half the period
//! while its journal writer answers and its stages run, and STOPPING=1 on
//! SIGTERM.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::HubWorld;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_says_ready_feeds_the_watchdog_and_says_when_it_stops() {
    let world = HubWorld::new().await;
    let dir = world.dir.path();
    let socket_path = dir.join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let log = dir.join("hub-notify.log");
    // systemd names the main process in WATCHDOG_PID: sh's pid, which the
    // hub keeps through exec.
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "WATCHDOG_PID=$$ exec '{}' --config '{}' run",
            support::HUB_BIN,
            world.config_path.display()
        ))
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut messages: Vec<String> = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut receive =
        async |messages: &mut Vec<String>, what: &str, done: &dyn Fn(&[String]) -> bool| {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while !done(messages) {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let got = tokio::time::timeout(left, socket.recv(&mut buf)).await;
                let Ok(Ok(n)) = got else {
                    panic!(
                        "no {what} within a minute; got {messages:?}; hub log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                };
                messages.extend(
                    String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .map(str::to_owned),
                );
            }
        };
    receive(&mut messages, "READY=1", &|m| {
        m.iter().any(|l| l == "READY=1")
    })
    .await;
    let ready_at = messages.iter().position(|l| l == "READY=1").unwrap();
    assert!(
        messages.iter().any(|l| l.starts_with("STATUS=hub ")),
        "{messages:?}"
    );
    // Three pings at half of the one-second period come within a few
    // seconds; none was sent before the hub was ready.
    let started = tokio::time::Instant::now();
    receive(&mut messages, "three WATCHDOG=1", &|m| {
        m.iter().filter(|l| *l == "WATCHDOG=1").count() >= 3
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(5), "{messages:?}");
    assert!(!messages[..ready_at].iter().any(|l| l == "WATCHDOG=1"));
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    receive(&mut messages, "STOPPING=1", &|m| {
        m.iter().any(|l| l == "STOPPING=1")
    })
    .await;
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
