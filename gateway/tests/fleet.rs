//! The fleet end to end with real processes: anvil, the hub, the clinic's
//! node (`glyco-clinic alert-inbox --http`), the `glyco-clinic fleet` CLI,
//! Debian's Prometheus server scraping the hub and the node, and forged
//! heartbeats sent over iroh.
//!
//! The hub's signed heartbeats reach the node and the fleet view shows it
//! healthy (outdated against another release); Prometheus scrapes both
//! `/metrics` (the node's behind a bearer token) and answers queries; a
//! heartbeat signed by another key, from a key that is no hub, replayed or
//! too soon is refused; a physician's alert policy proposed through the
//! node is refused without a grant and applied by the hub once granted,
//! because its patient allows it; a hub SIGKILLed turns silent, and
//! heartbeats with its key and a clock two minutes off flag it misbehaving.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use glyco_contracts::testkit::accounts::*;
use glyco_gateway::config::RemoteConfig;
use glyco_seal::fleet::{
    ChainHealth, FLEET_ALPN, FleetAnswer, FleetRefusal, Heartbeat, HubFleetMessage, Queues, Signed,
};
use support::alerts::{AlertWorld, alert_world};
use support::clinic::clinic;
use support::rpc_proxy::{Lie, RpcProxy};
use support::{free_tcp_port, now_ms};

const TOKEN: &str = "fleet-test-token-5d41402abc4b2a76";

