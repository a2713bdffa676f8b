//! `glyco-clinic fleet`: the fleet view on the command line (from the
//! clinic node's `/fleet.json`), and a physician's signed alert policy
//! left on the clinic node for a hub.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use glyco_clinic::fleet::http::{FleetClient, FleetQuery};
use glyco_clinic::fleet::view::{self, Flag};
use glyco_clinic::replica::{HubPeer, bind};
use glyco_contracts::Address;
use glyco_seal::alerts::AlertPolicyDoc;
use glyco_seal::fleet::{FLEET_ALPN, FleetAnswer, HubFleetMessage, Signed};
use iroh::EndpointAddr;

use crate::node_key;

#[derive(clap::Subcommand)]
pub enum FleetCommand {
    /// Every hub with its flags, the most urgent first.
    Show {
        /// The clinic node's HTTP address (its `--http`), e.g.
        /// http://10.0.0.5:9464.
        #[arg(long, default_value = "http://127.0.0.1:9464")]
        node: String,
        /// The file holding the node's bearer token, if it needs one.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Only hubs with this flag (repeat for any of several).
        #[arg(long = "flag", value_enum)]
        flags: Vec<Flag>,
        /// Only hubs on this version or release.
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        hub: Option<Address>,
        /// JSON for scripts (the node's `/fleet.json`).
        #[arg(long)]
        json: bool,
    },
    /// Leave a signed alert policy (from `physician sign-alert-policy`) on
    /// the clinic node; the hub takes it with its next heartbeat and
    /// applies it if its patient allows remote configuration.
    Propose {
        #[arg(long)]
        signed: PathBuf,
        /// The clinic node: <iroh node id>@<ip:port>.
        #[arg(long)]
        node: HubPeer,
        /// This tool's directory (its iroh node key).
        #[arg(long)]
        dir: PathBuf,
    },
}

pub async fn run(command: FleetCommand) -> Result<()> {
    match command {
        FleetCommand::Show {
            node,
            token_file,
            flags,
            version,
            hub,
            json,
        } => show(&node, token_file, &flags, version, hub, json).await,
        FleetCommand::Propose { signed, node, dir } => propose(&signed, &node, &dir).await,
    }
}

async fn show(
    node: &str,
    token_file: Option<PathBuf>,
    flags: &[Flag],
    version: Option<String>,
    hub: Option<Address>,
    json: bool,
) -> Result<()> {
    let client = FleetClient {
        url: node.to_owned(),
        token: token_file
            .map(|path| {
                std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))
                    .map(|token| token.trim().to_owned())
            })
            .transpose()?,
    };
    let query = FleetQuery {
        flags: (!flags.is_empty()).then(|| {
            let names: Vec<&str> = flags.iter().map(|f| f.name()).collect();
            names.join(",")
        }),
        version,
        hub: hub.map(|h| h.to_string()),
    };
    let fleet = client.fetch(&query).await.map_err(anyhow::Error::msg)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&fleet)?);
        return Ok(());
    }
    let tally: Vec<String> = fleet
        .tally
        .iter()
        .map(|(flag, n)| format!("{n} {}", flag.name()))
        .collect();
    println!(
        "{} shown; fleet: {} (silent after {} s, current {})",
        match fleet.hubs.len() {
            1 => "1 hub".to_owned(),
            n => format!("{n} hubs"),
        },
        tally.join(", "),
        fleet.silent_after_s,
        fleet
            .current_release
            .or(fleet.current_version)
            .unwrap_or_else(|| "not set".into())
    );
    if let Some(rollout) = &fleet.rollout {
        println!(
            "rollout of {} to {} %: {} offered, {} kept, {} failed{}",
            rollout.version,
            rollout.percent,
            rollout.offered,
            rollout.kept,
            rollout.failed.len(),
            if rollout.halted_at_ms.is_some() {
                " (halted: too many failures)"
            } else {
                ""
            }
        );
    }
    print!("{}", view::table(&fleet.hubs));
    Ok(())
}

async fn propose(signed: &std::path::Path, node: &HubPeer, dir: &std::path::Path) -> Result<()> {
    let policy: Signed<AlertPolicyDoc> = serde_json::from_slice(
        &std::fs::read(signed).with_context(|| format!("reading {}", signed.display()))?,
    )
    .with_context(|| format!("{} is not a signed alert policy", signed.display()))?;
    let (hub, signer) = (
        policy.body.hub,
        policy.signer().context("the policy's signature")?,
    );
    let endpoint = bind(node_key(dir)?, "127.0.0.1:0".parse()?).await?;
    let to = EndpointAddr::new(node.node).with_ip_addr(node.addr);
    let connection =
        tokio::time::timeout(Duration::from_secs(10), endpoint.connect(to, FLEET_ALPN))
            .await
            .context("connecting to the clinic node timed out")?
            .context("connecting to the clinic node")?;
    let answer = glyco_clinic::fleet::exchange(
        &connection,
        &HubFleetMessage::ProposePolicy(Box::new(policy)),
        Duration::from_secs(10),
    )
    .await
    .map_err(anyhow::Error::msg)?;
    connection.close(0u32.into(), b"done");
    endpoint.close().await;
    match answer {
        FleetAnswer::Proposed { version } => {
            println!(
                "alert policy version {version} from {signer} waits for hub {hub}'s next heartbeat"
            );
            Ok(())
        }
        FleetAnswer::Refused { reason } => bail!("refused: {reason}"),
        other => bail!("unexpected answer: {other:?}"),
    }
}
