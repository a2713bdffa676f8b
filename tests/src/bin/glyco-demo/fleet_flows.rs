//! Section 22: the clinic's fleet. The hub has sent St Luke's node a signed
//! heartbeat every 5 s since it started; the fleet view and the metrics
//! show it, Debian's Prometheus scrapes both, a physician's alert policy
//! reaches the hub through the node (its patient allows that), and once
//! the hub stops, the fleet calls it silent.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use glyco_contracts::testkit::accounts::PHYSICIAN;
use glyco_gateway::config::HubConfig;

use crate::chain_flows::{ChainWorld, address};
use crate::clinic_flows::Proxies;
use crate::hub_flows::wait_status;
use crate::narrate::{section, step};
use crate::seal_flows::{clinic, write_key};

fn indent(text: &str) {
    for line in text.lines() {
        println!("    {line}");
    }
}

async fn fleet_show(clinic_node: &Proxies, extra: &[&str]) -> Result<String> {
    let token = clinic_node.fleet_token.to_string_lossy().into_owned();
    let mut args = vec![
        "fleet",
        "show",
        "--node",
        &clinic_node.fleet_http,
        "--token-file",
        &token,
    ];
    args.extend_from_slice(extra);
    let out = clinic(&args).await?;
    if !out.status.success() {
        bail!(
            "glyco-clinic fleet show: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn get(url: &str) -> Result<String> {
    glyco_contracts::client::install_tls_provider();
    Ok(reqwest::get(url).await?.text().await?)
}

/// Debian's Prometheus scraping the hub and the node each second, if it is
/// installed (scripts/bootstrap.sh installs it).
async fn prometheus(
    dir: &Path,
    hub_web: &str,
    clinic_node: &Proxies,
) -> Result<Option<(tokio::process::Child, String)>> {
    if which("prometheus").is_none() {
        step(
            "Prometheus is not installed here (./scripts/bootstrap.sh installs Debian's); skipped",
        );
        return Ok(None);
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // Prometheus reads relative paths from the config file's directory.
    let token = std::fs::canonicalize(&clinic_node.fleet_token)?;
    let config = dir.join("prometheus.yml");
    let node = clinic_node.fleet_http.trim_start_matches("http://");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: hub\n    static_configs:\n      - targets: ['{hub_web}']\n  - job_name: st-lukes-node\n    authorization:\n      credentials_file: {}\n    static_configs:\n      - targets: ['{node}']\n",
            token.display()
        ),
    )?;
    let child = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prometheus").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log"))?)
        .kill_on_drop(true)
        .spawn()?;
    Ok(Some((child, format!("http://127.0.0.1:{port}"))))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.exists())
}

