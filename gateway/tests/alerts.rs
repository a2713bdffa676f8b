//! Alerts end to end with real processes: anvil, the hub, a clinic alert
//! inbox (`glyco-clinic alert-inbox`) and physicians' CLIs following it
//! over iroh.
//!
//! A falling CGM trace reaches the granted physician's `--follow` as a
//! predicted low within seconds; with no acknowledgement the ladder climbs
//! to a second physician, whom the inbox refuses until the patient grants
//! them; the first physician's acknowledgement stops it. With the inbox
//! down and the hub SIGKILLed, a new alert waits in the hub's journal and is
//! delivered after both restart, and shown once. A CGM that goes quiet
//! raises a stale-data alert for the patient, who acknowledges it. An
//! urgent low that no one acknowledges reaches the emergency service's
//! duty physician through its own inbox, once the patient's emergency
//! policy on chain consents, and that physician's acknowledgement stops it.

mod support;

use std::time::Duration;

use glyco_contracts::testkit::accounts::*;
use glyco_contracts::{DataKinds, EmergencyPolicy, EntityKind};
use glyco_gateway::alerts::engine::AlertRecord;
use glyco_gateway::config::{LadderStepConfig, WebhookConfig};
use glyco_gateway::sim::{self, SimulatedDevice};
use support::alerts::{alert_world, follow, follow_at, next_alert};
use support::clinic::clinic;
use support::{Hub, HubWorld, now_ms};
use tokio::sync::mpsc;

/// Two hours of 5-minute CGM readings ending now: steady, then falling.
const FALLING: [u16; 25] = [
    148, 151, 149, 152, 150, 147, 150, 149, 151, 148, 150, 149, 146, 143, 139, 134, 128, 121, 113,
    105, 97, 89, 81, 74, 68,
];

async fn falling_trace(hub: &Hub, secret: &str) {
    send_trace(hub, "cgm-alert", secret, &FALLING).await;
}

/// 5-minute CGM readings from `device`, the last one now.
async fn send_trace(hub: &Hub, device: &str, secret: &str, trace: &[u16]) {
    let mut cgm = SimulatedDevice::connect(hub.mqtt, device, secret)
        .await
        .unwrap();
    let start = now_ms() - (trace.len() as i64 - 1) * 300_000;
    for (i, mg_dl) in trace.iter().enumerate() {
        let seq = i as u64 + 1;
        let payload = sim::cgm_payload(seq, start + i as i64 * 300_000, f64::from(*mg_dl));
        let ack = cgm.send_until_acked(seq, payload, 5).await.unwrap();
        assert!(sim::is_final(&ack), "{ack:?}");
    }
    cgm.disconnect().await;
}

