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
//! raises a stale-data alert for the patient, who acknowledges it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use glyco_contracts::testkit::accounts::*;
use glyco_contracts::{B256, DataKinds, Expiry, GrantScope};
use glyco_gateway::alerts::engine::AlertRecord;
use glyco_gateway::config::LadderStepConfig;
use glyco_gateway::sim::{self, SimulatedDevice};
use support::clinic::{ClinicProcess, clinic, clinic_bin};
use support::{Hub, HubWorld, free_udp_port, now_ms, write_key};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

struct AlertWorld {
    world: HubWorld,
    inbox_dir: PathBuf,
    inbox_port: u16,
    inbox_node: String,
}

impl AlertWorld {
    fn path(&self, name: &str) -> PathBuf {
        self.world.dir.path().join(name)
    }

    fn chain_args(&self) -> Vec<String> {
        vec![
            "--rpc".into(),
            self.world.config.chain.rpc_url.clone(),
            "--deployment".into(),
            self.world
                .config
                .chain
                .deployment_file
                .to_string_lossy()
                .into_owned(),
        ]
    }

    fn key_file(&self, account: u32) -> String {
        let path = self.path(&format!("{account}.key"));
        if !path.exists() {
            write_key(&path, &self.world.consortium.signer(account));
        }
        path.to_string_lossy().into_owned()
    }

    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        all.extend(self.chain_args());
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        clinic(&refs).await
    }

    async fn start_inbox(&self) -> ClinicProcess {
        let mut args = vec![
            "alert-inbox".to_owned(),
            "--dir".into(),
            self.inbox_dir.to_string_lossy().into_owned(),
            "--listen".into(),
            format!("127.0.0.1:{}", self.inbox_port),
        ];
        args.extend(self.chain_args());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let inbox =
            ClinicProcess::start(&refs, self.path(&format!("inbox-{}.log", now_ms()))).await;
        assert!(
            inbox.first_line.starts_with("alert inbox node "),
            "{}",
            inbox.first_line
        );
        inbox
    }

    fn inbox_arg(&self) -> String {
        format!("{}@127.0.0.1:{}", self.inbox_node, self.inbox_port)
    }

    /// A physician's machine with its umbral key published on chain.
    async fn physician(&self, account: u32) -> PathBuf {
        let dir = self.path(&format!("physician-{account}"));
        let d = dir.to_str().unwrap();
        let (ok, _, err) = clinic(&["physician", "init", "--dir", d]).await;
        assert!(ok, "{err}");
        let key = self.key_file(account);
        let (ok, _, err) = self
            .run(&["physician", "publish-key", "--dir", d, "--key", &key])
            .await;
        assert!(ok, "{err}");
        dir
    }

    async fn grant(&self, account: u32) {
        self.world
            .client(PATIENT)
            .grant(
                self.world.consortium.address(account),
                B256::repeat_byte(0x51 + account as u8),
                GrantScope {
                    kinds: DataKinds::GLUCOSE,
                    data_from: 0,
                    data_until: None,
                },
                Expiry::after(Duration::from_secs(3600)),
            )
            .await
            .unwrap();
    }

    /// `physician alerts --json` once (no follow): the JSON lines.
    async fn alerts_once(&self, account: u32, dir: &Path) -> Vec<serde_json::Value> {
        let key = self.key_file(account);
        let inbox = self.inbox_arg();
        let (ok, out, err) = clinic(&[
            "physician",
            "alerts",
            "--dir",
            dir.to_str().unwrap(),
            "--key",
            &key,
            "--inbox",
            &inbox,
            "--json",
        ])
        .await;
        assert!(ok, "{err}");
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// `physician alerts --follow --json` as a child; its lines arrive on the channel.
fn follow(
    w: &AlertWorld,
    account: u32,
    dir: &Path,
) -> (Child, mpsc::UnboundedReceiver<serde_json::Value>) {
    let key = w.key_file(account);
    let mut child = Command::new(clinic_bin())
        .args([
            "physician",
            "alerts",
            "--follow",
            "--json",
            "--dir",
            dir.to_str().unwrap(),
            "--key",
            &key,
        ])
        .args(["--inbox", &w.inbox_arg()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(w.path(&format!("follow-{}.log", now_ms()))).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(value) = serde_json::from_str(&line) {
                let _ = tx.send(value);
            }
        }
    });
    (child, rx)
}

async fn next_alert(
    rx: &mut mpsc::UnboundedReceiver<serde_json::Value>,
    what: &str,
) -> serde_json::Value {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no alert line for {what} within a minute"))
        .unwrap_or_else(|| panic!("the follower ended before {what}"))
}

async fn alert_world() -> AlertWorld {
    let mut world = HubWorld::new().await;
    let hub_port = free_udp_port();
    world.edit_config(|c| {
        c.seal.iroh_listen = format!("127.0.0.1:{hub_port}").parse().unwrap();
        c.limits.max_publishes_per_second = 1000;
    });
    world
        .consortium
        .enrol_physician(LOCUM, HOSPITAL)
        .await
        .unwrap();
    let inbox_dir = world.dir.path().join("inbox");
    let mut w = AlertWorld {
        world,
        inbox_dir,
        inbox_port: free_udp_port(),
        inbox_node: String::new(),
    };
    let hospital = w.key_file(HOSPITAL);
    let (ok, out, err) = w
        .run(&[
            "enrol-node",
            "--dir",
            w.inbox_dir.to_str().unwrap(),
            "--entity-key",
            &hospital,
        ])
        .await;
    assert!(ok, "{err}");
    w.inbox_node = out.split_whitespace().nth(2).unwrap().to_owned();
    let (inbox, doctor, locum) = (
        w.inbox_arg(),
        w.world.consortium.address(PHYSICIAN),
        w.world.consortium.address(LOCUM),
    );
    w.world.edit_config(|c| {
        c.alerts.inbox = Some(inbox);
        c.alerts.ack_poll_ms = 300;
        c.alerts.ladder = vec![
            LadderStepConfig {
                after_secs: 0,
                to: vec!["patient".into(), format!("physician:{doctor:#x}")],
            },
            LadderStepConfig {
                after_secs: 4,
                to: vec![format!("physician:{locum:#x}")],
            },
        ];
    });
    w
}

/// Two hours of 5-minute CGM readings ending now: steady, then falling.
async fn falling_trace(hub: &Hub, secret: &str) {
    let trace = [
        148, 151, 149, 152, 150, 147, 150, 149, 151, 148, 150, 149, 146, 143, 139, 134, 128, 121,
        113, 105, 97, 89, 81, 74, 68,
    ];
    let mut cgm = SimulatedDevice::connect(hub.mqtt, "cgm-alert", secret)
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
    assert_eq!(hub.terminate().await.code(), Some(0));
}

#[tokio::test]
async fn a_quiet_cgm_raises_a_stale_data_alert_that_the_patient_acknowledges() {
    let world = HubWorld::new().await;
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
        alert.targets.iter().all(|t| t.delivered_at_ms.is_some()),
        "the patient is told at once"
    );
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
    drop(cgm);
    assert_eq!(hub.terminate().await.code(), Some(0));
}
