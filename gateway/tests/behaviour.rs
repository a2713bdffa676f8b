//! Node behaviour end to end: a real chain, the real hub process, a CGM as
//! the simulator, a flood from mosquitto_pub, the CGM's credentials used
//! from a second loopback address, and a device clock that jumps back two
//! hours. Each shows up as a `node_behaviour:*` finding in the hub's status
//! and its log, and the readings are all still stored.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use glyco_gateway::sim::{self, SimulatedDevice};
use support::raw::{self, Answer};
use support::{HubWorld, now_ms};
use tokio::process::Command;

fn has_finding(report: &glyco_gateway::status::StatusReport, kind: &str, device: &str) -> bool {
    report
        .analysis
        .recent
        .iter()
        .any(|f| f.kind == kind && f.device == device)
}

#[tokio::test]
async fn a_flood_a_second_address_and_a_clock_jump_are_flagged_as_node_behaviour() {
    let world = HubWorld::new().await;
    let secret = world.register("cgm-watch", "cgm").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-watch").await;

    // A few normal readings: nothing to report.
    let mut cgm = SimulatedDevice::connect(hub.mqtt, "cgm-watch", &secret)
        .await
        .unwrap();
    for seq in 1..=3 {
        let ack = cgm
            .send_until_acked(seq, sim::cgm_payload(seq, now_ms(), 120.0 + seq as f64), 5)
            .await
            .unwrap();
        assert!(sim::is_final(&ack), "{ack:?}");
    }
    let calm = hub
        .wait_for("three readings", |r| r.readings_stored == 3)
        .await;
    assert!(
        !calm
            .analysis
            .recent
            .iter()
            .any(|f| f.kind.starts_with("node_behaviour")),
        "{:?}",
        calm.analysis.recent
    );
    assert!(
        calm.node_watch.enabled && calm.node_watch.devices == 1,
        "{:?}",
        calm.node_watch
    );

    // The clock jumps back two hours: two readings sent two seconds apart,
    // stamped two hours ago (the second is paced like a live one).
    for (seq, back_ms) in [(4u64, 7_200_000i64), (5, 7_198_000)] {
        let ack = cgm
            .send_until_acked(seq, sim::cgm_payload(seq, now_ms() - back_ms, 118.0), 5)
            .await
            .unwrap();
        assert!(sim::is_final(&ack), "{ack:?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    hub.wait_for("a clock jump finding", |r| {
        has_finding(r, "node_behaviour:clock_jump", "name:cgm-watch")
    })
    .await;

    // Stolen credentials: the same name and secret from 127.0.0.2 while the
    // CGM is connected from 127.0.0.1 and sending.
    let thief: IpAddr = "127.0.0.2".parse().unwrap();
    let answer = raw::try_login(
        thief,
        hub.mqtt,
        "cgm-watch",
        &secret,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(answer, Answer::ConnAck(0), "the credentials are valid");
    let stolen = hub
        .wait_for("a second-source finding", |r| {
            has_finding(r, "node_behaviour:second_source", "name:cgm-watch")
        })
        .await;
    let finding = stolen
        .analysis
        .recent
        .iter()
        .find(|f| f.kind == "node_behaviour:second_source")
        .unwrap();
    assert_eq!(finding.severity, "urgent");
    assert!(
        finding.explanation.contains("second address"),
        "{finding:?}"
    );
    drop(cgm);

    // A flood from an independent client: 200 valid readings in one go.
    let lines: String = (100..300u64)
        .map(|seq| String::from_utf8(sim::cgm_payload(seq, now_ms(), 110.0)).unwrap() + "\n")
        .collect();
    let port = hub.mqtt.port().to_string();
    let mut publisher = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-i",
            "cgm-watch",
            "-u",
            "cgm-watch",
            "-P",
            &secret,
        ])
        .args(["-t", "glyco/v1/readings/cgm-watch", "-q", "1", "-l"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_pub is installed (scripts/bootstrap.sh)");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = publisher.stdin.take().unwrap();
        stdin.write_all(lines.as_bytes()).await.unwrap();
    }
    assert!(publisher.wait().await.unwrap().success());
    let flooded = hub
        .wait_for("a flood finding and every reading stored", |r| {
            has_finding(r, "node_behaviour:flood", "name:cgm-watch") && r.readings_stored == 205
        })
        .await;
    assert_eq!(flooded.node_watch.dropped, 0);
    let counted = |kind: &str| {
        flooded
            .analysis
            .counts
            .iter()
            .filter(|(k, _, _)| k == kind)
            .map(|(_, _, n)| n)
            .sum::<u64>()
    };
    assert_eq!(
        counted("node_behaviour:flood"),
        1,
        "reported once per cool-down"
    );
    let log = hub.log_text();
    assert!(
        log.contains("node behaviour") && log.contains("node_behaviour:flood"),
        "findings are logged"
    );
    assert_eq!(hub.terminate().await.code(), Some(0));
}

