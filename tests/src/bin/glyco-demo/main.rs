//! glyco-demo: the whole product on embedded defaults — a dev chain, the
//! contracts, and the papers' flows — narrated step by step.

mod chain_flows;
mod clinic_flows;
mod dashboard_flows;
mod enrol_flows;
mod fleet_flows;
mod hub_flows;
mod narrate;
mod seal_flows;
mod web_flows;

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "glyco-demo",
    version,
    about = "Walk Glyco's flows on a local dev chain"
)]
struct Cli {
    /// Working directory for the demo's chain state and files (wiped at start).
    #[arg(long, default_value = "var/demo")]
    dir: PathBuf,
    /// The anvil binary (defaults to $GLYCO_ANVIL, then tools/node_modules/.bin/anvil).
    #[arg(long)]
    anvil: Option<PathBuf>,
    /// After the walk, keep the hub serving its web app until Ctrl-C.
    #[arg(long)]
    keep_serving: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if cli.dir.exists() {
        std::fs::remove_dir_all(&cli.dir)?;
    }
    std::fs::create_dir_all(&cli.dir)?;
    let anvil = cli
        .anvil
        .unwrap_or_else(glyco_contracts::testkit::workspace_anvil);
    let world = Box::pin(chain_flows::run(&cli.dir, anvil)).await?;
    Box::pin(hub_flows::run(&cli.dir, &world, cli.keep_serving)).await?;
    narrate::done();
    Ok(())
}
