//! The clinic side of the demo: two hospital re-encryption proxies
//! (`glyco-clinic proxy`) get each grant's kfrags from the hub; a physician
//! reads the patient's latest readings through both (2 of 2), every access
//! lands in the on-chain log, and a FHIR R4 bundle is written; an emergency
//! read works inside its window and is refused after it; the offline
//! emergency kit, kept at the clinic replica, opens with two of three family
//! shares and not with one.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use glyco_contracts::testkit::accounts::{
    EMERGENCY_SERVICE, HOSPITAL, PARAMEDIC, PATIENT, PHYSICIAN, SECOND_PROXY,
};
use glyco_contracts::{B256, DataKinds, EmergencyPolicy, Expiry, GrantScope, Role};
use glyco_gateway::config::HubConfig;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::chain_flows::{ChainWorld, address};
use crate::hub_flows::{hub_cli, sibling_binary, wait_status};
use crate::narrate::{section, step};
use crate::seal_flows::{clinic, start_replica, write_key};

/// A dev account with nothing else to do in the demo: the second proxy.
const THIRD_PROXY: u32 = 17;

/// The proxies and the alert inboxes, running; the proxies'
/// `<address>@<ip:port>` and the inboxes' `<node id>@<ip:port>` for configs
/// and CLIs.
pub struct Proxies {
    pub children: Vec<Child>,
    pub args: Vec<String>,
    /// St Luke's.
    pub inbox: String,
    /// City Ambulance's, with its duty roster.
    pub emergency_inbox: String,
    /// St Luke's node's HTTP side (fleet view, metrics) and its token file.
    pub fleet_http: String,
    pub fleet_token: PathBuf,
    /// How St Luke's node was started (its place in `children`, its
    /// arguments), to restart it with a release to roll out.
    pub st_lukes: (usize, Vec<String>),
}

impl Proxies {
    /// Restarts St Luke's node (same directory, key and port) with `extra`
    /// arguments added.
    pub async fn restart_st_lukes(&mut self, dir: &Path, extra: &[String]) -> Result<()> {
        let (index, args) = &self.st_lukes;
        let mut args = args.clone();
        args.extend(extra.iter().cloned());
        self.children[*index].kill().await?;
        let (child, _) =
            spawn_clinic(&args, &dir.join("alert-inbox.release.log"), "alert inbox").await?;
        self.children[*index] = child;
        Ok(())
    }
}

pub fn chain_args(dir: &Path, world: &ChainWorld) -> Vec<String> {
    vec![
        "--rpc".into(),
        world.devnet.rpc_url().to_string(),
        "--deployment".into(),
        dir.join("deployment.json").to_string_lossy().into_owned(),
    ]
}

async fn run_clinic(args: &[String]) -> Result<(bool, String, String)> {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = clinic(&refs).await?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// Starts a long-running `glyco-clinic` command; returns it and the
/// address line it prints first.
pub async fn spawn_clinic(args: &[String], log: &Path, what: &str) -> Result<(Child, String)> {
    let mut child = Command::new(sibling_binary("glyco-clinic")?)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log)?)
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .with_context(|| format!("the {what} did not start"))??
        .with_context(|| format!("the {what} exited"))?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, line))
}