fn alert_by_id<'a>(alerts: &'a [AlertRecord], id: &str) -> Option<&'a AlertRecord> {
    alerts.iter().find(|a| a.id == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_predicted_low_reaches_the_physician_climbs_the_ladder_and_stops_at_an_ack() {
    let w = alert_world().await;
    let doctor = w.physician(PHYSICIAN).await;
    let locum = w.physician(LOCUM).await;
    w.grant(PHYSICIAN).await;
    let secret = w.world.register("cgm-alert", "cgm").await;
    let inbox = w.start_inbox().await;
    let hub = w.world.start_hub().await;
    hub.wait_registered("cgm-alert").await;
    let (_follower, mut lines) = follow(&w, PHYSICIAN, &doctor);

    falling_trace(&hub, &secret).await;
    let alert = next_alert(&mut lines, "the predicted low").await;
    assert_eq!(alert["kind"], "predicted_low", "{alert}");
    assert_eq!(
        alert["device"], "name:cgm-alert",
        "decrypted by the physician: {alert}"
    );
    let latency =
        alert["shown_at_ms"].as_i64().unwrap() - alert["reading_received_at_ms"].as_i64().unwrap();
    assert!(latency < 10_000, "reading to physician took {latency} ms");
    let id = alert["id"].as_str().unwrap().to_owned();

    // No acknowledgement: after 4 s the locum is added, and refused by the
    // inbox until the patient grants them.
    let refused = hub
        .wait_for("the locum step refused for want of a grant", |r| {
            alert_by_id(&r.alerts.open, &id).is_some_and(|a| {
                a.step == 1
                    && a.targets.iter().any(|t| {
                        t.last_error
                            .as_deref()
                            .is_some_and(|e| e.contains("no live grant"))
                    })
            })
        })
        .await;
    assert_eq!(
        alert_by_id(&refused.alerts.open, &id)
            .unwrap()
            .targets
            .len(),
        3
    );
    assert!(
        w.alerts_once(LOCUM, &locum).await.is_empty(),
        "nothing reaches a physician without a grant"
    );
    w.grant(LOCUM).await;
    hub.wait_for("the locum told", |r| {
        alert_by_id(&r.alerts.open, &id)
            .is_some_and(|a| a.targets.iter().all(|t| t.delivered_at_ms.is_some()))
    })
    .await;
    let seen_by_locum = w.alerts_once(LOCUM, &locum).await;
    assert!(
        seen_by_locum
            .iter()
            .any(|a| a["id"] == id.as_str() && a["step"] == 1),
        "{seen_by_locum:?}"
    );

    // The physician acknowledges: the hub closes the alert.
    let key = w.key_file(PHYSICIAN);
    let (ok, out, err) = clinic(&[
        "physician",
        "ack",
        &id,
        "--dir",
        doctor.to_str().unwrap(),
        "--key",
        &key,
        "--inbox",
        &w.inbox_arg(),
    ])
    .await;
    assert!(ok && out.contains("acknowledged"), "{out}{err}");
    let ack_evidence = out
        .split("evidence ")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(')')
        .to_owned();
    let alert_evidence = alert["evidence"].as_str().unwrap().to_owned();
    let closed = hub
        .wait_for("the acknowledgement at the hub", |r| {
            alert_by_id(&r.alerts.recent, &id).is_some_and(|a| a.acked.is_some())
        })
        .await;
    let acked = alert_by_id(&closed.alerts.recent, &id).unwrap();
    assert_eq!(
        acked.acked.as_ref().unwrap().by,
        w.world.consortium.address(PHYSICIAN).to_string()
    );
    assert!(alert_by_id(&closed.alerts.open, &id).is_none());

    // A forged acknowledgement (someone else's key) is refused by the inbox.
    let stranger = w.key_file(STRANGER);
    let (ok, _, err) = clinic(&[
        "physician",
        "ack",
        &id,
        "--dir",
        doctor.to_str().unwrap(),
        "--key",
        &stranger,
        "--inbox",
        &w.inbox_arg(),
    ])
    .await;
    assert!(!ok && err.contains("no such alert"), "{err}");

    // The inbox goes down, a flood raises a new alert, the hub is killed.
    inbox.kill().await;
    let mut cgm = SimulatedDevice::connect(hub.mqtt, "cgm-alert", &secret)
        .await
        .unwrap();
    for seq in 100..130u64 {
        let ack = cgm
            .send_until_acked(seq, sim::cgm_payload(seq, now_ms(), 90.0), 5)
            .await
            .unwrap();
        assert!(sim::is_final(&ack), "{ack:?}");
    }
    cgm.disconnect().await;
    let waiting = hub
        .wait_for("the flood alert waiting for the inbox", |r| {
            r.alerts.open.iter().any(|a| {
                a.kind == "node_behaviour:flood"
                    && a.targets
                        .iter()
                        .any(|t| t.delivered_at_ms.is_none() && t.attempts > 0)
            })
        })
        .await;
    let flood_id = waiting
        .alerts
        .open
        .iter()
        .find(|a| a.kind == "node_behaviour:flood")
        .unwrap()
        .id
        .clone();
    hub.kill().await;
    let _inbox = w.start_inbox().await;
    let hub = w.world.start_hub().await;
    hub.wait_for("the kept alert delivered after the restart", |r| {
        alert_by_id(&r.alerts.open, &flood_id).is_some_and(|a| {
            a.targets
                .iter()
                .filter(|t| t.step == 0)
                .all(|t| t.delivered_at_ms.is_some())
        })
    })
    .await;
    // The physician's CLI (restarted: its stream ended with the inbox)
    // shows the new alert once and not the old one again.
    let shown = w.alerts_once(PHYSICIAN, &doctor).await;
    let ids: Vec<&str> = shown.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids.iter().filter(|i| **i == flood_id).count(), 1, "{ids:?}");
    assert!(!ids.contains(&id.as_str()), "shown before: {ids:?}");
    assert!(
        w.alerts_once(PHYSICIAN, &doctor).await.is_empty(),
        "shown once across runs"
    );

    // Evidence: the delivered alert's and the acknowledgement's digests are
    // in the headers of later sealed batches, in the clear.
    let sealed = hub
        .wait_for("every reading sealed", |r| {
            r.seal.readings_unsealed == 0 && r.seal.batches_sealed > 0
        })
        .await;
    let mut evidence = Vec::new();
    for batch in 1..=sealed.seal.batches_sealed {
        let export = glyco_gateway::status::query_batch(
            &w.world.config.status_socket(),
            glyco_gateway::seal::export::BatchSelector::Number(batch),
        )
        .await
        .unwrap()
        .unwrap();
        let blob = alloy::hex::decode(export.blob_hex.unwrap()).unwrap();
        let batch = glyco_seal::SealedBatch::from_bytes(&blob).unwrap();
        evidence.extend(batch.header.evidence.iter().map(|d| d.to_string()));
    }
    assert!(
        evidence.contains(&alert_evidence),
        "{alert_evidence} not in {evidence:?}"
    );
    assert!(
        evidence.contains(&ack_evidence),
        "{ack_evidence} not in {evidence:?}"
    );
    assert_eq!(hub.terminate().await.code(), Some(0));
}

