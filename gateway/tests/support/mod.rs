//! End-to-end harness for the hub: a real anvil chain with the contracts and
//! the consortium set up, and the real `glyco-hub` binary as a process.
#![allow(dead_code)]

pub mod alerts;
pub mod clinic;
pub mod raw;
pub mod release;
pub mod rpc_proxy;
pub mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use glyco_contracts::devnet::DevnetConfig;
use glyco_contracts::testkit::{Consortium, accounts::*, ephemeral_devnet};
use glyco_contracts::{Address, DeviceIdentity, DeviceKind, EntityKind, GlycoClient};
use glyco_gateway::config::HubConfig;
use glyco_gateway::credentials::CredentialsFile;
use glyco_gateway::status::{self, StatusReport};
use tokio::process::{Child, Command};

pub const HUB_BIN: &str = env!("CARGO_BIN_EXE_glyco-hub");

pub struct HubWorld {
    pub consortium: Consortium,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub config: HubConfig,
}

impl HubWorld {
    /// Instant mining: fast, for everything but block-timing tests.
    pub async fn new() -> Self {
        Self::with_devnet(ephemeral_devnet(), true).await
    }

    /// A block every `secs` seconds.
    pub async fn with_block_time(secs: u64) -> Self {
        Self::with_devnet(
            DevnetConfig {
                block_time_secs: secs,
                ..ephemeral_devnet()
            },
            true,
        )
        .await
    }

    /// The patient is registered but has not authorised the hub's key yet.
    pub async fn with_hub_unauthorised() -> Self {
        Self::with_devnet(ephemeral_devnet(), false).await
    }

    async fn with_devnet(devnet: DevnetConfig, authorise_hub: bool) -> Self {
        let consortium = Consortium::start_with(devnet).await.expect("chain starts");
        consortium
            .enrol_entity(HOSPITAL, EntityKind::Hospital, "St Luke's")
            .await
            .unwrap();
        consortium
            .enrol_physician(PHYSICIAN, HOSPITAL)
            .await
            .unwrap();
        consortium
            .register_patient(PHYSICIAN, PATIENT)
            .await
            .unwrap();
        if authorise_hub {
            // The patient lets the hub register devices (the CLI's `device add`).
            consortium.authorise_hub(PATIENT, HUB, true).await.unwrap();
        }

        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        std::fs::create_dir_all(&state_dir).unwrap();
        let deployment_file = dir.path().join("deployment.json");
        consortium.deployment.save(&deployment_file).unwrap();
        let device_id_key_file = dir.path().join("device-id.key");
        consortium
            .device_id_key
            .save_new(&device_id_key_file)
            .unwrap();
        // The hub's key: the dev account the patient authorised (it holds gas money).
        write_key(&state_dir.join("hub.key"), &consortium.signer(HUB));

        let mut config = HubConfig {
            state_dir,
            ..HubConfig::default()
        };
        config.chain.rpc_url = consortium.devnet.rpc_url().to_string();
        config.chain.deployment_file = deployment_file;
        config.chain.device_id_key_file = device_id_key_file;
        config.chain.patient = Some(consortium.address(PATIENT));
        config.chain.poll_interval_ms = 200;
        config.mqtt.listen = vec!["127.0.0.1:0".parse().unwrap()];
        // Loopback, and a port of its own: tests run side by side.
        config.seal.iroh_listen = "127.0.0.1:0".parse().unwrap();
        config.ble.enabled = false;
        config.web.listen = "127.0.0.1:0".parse().unwrap();
        let config_path = dir.path().join("hub.toml");
        std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
        Self {
            consortium,
            dir,
            config_path,
            config,
        }
    }

    /// Changes the hub's config file (before the hub starts).
    pub fn edit_config(&mut self, edit: impl FnOnce(&mut HubConfig)) {
        edit(&mut self.config);
        std::fs::write(&self.config_path, toml::to_string(&self.config).unwrap()).unwrap();
    }

    pub fn patient(&self) -> Address {
        self.consortium.address(PATIENT)
    }