async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// `glyco-clinic fleet show --json` with `extra` filters.
async fn fleet_json(node_http: &str, token_file: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "fleet",
        "show",
        "--node",
        node_http,
        "--token-file",
        token_file.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let (ok, out, err) = clinic(&args).await;
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

async fn wait_fleet(
    node_http: &str,
    token_file: &Path,
    extra: &[&str],
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    loop {
        let fleet = fleet_json(node_http, token_file, extra).await;
        if done(&fleet) {
            return fleet;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 45 s; last view: {fleet:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `promtool check metrics`: the exposition is valid and follows the
/// naming conventions.
async fn promtool_accepts(text: &str, what: &str) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus) is installed by scripts/bootstrap.sh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool refuses the {what}'s metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Debian's Prometheus server scraping the hub and the node every second.
async fn prometheus(
    dir: &Path,
    hub_web: &str,
    node_http: &str,
    token_file: &Path,
) -> (tokio::process::Child, String) {
    let port = free_tcp_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n\
             \x20 - job_name: hub\n    static_configs:\n      - targets: ['{hub_web}']\n\
             \x20 - job_name: clinic-node\n    authorization:\n      credentials_file: {}\n    static_configs:\n      - targets: ['{node_http}']\n",
            token_file.display()
        ),
    )
    .unwrap();
    let child = tokio::process::Command::new("prometheus")
        .args([
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            &format!("--web.listen-address=127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus is installed by scripts/bootstrap.sh");
    (child, format!("http://127.0.0.1:{port}"))
}

/// Asks Prometheus `query` until it answers one sample satisfying `done`.
async fn wait_query(base: &str, query: &str, done: impl Fn(f64) -> bool) -> f64 {
    let url = format!(
        "{base}/api/v1/query?query={}",
        support::web::urlencode(query)
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    loop {
        if let Ok(response) = reqwest::get(&url).await
            && let Ok(body) = response.json::<serde_json::Value>().await
        {
            last = body.to_string();
            if let Some(value) = body["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                && done(value)
            {
                return value;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Prometheus did not answer {query} as expected within 60 s: {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn heartbeat(hub: glyco_contracts::Address, boot_ms: i64, seq: u64, sent_at_ms: i64) -> Heartbeat {
    Heartbeat {
        hub,
        boot_ms,
        seq,
        sent_at_ms,
        version: "0.1.0".into(),
        release: None,
        uptime_s: 1,
        disk_free_bytes: None,
        disk_total_bytes: None,
        rss_kib: 60_000,
        cpu_ms: 10,
        mem_available_kib: None,
        queues: Queues::default(),
        chain: ChainHealth {
            reachable: true,
            ..Default::default()
        },
        devices: vec![],
        failing_stages: vec![],
        config_version: 0,
        clock_offset_ms: None,
        update: None,
    }
}

/// A physician's alert policy `policy` (JSON) for the hub, version
/// `version`, signed with `physician sign-alert-policy`; the signed file.
async fn signed_policy(
    w: &AlertWorld,
    hub: glyco_contracts::Address,
    version: u64,
    policy: &str,
) -> PathBuf {
    let keys = w.path("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let physician_key = support::clinic::key_file(&w.world, &keys, PHYSICIAN);
    let file = w.path(&format!("policy-{version}.json"));
    std::fs::write(&file, policy).unwrap();
    let signed = w.path(&format!("policy-{version}.signed.json"));
    let (ok, _, err) = clinic(&[
        "physician",
        "sign-alert-policy",
        "--file",
        file.to_str().unwrap(),
        "--key",
        &physician_key,
        "--patient",
        &format!("{:#x}", w.world.patient()),
        "--hub",
        &format!("{hub:#x}"),
        "--version",
        &version.to_string(),
        "--out",
        signed.to_str().unwrap(),
    ])
    .await;
    assert!(ok, "{err}");
    signed
}

/// `glyco-clinic fleet propose` once: (success, stdout, stderr).
async fn propose(w: &AlertWorld, signed: &Path) -> (bool, String, String) {
    let dir = w.path("proposer");
    clinic(&[
        "fleet",
        "propose",
        "--signed",
        signed.to_str().unwrap(),
        "--node",
        &w.inbox_arg(),
        "--dir",
        dir.to_str().unwrap(),
    ])
    .await
}

/// Proposes until the node takes it: the node reads the chain per block,
/// and the head at most every half second, so a grant just made shows
/// within that. Its stdout.
async fn propose_once_granted(w: &AlertWorld, signed: &Path) -> String {
    for _ in 0..10 {
        let (ok, out, _) = propose(w, signed).await;
        if ok {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, _, err) = propose(w, signed).await;
    panic!("the node never took the proposal: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_fleet_view_metrics_remote_policy_and_silence() {
    let mut w = alert_world().await;
    w.world.edit_config(|c| {
        c.fleet.interval_secs = 5;
        c.fleet.remote_config = RemoteConfig::Apply;
    });
    let token_file = w.path("fleet-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let http_port = free_tcp_port();
    let node_http = format!("http://127.0.0.1:{http_port}");
    let http_arg = format!("127.0.0.1:{http_port}");
    let node = w
        .start_inbox_at(
            &w.inbox_dir.clone(),
            w.inbox_port,
            &[
                "--http",
                &http_arg,
                "--http-token-file",
                token_file.to_str().unwrap(),
                "--silent-after-secs",
                "12",
                "--current-release",
                "2026.12.2",
            ],
        )
        .await;
    let hub = w.world.start_hub().await;
    let report = hub
        .wait_for("a heartbeat kept by the node", |r| r.fleet.sent >= 1)
        .await;
    let hub_address = report.hub;
    assert!(
        report.fleet.clock_offset_ms.unwrap().abs() < 2_000,
        "{:?}",
        report.fleet
    );

    // The node's HTTP side wants the token.
    let (status, _) = get(&format!("{node_http}/fleet.json"), None).await;
    assert_eq!(status, 401);
    let (status, _) = get(
        &format!("{node_http}/metrics"),
        Some("wrong-token-wrong-token"),
    )
    .await;
    assert_eq!(status, 401);

    let fleet = fleet_json(&node_http, &token_file, &[]).await;
    let row = &fleet["hubs"][0];
    assert_eq!(row["hub"], format!("{hub_address:#x}"), "{fleet:#}");
    assert_eq!(row["patient"], format!("{:#x}", w.world.patient()));
    assert_eq!(row["version"], env!("CARGO_PKG_VERSION"));
    // Not running the fleet's release (it runs from no image): outdated only.
    assert_eq!(row["flags"], serde_json::json!(["outdated"]), "{fleet:#}");
    let (ok, table, err) = clinic(&[
        "fleet",
        "show",
        "--node",
        &node_http,
        "--token-file",
        token_file.to_str().unwrap(),
    ])
    .await;
    assert!(ok, "{err}");
    assert!(
        table.contains(&hub_address.to_string()) && table.contains("outdated"),
        "{table}"
    );

    // Metrics: valid by promtool, and scraped by a real Prometheus.
    let hub_web = report.web.listen.clone().unwrap();
    let (status, hub_metrics) = get(&format!("http://{hub_web}/metrics"), None).await;
    assert_eq!(status, 200);
    assert!(
        hub_metrics.contains("glyco_hub_heartbeats_sent_total"),
        "{hub_metrics}"
    );
    promtool_accepts(&hub_metrics, "hub").await;
    let (status, node_metrics) = get(&format!("{node_http}/metrics"), Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(
        node_metrics.contains("glyco_fleet_hubs_known 1"),
        "{node_metrics}"
    );
    promtool_accepts(&node_metrics, "clinic node").await;
    let (_prometheus, prom) =
        prometheus(w.world.dir.path(), &hub_web, &http_arg, &token_file).await;
    wait_query(&prom, r#"up{job="hub"}"#, |v| v == 1.0).await;
    wait_query(&prom, r#"up{job="clinic-node"}"#, |v| v == 1.0).await;
    wait_query(&prom, "glyco_fleet_hubs_known", |v| v == 1.0).await;
    wait_query(&prom, r#"glyco_fleet_hubs{flag="outdated"}"#, |v| v == 1.0).await;
    wait_query(&prom, "glyco_hub_heartbeats_sent_total", |v| v >= 1.0).await;

    // Forged and replayed heartbeats, over iroh like a hub.
    let endpoint =
        glyco_clinic::replica::bind(iroh::SecretKey::generate(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let to = iroh::EndpointAddr::new(w.inbox_node.parse().unwrap())
        .with_ip_addr(format!("127.0.0.1:{}", w.inbox_port).parse().unwrap());
    let connection = endpoint.connect(to, FLEET_ALPN).await.unwrap();
    let send = |signed: Signed<Heartbeat>| {
        let connection = connection.clone();
        async move {
            glyco_clinic::fleet::exchange(
                &connection,
                &HubFleetMessage::Heartbeat(Box::new(signed)),
                Duration::from_secs(10),
            )
            .await
            .unwrap()
        }
    };
    let stranger = w.world.consortium.signer(STRANGER);
    let hub_key = w.world.consortium.signer(HUB);
    assert_eq!(hub_key.address(), hub_address);
    let claimed = Signed::sign(heartbeat(hub_address, 1, 1, now_ms()), &stranger).unwrap();
    assert!(
        matches!(
            send(claimed).await,
            FleetAnswer::Refused {
                reason: FleetRefusal::WrongSigner { .. }
            }
        ),
        "a heartbeat for the hub signed by another key"
    );
    let not_a_hub = Signed::sign(heartbeat(stranger.address(), 1, 1, now_ms()), &stranger).unwrap();
    assert!(matches!(
        send(not_a_hub).await,
        FleetAnswer::Refused {
            reason: FleetRefusal::NotAHub { .. }
        }
    ));
    let mut garbled = Signed::sign(heartbeat(hub_address, 1, 1, now_ms()), &hub_key).unwrap();
    garbled.signature.truncate(20);
    assert!(matches!(
        send(garbled).await,
        FleetAnswer::Refused {
            reason: FleetRefusal::BadSignature { .. }
        }
    ));

    // A physician's policy through the node: refused without a grant,
    // applied by the hub once the patient grants.
    let signed = signed_policy(
        &w,
        hub_address,
        7,
        r#"{"kinds":["predicted_low","very_low_glucose"],"min_severity":"urgent","ladder":[[0,["patient"]]],"dedupe_secs":120}"#,
    )
    .await;
    let (ok, _, err) = propose(&w, &signed).await;
    assert!(!ok && err.contains("no live grant"), "{err}");
    w.grant(PHYSICIAN).await;
    let out = propose_once_granted(&w, &signed).await;
    assert!(out.contains("version 7"), "{out}");
    let applied = hub
        .wait_for("the proposed policy in force", |r| {
            r.alerts.policy.is_some_and(|(v, _)| v == 7)
        })
        .await;
    assert_eq!(
        applied.alerts.policy,
        Some((7, w.world.consortium.address(PHYSICIAN)))
    );
    let event = applied.fleet.remote_log.last().unwrap();
    assert_eq!((event.version, event.outcome.as_str()), (7, "applied"));
    wait_fleet(
        &node_http,
        &token_file,
        &[],
        "the hub reports version 7",
        |f| f["hubs"][0]["config_version"] == 7 && f["hubs"][0]["policy_waiting"].is_null(),
    )
    .await;

    // SIGKILL: silent after 12 s.
    hub.kill().await;
    let silent = wait_fleet(
        &node_http,
        &token_file,
        &["--flag", "silent"],
        "the killed hub silent",
        |f| f["hubs"].as_array().is_some_and(|h| h.len() == 1),
    )
    .await;
    assert_eq!(silent["tally"]["silent"], 1, "{silent:#}");

    // Heartbeats with the hub's own key: a replay and a flood are refused, a
    // clock two minutes ahead is kept and flagged.
    let boot = now_ms();
    let first = Signed::sign(
        heartbeat(hub_address, boot, 1, now_ms() + 120_000),
        &hub_key,
    )
    .unwrap();
    assert!(matches!(
        send(first.clone()).await,
        FleetAnswer::Kept { .. }
    ));
    assert!(matches!(
        send(first).await,
        FleetAnswer::Refused {
            reason: FleetRefusal::Replayed { .. }
        }
    ));
    let soon = Signed::sign(heartbeat(hub_address, boot, 2, now_ms()), &hub_key).unwrap();
    assert!(matches!(
        send(soon).await,
        FleetAnswer::Refused {
            reason: FleetRefusal::TooOften { .. }
        }
    ));
    let skewed = fleet_json(&node_http, &token_file, &["--flag", "misbehaving"]).await;
    let reasons = &skewed["hubs"][0]["reasons"];
    assert!(
        reasons
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "clock_skew"),
        "{skewed:#}"
    );
    let (_, node_metrics) = get(&format!("{node_http}/metrics"), Some(TOKEN)).await;
    for line in [
        r#"glyco_fleet_refused_total{reason="wrong_signer"} 1"#,
        r#"glyco_fleet_refused_total{reason="bad_signature"} 1"#,
        r#"glyco_fleet_refused_total{reason="not_a_hub"} 1"#,
        r#"glyco_fleet_refused_total{reason="replayed"} 1"#,
        r#"glyco_fleet_refused_total{reason="too_often"} 1"#,
        r#"glyco_fleet_hub_findings{finding="clock_skew"} 1"#,
    ] {
        assert!(
            node_metrics.contains(line),
            "{line} missing:\n{node_metrics}"
        );
    }
    connection.close(0u32.into(), b"done");

    // The node keeps its roster across a restart: the hub is still known
    // (and still silent).
    assert!(node.terminate().await.success());
    let _node = w
        .start_inbox_at(
            &w.inbox_dir.clone(),
            w.inbox_port,
            &[
                "--http",
                &http_arg,
                "--http-token-file",
                token_file.to_str().unwrap(),
            ],
        )
        .await;
    let after = wait_fleet(
        &node_http,
        &token_file,
        &[],
        "the roster after a restart",
        |f| f["hubs"].as_array().is_some_and(|h| h.len() == 1),
    )
    .await;
    assert_eq!(after["hubs"][0]["hub"], format!("{hub_address:#x}"));
}

/// The default: the patient has not allowed remote configuration, so a
/// policy a granted physician proposes reaches the hub, is recorded as not
/// allowed, and the hub's alerting stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposed_policy_is_recorded_but_not_applied_without_the_patients_consent() {
    let mut w = alert_world().await;
    w.world.edit_config(|c| c.fleet.interval_secs = 5);
    assert_eq!(w.world.config.fleet.remote_config, RemoteConfig::Refuse);
    let _node = w.start_inbox().await;
    let hub = w.world.start_hub().await;
    let report = hub
        .wait_for("a heartbeat kept by the node", |r| r.fleet.sent >= 1)
        .await;
    let before = report.alerts.policy;
    w.grant(PHYSICIAN).await;
    let signed = signed_policy(
        &w,
        report.hub,
        3,
        r#"{"kinds":["very_low_glucose"],"min_severity":"urgent","ladder":[[0,["patient"]]],"dedupe_secs":60}"#,
    )
    .await;
    propose_once_granted(&w, &signed).await;
    let recorded = hub
        .wait_for("the proposal recorded", |r| !r.fleet.remote_log.is_empty())
        .await;
    let event = &recorded.fleet.remote_log[0];
    assert_eq!(
        (event.version, event.outcome.as_str(), event.signer),
        (
            3,
            "not_allowed",
            Some(w.world.consortium.address(PHYSICIAN))
        )
    );
    assert_eq!(recorded.alerts.policy, before, "nothing applied");
    // The record survives a restart (it is in the journal).
    hub.terminate().await;
    let hub = w.world.start_hub().await;
    let again = hub
        .wait_for("the record after a restart", |r| {
            !r.fleet.remote_log.is_empty()
        })
        .await;
    assert_eq!(again.fleet.remote_log[0].outcome, "not_allowed");
    // The node still offers it (the hub never took version 3); the hub
    // does not record the same proposal twice.
    let later = hub
        .wait_for_within(Duration::from_secs(30), "two more heartbeats", |r| {
            r.fleet.sent >= 2
        })
        .await;
    assert_eq!(
        later.fleet.remote_log.len(),
        1,
        "{:?}",
        later.fleet.remote_log
    );
}

/// The node's rollout and the hub's side of an update, short of the install
/// (which needs the qemu guest's slots: `scripts/hil.sh`): an unpublished
/// bundle is fetched over iroh and refused, and the rollout halts; a
/// published one is fetched, checked and handed to the installer; the
/// installer checks again on its own copy, so a bundle swapped in the hub's
/// directory is refused, and on a machine without slots it stops there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_offers_a_release_the_hub_fetches_checks_and_hands_to_the_installer() {
    use glyco_contracts::testkit::accounts::ADMIN;
    use support::release::{bundle, release_key, sha256};
    let mut w = alert_world().await;
    let dir = w.path("releases");
    std::fs::create_dir_all(&dir).unwrap();
    let key = release_key(&dir, "release").await;
    let install_dir = w.path("installer");
    w.world.edit_config(|c| {
        c.fleet.interval_secs = 5;
        c.update.keyring = key.1.clone();
        c.update.compatible = "glyco-test".into();
        c.update.accept_offers = true;
        c.update.install_dir = install_dir.clone();
        c.update.retry_secs = 2;
    });
    // The hub reaches the chain through a proxy that can go down; the node
    // and the test reach it directly.
    let proxy = RpcProxy::start(w.world.consortium.devnet.address()).await;
    let hub_config = {
        let mut c = w.world.config.clone();
        c.chain.rpc_url = proxy.url();
        toml::to_string(&c).unwrap()
    };
    let token_file = w.path("fleet-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let http_port = free_tcp_port();
    let node_http = format!("http://127.0.0.1:{http_port}");
    let http_arg = format!("127.0.0.1:{http_port}");
    let start_node = |bundle: &Path, version: &str| {
        let (bundle, version) = (bundle.to_str().unwrap().to_owned(), version.to_owned());
        let (w, http_arg, token_file) = (&w, http_arg.clone(), token_file.clone());
        async move {
            w.start_inbox_at(
                &w.inbox_dir,
                w.inbox_port,
                &[
                    "--http",
                    &http_arg,
                    "--http-token-file",
                    token_file.to_str().unwrap(),
                    "--release-bundle",
                    &bundle,
                    "--release-version",
                    &version,
                ],
            )
            .await
        }
    };
    let stray = bundle(&dir, "stray", "glyco-test", "2026.12.9", &key);
    let good = bundle(&dir, "good", "glyco-test", "2026.12.2", &key);
    let update_dir = w.world.config.state_dir.join("update");

    // Not published: fetched, refused, and the rollout stops.
    let node = start_node(&stray, "2026.12.9").await;
    let direct_config = std::fs::read(&w.world.config_path).unwrap();
    std::fs::write(&w.world.config_path, &hub_config).unwrap();
    let hub = w.world.start_hub().await;
    std::fs::write(&w.world.config_path, &direct_config).unwrap();
    let fleet = wait_fleet(&node_http, &token_file, &[], "the refusal reported", |f| {
        f["hubs"][0]["update"] == "refused 2026.12.9"
    })
    .await;
    assert!(
        fleet["hubs"][0]["reasons"]
            .as_array()
            .unwrap()
            .contains(&"update_refused:2026.12.9".into()),
        "{fleet:#}"
    );
    assert!(!fleet["rollout"]["halted_at_ms"].is_null(), "{fleet:#}");
    let outcome: serde_json::Value =
        serde_json::from_slice(&std::fs::read(update_dir.join("outcome.json")).unwrap()).unwrap();
    assert!(
        outcome["outcome"]["why"]
            .as_str()
            .unwrap()
            .contains("not published on chain"),
        "{outcome}"
    );
    assert!(!update_dir.join("request.json").exists());
    drop(node);

    // Published, but the hub's chain is down while it checks: not a
    // refusal. The hub says `fetching` and tries again after a back-off.
    w.world
        .client(ADMIN)
        .publish_release(sha256(&good), "2026.12.2")
        .await
        .unwrap();
    proxy.lie(Lie::Down);
    let node = start_node(&good, "2026.12.2").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while hub.log_text().matches("trying again later").count() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no second try within 60 s: {}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let fleet = wait_fleet(&node_http, &token_file, &[], "the fetch reported", |f| {
        f["hubs"][0]["update"] == "fetching 2026.12.2"
    })
    .await;
    assert!(fleet["rollout"]["halted_at_ms"].is_null(), "{fleet:#}");
    assert!(!update_dir.join("request.json").exists());
    let outcome: serde_json::Value =
        serde_json::from_slice(&std::fs::read(update_dir.join("outcome.json")).unwrap()).unwrap();
    assert_eq!(outcome["outcome"]["outcome"], "fetching", "{outcome}");

    // The chain is back: the next try is checked, and the installer asked.
    proxy.lie(Lie::None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !update_dir.join("request.json").exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no install request within 60 s; outcome: {:?}",
            std::fs::read_to_string(update_dir.join("outcome.json"))
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let request: serde_json::Value =
        serde_json::from_slice(&std::fs::read(update_dir.join("request.json")).unwrap()).unwrap();
    assert_eq!(request["version"], "2026.12.2");
    assert_eq!(request["sha256"], sha256(&good).to_string());
    assert_eq!(sha256(&update_dir.join("incoming.raucb")), sha256(&good));
    let fleet = wait_fleet(&node_http, &token_file, &[], "the fetch reported", |f| {
        f["hubs"][0]["update"] == "fetching 2026.12.2"
    })
    .await;
    assert_eq!(fleet["rollout"]["offered"], 1, "{fleet:#}");
    assert!(fleet["rollout"]["halted_at_ms"].is_null());
    // The health check's test reading, through the running hub's pipeline.
    let out = w.world.hub_cli(&["update", "self-test"]).await;
    let steps = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{steps}");
    for step in ["decode", "check", "seal", "journal"] {
        assert!(steps.contains(&format!("{step}: passed")), "{steps}");
    }
    // Not an A/B system: the health check has nothing to decide.
    let out = w.world.hub_cli(&["update", "health"]).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no A/B slots"),
        "{out:?}"
    );
    hub.terminate().await;
    drop(node);

    // A bundle swapped into the hub's directory after its check: the
    // installer's own check refuses it, and takes the request.
    let request_bytes = std::fs::read(update_dir.join("request.json")).unwrap();
    std::fs::copy(&stray, update_dir.join("incoming.raucb")).unwrap();
    let out = w.world.hub_cli(&["update", "install", "--requested"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not published"),
        "{err}"
    );
    assert!(!update_dir.join("request.json").exists());
    assert!(!update_dir.join("incoming.raucb").exists());
    assert!(!install_dir.join("bundle.raucb").exists());

    // The bundle the hub checked: it passes the installer's check too, and
    // this host has no slots to write (no rauc.slot= from a bootloader).
    std::fs::write(update_dir.join("request.json"), &request_bytes).unwrap();
    std::fs::copy(&good, update_dir.join("incoming.raucb")).unwrap();
    let out = w.world.hub_cli(&["update", "install", "--requested"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no A/B slots"),
        "{err}"
    );
    let outcome: serde_json::Value =
        serde_json::from_slice(&std::fs::read(update_dir.join("outcome.json")).unwrap()).unwrap();
    assert_eq!(outcome["outcome"]["outcome"], "refused", "{outcome}");
    assert!(!install_dir.join("pending.json").exists());
    let out = w.world.hub_cli(&["update", "install", "--requested"]).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no install was asked for"),
        "the request was taken"
    );
}
