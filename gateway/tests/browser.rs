//! The hub's web app in a real browser: Playwright (PyPI) driving Debian's
//! chromium against the real hub on anvil, an MQTT reading sent by
//! mosquitto_pub with the credentials the page showed, the page's QR code
//! read by zbarimg (tests/browser/hub_web.py says what is checked).

mod support;

use std::path::PathBuf;

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