    pub fn client(&self, index: u32) -> GlycoClient {
        self.consortium.client(index)
    }

    /// A device's on-chain id under the consortium's device-id key.
    pub fn device_id(&self, identity: &DeviceIdentity) -> glyco_contracts::DeviceId {
        self.consortium.device_id(identity)
    }

    /// Runs a `glyco-hub` command with `input` on its stdin; it must
    /// succeed, and its stdout is returned.
    pub async fn hub_cli_with_input(&self, args: &[&str], input: &str) -> String {
        use tokio::io::AsyncWriteExt;
        let mut child = Command::new(HUB_BIN)
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
        let out = child.wait_with_output().await.unwrap();
        assert!(
            out.status.success(),
            "glyco-hub {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a `glyco-hub` command with the world's config; its output.
    pub async fn hub_cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(HUB_BIN)
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .output()
            .await
            .unwrap()
    }

    /// Registers a named device through the hub's own CLI, returning its secret.
    pub async fn register(&self, name: &str, kind: &str) -> String {
        let output = Command::new(HUB_BIN)
            .args([
                "--config",
                self.config_path.to_str().unwrap(),
                "device",
                "add",
                "--name",
                name,
                "--kind",
                kind,
            ])
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "device add failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("MQTT password (shown once): "))
            .expect("the secret is printed")
            .trim()
            .to_owned()
    }

    /// Gives a device credentials without registering it on chain.
    pub fn provision_only(&self, name: &str) -> String {
        let path = self.config.credentials_path();
        let mut file = CredentialsFile::load(&path).unwrap();
        let secret = file.provision(name).unwrap();
        file.save(&path).unwrap();
        secret
    }

    /// The patient removes a device on chain; returns the removal's block.
    pub async fn remove_on_chain(&self, name: &str) -> u64 {
        let id = self.device_id(&DeviceIdentity::name(name).unwrap());
        self.client(PATIENT)
            .remove_device(self.patient(), id)
            .await
            .unwrap()
            .block
    }

    /// Registers a device on chain directly, as the patient would from an app.
    pub async fn add_on_chain(&self, identity: &DeviceIdentity, kind: DeviceKind) {
        self.client(PATIENT)
            .add_device(self.patient(), self.device_id(identity), kind)
            .await
            .unwrap();
    }

    pub async fn start_hub(&self) -> Hub {
        let ids = self.consortium.device_id_key.clone();
        Hub::start(&self.config_path, &self.config, self.dir.path(), ids).await
    }
}

pub fn write_key(path: &Path, signer: &glyco_contracts::keys::Signer) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    writeln!(file, "{}", signer.to_bytes()).unwrap();
}

/// The hub daemon as a child process.
pub struct Hub {
    child: Child,
    /// The consortium's device-id key, to find devices in the status by id.
    pub ids: glyco_contracts::DeviceIdKey,
    pub socket: PathBuf,
    pub mqtt: SocketAddr,
    pub log: PathBuf,
}

impl Hub {
    async fn start(
        config_path: &Path,
        config: &HubConfig,
        dir: &Path,
        ids: glyco_contracts::DeviceIdKey,
    ) -> Self {
        let log = dir.join(format!(
            "hub-{}.log",
            std::process::id() as u64 + rand_suffix()
        ));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(HUB_BIN)
            .args(["--config", config_path.to_str().unwrap(), "run"])
            .env("RUST_LOG", "info,glyco_gateway=debug,rumqttd=warn")
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let socket = config.status_socket();
        let mut hub = Self {
            child,
            ids,
            socket,
            mqtt: "0.0.0.0:0".parse().unwrap(),
            log,
        };
        let report = hub
            .wait_for("the status socket to answer", |r| !r.mqtt.listen.is_empty())
            .await;
        hub.mqtt = report.mqtt.listen[0];
        hub
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the hub is running")
    }

    pub async fn status(&self) -> Option<StatusReport> {
        status::query(&self.socket).await.ok()
    }