/// One HTTP request as the webhook receiver saw it.
struct Posted {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Posted {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    }
}

/// A webhook receiver: answers 500 to the first request, 200 after.
async fn webhook_receiver() -> (u16, mpsc::UnboundedReceiver<Posted>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut served = 0;
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, length) = loop {
                let Ok(n) = stream.read(&mut chunk).await else {
                    break (0, 0);
                };
                if n == 0 {
                    break (0, 0);
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    break (i + 4, length);
                }
            };
            while buf.len() < head_end + length {
                let Ok(n) = stream.read(&mut chunk).await else {
                    break;
                };
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect();
            let _ = tx.send(Posted {
                headers,
                body: buf[head_end..].to_vec(),
            });
            served += 1;
            let status = if served == 1 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let answer =
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    (port, rx)
}

/// HMAC-SHA256 by Python's hmac module (an implementation not ours).
fn python_hmac(secret: &str, message: &[u8]) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), sys.stdin.buffer.read(), hashlib.sha256).hexdigest())",
            secret,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(message)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn a_quiet_cgm_raises_a_stale_data_alert_for_the_patient_and_a_signed_webhook() {
    let mut world = HubWorld::new().await;
    let (port, mut posts) = webhook_receiver().await;
    let hook_secret = "a-pager-secret-of-some-length";
    std::fs::create_dir_all(&world.config.state_dir).unwrap();
    std::fs::write(world.config.state_dir.join("pager.secret"), hook_secret).unwrap();
    world.edit_config(|c| {
        c.alerts.webhooks = vec![WebhookConfig {
            name: "pager".into(),
            url: format!("http://127.0.0.1:{port}/hook"),
            secret_file: "pager.secret".into(),
        }];
        c.alerts.ladder = vec![LadderStepConfig {
            after_secs: 0,
            to: vec!["patient".into(), "webhook:pager".into()],
        }];
    });
    let secret = world.register("cgm-quiet", "cgm").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-quiet").await;
    let mut cgm = SimulatedDevice::connect(hub.mqtt, "cgm-quiet", &secret)
        .await
        .unwrap();
    // A CGM every second (its own cadence), then nothing.
    for seq in 1..=8u64 {
        let ack = cgm
            .send_until_acked(seq, sim::cgm_payload(seq, now_ms(), 120.0), 5)
            .await
            .unwrap();
        assert!(sim::is_final(&ack), "{ack:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let report = hub
        .wait_for("a stale-data alert for the patient", |r| {
            r.alerts.open.iter().any(|a| a.kind == "stale_data")
        })
        .await;
    let alert = report
        .alerts
        .open
        .iter()
        .find(|a| a.kind == "stale_data")
        .unwrap();
    assert_eq!(alert.device, "name:cgm-quiet");
    assert!(
        alert.explanation.contains("two missed"),
        "{}",
        alert.explanation
    );
    assert!(
        alert.targets[0].delivered_at_ms.is_some(),
        "the patient is told at once"
    );
    // The webhook: refused once (500), then delivered; signed, and the
    // signature checks with Python's HMAC.
    let first = tokio::time::timeout(Duration::from_secs(30), posts.recv())
        .await
        .unwrap()
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(30), posts.recv())
        .await
        .unwrap()
        .unwrap();
    for post in [&first, &second] {
        assert_eq!(post.header("x-glyco-alert-id"), alert.id);
        let mut signed = post.header("x-glyco-timestamp").as_bytes().to_vec();
        signed.push(b'.');
        signed.extend_from_slice(&post.body);
        assert_eq!(
            post.header("x-glyco-signature"),
            format!("sha256={}", python_hmac(hook_secret, &signed))
        );
        let body: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
        assert_eq!(body["kind"], "stale_data");
    }
    let delivered = hub
        .wait_for("the webhook delivered", |r| {
            r.alerts.open.iter().any(|a| {
                a.kind == "stale_data" && a.targets.iter().all(|t| t.delivered_at_ms.is_some())
            })
        })
        .await;
    let hook = &delivered
        .alerts
        .open
        .iter()
        .find(|a| a.kind == "stale_data")
        .unwrap()
        .targets[1];
    assert_eq!(hook.attempts, 2, "one refusal, one delivery");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(posts.try_recv().is_err(), "delivered, so not posted again");
    let shown = world.hub_cli(&["alerts"]).await;
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains(&alert.id) && text.contains("stale_data"),
        "{text}"
    );
    let acked = world.hub_cli(&["alerts", "ack", &alert.id]).await;
    assert!(
        acked.status.success(),
        "{}",
        String::from_utf8_lossy(&acked.stderr)
    );
    let after = hub.status().await.unwrap();
    assert!(after.alerts.open.is_empty());
    assert_eq!(
        after
            .alerts
            .recent
            .last()
            .unwrap()
            .acked
            .as_ref()
            .unwrap()
            .by,
        "patient"
    );
    let again = world.hub_cli(&["alerts", "ack", &alert.id]).await;
    assert!(!again.status.success(), "an acknowledged alert is closed");
    // Snooze: a kind held for an hour, kept; a severe low never.
    let never = world
        .hub_cli(&[
            "alerts",
            "snooze",
            "--kind",
            "very_low_glucose",
            "--minutes",
            "60",
        ])
        .await;
    assert!(!never.status.success());
    let snoozed = world
        .hub_cli(&[
            "alerts",
            "snooze",
            "--kind",
            "stale_data",
            "--minutes",
            "60",
        ])
        .await;
    assert!(
        snoozed.status.success(),
        "{}",
        String::from_utf8_lossy(&snoozed.stderr)
    );
    assert!(
        hub.status()
            .await
            .unwrap()
            .alerts
            .snoozed
            .contains_key("stale_data")
    );
    drop(cgm);
    assert_eq!(hub.terminate().await.code(), Some(0));
    let hub = world.start_hub().await;
    let report = hub.wait_for("the hub back", |r| r.alerts.enabled).await;
    assert!(
        report.alerts.snoozed.contains_key("stale_data"),
        "kept across a restart"
    );

    // Signed alert policies: the patient's, then a granted physician's; a
    // stranger's, an ungranted physician's and a replayed version are refused.
    let keys = world.dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key = |account| support::clinic::key_file(&world, &keys, account);
    let policy = world.dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"kinds":["stale_data","very_low_glucose"],"min_severity":"warning","ladder":[[0,["patient"]]],"dedupe_secs":60}"#,
    )
    .unwrap();
    let p = policy.to_str().unwrap();
    let stranger = world
        .hub_cli(&["alerts", "policy", "--file", p, "--key", &key(STRANGER)])
        .await;
    assert!(!stranger.status.success());
    assert!(
        String::from_utf8_lossy(&stranger.stderr).contains("neither acts for the patient"),
        "{}",
        String::from_utf8_lossy(&stranger.stderr)
    );
    let by_patient = world
        .hub_cli(&["alerts", "policy", "--file", p, "--key", &key(PATIENT)])
        .await;
    assert!(
        by_patient.status.success(),
        "{}",
        String::from_utf8_lossy(&by_patient.stderr)
    );
    let patient_key = world.consortium.address(PATIENT);
    assert_eq!(
        hub.status().await.unwrap().alerts.policy,
        Some((1, patient_key))
    );
    let signed = world.dir.path().join("signed-policy.json");
    let sign = |version: &'static str| {
        let (key, signed) = (key(PHYSICIAN), signed.clone());
        let (patient, hub_address) = (
            format!("{:#x}", world.patient()),
            format!("{:#x}", report.hub),
        );
        let policy = policy.clone();
        async move {
            let (ok, _, err) = support::clinic::clinic(&[
                "physician",
                "sign-alert-policy",
                "--file",
                policy.to_str().unwrap(),
                "--key",
                &key,
                "--patient",
                &patient,
                "--hub",
                &hub_address,
                "--version",
                version,
                "--out",
                signed.to_str().unwrap(),
            ])
            .await;
            assert!(ok, "{err}");
        }
    };
    sign("2").await;
    let s = signed.to_str().unwrap();
    let ungranted = world.hub_cli(&["alerts", "policy", "--signed", s]).await;
    assert!(!ungranted.status.success(), "no grant yet");
    world
        .client(PATIENT)
        .grant(
            world.consortium.address(PHYSICIAN),
            glyco_contracts::B256::repeat_byte(0x77),
            glyco_contracts::GrantScope {
                kinds: glyco_contracts::DataKinds::GLUCOSE,
                data_from: 0,
                data_until: None,
            },
            glyco_contracts::Expiry::after(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let granted = world.hub_cli(&["alerts", "policy", "--signed", s]).await;
    assert!(
        granted.status.success(),
        "{}",
        String::from_utf8_lossy(&granted.stderr)
    );
    let replayed = world.hub_cli(&["alerts", "policy", "--signed", s]).await;
    assert!(!replayed.status.success(), "the same version again");
    assert_eq!(hub.terminate().await.code(), Some(0));
    let hub = world.start_hub().await;
    let report = hub.wait_for("the hub back", |r| r.alerts.enabled).await;
    assert_eq!(
        report.alerts.policy,
        Some((2, world.consortium.address(PHYSICIAN))),
        "kept across a restart"
    );
    assert_eq!(hub.terminate().await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_low_no_one_acknowledges_reaches_the_emergency_service_on_duty_with_consent() {
    let mut w = alert_world().await;
    let consortium = &w.world.consortium;
    consortium
        .enrol_entity(
            EMERGENCY_SERVICE,
            EntityKind::EmergencyService,
            "City Ambulance",
        )
        .await
        .unwrap();
    consortium
        .enrol_physician(PARAMEDIC, EMERGENCY_SERVICE)
        .await
        .unwrap();
    let service = consortium.address(EMERGENCY_SERVICE);
    // The ambulance service's own inbox, enrolled for it on chain; its duty
    // roster also names the hospital's locum, whom the chain does not
    // confirm as the service's.
    let er_dir = w.path("er-inbox");
    let service_key = w.key_file(EMERGENCY_SERVICE);
    let (ok, out, err) = w
        .run(&[
            "enrol-node",
            "--dir",
            er_dir.to_str().unwrap(),
            "--entity-key",
            &service_key,
        ])
        .await;
    assert!(ok, "{err}");
    let er_inbox = format!(
        "{}@127.0.0.1:{}",
        out.split_whitespace().nth(2).unwrap(),
        support::free_udp_port()
    );
    let roster = w.path("duty.txt");
    std::fs::write(
        &roster,
        format!(
            "# tonight\n{:#x}\n{:#x}\n",
            consortium.address(LOCUM),
            consortium.address(PARAMEDIC)
        ),
    )
    .unwrap();
    let doctor_address = consortium.address(PHYSICIAN);
    let er = er_inbox.clone();
    w.world.edit_config(|c| {
        c.alerts.inboxes = vec![er];
        c.alerts.ladder = vec![
            LadderStepConfig {
                after_secs: 0,
                to: vec!["patient".into(), format!("physician:{doctor_address:#x}")],
            },
            LadderStepConfig {
                after_secs: 3,
                to: vec![format!("emergency:{service:#x}")],
            },
        ];
    });
    let consortium = &w.world.consortium;
    let medic = w.physician(PARAMEDIC).await;
    let locum = w.physician(LOCUM).await;
    w.grant(PHYSICIAN).await;
    let secret = w.world.register("cgm-er", "cgm").await;
    let _inbox = w.start_inbox().await;
    let er_port: u16 = er_inbox.rsplit(':').next().unwrap().parse().unwrap();
    let _er = w
        .start_inbox_at(
            &er_dir,
            er_port,
            &["--duty-roster", roster.to_str().unwrap()],
        )
        .await;
    let hub = w.world.start_hub().await;
    hub.wait_registered("cgm-er").await;
    let (_medic_follow, mut medic_lines) = follow_at(&w, PARAMEDIC, &medic, &er_inbox);

    // The fall goes on to 48 mg/dL: a predicted low (a warning) and a very
    // low glucose (urgent). No one acknowledges.
    let mut trace = FALLING[3..].to_vec();
    trace.extend([62, 55, 48]);
    send_trace(&hub, "cgm-er", &secret, &trace).await;
    let open_alert = |r: &glyco_gateway::status::StatusReport, kind: &str| {
        r.alerts.open.iter().find(|a| a.kind == kind).cloned()
    };
    let waiting = hub
        .wait_for("the urgent low held back for want of consent", |r| {
            open_alert(r, "very_low_glucose").is_some_and(|a| {
                a.step == 1
                    && a.targets.iter().any(|t| {
                        t.last_error
                            .as_deref()
                            .is_some_and(|e| e.contains("emergency policy is not enabled"))
                    })
            })
        })
        .await;
    let urgent = open_alert(&waiting, "very_low_glucose").unwrap();
    let warning = hub
        .wait_for("the predicted low at its last step", |r| {
            open_alert(r, "predicted_low").is_some_and(|a| a.step == 1)
        })
        .await;
    assert!(
        open_alert(&warning, "predicted_low")
            .unwrap()
            .targets
            .iter()
            .all(|t| !t.target.to_string().starts_with("emergency:")),
        "a warning never reaches an emergency service"
    );

    // The patient enables their emergency policy on chain: now the service's
    // duty physician is told, the locum is not.
    w.world
        .client(PATIENT)
        .set_emergency_policy(EmergencyPolicy {
            kinds: DataKinds::GLUCOSE,
            max_duration_secs: 3600,
            lookback_secs: 86_400,
            enabled: true,
        })
        .await
        .unwrap();
    let told = hub
        .wait_for("the emergency service told", |r| {
            alert_by_id(&r.alerts.open, &urgent.id).is_some_and(|a| {
                a.targets
                    .iter()
                    .any(|t| t.step == 1 && t.delivered_at_ms.is_some())
            })
        })
        .await;
    let step = alert_by_id(&told.alerts.open, &urgent.id)
        .unwrap()
        .targets
        .iter()
        .find(|t| t.step == 1)
        .unwrap()
        .clone();
    assert_eq!(step.reached, vec![consortium.address(PARAMEDIC)]);
    let shown = next_alert(&mut medic_lines, "the emergency alert").await;
    assert_eq!(shown["id"], urgent.id.as_str(), "{shown}");
    assert_eq!(shown["kind"], "very_low_glucose");
    assert_eq!(shown["emergency"], format!("{service:#x}"));
    assert_eq!(shown["device"], "name:cgm-er", "decrypted by the paramedic");
    assert!(
        w.alerts_once_at(LOCUM, &locum, &er_inbox).await.is_empty(),
        "not the service's physician: nothing for the locum"
    );

    // The paramedic acknowledges at the service's inbox: the hub closes it.
    let key = w.key_file(PARAMEDIC);
    let (ok, out, err) = clinic(&[
        "physician",
        "ack",
        &urgent.id,
        "--dir",
        medic.to_str().unwrap(),
        "--key",
        &key,
        "--inbox",
        &er_inbox,
    ])
    .await;
    assert!(ok && out.contains("acknowledged"), "{out}{err}");
    let closed = hub
        .wait_for("the paramedic's acknowledgement at the hub", |r| {
            alert_by_id(&r.alerts.recent, &urgent.id).is_some_and(|a| a.acked.is_some())
        })
        .await;
    assert_eq!(
        alert_by_id(&closed.alerts.recent, &urgent.id)
            .unwrap()
            .acked
            .as_ref()
            .unwrap()
            .by,
        consortium.address(PARAMEDIC).to_string()
    );
    // Only the urgent alert ever reached the service.
    let at_service: Vec<String> = w
        .alerts_once_at(PARAMEDIC, &medic, &er_inbox)
        .await
        .iter()
        .map(|a| a["kind"].to_string())
        .collect();
    assert!(at_service.is_empty(), "shown once: {at_service:?}");

    // The paramedic asks for the patient's emergency data: the patient's
    // policy opens a time-limited grant, and the hub shows it.
    let patient = format!("{:#x}", w.world.patient());
    let (ok, out, err) = w
        .run(&[
            "physician",
            "emergency-access",
            "--key",
            &key,
            "--patient",
            &patient,
        ])
        .await;
    assert!(ok, "{out}{err}");
    hub.wait_for("the patient told of the emergency access", |r| {
        r.emergency_accesses
            .iter()
            .any(|e| e.physician == w.world.consortium.address(PARAMEDIC))
    })
    .await;
    assert_eq!(hub.terminate().await.code(), Some(0));
}
