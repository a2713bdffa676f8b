//! The dev chain: an anvil node on loopback, started and stopped by us, its
//! state persisted so a restart keeps the deployments.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use alloy::transports::http::reqwest::Url;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::keys::DEV_MNEMONIC;

/// Environment variable naming the anvil binary when the config does not.
pub const ANVIL_ENV: &str = "GLYCO_ANVIL";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The default config, with comments; `glyco-chain print-config` prints it.
pub const DEFAULT_CONFIG_TOML: &str = r#"# glyco-chain devnet config. Every key is optional; these are the defaults.

# Address anvil listens on. Keep it on loopback: the dev accounts' keys are public.
host = "127.0.0.1"
# TCP port; 0 lets the system pick a free one.
port = 8545
chain_id = 31337
# Seconds between blocks; 0 mines every transaction at once.
block_time_secs = 1
# Where the chain persists across restarts (relative to the working directory).
# Remove the key to keep the chain in memory only.
state_file = "var/devnet/state.json"
# How often anvil writes the state file, in seconds (it also writes on a clean stop).
state_interval_secs = 1
# Free gas, as on the production network: base fee and priority fee zero, so
# keys created on devices (hubs) transact without ever holding ether.
free_gas = true
# Dev accounts funded at genesis, derived from the mnemonic.
accounts = 20
mnemonic = "test test test test test test test test test test test junk"
# The anvil binary. Unset: $GLYCO_ANVIL, then `anvil` on PATH.
# anvil = "tools/node_modules/.bin/anvil"
"#;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevnetConfig {
    /// Address anvil listens on. Keep it on loopback: the dev accounts' keys
    /// are public.
    pub host: IpAddr,
    /// TCP port; 0 lets the system pick a free one.
    pub port: u16,
    pub chain_id: u64,
    /// Seconds between blocks; 0 mines every transaction at once.
    pub block_time_secs: u64,
    /// Where the chain persists; none keeps it in memory only.
    pub state_file: Option<PathBuf>,
    /// How often anvil writes the state file, in seconds (it also writes on a
    /// clean stop).
    pub state_interval_secs: u64,
    /// Free gas (zero base and priority fees), as on the production network.
    pub free_gas: bool,
    /// Dev accounts funded at genesis.
    pub accounts: u32,
    /// Mnemonic of the dev accounts (the public test mnemonic by default).
    pub mnemonic: String,
    /// The anvil binary; unset means $GLYCO_ANVIL, then `anvil` on PATH.
    pub anvil: Option<PathBuf>,
}

impl Default for DevnetConfig {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8545,
            chain_id: 31337,
            block_time_secs: 1,
            state_file: Some(PathBuf::from("var/devnet/state.json")),
            state_interval_secs: 1,
            free_gas: true,
            accounts: 20,
            mnemonic: DEV_MNEMONIC.to_owned(),
            anvil: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    #[error("invalid devnet config: {0}")]
    Config(String),
    #[error("cannot start anvil ({binary}): {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("anvil exited before it listened; its output:\n{output}")]
    EarlyExit { output: String },
    #[error("anvil did not report a listening address within {0:?}")]
    StartupTimeout(Duration),
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stopping anvil: {0}")]
    Stop(std::io::Error),
}

impl DevnetConfig {
    /// Checks the config before anything is started.
    pub fn validate(&self) -> Result<(), DevnetError> {
        let fail = |m: &str| Err(DevnetError::Config(m.to_owned()));
        if self.chain_id == 0 {
            return fail("chain_id must be positive");
        }
        if self.block_time_secs > 3600 {
            return fail("block_time_secs must be at most 3600");
        }
        if self.state_file.is_some() && self.state_interval_secs == 0 {
            return fail("state_interval_secs must be positive when state_file is set");
        }
        if !(1..=1000).contains(&self.accounts) {
            return fail("accounts must be between 1 and 1000");
        }
        let words = self.mnemonic.split_whitespace().count();
        if ![12, 15, 18, 21, 24].contains(&words) {
            return fail("mnemonic must have 12, 15, 18, 21 or 24 words");
        }
        Ok(())
    }

    fn anvil_binary(&self) -> PathBuf {
        self.anvil
            .clone()
            .or_else(|| std::env::var_os(ANVIL_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("anvil"))
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--host".into(),
            self.host.to_string(),
            "--port".into(),
            self.port.to_string(),
            "--chain-id".into(),
            self.chain_id.to_string(),
            "--accounts".into(),
            self.accounts.to_string(),
            "--mnemonic".into(),
            self.mnemonic.clone(),
        ];
        if self.block_time_secs > 0 {
            args.extend(["--block-time".into(), self.block_time_secs.to_string()]);
        }
        if self.free_gas {
            args.extend(["--base-fee".into(), "0".into(), "--no-priority-fee".into()]);
        }
        if let Some(state) = &self.state_file {
            args.extend([
                "--state".into(),
                state.display().to_string(),
                "--state-interval".into(),
                self.state_interval_secs.to_string(),
            ]);
        }
        args
    }
}