/// Enrols two proxies of St Luke's with their iroh nodes and starts them.
pub async fn start_proxies(dir: &Path, world: &ChainWorld) -> Result<Proxies> {
    let mut proxies = Proxies {
        children: Vec::new(),
        args: Vec::new(),
        inbox: String::new(),
        emergency_inbox: String::new(),
        fleet_http: String::new(),
        fleet_token: dir.join("fleet-token"),
        st_lukes: (0, Vec::new()),
    };
    for account in [SECOND_PROXY, THIRD_PROXY] {
        let proxy_dir = dir.join(format!("proxy-{account}"));
        let out = clinic(&["node-id", "--dir", &proxy_dir.to_string_lossy()]).await?;
        let node: iroh::EndpointId = String::from_utf8_lossy(&out.stdout).trim().parse()?;
        world
            .client(HOSPITAL)
            .offer_proxy(address(account), B256::from(*node.as_bytes()))
            .await?;
        world
            .client(account)
            .accept_role(address(HOSPITAL), Role::Proxy)
            .await?;
        let key = dir.join(format!("proxy-{account}.key"));
        write_key(&key, account)?;
        let port = std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut args = strings(&["proxy", "--dir"]);
        args.push(proxy_dir.to_string_lossy().into_owned());
        args.push("--key".into());
        args.push(key.to_string_lossy().into_owned());
        args.push("--listen".into());
        args.push(format!("127.0.0.1:{port}"));
        args.extend(chain_args(dir, world));
        let (child, line) =
            spawn_clinic(&args, &dir.join(format!("proxy-{account}.log")), "proxy").await?;
        step(&format!(
            "glyco-clinic proxy (enrolled by St Luke's with its iroh node): {line}"
        ));
        proxies.children.push(child);
        proxies
            .args
            .push(format!("{:#x}@127.0.0.1:{port}", address(account)));
    }
    // St Luke's alert inbox: its node enrolled for the hospital, so hubs
    // deliver to it; it keeps alerts only for physicians with a live grant.
    // It is also St Luke's fleet node: hubs send it heartbeats, and it
    // serves the fleet view and Prometheus metrics behind a bearer token.
    std::fs::write(
        &proxies.fleet_token,
        format!("{}\n", glyco_webkit::random_hex()),
    )?;
    let http = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let fleet_args = vec![
        "--http".to_owned(),
        http.to_string(),
        "--http-token-file".into(),
        proxies.fleet_token.to_string_lossy().into_owned(),
        "--silent-after-secs".into(),
        "15".into(),
        "--current-version".into(),
        env!("CARGO_PKG_VERSION").into(),
    ];
    let (child, inbox, args) =
        start_inbox(dir, world, "alert-inbox", HOSPITAL, None, &fleet_args).await?;
    proxies.st_lukes = (proxies.children.len(), args);
    proxies.fleet_http = format!("http://{http}");
    step(&format!(
        "glyco-clinic alert-inbox (St Luke's, node enrolled on chain; fleet view and metrics on {http}): {inbox}"
    ));
    proxies.inbox = inbox;
    proxies.children.push(child);
    // City Ambulance's inbox: it names its duty paramedic to hubs whose
    // patient consented (an emergency policy on chain).
    let roster = dir.join("ambulance-duty.txt");
    std::fs::write(
        &roster,
        format!("# on duty tonight\n{:#x}\n", address(PARAMEDIC)),
    )?;
    let (child, inbox, _) = start_inbox(
        dir,
        world,
        "ambulance-inbox",
        EMERGENCY_SERVICE,
        Some(&roster),
        &[],
    )
    .await?;
    step(&format!(
        "glyco-clinic alert-inbox --duty-roster (City Ambulance, node enrolled on chain): {inbox}"
    ));
    proxies.emergency_inbox = inbox;
    proxies.children.push(child);
    Ok(proxies)
}

/// An alert inbox in `dir/name`, its node enrolled for `entity`: the
/// process, its `<node id>@<ip:port>` and the arguments it was started with.
async fn start_inbox(
    dir: &Path,
    world: &ChainWorld,
    name: &str,
    entity: u32,
    duty_roster: Option<&Path>,
    extra: &[String],
) -> Result<(Child, String, Vec<String>)> {
    let inbox_dir = dir.join(name);
    let mut args = strings(&["enrol-node", "--dir"]);
    args.push(inbox_dir.to_string_lossy().into_owned());
    args.push("--entity-key".into());
    let entity_key = dir.join(format!("entity-{entity}.key"));
    write_key(&entity_key, entity)?;
    args.push(entity_key.to_string_lossy().into_owned());
    args.extend(chain_args(dir, world));
    let (ok, _, err) = run_clinic(&args).await?;
    if !ok {
        bail!("enrolling the alert inbox {name}: {err}");
    }
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut args = strings(&["alert-inbox", "--dir"]);
    args.push(inbox_dir.to_string_lossy().into_owned());
    args.push("--listen".into());
    args.push(format!("127.0.0.1:{port}"));
    if let Some(roster) = duty_roster {
        args.push("--duty-roster".into());
        args.push(roster.to_string_lossy().into_owned());
    }
    args.extend(extra.iter().cloned());
    args.extend(chain_args(dir, world));
    let (child, line) =
        spawn_clinic(&args, &dir.join(format!("{name}.log")), "alert inbox").await?;
    let node = line
        .split_whitespace()
        .nth(3)
        .context("the inbox's node id")?
        .to_owned();
    Ok((child, format!("{node}@127.0.0.1:{port}"), args))
}