#[tokio::test]
async fn with_the_quarantine_policy_a_stolen_credential_quarantines_the_device_until_released() {
    use glyco_gateway::seal::body::BatchBody;
    use glyco_gateway::seal::export::BatchSelector;
    use glyco_seal::{PatientKey, SealedBatch};

    let mut world = HubWorld::new().await;
    world.edit_config(|c| {
        c.behaviour.policy = "quarantine".into();
        c.seal.max_batch_wait_secs = 1;
    });
    let secret = world.register("cgm-q", "cgm").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-q").await;
    let mut cgm = SimulatedDevice::connect(hub.mqtt, "cgm-q", &secret)
        .await
        .unwrap();
    for seq in 1..=3 {
        let ack = cgm
            .send_until_acked(seq, sim::cgm_payload(seq, now_ms(), 120.0), 5)
            .await
            .unwrap();
        assert!(sim::is_final(&ack), "{ack:?}");
    }
    let thief: IpAddr = "127.0.0.2".parse().unwrap();
    let answer = raw::try_login(thief, hub.mqtt, "cgm-q", &secret, Duration::from_secs(10)).await;
    assert_eq!(answer, Answer::ConnAck(0));
    let quarantined = hub
        .wait_for("the device in quarantine", |r| {
            r.quarantine
                .iter()
                .any(|q| q.device == "name:cgm-q" && q.is_open())
        })
        .await;
    let entry = &quarantined.quarantine[0];
    assert_eq!(entry.kind, "node_behaviour:second_source");
    assert_eq!(entry.from_journal_seq, 4);
    drop(cgm);

    // Its readings are still stored and acknowledged (a very low one too),
    // but they alert no one while it is quarantined.
    let mut cgm = SimulatedDevice::connect(hub.mqtt, "cgm-q", &secret)
        .await
        .unwrap();
    let ack = cgm
        .send_until_acked(4, sim::cgm_payload(4, now_ms(), 48.0), 5)
        .await
        .unwrap();
    assert_eq!(ack.status, glyco_gateway::mqtt::wire::AckStatus::Stored);
    let report = hub
        .wait_for("the low reading analysed", |r| {
            r.analysis
                .recent
                .iter()
                .any(|f| f.kind == "very_low_glucose")
        })
        .await;
    assert!(
        !report
            .alerts
            .open
            .iter()
            .any(|a| a.kind == "very_low_glucose"),
        "{:?}",
        report.alerts.open
    );
    assert!(
        report
            .alerts
            .open
            .iter()
            .any(|a| a.kind == "node_behaviour:second_source"),
        "the behaviour itself alerts the patient"
    );

    // The patient releases it; the mark stays on what came meanwhile.
    let released = world
        .hub_cli(&["device", "release", "--name", "cgm-q"])
        .await;
    assert!(
        released.status.success(),
        "{}",
        String::from_utf8_lossy(&released.stderr)
    );
    let after = hub.status().await.unwrap();
    assert!(after.quarantine.iter().all(|q| !q.is_open()));
    let ack = cgm
        .send_until_acked(5, sim::cgm_payload(5, now_ms(), 121.0), 5)
        .await
        .unwrap();
    assert!(sim::is_final(&ack));
    hub.wait_for("every reading sealed", |r| {
        r.seal.readings_unsealed == 0 && r.seal.readings_sealed == 5
    })
    .await;
    let key = PatientKey::load(&world.config.patient_key_path()).unwrap();
    let mut quarantined_seqs = Vec::new();
    for reading in [1u64, 5] {
        let export = glyco_gateway::status::query_batch(
            &world.config.status_socket(),
            BatchSelector::Reading(reading),
        )
        .await
        .unwrap()
        .unwrap();
        let blob = alloy::hex::decode(export.blob_hex.unwrap()).unwrap();
        let batch = SealedBatch::from_bytes(&blob).unwrap();
        let body = BatchBody::from_bytes(&batch.open(key.secret()).unwrap()).unwrap();
        quarantined_seqs.extend(body.quarantined);
    }
    quarantined_seqs.sort_unstable();
    quarantined_seqs.dedup();
    assert_eq!(
        quarantined_seqs,
        vec![4],
        "only the reading from the quarantine is marked"
    );
    drop(cgm);
    assert_eq!(hub.terminate().await.code(), Some(0));
}