/// A running anvil node. Dropping it kills the node; [`Devnet::stop`] stops it
/// cleanly so it writes its state first.
#[derive(Debug)]
pub struct Devnet {
    child: Child,
    address: SocketAddr,
    config: DevnetConfig,
}

impl Devnet {
    pub async fn start(config: DevnetConfig) -> Result<Self, DevnetError> {
        config.validate()?;
        if let Some(dir) = config.state_file.as_deref().and_then(Path::parent)
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|source| DevnetError::StateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let binary = config.anvil_binary();
        let mut child = Command::new(&binary)
            .args(config.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| DevnetError::Spawn {
                binary: binary.clone(),
                source,
            })?;

        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = String::new();
        let found = tokio::time::timeout(STARTUP_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(address) = line.strip_prefix("Listening on ") {
                    return address.trim().parse::<SocketAddr>().ok();
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            None
        })
        .await;
        let address = match found {
            Ok(Some(address)) => address,
            Ok(None) => {
                let mut err_lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = err_lines.next_line().await {
                    seen.push_str(&line);
                    seen.push('\n');
                }
                return Err(DevnetError::EarlyExit { output: seen });
            }
            Err(_) => return Err(DevnetError::StartupTimeout(STARTUP_TIMEOUT)),
        };

        // Anvil logs every request; keep draining so its pipes never fill.
        tokio::spawn(forward_output(lines));
        tokio::spawn(forward_output(BufReader::new(stderr).lines()));

        tracing::info!(%address, chain_id = config.chain_id, "dev chain listening");
        Ok(Self {
            child,
            address,
            config,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn rpc_url(&self) -> Url {
        format!("http://{}", self.address)
            .parse()
            .expect("socket address forms a URL")
    }

    /// The anvil process id (for tests that crash it).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn config(&self) -> &DevnetConfig {
        &self.config
    }

    /// Stops anvil with SIGTERM, so it writes its state file, and waits.
    pub async fn stop(mut self) -> Result<(), DevnetError> {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            // The process may already be gone; waiting below settles it.
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => status.map(|_| ()).map_err(DevnetError::Stop),
            Err(_) => self.child.kill().await.map_err(DevnetError::Stop),
        }
    }

    /// Kills anvil at once (SIGKILL), as a crash would.
    pub async fn kill(mut self) -> Result<(), DevnetError> {
        self.child.kill().await.map_err(DevnetError::Stop)
    }

    /// Waits until anvil exits by itself (for the foreground `devnet` command).
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }
}

async fn forward_output<R: tokio::io::AsyncBufRead + Unpin>(mut lines: tokio::io::Lines<R>) {
    while let Ok(Some(line)) = lines.next_line().await {
        if !line.trim().is_empty() {
            tracing::debug!(target: "anvil", "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_default_config_is_the_default() {
        let parsed: DevnetConfig = toml::from_str(DEFAULT_CONFIG_TOML).unwrap();
        assert_eq!(parsed, DevnetConfig::default());
    }

    #[test]
    fn the_default_config_is_valid_and_on_loopback() {
        let config = DevnetConfig::default();
        config.validate().unwrap();
        assert!(config.host.is_loopback());
    }

    #[test]
    fn invalid_configs_are_refused_before_anything_starts() {
        type Mutation = fn(&mut DevnetConfig);
        let cases: [(&str, Mutation); 4] = [
            ("chain_id", |c| c.chain_id = 0),
            ("state_interval", |c| c.state_interval_secs = 0),
            ("accounts", |c| c.accounts = 0),
            ("mnemonic", |c| c.mnemonic = "one two".into()),
        ];
        for (what, mutate) in cases {
            let mut config = DevnetConfig::default();
            mutate(&mut config);
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(what), "{what}: {err}");
        }
    }

    #[test]
    fn automine_omits_block_time_and_memory_only_omits_state() {
        let config = DevnetConfig {
            block_time_secs: 0,
            state_file: None,
            ..DevnetConfig::default()
        };
        let args = config.args();
        assert!(!args.iter().any(|a| a == "--block-time" || a == "--state"));
    }

    #[tokio::test]
    async fn a_missing_binary_is_a_spawn_error() {
        let config = DevnetConfig {
            anvil: Some("/nonexistent/anvil".into()),
            state_file: None,
            ..DevnetConfig::default()
        };
        assert!(matches!(
            Devnet::start(config).await,
            Err(DevnetError::Spawn { .. })
        ));
    }
}