/// Prometheus's answer to `query` as `labels = value` lines, once it has one.
async fn query(base: &str, query: &str) -> Result<Vec<String>> {
    let url = format!(
        "{base}/api/v1/query?query={}",
        form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = get(&url).await
            && let Ok(body) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(results) = body["data"]["result"].as_array()
            && !results.is_empty()
        {
            return Ok(results
                .iter()
                .map(|r| {
                    let labels: Vec<String> = r["metric"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .filter(|(k, _)| *k != "instance" && *k != "__name__")
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                                .collect()
                        })
                        .unwrap_or_default();
                    format!(
                        "{{{}}} = {}",
                        labels.join(", "),
                        r["value"][1].as_str().unwrap_or("?")
                    )
                })
                .collect());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("Prometheus did not answer {query} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn run(
    dir: &Path,
    clinic_node: &Proxies,
    config: &HubConfig,
) -> Result<(Option<tokio::process::Child>, glyco_contracts::Address)> {
    section("22. The clinic's fleet: heartbeats, metrics, a proposed policy");
    let socket = config.status_socket();
    let report = wait_status(&socket, "a heartbeat kept by St Luke's node", |r| {
        r.fleet.sent >= 1
    })
    .await?;
    step(&format!(
        "the hub signs a heartbeat every {} s to St Luke's node ({} kept so far, clock {} ms off the node's); no reading is in it",
        report.fleet.interval_secs,
        report.fleet.sent,
        report.fleet.clock_offset_ms.unwrap_or_default()
    ));
    step("glyco-clinic fleet show (the node's /fleet.json, behind its bearer token):");
    indent(&fleet_show(clinic_node, &[]).await?);

    let hub_web = report.web.listen.clone().context("the hub's web app")?;
    let metrics = get(&format!("http://{hub_web}/metrics")).await?;
    step(&format!(
        "the hub's /metrics (local network only), {} lines; a few:",
        metrics.lines().count()
    ));
    for line in metrics.lines().filter(|l| {
        [
            "glyco_hub_readings_stored_total ",
            "glyco_hub_batches_anchored_total ",
            "glyco_hub_heartbeats_sent_total ",
            "glyco_hub_devices{",
            "process_resident_memory_bytes ",
        ]
        .iter()
        .any(|p| l.starts_with(p))
    }) {
        println!("    {line}");
    }
    let prometheus = prometheus(dir, &hub_web, clinic_node).await?;
    if let Some((_, base)) = &prometheus {
        step(&format!(
            "Debian's Prometheus ({base}) scrapes both each second; it answers:"
        ));
        for q in ["glyco_fleet_hubs", "glyco_hub_readings_stored_total", "up"] {
            for line in query(base, q).await? {
                println!("    {q}{line}");
            }
        }
    }

    // A physician proposes an alert policy through the node; the patient
    // allowed that (fleet.remote_config = "apply"), so the hub applies it
    // after checking the physician's grant on chain.
    let policy = dir.join("proposed-policy.json");
    std::fs::write(&policy, r#"{"kinds":["predicted_low","very_low_glucose","node_behaviour:*"],"min_severity":"warning","ladder":[[0,["patient","physician:PHYSICIAN"]]],"dedupe_secs":900}"#.replace("PHYSICIAN", &format!("{:#x}", address(PHYSICIAN))))?;
    let key = dir.join("fleet-physician.key");
    write_key(&key, PHYSICIAN)?;
    let version = report.alerts.policy.map_or(0, |(v, _)| v) + 1;
    let signed = dir.join("proposed-policy.signed.json");
    let out = clinic(&[
        "physician",
        "sign-alert-policy",
        "--file",
        &policy.to_string_lossy(),
        "--key",
        &key.to_string_lossy(),
        "--patient",
        &format!("{:#x}", report.patient.context("the hub's patient")?),
        "--hub",
        &format!("{:#x}", report.hub),
        "--version",
        &version.to_string(),
        "--out",
        &signed.to_string_lossy(),
    ])
    .await?;
    if !out.status.success() {
        bail!(
            "sign-alert-policy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = clinic(&[
        "fleet",
        "propose",
        "--signed",
        &signed.to_string_lossy(),
        "--node",
        &clinic_node.inbox,
        "--dir",
        &dir.join("fleet-physician").to_string_lossy(),
    ])
    .await?;
    if !out.status.success() {
        bail!("fleet propose: {}", String::from_utf8_lossy(&out.stderr));
    }
    step(&format!(
        "glyco-clinic fleet propose: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    ));
    let applied = wait_status(&socket, "the proposed policy in force", |r| {
        r.alerts.policy.is_some_and(|(v, _)| v == version)
    })
    .await?;
    if let Some(event) = applied.fleet.remote_log.last() {
        step(&format!(
            "the hub (remote_config = \"apply\", the patient's choice) checked the grant on chain and applied it: version {}, signer {}, {}; recorded in its journal",
            event.version,
            event.signer.map(|s| format!("{s:#x}")).unwrap_or_default(),
            event.outcome
        ));
    }
    Ok((prometheus.map(|(child, _)| child), report.hub))
}

/// After the hub stops: the fleet calls it silent.
pub async fn after_stop(clinic_node: &Proxies, hub: glyco_contracts::Address) -> Result<()> {
    step("the hub is off: waiting for the node's silence bound (15 s)");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let hub = format!("{hub:#x}");
    loop {
        let shown = fleet_show(clinic_node, &["--flag", "silent", "--hub", &hub]).await?;
        // The hub's own row (the summary and rollout lines name no hub).
        if shown.to_lowercase().contains(&hub) {
            step("glyco-clinic fleet show --flag silent --hub <this hub>:");
            indent(&shown);
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the stopped hub never turned silent:\n{shown}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn run_tool(command: &mut std::process::Command) -> Result<()> {
    let out = command.output()?;
    if !out.status.success() {
        bail!(
            "{:?}: {}",
            command.get_program(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A release: St Luke's signs a RAUC bundle, the consortium (2 of 3
/// hospitals, the admin since section 7) publishes its SHA-256 on chain,
/// and the hub's `update check` takes it; the same bundle with one byte
/// changed is refused. Then St Luke's node rolls it out: the hub fetches
/// it, checks it and asks the installer, which stops at this machine's
/// missing A/B slots; that refusal halts the rollout.
pub async fn release(
    dir: &Path,
    world: &ChainWorld,
    config_path: &Path,
    clinic_node: &mut Proxies,
    config: &HubConfig,
) -> Result<()> {
    use glyco_contracts::bindings::Releases;
    use glyco_contracts::testkit::accounts::{HOSPITAL, SECOND_HOSPITAL};
    use sha2::Digest;

    section("23. A release the consortium vouches for");
    if which("rauc").is_none() || which("mksquashfs").is_none() {
        step("rauc is not installed here (./scripts/bootstrap.sh installs Debian's); skipped");
        return Ok(());
    }
    let work = dir.join("release");
    std::fs::create_dir_all(&work)?;
    let (key, cert) = (work.join("release.key.pem"), work.join("release.cert.pem"));
    run_tool(
        std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args([
                "-nodes",
                "-days",
                "365",
                "-subj",
                "/O=St Luke's/CN=glyco hub releases",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    )?;

    let input = work.join("bundle-input");
    std::fs::create_dir_all(&input)?;
    // A stand-in root file system: the appliance's bundles carry the
    // image's slot image (image/bundle.sh); the demo builds no image.
    let mut state = sha2::Sha256::digest(b"glyco demo root file system");
    let mut image = Vec::new();
    while image.len() < 256 * 1024 {
        state = sha2::Sha256::digest(state);
        image.extend_from_slice(&state);
    }
    std::fs::write(input.join("rootfs.img"), image)?;
    let version = "2026.12.2-demo";
    std::fs::write(
        input.join("manifest.raucm"),
        format!(
            "[update]\ncompatible=glyco-demo\nversion={version}\n\n[bundle]\nformat=verity\n\n[image.rootfs]\nfilename=rootfs.img\n"
        ),
    )?;
    let bundle = work.join("glyco-demo.raucb");
    let _ = std::fs::remove_file(&bundle);
    run_tool(
        std::process::Command::new("rauc")
            .arg("bundle")
            .arg(format!("--cert={}", cert.display()))
            .arg(format!("--key={}", key.display()))
            .arg(&input)
            .arg(&bundle),
    )?;

    let bytes = std::fs::read(&bundle)?;
    let hash = glyco_contracts::B256::from_slice(&sha2::Sha256::digest(&bytes));
    step(&format!(
        "St Luke's signs a RAUC bundle with its release key: {} ({} bytes, SHA-256 {hash})",
        bundle.display(),
        bytes.len()
    ));

    let releases = world
        .deployment
        .contracts
        .releases
        .context("the deployment has a Releases contract")?;
    let (first, second) = (world.client(HOSPITAL), world.client(SECOND_HOSPITAL));
    let call = Releases::publishCall {
        bundleHash: hash,
        version: version.into(),
    };
    let (outcome, id) = first.propose(releases, &call).await?;
    crate::narrate::tx(
        &format!("St Luke's proposes #{id}: publish release {version}"),
        &outcome,
    );
    crate::narrate::tx(
        "Mercy General approves",
        &second.approve_proposal(id).await?,
    );
    crate::narrate::tx(
        "St Luke's executes: the release is on chain",
        &first.execute_proposal(id).await?,
    );

    let out =
        crate::hub_flows::hub_cli(config_path, &["update", "check", &bundle.to_string_lossy()])
            .await?;
    step(&format!("glyco-hub update check: {}", out.trim()));
    let mut tampered = bytes;
    let middle = tampered.len() / 2;
    tampered[middle] ^= 1;
    let tampered_path = work.join("tampered.raucb");
    std::fs::write(&tampered_path, tampered)?;
    match crate::hub_flows::hub_cli(
        config_path,
        &["update", "check", &tampered_path.to_string_lossy()],
    )
    .await
    {
        Err(e) => step(&format!(
            "the same bundle with one byte changed is refused: {}",
            e.to_string()
                .lines()
                .find_map(|l| l.split_once("Error: ").map(|(_, why)| why))
                .unwrap_or("refused")
        )),
        Ok(_) => bail!("a tampered bundle passed the check"),
    }
    rollout(dir, config_path, clinic_node, config, &bundle, version).await
}

/// St Luke's node offers the release to its hubs; the demo's hub takes it
/// up to the installer.
async fn rollout(
    dir: &Path,
    config_path: &Path,
    clinic_node: &mut Proxies,
    config: &HubConfig,
    bundle: &Path,
    version: &str,
) -> Result<()> {
    let release_args = [
        "--release-bundle",
        &bundle.to_string_lossy(),
        "--release-version",
        version,
        "--rollout-percent",
        "100",
        "--rollout-stop-after",
        "1",
    ]
    .map(str::to_owned);
    clinic_node.restart_st_lukes(dir, &release_args).await?;
    step(
        "St Luke's node restarts with the release (alert-inbox --release-bundle --rollout-percent 100 --rollout-stop-after 1): it offers it in its answers to its hubs' heartbeats",
    );
    let request = config.state_dir.join("update").join("request.json");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !request.exists() {
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the hub did not ask for the release's install within 60 s: {}",
                crate::hub_flows::hub_cli(config_path, &["update", "status"]).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let asked: serde_json::Value = serde_json::from_slice(&std::fs::read(&request)?)?;
    step(&format!(
        "the hub fetched it from St Luke's node over iroh (BLAKE3-verified as it came), checked it as above, and asks the root installer for {} (SHA-256 {}) in {}",
        asked["version"].as_str().unwrap_or("?"),
        asked["sha256"].as_str().unwrap_or("?"),
        request.display()
    ));
    let fleet = wait_fleet_line(clinic_node, "rollout of", "").await?;
    step(&format!("glyco-clinic fleet show: {fleet}"));
    match crate::hub_flows::hub_cli(config_path, &["update", "install", "--requested"]).await {
        Err(e) if e.to_string().contains("no A/B slots") => step(
            "glyco-hub update install --requested (glyco-update.service, as root, on the appliance) checks its own copy of the bundle again, then stops: this machine has no A/B slots. scripts/hil.sh runs the install, the reboot into the other slot and the health check under qemu (docs/FLEET.md, \"Updates\")",
        ),
        Err(e) => return Err(e),
        Ok(out) => bail!("the installer ran on a machine without slots: {out}"),
    }
    let fleet = wait_fleet_line(clinic_node, "rollout of", "halted").await?;
    step(&format!(
        "the refusal reaches St Luke's with the next heartbeat, and one failure halts the rollout as it would for a failing hub: {fleet}"
    ));
    Ok(())
}

/// The first line of `fleet show` that starts with `prefix`, once it
/// contains `containing` (30 s at most).
async fn wait_fleet_line(clinic_node: &Proxies, prefix: &str, containing: &str) -> Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let shown = fleet_show(clinic_node, &[]).await?;
        if let Some(line) = shown.lines().find(|l| l.starts_with(prefix))
            && line.contains(containing)
        {
            return Ok(line.to_owned());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("fleet show had no {prefix:?} line with {containing:?} within 30 s: {shown}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
