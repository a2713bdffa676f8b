//! The hub's web app in a real browser: Playwright (PyPI) driving Debian's
//! chromium against the real hub on anvil, an MQTT reading sent by
//! mosquitto_pub with the credentials the page showed, the page's QR code
//! read by zbarimg (tests/browser/hub_web.py says what is checked); and the
//! clinic's dashboard with a wallet that signs with Foundry's cast, against
//! the real inbox, proxy and hub (tests/browser/clinic_dashboard.py).

mod support;

use std::path::PathBuf;
use std::time::Duration;

use glyco_contracts::testkit::accounts::{PATIENT, PHYSICIAN};
use support::HubWorld;
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_works_in_a_real_browser() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("tests/python/.venv/bin/python");
    assert!(python.exists(), "run ./scripts/bootstrap.sh first");
    let mut world = HubWorld::new().await;
    support::write_key(
        &world.config.state_dir.join("patient.key"),
        &world.consortium.signer(PATIENT),
    );
    world.edit_config(|c| {
        c.limits.max_publishes_per_second = 1000;
        c.web.patient_key_file = "patient.key".into();
    });
    let pin = "739154";
    world
        .hub_cli_with_input(&["web", "set-pin"], &format!("{pin}\n"))
        .await;
    let history_secret = world.register("cgm-history", "cgm").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-history").await;
    // Two weeks of a CGM's 5-minute readings, for the report.
    let now = support::now_ms();
    let trace =
        glyco_report::synthetic::cgm_trace(now - 14 * 86_400_000, now - 600_000, 5, 7, true);
    hub.backfill_cgm("cgm-history", &history_secret, &trace)
        .await;
    let report = hub
        .wait_for("the web app listening", |r| r.web.listen.is_some())
        .await;
    let base = format!("http://{}", report.web.listen.unwrap());
    // Screenshots: a temporary directory, or GLYCO_SCREENSHOTS (docs/).
    let tmp = tempfile::tempdir().unwrap();
    let shots = std::env::var_os("GLYCO_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new(&python)
        .arg(root.join("tests/browser/hub_web.py"))
        .arg(&base)
        .arg(pin)
        .arg(hub.mqtt.port().to_string())
        .arg(&shots)
        .arg(format!("{:#x}", world.consortium.address(PHYSICIAN)))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}\nhub log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&hub.log).unwrap_or_default()
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["qr"], "glyco/v1/readings/cgm-browser");
    assert_eq!(seen["ended_session_refused"], true);
    assert_eq!(seen["granted_and_revoked"], true);
    assert_eq!(seen["family_shares"], 3);
    assert!(
        hub.status().await.unwrap().seal.emergency_kit.is_some(),
        "the kit the page made is listed for the replicas"
    );
    let physician = world.consortium.address(PHYSICIAN);
    let grant = world
        .client(PATIENT)
        .current_grant(world.patient(), physician)
        .await
        .unwrap()
        .expect("the browser's grant is on chain");
    assert!(grant.revoked, "and revoked from the browser");
    let status = hub.status().await.unwrap();
    assert!(status.web.counts.csrf_refused >= 2 && status.web.counts.pin_refused >= 1);
    assert!(
        status
            .devices
            .iter()
            .any(|d| d.identity.as_deref() == Some("name:cgm-browser") && d.last_reading.is_some()),
        "the device added in the browser delivered its reading"
    );
    assert_eq!(hub.terminate().await.code(), Some(0));
}