/// `glyco-clinic <command> --dir <machine> --key <key> --inbox <inbox>`
/// (a physician's `alerts` or `ack`): what it printed.
async fn physician_at_inbox(
    command: &[&str],
    machine: &Path,
    key: &Path,
    inbox: &str,
) -> Result<String> {
    let mut args = strings(command);
    args.extend([
        "--dir".into(),
        machine.to_string_lossy().into_owned(),
        "--key".into(),
        key.to_string_lossy().into_owned(),
        "--inbox".into(),
        inbox.to_owned(),
    ]);
    let (ok, out, err) = run_clinic(&args).await?;
    if !ok {
        bail!("glyco-clinic {}: {err}", command.join(" "));
    }
    Ok(out)
}

/// A physician's machine: umbral key made there and published on chain.
async fn physician_machine(
    dir: &Path,
    world: &ChainWorld,
    account: u32,
) -> Result<(PathBuf, PathBuf)> {
    let machine = dir.join(format!("physician-{account}"));
    let key = dir.join(format!("physician-{account}.key"));
    write_key(&key, account)?;
    let (ok, out, err) = run_clinic(&[
        "physician".into(),
        "init".into(),
        "--dir".into(),
        machine.to_string_lossy().into_owned(),
    ])
    .await?;
    if !ok {
        bail!("physician init: {err}");
    }
    let public = out.lines().next().unwrap_or_default().to_owned();
    let mut args = strings(&["physician", "publish-key", "--dir"]);
    args.push(machine.to_string_lossy().into_owned());
    args.push("--key".into());
    args.push(key.to_string_lossy().into_owned());
    args.extend(chain_args(dir, world));
    let (ok, out, err) = run_clinic(&args).await?;
    if !ok {
        bail!("physician publish-key: {err}");
    }
    step(&format!(
        "physician {}: {public}; {}",
        address(account),
        out.trim()
    ));
    Ok((machine, key))
}

async fn read(
    dir: &Path,
    world: &ChainWorld,
    machine: &Path,
    key: &Path,
    proxies: &Proxies,
    threshold: usize,
    extra: &[&str],
) -> Result<(bool, String, String)> {
    let mut args = strings(&["physician", "read", "--dir"]);
    args.push(machine.to_string_lossy().into_owned());
    args.push("--key".into());
    args.push(key.to_string_lossy().into_owned());
    args.push("--patient".into());
    args.push(format!("{:#x}", address(PATIENT)));
    args.push("--replica".into());
    args.push(dir.join("replica").to_string_lossy().into_owned());
    args.push("--threshold".into());
    args.push(threshold.to_string());
    for p in &proxies.args {
        args.push("--proxy".into());
        args.push(p.clone());
    }
    args.extend(strings(extra));
    args.extend(chain_args(dir, world));
    run_clinic(&args).await
}

fn indent(text: &str) {
    for line in text.lines() {
        println!("      {line}");
    }
}

