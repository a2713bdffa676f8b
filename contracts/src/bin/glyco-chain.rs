//! glyco-chain: run the dev chain, deploy the contracts, print the gas table.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use glyco_contracts::client::besu_accounts_allowlist;
use glyco_contracts::deploy::{deploy_all, deploy_consortium};
use glyco_contracts::devnet::{DEFAULT_CONFIG_TOML, Devnet, DevnetConfig};
use glyco_contracts::gas;
use glyco_contracts::keys::{DEV_MNEMONIC, dev_account, load_key};
use glyco_contracts::{Address, Deployment, DeviceIdKey, FeePolicy, GlycoClient};

#[derive(Parser)]
#[command(
    name = "glyco-chain",
    version,
    about = "Glyco's chain tools: dev chain, deployment, gas table"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the anvil dev chain in the foreground until SIGINT or SIGTERM.
    Devnet {
        /// Devnet config (TOML); defaults apply to missing keys.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the default devnet config, with comments.
    PrintConfig,
    /// Deploy the contracts and write the deployment file.
    Deploy {
        /// JSON-RPC endpoint of the chain.
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        rpc: String,
        /// Deployer key file (hex, mode 0600).
        #[arg(long, conflicts_with = "dev_account")]
        key_file: Option<PathBuf>,
        /// Deploy from this dev-chain account instead (public test mnemonic).
        #[arg(long)]
        dev_account: Option<u32>,
        /// Consortium admin; defaults to the deployer.
        #[arg(long)]
        admin: Option<Address>,
        /// Where to write the deployment file.
        #[arg(long, default_value = "var/deployment.json")]
        out: PathBuf,
        /// The consortium's device-id key (hex, mode 0600); generated here
        /// if the file does not exist. Hubs need a copy.
        #[arg(long, default_value = "var/device-id.key")]
        device_id_key: PathBuf,
        /// How the chain prices gas: `free` (zero base fee and minimum gas
        /// price, the consortium's network and the dev chain) or `market`.
        #[arg(long, value_enum, default_value_t = Fees::Free)]
        fees: Fees,
    },
    /// Deploy the M-of-N governance contract for a deployment and record it in
    /// the deployment file. The admin then hands over with `transferAdmin`,
    /// and the hospitals' first proposal calls `acceptAdmin`.
    DeployConsortium {
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        rpc: String,
        /// Deployer key file (hex, mode 0600).
        #[arg(long, conflicts_with = "dev_account")]
        key_file: Option<PathBuf>,
        #[arg(long)]
        dev_account: Option<u32>,
        /// The deployment file to read and update.
        #[arg(long, default_value = "var/deployment.json")]
        deployment: PathBuf,
        /// Approvals an act needs (at most the number of active hospitals).
        #[arg(long)]
        threshold: u32,
    },
    /// Write the accounts allowed to send transactions (keys holding a live
    /// role or a pending offer, and the admin) as Besu's accounts
    /// permissioning file.
    Allowlist {
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        rpc: String,
        #[arg(long, default_value = "var/deployment.json")]
        deployment: PathBuf,
        /// Where to write the file; unset: standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Start a throwaway dev chain, call every contract function and print gas per function.
    GasTable {
        /// Also splice the table into this markdown file, between
        /// `<!-- gas-table:begin -->` and `<!-- gas-table:end -->`.
        #[arg(long)]
        write: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Fees {
    Free,
    Market,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Devnet { config } => run_devnet(config.as_deref()).await,
        Command::PrintConfig => {
            print!("{DEFAULT_CONFIG_TOML}");
            Ok(())
        }
        Command::Deploy {
            rpc,
            key_file,
            dev_account: account,
            admin,
            out,
            device_id_key,
            fees,
        } => {
            let deployer = deployer_key(key_file, account)?;
            let admin = admin.unwrap_or(deployer.address());
            let url = rpc
                .parse()
                .with_context(|| format!("invalid --rpc URL {rpc:?}"))?;
            let key = if device_id_key.exists() {
                DeviceIdKey::load(&device_id_key)?
            } else {
                let key = DeviceIdKey::generate();
                key.save_new(&device_id_key)?;
                println!(
                    "device-id key written to {} (0600)",
                    device_id_key.display()
                );
                key
            };
            let fees = match fees {
                Fees::Free => FeePolicy::Free,
                Fees::Market => FeePolicy::Market,
            };
            let deployed = deploy_all(url, deployer, admin, &key, fees).await?;
            for tx in &deployed.transactions {
                println!("{:<12} tx {}  gas {:>9}", tx.call, tx.hash, tx.gas_used);
            }
            deployed.deployment.save(&out)?;
            println!("deployment written to {}", out.display());
            Ok(())
        }
        Command::DeployConsortium {
            rpc,
            key_file,
            dev_account: account,
            deployment: path,
            threshold,
        } => {
            let deployer = deployer_key(key_file, account)?;
            let url = rpc
                .parse()
                .with_context(|| format!("invalid --rpc URL {rpc:?}"))?;
            let mut deployment = Deployment::load(&path)?;
            let (address, tx) = deploy_consortium(url, deployer, &deployment, threshold).await?;
            println!(
                "Consortium   tx {}  gas {:>9}  at {address}",
                tx.hash, tx.gas_used
            );
            deployment.contracts.consortium = Some(address);
            deployment.save(&path)?;
            println!("deployment updated: {}", path.display());
            Ok(())
        }
        Command::Allowlist {
            rpc,
            deployment,
            out,
        } => {
            let url = rpc
                .parse()
                .with_context(|| format!("invalid --rpc URL {rpc:?}"))?;
            let client = GlycoClient::read_only(url, Deployment::load(&deployment)?);
            let accounts = client.allowed_senders().await?;
            let text = besu_accounts_allowlist(&accounts);
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    println!("{} accounts written to {}", accounts.len(), path.display());
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        Command::GasTable { write } => gas_table(write.as_deref()).await,
    }
}

fn deployer_key(
    key_file: Option<PathBuf>,
    account: Option<u32>,
) -> Result<glyco_contracts::keys::Signer> {
    Ok(match (key_file, account) {
        (Some(path), _) => load_key(&path)?,
        (None, Some(index)) => dev_account(DEV_MNEMONIC, index)?,
        (None, None) => bail!("give --key-file, or --dev-account for the dev chain"),
    })
}

fn load_config(path: Option<&Path>) -> Result<DevnetConfig> {
    let config = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => DevnetConfig::default(),
    };
    config.validate()?;
    Ok(config)
}

async fn run_devnet(config: Option<&Path>) -> Result<()> {
    let config = load_config(config)?;
    let mut devnet = Devnet::start(config).await?;
    println!("dev chain on {}", devnet.rpc_url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        status = devnet.wait() => bail!("anvil exited unexpectedly: {:?}", status?),
    }
    devnet.stop().await?;
    Ok(())
}

async fn gas_table(write: Option<&Path>) -> Result<()> {
    let devnet = Devnet::start(DevnetConfig {
        port: 0,
        block_time_secs: 0,
        state_file: None,
        ..DevnetConfig::default()
    })
    .await?;
    let table = gas::measure(devnet.rpc_url(), DEV_MNEMONIC).await;
    devnet.stop().await?;
    let markdown = table?.to_markdown();
    print!("{markdown}");
    if let Some(path) = write {
        let doc =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let Some(updated) = gas::splice_into(&doc, &markdown) else {
            bail!("{} has no gas-table markers", path.display());
        };
        std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