/// The falling end of a CGM trace, 5 minutes apart, the last one now: the
/// hub predicts a low and alerts the physician.
const FALLING: [f64; 13] = [
    149.0, 146.0, 143.0, 139.0, 134.0, 128.0, 121.0, 113.0, 105.0, 97.0, 89.0, 81.0, 68.0,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clinic_dashboard_works_in_a_real_browser() {
    use glyco_contracts::testkit::accounts::{HOSPITAL, LOCUM, PROXY};
    use support::clinic::{ClinicProcess, ProxyNode};

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("tests/python/.venv/bin/python");
    let cast = root.join("tools/node_modules/.bin/cast");
    assert!(
        python.exists() && cast.exists(),
        "run ./scripts/bootstrap.sh first"
    );
    let mut w = support::alerts::alert_world().await;
    let keys = w.world.dir.path().to_owned();
    let proxy = ProxyNode::enrol(&w.world, PROXY, w.path("proxy")).await;
    let proxy_arg = proxy.arg(&w.world);
    w.world.edit_config(|c| {
        c.seal.proxies = vec![proxy_arg.clone()];
        c.seal.proxy_threshold = 1;
        c.seal.max_batch_readings = 1000;
        c.seal.anchor_interval_secs = 1;
        c.seal.share_poll_secs = 1;
    });
    let pin = "582046";
    w.world
        .hub_cli_with_input(&["web", "set-pin"], &format!("{pin}\n"))
        .await;
    let doctor = w.physician(PHYSICIAN).await;
    // The physician's machine fetches batches from the hub: its node is
    // enrolled for the hospital.
    let hospital = w.key_file(HOSPITAL);
    let (ok, _, err) = w
        .run(&[
            "enrol-node",
            "--dir",
            doctor.to_str().unwrap(),
            "--entity-key",
            &hospital,
        ])
        .await;
    assert!(ok, "{err}");
    w.grant(PHYSICIAN).await;
    let history = w.world.register("cgm-history", "cgm").await;
    let now_device = w.world.register("cgm-now", "cgm").await;
    let _proxy = proxy.start(&w.world, &keys, w.path("proxy.log")).await;
    let fleet_http = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let _inbox = w
        .start_inbox_at(&w.inbox_dir.clone(), w.inbox_port, &["--http", &fleet_http])
        .await;
    let hub = w.world.start_hub().await;
    hub.wait_registered("cgm-now").await;
    hub.wait_for("the grant's kfrags at the proxy", |r| {
        r.seal
            .sharing
            .as_ref()
            .is_some_and(|s| s.delivered_grants == 1)
    })
    .await;
    // Two weeks of readings, then a fall that raises a predicted low.
    let now = support::now_ms();
    let trace =
        glyco_report::synthetic::cgm_trace(now - 14 * 86_400_000, now - 3 * 3_600_000, 5, 11, true);
    hub.backfill_cgm("cgm-history", &history, &trace).await;
    // One at a time, in order: the forecast follows the trend.
    let mut cgm = glyco_gateway::sim::SimulatedDevice::connect(hub.mqtt, "cgm-now", &now_device)
        .await
        .unwrap();
    for (i, &mg_dl) in FALLING.iter().enumerate() {
        let at = now - (FALLING.len() - 1 - i) as i64 * 300_000;
        let seq = i as u64 + 1;
        cgm.send_until_acked(seq, glyco_gateway::sim::cgm_payload(seq, at, mg_dl), 5)
            .await
            .unwrap();
    }
    cgm.disconnect().await;
    let readings = (trace.len() + FALLING.len()) as u64;
    let report = hub
        .wait_for_within(Duration::from_secs(120), "every reading anchored", |r| {
            r.seal.readings_sealed >= readings
                && r.seal.readings_unsealed == 0
                && r.seal.batches_anchored == r.seal.batches_sealed
                && r.web.listen.is_some()
        })
        .await;
    hub.wait_for("the predicted low raised", |r| {
        r.alerts.open.iter().any(|a| a.kind == "predicted_low")
    })
    .await;
    let node = report.seal.node_id.clone().unwrap();
    let hub_peer = format!("{node}@{}", w.world.config.seal.iroh_listen);
    let mut args = vec![
        "dashboard".to_owned(),
        "--dir".into(),
        doctor.to_string_lossy().into_owned(),
        "--key".into(),
        w.key_file(PHYSICIAN),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--inbox".into(),
        w.inbox_arg(),
        "--hub".into(),
        hub_peer,
        "--proxy".into(),
        proxy_arg,
        "--time-zone".into(),
        "UTC".into(),
        "--fleet".into(),
        format!("http://{fleet_http}"),
    ];
    args.extend(w.chain_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let dashboard = ClinicProcess::start(&refs, w.path("dashboard.log")).await;
    let base = dashboard
        .first_line
        .split(" on ")
        .nth(1)
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let shots = std::env::var_os("GLYCO_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&shots).unwrap();
    let key_hex = |account: u32| {
        format!(
            "0x{}",
            hex::encode(w.world.consortium.signer(account).to_bytes())
        )
    };
    let out = Command::new(&python)
        .arg(root.join("tests/browser/clinic_dashboard.py"))
        .arg(&base)
        .arg(key_hex(PHYSICIAN))
        .arg(key_hex(LOCUM))
        .arg(format!("http://{}", report.web.listen.unwrap()))
        .arg(pin)
        .arg(&shots)
        .arg(&cast)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}\ndashboard log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(w.path("dashboard.log")).unwrap_or_default()
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["patients"], 1);
    assert_eq!(
        seen["fleet_hubs"], 1,
        "the hub's heartbeats on the fleet page"
    );
    assert_eq!(seen["report_readings"], readings);
    assert!(seen["access_log"].as_u64().unwrap() >= 1);
    assert!(seen["hub_access_log"].as_u64().unwrap() >= 1);
    // The hub closed the alert the dashboard acknowledged, as the physician.
    let closed = hub
        .wait_for("the acknowledged alert closed at the hub", |r| {
            r.alerts
                .recent
                .iter()
                .any(|a| a.kind == "predicted_low" && a.acked.is_some())
        })
        .await;
    let acked = closed
        .alerts
        .recent
        .iter()
        .find(|a| a.kind == "predicted_low" && a.acked.is_some())
        .unwrap();
    assert_eq!(
        acked.acked.as_ref().unwrap().by,
        w.world.consortium.address(PHYSICIAN).to_string()
    );
    // The report's read is in the patient's log on chain, by the physician.
    let log = w
        .world
        .client(PATIENT)
        .access_log_of(w.world.patient(), 0)
        .await
        .unwrap();
    assert!(
        log.iter()
            .any(|e| e.physician == w.world.consortium.address(PHYSICIAN)),
        "{log:?}"
    );
    assert_eq!(hub.terminate().await.code(), Some(0));
}
