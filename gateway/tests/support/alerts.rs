//! A clinic alert inbox, physicians and a hub configured to alert them,
//! for the alert tests and the latency bench.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use glyco_contracts::testkit::accounts::*;
use glyco_contracts::{B256, DataKinds, Expiry, GrantScope};
use glyco_gateway::config::LadderStepConfig;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::clinic::{ClinicProcess, clinic, clinic_bin};
use super::{HubWorld, free_udp_port, now_ms};

pub struct AlertWorld {
    pub world: HubWorld,
    pub inbox_dir: PathBuf,
    pub inbox_port: u16,
    pub inbox_node: String,
}

impl AlertWorld {
    pub fn path(&self, name: &str) -> PathBuf {
        self.world.dir.path().join(name)
    }

    pub fn chain_args(&self) -> Vec<String> {
        super::clinic::chain_args(&self.world)
    }

    pub fn key_file(&self, account: u32) -> String {
        super::clinic::key_file(&self.world, self.world.dir.path(), account)
    }

    pub async fn run(&self, args: &[&str]) -> (bool, String, String) {
        super::clinic::clinic_on_chain(&self.world, args).await
    }

    pub async fn start_inbox(&self) -> ClinicProcess {
        self.start_inbox_at(&self.inbox_dir, self.inbox_port, &[])
            .await
    }

    /// An alert inbox in `dir` on `port`, with `extra` arguments.
    pub async fn start_inbox_at(&self, dir: &Path, port: u16, extra: &[&str]) -> ClinicProcess {
        let mut args = vec![
            "alert-inbox".to_owned(),
            "--dir".into(),
            dir.to_string_lossy().into_owned(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args.extend(self.chain_args());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let inbox =
            ClinicProcess::start(&refs, self.path(&format!("inbox-{}.log", now_ms()))).await;
        assert!(
            inbox.first_line.starts_with("alert inbox node "),
            "{}",
            inbox.first_line
        );
        inbox
    }

    pub fn inbox_arg(&self) -> String {
        format!("{}@127.0.0.1:{}", self.inbox_node, self.inbox_port)
    }

    /// A physician's machine with its umbral key published on chain.
    pub async fn physician(&self, account: u32) -> PathBuf {
        let dir = self.path(&format!("physician-{account}"));
        super::clinic::physician_machine(&self.world, dir, self.world.dir.path(), account).await
    }

    pub async fn grant(&self, account: u32) {
        self.world
            .client(PATIENT)
            .grant(
                self.world.consortium.address(account),
                B256::repeat_byte(0x51 + account as u8),
                GrantScope {
                    kinds: DataKinds::GLUCOSE,
                    data_from: 0,
                    data_until: None,
                },
                Expiry::after(Duration::from_secs(3600)),
            )
            .await
            .unwrap();
    }

    /// `physician alerts --json` once (no follow): the JSON lines.
    pub async fn alerts_once(&self, account: u32, dir: &Path) -> Vec<serde_json::Value> {
        self.alerts_once_at(account, dir, &self.inbox_arg()).await
    }

    /// The same, from the inbox `<node>@<address>`.
    pub async fn alerts_once_at(
        &self,
        account: u32,
        dir: &Path,
        inbox: &str,
    ) -> Vec<serde_json::Value> {
        let key = self.key_file(account);
        let (ok, out, err) = clinic(&[
            "physician",
            "alerts",
            "--dir",
            dir.to_str().unwrap(),
            "--key",
            &key,
            "--inbox",
            inbox,
            "--json",
        ])
        .await;
        assert!(ok, "{err}");
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// `physician alerts --follow --json` as a child; its lines arrive on the channel.
pub fn follow(
    w: &AlertWorld,
    account: u32,
    dir: &Path,
) -> (Child, mpsc::UnboundedReceiver<serde_json::Value>) {
    follow_at(w, account, dir, &w.inbox_arg())
}

/// The same, on the inbox `<node>@<address>`.
pub fn follow_at(
    w: &AlertWorld,
    account: u32,
    dir: &Path,
    inbox: &str,
) -> (Child, mpsc::UnboundedReceiver<serde_json::Value>) {
    let key = w.key_file(account);
    let mut child = Command::new(clinic_bin())
        .args([
            "physician",
            "alerts",
            "--follow",
            "--json",
            "--dir",
            dir.to_str().unwrap(),
            "--key",
            &key,
        ])
        .args(["--inbox", inbox])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(w.path(&format!("follow-{}.log", now_ms()))).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(value) = serde_json::from_str(&line) {
                let _ = tx.send(value);
            }
        }
    });
    (child, rx)
}

pub async fn next_alert(
    rx: &mut mpsc::UnboundedReceiver<serde_json::Value>,
    what: &str,
) -> serde_json::Value {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no alert line for {what} within a minute"))
        .unwrap_or_else(|| panic!("the follower ended before {what}"))
}

pub async fn alert_world() -> AlertWorld {
    let mut world = HubWorld::new().await;
    let hub_port = free_udp_port();
    world.edit_config(|c| {
        c.seal.iroh_listen = format!("127.0.0.1:{hub_port}").parse().unwrap();
        c.limits.max_publishes_per_second = 1000;
    });
    world
        .consortium
        .enrol_physician(LOCUM, HOSPITAL)
        .await
        .unwrap();
    let inbox_dir = world.dir.path().join("inbox");
    let mut w = AlertWorld {
        world,
        inbox_dir,
        inbox_port: free_udp_port(),
        inbox_node: String::new(),
    };
    let hospital = w.key_file(HOSPITAL);
    let (ok, out, err) = w
        .run(&[
            "enrol-node",
            "--dir",
            w.inbox_dir.to_str().unwrap(),
            "--entity-key",
            &hospital,
        ])
        .await;
    assert!(ok, "{err}");
    w.inbox_node = out.split_whitespace().nth(2).unwrap().to_owned();
    let (inbox, doctor, locum) = (
        w.inbox_arg(),
        w.world.consortium.address(PHYSICIAN),
        w.world.consortium.address(LOCUM),
    );
    w.world.edit_config(|c| {
        c.alerts.inbox = Some(inbox);
        c.alerts.ack_poll_ms = 300;
        c.seal.max_batch_wait_secs = 1;
        c.alerts.ladder = vec![
            LadderStepConfig {
                after_secs: 0,
                to: vec!["patient".into(), format!("physician:{doctor:#x}")],
            },
            LadderStepConfig {
                after_secs: 4,
                to: vec![format!("physician:{locum:#x}")],
            },
        ];
    });
    w
}