    /// Polls the status until `done` holds (up to 30 s), else panics with the log.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&StatusReport) -> bool) -> StatusReport {
        self.wait_for_within(Duration::from_secs(30), what, done)
            .await
    }

    pub async fn wait_for_within(
        &self,
        within: Duration,
        what: &str,
        done: impl Fn(&StatusReport) -> bool,
    ) -> StatusReport {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(report) = self.status().await
                && done(&report)
            {
                return report;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; last status: {:?}\nhub log:\n{}",
                    self.status().await,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the mirror has synced `device` as registered.
    pub async fn wait_registered(&self, name: &str) {
        let id = self.ids.id_of(&DeviceIdentity::name(name).unwrap());
        self.wait_for(&format!("{name} in the mirror"), |r| {
            r.devices.iter().any(|d| {
                d.device_id == id && d.standing == glyco_gateway::registry::Standing::Registered
            })
        })
        .await;
    }

    pub fn refusals(report: &StatusReport, reason: &str) -> u64 {
        report
            .refusals
            .iter()
            .filter(|r| r.reason.as_str() == reason)
            .map(|r| r.count)
            .sum()
    }

    /// A CGM's backlog: `points` as readings 1, 2, … from `name`, sent in
    /// windows without waiting for each ack, every one acknowledged.
    pub async fn backfill_cgm(&self, name: &str, secret: &str, points: &[glyco_report::CgmPoint]) {
        let mut cgm = glyco_gateway::sim::SimulatedDevice::connect(self.mqtt, name, secret)
            .await
            .unwrap();
        let backlog = points
            .iter()
            .zip(1u64..)
            .map(|(p, seq)| (seq, glyco_gateway::sim::cgm_payload(seq, p.at_ms, p.mg_dl)))
            .collect();
        cgm.send_all_acked(backlog, 5).await.unwrap();
        cgm.disconnect().await;
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!(
                "the hub did not exit within 20 s of SIGTERM; its log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            ),
        }
    }

    /// SIGKILL: the hub gets no chance to clean up.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

/// A simulated MQTT CGM named `name` sends readings `seqs` (value
/// `value(seq)`), each acknowledged by the hub before the next.
pub async fn stream_cgm(
    hub: &Hub,
    name: &str,
    secret: &str,
    seqs: std::ops::RangeInclusive<u64>,
    value: impl Fn(u64) -> f64,
) {
    use glyco_gateway::sim::{self, SimulatedDevice};
    let mut device = SimulatedDevice::connect(hub.mqtt, name, secret)
        .await
        .unwrap();
    for seq in seqs {
        let ack = device
            .send_until_acked(seq, sim::cgm_payload(seq, now_ms(), value(seq)), 5)
            .await
            .unwrap();
        assert!(sim::is_final(&ack), "{ack:?}");
    }
    device.disconnect().await;
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS:`, `VmHWM:`), 0 if absent.
pub fn proc_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A UDP port free right now on loopback (for a hub's iroh endpoint, which
/// must keep its port across restarts for a replica to follow it).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn now_ms() -> i64 {
    glyco_gateway::reading::now_millis()
}

/// A self-signed certificate for 127.0.0.1 and its key (PEM files in `dir`),
/// made by openssl.
pub async fn throwaway_cert(dir: &Path) -> (PathBuf, PathBuf) {
    self_signed(
        dir,
        "hub",
        "/CN=glyco-hub",
        &["-addext", "subjectAltName=IP:127.0.0.1"],
    )
    .await
}

/// A self-signed P-256 certificate and its key, `<stem>.crt` and
/// `<stem>.key.pem` in `dir`, made by openssl with `subject` and `extra`
/// arguments.
pub async fn self_signed(
    dir: &Path,
    stem: &str,
    subject: &str,
    extra: &[&str],
) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{stem}.crt")),
        dir.join(format!("{stem}.key.pem")),
    );
    let openssl = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            subject,
        ])
        .args(extra)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .await
        .expect("openssl is installed (scripts/bootstrap.sh)");
    assert!(
        openssl.status.success(),
        "{}",
        String::from_utf8_lossy(&openssl.stderr)
    );
    (cert, key)
}
