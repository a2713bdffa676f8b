//! `glyco-clinic` processes for the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub fn clinic_bin() -> PathBuf {
    let path = Path::new(super::HUB_BIN).with_file_name("glyco-clinic");
    assert!(
        path.exists(),
        "{} is missing: run the tests for the whole workspace (cargo nextest run --workspace), which builds it",
        path.display()
    );
    path
}

/// A `glyco-clinic` process whose first stdout line is its address line.
pub struct ClinicProcess {
    pub child: Child,
    pub first_line: String,
}

impl ClinicProcess {
    pub async fn start(args: &[&str], log: PathBuf) -> Self {
        let mut child = Command::new(clinic_bin())
            .args(args)
            .env("RUST_LOG", "info,iroh=warn,iroh_blobs=warn,noq=warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first_line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no address line; log:\n{}", read(&log)))
            .unwrap()
            .unwrap_or_else(|| panic!("exited early; log:\n{}", read(&log)));
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, first_line }
    }

    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM, and wait for a clean exit (up to 20 s).
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the clinic process exits within 20 s of SIGTERM")
            .unwrap()
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Runs a `glyco-clinic` command to completion: (success, stdout, stderr).
pub async fn clinic(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(clinic_bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--rpc` and `--deployment` of the world's chain, for `glyco-clinic`.
pub fn chain_args(world: &super::HubWorld) -> Vec<String> {
    vec![
        "--rpc".into(),
        world.config.chain.rpc_url.clone(),
        "--deployment".into(),
        world
            .config
            .chain
            .deployment_file
            .to_string_lossy()
            .into_owned(),
    ]
}

/// The dev account's key written (once) into `dir`, as a path argument.
pub fn key_file(world: &super::HubWorld, dir: &Path, account: u32) -> String {
    let path = dir.join(format!("{account}.key"));
    if !path.exists() {
        super::write_key(&path, &world.consortium.signer(account));
    }
    path.to_string_lossy().into_owned()
}

/// A `glyco-clinic` command with the world's chain arguments appended.
pub async fn clinic_on_chain(world: &super::HubWorld, args: &[&str]) -> (bool, String, String) {
    let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    all.extend(chain_args(world));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    clinic(&refs).await
}

/// A physician's machine in `dir`: umbral key made and published on chain.
pub async fn physician_machine(
    world: &super::HubWorld,
    dir: PathBuf,
    keys: &Path,
    account: u32,
) -> PathBuf {
    let d = dir.to_str().unwrap();
    let (ok, _, err) = clinic(&["physician", "init", "--dir", d]).await;
    assert!(ok, "{err}");
    let key = key_file(world, keys, account);
    let (ok, _, err) = clinic_on_chain(
        world,
        &["physician", "publish-key", "--dir", d, "--key", &key],
    )
    .await;
    assert!(ok, "{err}");
    dir
}

/// A hospital's re-encryption proxy: its account, port and directory.
pub struct ProxyNode {
    pub account: u32,
    pub port: u16,
    pub dir: PathBuf,
}

impl ProxyNode {
    /// Enrols `account` as a proxy of the hospital with the iroh node in
    /// `dir` (offered by the hospital, accepted by the proxy).
    pub async fn enrol(world: &super::HubWorld, account: u32, dir: PathBuf) -> Self {
        use glyco_contracts::testkit::accounts::HOSPITAL;
        let (ok, out, err) = clinic(&["node-id", "--dir", dir.to_str().unwrap()]).await;
        assert!(ok, "{err}");
        let node: iroh::EndpointId = out.trim().parse().unwrap();
        let c = &world.consortium;
        c.client(HOSPITAL)
            .offer_proxy(
                c.address(account),
                glyco_contracts::B256::from(*node.as_bytes()),
            )
            .await
            .unwrap();
        c.client(account)
            .accept_role(c.address(HOSPITAL), glyco_contracts::Role::Proxy)
            .await
            .unwrap();
        Self {
            account,
            port: super::free_udp_port(),
            dir,
        }
    }

    /// Starts the proxy, its key from `keys`, its log in `log`.
    pub async fn start(&self, world: &super::HubWorld, keys: &Path, log: PathBuf) -> ClinicProcess {
        let mut args = vec![
            "proxy".to_owned(),
            "--dir".into(),
            self.dir.to_string_lossy().into_owned(),
            "--key".into(),
            key_file(world, keys, self.account),
            "--listen".into(),
            format!("127.0.0.1:{}", self.port),
            "--sweep-secs".into(),
            "1".into(),
        ];
        args.extend(chain_args(world));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let p = ClinicProcess::start(&refs, log).await;
        assert!(p.first_line.starts_with("proxy "), "{}", p.first_line);
        p
    }

    /// `<address>@127.0.0.1:<port>`, as `--proxy` and the hub's config take it.
    pub fn arg(&self, world: &super::HubWorld) -> String {
        format!(
            "{:#x}@127.0.0.1:{}",
            world.consortium.address(self.account),
            self.port
        )
    }
}
