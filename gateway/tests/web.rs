//! The hub's web app and Nightscout API against the real hub process on
//! anvil: signing in with the PIN (wrong PINs refused, then slowed down),
//! pages behind the session, CSRF and another origin refused, an alert
//! acknowledged, the AGP report, and the Nightscout API read by
//! py-nightscout (PyPI), an independent client. The browser flows are in
//! tests/browser (Playwright).

mod support;

use std::path::PathBuf;

use glyco_contracts::testkit::accounts::{PATIENT, PHYSICIAN};
use glyco_gateway::sim::{self, SimulatedDevice};
use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};
use support::web::{Browser, csrf};
use support::{Hub, HubWorld, now_ms};
use tokio::process::Command;

const PIN: &str = "482916";

async fn stream_cgm(hub: &Hub, secret: &str, values: &[f64]) {
    let mut cgm = SimulatedDevice::connect(hub.mqtt, "cgm-web", secret)
        .await
        .unwrap();
    let start = now_ms() - (values.len() as i64 - 1) * 300_000;
    for (i, mg_dl) in values.iter().enumerate() {
        let seq = i as u64 + 1;
        let payload = sim::cgm_payload(seq, start + i as i64 * 300_000, *mg_dl);
        let ack = cgm.send_until_acked(seq, payload, 5).await.unwrap();
        assert!(sim::is_final(&ack), "{ack:?}");
    }
    cgm.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_signs_in_and_follower_apps_read_through_the_nightscout_api() {
    let mut world = HubWorld::new().await;
    // The patient keeps their key on the hub: the Sharing page may sign.
    support::write_key(
        &world.config.state_dir.join("patient.key"),
        &world.consortium.signer(PATIENT),
    );
    world.edit_config(|c| c.web.patient_key_file = "patient.key".into());
    world
        .hub_cli_with_input(&["web", "set-pin"], &format!("{PIN}\n"))
        .await;
    let printed = world.hub_cli_with_input(&["web", "api-secret"], "").await;
    let api_secret = printed
        .lines()
        .find_map(|l| l.strip_prefix("Nightscout API secret (shown once): "))
        .unwrap()
        .to_owned();
    let secret = world.register("cgm-web", "cgm").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-web").await;
    let report = hub
        .wait_for("the web app listening", |r| r.web.listen.is_some())
        .await;
    assert!(report.web.pin_set && report.web.nightscout);
    let base = format!("http://{}", report.web.listen.unwrap());
    let origin = base.clone();

    // Falling to a low: readings every 5 minutes, the last one now.
    let values = [
        150.0, 146.0, 140.0, 131.0, 120.0, 108.0, 95.0, 83.0, 72.0, 61.0, 50.0,
    ];
    stream_cgm(&hub, &secret, &values).await;
    hub.wait_for("an alert for the low", |r| !r.alerts.open.is_empty())
        .await;

    let mut browser = Browser::new(base.clone());
    let anonymous = browser.get("/").await;
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(anonymous.headers()[LOCATION], "/login");
    assert_eq!(browser.get("/report").await.status(), StatusCode::SEE_OTHER);

    // A wrong PIN, then the right one.
    assert_eq!(
        browser.sign_in("000000").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(browser.cookie.is_none());
    let signed_in = browser.sign_in(PIN).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = signed_in.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let now_page = browser.get("/").await;
    assert_eq!(now_page.status(), StatusCode::OK);
    let csp = now_page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let page = now_page.text().await.unwrap();
    assert!(page.contains(">50<"), "the latest glucose is shown: {page}");
    assert!(page.contains("⇊") || page.contains("↓"), "falling fast");
    let token = csrf(&page);
    let alert_id = hub.status().await.unwrap().alerts.open[0].id.clone();

    // CSRF: no token, a wrong token, or another origin are refused.
    let refused = browser
        .post(
            "/alerts/ack",
            &[("id", &alert_id), ("csrf", "forged")],
            Some(&origin),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let cross = browser
        .post(
            "/alerts/ack",
            &[("id", &alert_id), ("csrf", &token)],
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let no_origin = browser
        .post("/alerts/ack", &[("id", &alert_id), ("csrf", &token)], None)
        .await;
    assert_eq!(no_origin.status(), StatusCode::FORBIDDEN);
    assert!(
        hub.status()
            .await
            .unwrap()
            .alerts
            .open
            .iter()
            .any(|a| a.id == alert_id)
    );
    let acked = browser
        .post(
            "/alerts/ack",
            &[("id", &alert_id), ("csrf", &token)],
            Some(&origin),
        )
        .await;
    assert_eq!(acked.status(), StatusCode::SEE_OTHER);
    hub.wait_for("the alert acknowledged from the web", |r| {
        r.alerts
            .recent
            .iter()
            .any(|a| a.id == alert_id && a.acked.is_some())
    })
    .await;

    // The report, in mmol/L once the patient asks.
    let report_page = browser.get("/report").await.text().await.unwrap();
    assert!(
        report_page.contains("Glucose report, 14 days"),
        "{report_page}"
    );
    assert!(
        report_page.contains("Not enough data"),
        "under an hour of CGM data"
    );
    let switched = browser
        .post(
            "/settings",
            &[("unit", "mmol/L"), ("csrf", &token)],
            Some(&origin),
        )
        .await;
    assert_eq!(switched.status(), StatusCode::SEE_OTHER);
    let in_mmol = browser.get("/report").await.text().await.unwrap();
    assert!(in_mmol.contains("3.9–10.0 mmol/L"), "{in_mmol}");

    // Sharing: grant the physician glucose for 30 days, then revoke; turn
    // the emergency policy on. Each is the patient's transaction on chain.
    let doctor = world.consortium.address(PHYSICIAN);
    let sharing = browser.get("/sharing").await.text().await.unwrap();
    assert!(sharing.contains("No one has read your data."), "{sharing}");
    assert!(sharing.contains("Off: no emergency service"));
    let doctor_text = format!("{doctor:#x}");
    let granted = browser
        .post(
            "/sharing/grant",
            &[
                ("physician", &doctor_text),
                ("kind_glucose", "on"),
                ("days", "30"),
                ("from_days", "90"),
                ("csrf", &token),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(
        granted.status(),
        StatusCode::SEE_OTHER,
        "{}",
        granted.text().await.unwrap()
    );
    let grant = world
        .client(PATIENT)
        .current_grant(world.patient(), doctor)
        .await
        .unwrap()
        .expect("granted on chain");
    assert_eq!(grant.scope.kinds, glyco_contracts::DataKinds::GLUCOSE);
    let listed = browser.get("/sharing").await.text().await.unwrap();
    assert!(
        listed.contains("(St Luke&#39;s)") || listed.contains("(St Luke's)"),
        "{listed}"
    );
    assert!(listed.contains(">live<"));
    let revoked = browser
        .post(
            "/sharing/revoke",
            &[("physician", &doctor_text), ("csrf", &token)],
            Some(&origin),
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert!(
        !world
            .client(PATIENT)
            .can_read(world.patient(), doctor)
            .await
            .unwrap()
    );
    let forged = browser
        .post(
            "/sharing/revoke",
            &[("physician", &doctor_text), ("csrf", "x")],
            Some(&origin),
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let policy = browser
        .post(
            "/sharing/emergency",
            &[
                ("kind_glucose", "on"),
                ("hours", "6"),
                ("lookback_days", "7"),
                ("enabled", "on"),
                ("csrf", &token),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(policy.status(), StatusCode::SEE_OTHER);
    let on_chain = world
        .client(PATIENT)
        .emergency_policy_of(world.patient())
        .await
        .unwrap();
    assert!(on_chain.enabled && on_chain.max_duration_secs == 6 * 3600);

    // The Hub page lists what was done here.
    let hub_page = browser.get("/hub").await.text().await.unwrap();
    assert!(
        hub_page.contains(&format!("acknowledged alert {alert_id}")),
        "{hub_page}"
    );
    assert!(hub_page.contains("sign-in refused (wrong PIN)"));
    assert!(hub_page.contains("GB free") && hub_page.contains("taking readings"));
    assert!(
        hub_page.contains(&format!("revoked {doctor}")),
        "{hub_page}"
    );

    // Signing out ends the session.
    let out = browser
        .post("/logout", &[("csrf", &token)], Some(&origin))
        .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(browser.get("/").await.status(), StatusCode::SEE_OTHER);

    // Nightscout's API, read by py-nightscout.
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python/.venv/bin/python");
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python/nightscout_check.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&base)
        .arg(&api_secret)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["status"], "ok");
    assert_eq!(seen["units"], "mmol");
    assert_eq!(seen["wrong_secret"], 401);
    let sgvs = seen["sgvs"].as_array().unwrap();
    assert_eq!(sgvs.len(), 10, "Nightscout's default count");
    assert_eq!(sgvs[0]["sgv"], 50);
    assert_eq!(sgvs[0]["delta"], -11.0);
    assert_eq!(sgvs[0]["direction"], "SingleDown", "-11 mg/dL in 5 minutes");
    assert_eq!(sgvs[1]["sgv"], 61);
    assert!(
        sgvs[0]["device"]
            .as_str()
            .unwrap()
            .ends_with("name:cgm-web")
    );

    // The read token works as a query parameter; counts are capped.
    let http = reqwest::Client::new();
    let token_url = {
        let secrets: serde_json::Value =
            serde_json::from_slice(&std::fs::read(world.config.nightscout_path()).unwrap())
                .unwrap();
        format!(
            "{base}/api/v1/entries/sgv.json?count=3&token={}",
            secrets["token"].as_str().unwrap()
        )
    };
    let three: Vec<serde_json::Value> = serde_json::from_slice(
        &http
            .get(&token_url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(three.len(), 3);
    // A date filter, as followers catch up: from the third newest on.
    let since = three[2]["date"].as_i64().unwrap();
    let caught_up: Vec<serde_json::Value> = serde_json::from_slice(
        &http
            .get(format!("{token_url}&count=100&find[date][$gte]={since}").replace("count=3&", ""))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(caught_up.len(), 3, "{caught_up:?}");
    let bad = http
        .get(format!("{token_url}&find[date][$gte]=yesterday"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        http.get(format!("{base}/api/v1/entries.json"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Wrong PINs from one address: after three, it must wait.
    let mut guesser = Browser::new(base.clone());
    for _ in 0..4 {
        guesser.sign_in("111111").await;
    }
    let held = guesser.sign_in(PIN).await;
    assert_eq!(
        held.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right PIN waits"
    );
    let counts = hub.status().await.unwrap().web.counts;
    assert!(
        counts.pin_refused >= 5 && counts.csrf_refused >= 3,
        "{counts:?}"
    );
    assert_eq!(hub.terminate().await.code(), Some(0));
}