pub async fn run(
    dir: &Path,
    world: &ChainWorld,
    config_path: &Path,
    config: &HubConfig,
    proxies: Proxies,
) -> Result<Proxies> {
    let socket = config.status_socket();
    section("16. A physician reads through the proxies; every access on chain");
    let (machine, key) = physician_machine(dir, world, PHYSICIAN).await?;
    let (tx, grant) = world
        .client(PATIENT)
        .grant(
            address(PHYSICIAN),
            B256::repeat_byte(0x16),
            GrantScope {
                kinds: DataKinds::GLUCOSE | DataKinds::BLOOD_PRESSURE,
                data_from: 0,
                data_until: None,
            },
            Expiry::after(Duration::from_secs(86_400)),
        )
        .await?;
    step(&format!(
        "the patient grants the physician glucose and blood pressure for a day: grant #{grant} (block {})",
        tx.block
    ));
    let report = wait_status(&socket, "the grant's kfrags at both proxies", |r| {
        r.seal
            .sharing
            .as_ref()
            .is_some_and(|s| s.delivered_grants >= 1)
    })
    .await?;
    if let Some(s) = &report.seal.sharing {
        step(&format!(
            "the hub made kfrags (2 of 2) and each proxy verified and keeps its share: {} live grants, {} at every proxy",
            s.live_grants, s.delivered_grants
        ));
    }
    let fhir = dir.join("physician-bundle.json");
    let (ok, out, err) = read(
        dir,
        world,
        &machine,
        &key,
        &proxies,
        2,
        &["--fhir", &fhir.to_string_lossy(), "--rows", "6"],
    )
    .await?;
    if !ok {
        bail!("the granted physician could not read: {err}");
    }
    step("glyco-clinic physician read --replica … --proxy P1 --proxy P2 --threshold 2 --fhir …:");
    indent(&out);

    // The alerts of section 13 waited at the hub: the inbox refused them
    // while the physician had no grant. Now they arrive, sealed to the
    // physician's umbral key.
    let report = wait_status(&socket, "the alerts delivered to the physician", |r| {
        r.alerts.open.iter().chain(&r.alerts.recent).any(|a| {
            a.kind == "predicted_low" && a.targets.iter().all(|t| t.delivered_at_ms.is_some())
        })
    })
    .await?;
    let out = physician_at_inbox(&["physician", "alerts"], &machine, &key, &proxies.inbox).await?;
    step(
        "the alerts of section 13 waited at the hub until the grant; glyco-clinic physician alerts --inbox …:",
    );
    indent(&out);
    if let Some(alert) = report
        .alerts
        .open
        .iter()
        .find(|a| a.kind == "predicted_low")
    {
        let out = physician_at_inbox(
            &["physician", "ack", &alert.id],
            &machine,
            &key,
            &proxies.inbox,
        )
        .await?;
        step(&format!(
            "glyco-clinic physician ack {}: {}",
            alert.id,
            out.trim()
        ));
        let acked = wait_status(&socket, "the acknowledgement at the hub", |r| {
            r.alerts
                .recent
                .iter()
                .any(|a| a.id == alert.id && a.acked.is_some())
        })
        .await?;
        if let Some(a) = acked.alerts.recent.iter().find(|a| a.id == alert.id) {
            step(&format!(
                "the hub polled the inbox: alert {} acknowledged by {}; no further step",
                a.id,
                a.acked.as_ref().map_or("", |x| x.by.as_str())
            ));
        }
    }
    let log = world
        .client(PATIENT)
        .access_log_of(address(PATIENT), 0)
        .await?;
    step("the patient's on-chain access log, newest entries:");
    for e in log.iter().rev().take(3) {
        println!(
            "      #{} block {}: {} read data {}… through proxy {} under grant #{} ({:?})",
            e.seq,
            e.block,
            e.physician,
            &e.data_id.to_string()[..12],
            e.proxy,
            e.grant_id,
            e.action.map(|a| format!("{a:?}")).unwrap_or_default()
        );
    }

    section(
        "17. Emergency: the urgent low no one acknowledged reaches the ambulance's duty paramedic, who reads inside the window, refused after it",
    );
    world.client(PATIENT).revoke(address(PARAMEDIC)).await?;
    world
        .client(PATIENT)
        .set_emergency_policy(EmergencyPolicy {
            // The hub's batches hold every kind its devices measure: an
            // access must be allowed all the kinds of the batches it reads.
            kinds: DataKinds::GLUCOSE | DataKinds::BLOOD_PRESSURE,
            max_duration_secs: 20,
            lookback_secs: 86_400,
            enabled: true,
        })
        .await?;
    step(
        "the patient's emergency policy for the demo: glucose and blood pressure of the last day, for 20 seconds",
    );
    let (medic, medic_key) = physician_machine(dir, world, PARAMEDIC).await?;
    // The level-2 low of section 13 climbed the ladder: 30 s without an
    // acknowledgement, the hub asked City Ambulance's inbox who is on duty
    // (the patient's emergency policy on chain is the consent) and it waited
    // for the paramedic's umbral key, published just now.
    let told = wait_status(&socket, "the urgent low at the ambulance", |r| {
        r.alerts.open.iter().any(|a| {
            a.kind == "very_low_glucose"
                && a.targets.iter().any(|t| {
                    t.target.to_string().starts_with("emergency:") && t.delivered_at_ms.is_some()
                })
        })
    })
    .await?;
    let out = physician_at_inbox(
        &["physician", "alerts"],
        &medic,
        &medic_key,
        &proxies.emergency_inbox,
    )
    .await?;
    step("glyco-clinic physician alerts --inbox <City Ambulance's inbox> (the paramedic on duty):");
    indent(&out);
    if let Some(alert) = told
        .alerts
        .open
        .iter()
        .find(|a| a.kind == "very_low_glucose")
    {
        let out = physician_at_inbox(
            &["physician", "ack", &alert.id],
            &medic,
            &medic_key,
            &proxies.emergency_inbox,
        )
        .await?;
        step(&format!("the paramedic acknowledges: {}", out.trim()));
        wait_status(&socket, "the paramedic's acknowledgement at the hub", |r| {
            r.alerts
                .recent
                .iter()
                .any(|a| a.id == alert.id && a.acked.is_some())
        })
        .await?;
        step("the hub polled the ambulance's inbox: the urgent low is closed");
    }
    let mut args = strings(&["physician", "emergency-access", "--key"]);
    args.push(medic_key.to_string_lossy().into_owned());
    args.push("--patient".into());
    args.push(format!("{:#x}", address(PATIENT)));
    args.extend(chain_args(dir, world));
    let (ok, out, err) = run_clinic(&args).await?;
    if !ok {
        bail!("emergency access: {err}");
    }
    let opened = std::time::Instant::now();
    step(&format!(
        "glyco-clinic physician emergency-access (the paramedic, no patient signature): {}",
        out.trim()
    ));
    wait_status(
        &socket,
        "the emergency grant's kfrags at both proxies",
        |r| {
            r.seal
                .sharing
                .as_ref()
                .is_some_and(|s| s.delivered_grants >= 2)
        },
    )
    .await?;
    let (ok, out, err) = read(
        dir,
        world,
        &medic,
        &medic_key,
        &proxies,
        2,
        &["--rows", "2"],
    )
    .await?;
    if !ok {
        bail!("the paramedic could not read inside the window: {err}");
    }
    step("the paramedic reads inside the window:");
    indent(&out);
    let wait = Duration::from_secs(22).saturating_sub(opened.elapsed());
    step(&format!(
        "… {} s later, the window has closed:",
        wait.as_secs()
    ));
    tokio::time::sleep(wait).await;
    let (ok, out, err) = read(dir, world, &medic, &medic_key, &proxies, 2, &[]).await?;
    if ok {
        bail!("an emergency read after its window was served: {out}");
    }
    indent(
        err.lines()
            .last()
            .unwrap_or_default()
            .trim_start_matches("Error: "),
    );

    section("18. Offline emergency kit: family shares, kept at the clinic replica");
    let replica_dir = dir.join("replica");
    let report = wait_status(&socket, "the hub's iroh node", |r| r.seal.node_id.is_some()).await?;
    let hub_peer = format!(
        "{}@{}",
        report.seal.node_id.context("the hub serves replicas")?,
        config.seal.iroh_listen
    );
    let (mut replica, _) = start_replica(&replica_dir, &hub_peer).await?;
    let profile = dir.join("emergency-profile.txt");
    std::fs::write(
        &profile,
        "Type 1 diabetes since 2009. Insulin: glargine 18 U at night, aspart with meals. \
         Allergic to penicillin. Call Ana (daughter).",
    )?;
    let shares = dir.join("family-shares");
    let out = hub_cli(
        config_path,
        &[
            "emergency-kit",
            "--threshold",
            "2",
            "--shares",
            "3",
            "--profile",
            &profile.to_string_lossy(),
            "--out",
            &shares.to_string_lossy(),
        ],
    )
    .await?;
    step(&format!(
        "glyco-hub emergency-kit --threshold 2 --shares 3: {}",
        out.trim()
    ));
    let first = std::fs::read_to_string(shares.join("share-1.txt"))?;
    step(&format!(
        "share 1 of 3 (share-1.txt, and share-1.png as a QR code; a family member's secret, shown cut short): {}…",
        &first.trim()[..60.min(first.trim().len())]
    ));
    let kit = replica_dir
        .join("hubs")
        .join(format!("{:#x}", report.hub))
        .join("emergency.kit");
    for _ in 0..100 {
        if kit.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !kit.exists() {
        bail!("the replica did not keep the emergency kit");
    }
    let open = |list: Vec<PathBuf>| {
        let mut args = strings(&["emergency-open", "--kit"]);
        args.push(kit.to_string_lossy().into_owned());
        for s in list {
            args.push("--share".into());
            args.push(s.to_string_lossy().into_owned());
        }
        args.extend(chain_args(dir, world));
        args
    };
    let (ok, out, err) = run_clinic(&open(vec![
        shares.join("share-1.txt"),
        shares.join("share-3.txt"),
    ]))
    .await?;
    if !ok {
        bail!("the kit did not open with two shares: {err}");
    }
    step(
        "the hub is offline; a physician with two family members' shares opens the replica's kit:",
    );
    indent(&out.lines().take(5).collect::<Vec<_>>().join("\n"));
    let (ok, _, err) = run_clinic(&open(vec![shares.join("share-2.txt")])).await?;
    if ok {
        bail!("one share opened the kit");
    }
    step(&format!(
        "with one share only: {}",
        err.lines()
            .last()
            .unwrap_or_default()
            .trim_start_matches("Error: ")
    ));
    replica.kill().await?;
    Ok(proxies)
}
