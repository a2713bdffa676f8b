//! MQTT ingestion end to end: a real chain, the real hub process, devices as
//! rumqttc clients (the simulator) and as mosquitto_pub/mosquitto_sub.

mod support;

use std::time::Duration;

use glyco_contracts::DeviceIdentity;
use glyco_gateway::mqtt::wire::{Ack, AckStatus};
use glyco_gateway::reading::Measurement;
use glyco_gateway::registry::Standing;
use glyco_gateway::sim::{self, SimError, SimulatedDevice};
use rumqttc::ConnectReturnCode;
use support::{Hub, HubWorld, now_ms};
use tokio::process::Command;

#[tokio::test]
async fn a_registered_device_gets_its_reading_stored_then_acknowledged() {
    let world = HubWorld::new().await;
    let secret = world.register("bp-cuff-1", "blood-pressure").await;
    let hub = world.start_hub().await;
    hub.wait_registered("bp-cuff-1").await;

    let mut cuff = SimulatedDevice::connect(hub.mqtt, "bp-cuff-1", &secret)
        .await
        .unwrap();
    let ack = cuff
        .send_until_acked(1, sim::blood_pressure_payload(1, now_ms(), 128.0, 82.0), 3)
        .await
        .unwrap();
    assert_eq!(ack.status, AckStatus::Stored);

    let report = hub
        .wait_for("the reading in the status", |r| r.readings_stored == 1)
        .await;
    let device = report
        .devices
        .iter()
        .find(|d| d.identity.as_deref() == Some("name:bp-cuff-1"))
        .unwrap();
    assert!(device.connected);
    let last = device.last_reading.as_ref().unwrap();
    assert_eq!(last.seq, 1);
    assert_eq!(
        last.measurement,
        Measurement::BloodPressure {
            systolic_mmhg: 128.0,
            diastolic_mmhg: 82.0,
            mean_mmhg: None
        }
    );
    // The resend of a stored reading is acknowledged as a duplicate, not stored twice.
    let again = cuff
        .send_until_acked(
            1,
            sim::blood_pressure_payload(1, last.device_time.unwrap(), 128.0, 82.0),
            3,
        )
        .await
        .unwrap();
    assert_eq!(again.status, AckStatus::Duplicate);
    assert_eq!(hub.status().await.unwrap().readings_stored, 1);
    assert_eq!(hub.terminate().await.code(), Some(0));
}

#[tokio::test]
async fn mosquitto_clients_work_as_an_independent_device() {
    let world = HubWorld::new().await;
    let secret = world.register("glucometer-7", "glucometer").await;
    let hub = world.start_hub().await;
    hub.wait_registered("glucometer-7").await;
    let port = hub.mqtt.port().to_string();
    let device = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-i",
        "glucometer-7",
        "-u",
        "glucometer-7",
        "-P",
        &secret,
    ];

    // MQTT 3.1.1: mosquitto_pub publishes at QoS 1 and the reading is stored.
    let payload = String::from_utf8(sim::glucose_payload(5, now_ms(), 6.1, "mmol/L")).unwrap();
    let status = Command::new("mosquitto_pub")
        .args(device)
        .args([
            "-t",
            "glyco/v1/readings/glucometer-7",
            "-q",
            "1",
            "-m",
            &payload,
        ])
        .status()
        .await
        .expect("mosquitto_pub is installed (scripts/bootstrap.sh)");
    assert!(status.success());
    let stored = hub
        .wait_for("the mosquitto reading", |r| {
            r.readings_stored == 1 && r.devices.iter().any(|d| d.last_reading.is_some())
        })
        .await;
    let last = stored
        .devices
        .iter()
        .find_map(|d| d.last_reading.clone())
        .unwrap();
    match last.measurement {
        Measurement::CapillaryGlucose { mg_dl } => assert!((mg_dl - 6.1 * 18.0156).abs() < 1e-9),
        ref other => panic!("{other:?}"),
    }

    // MQTT 5: mosquitto_rr publishes and waits for the ack on one connection,
    // as a device does.
    let payload = String::from_utf8(sim::glucose_payload(6, now_ms(), 104.0, "mg/dL")).unwrap();
    let output = Command::new("mosquitto_rr")
        .args(device)
        .args([
            "-t",
            "glyco/v1/readings/glucometer-7",
            "-e",
            "glyco/v1/acks/glucometer-7",
        ])
        .args(["-q", "1", "-W", "20", "-m", &payload])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ack: Ack = serde_json::from_slice(output.stdout.trim_ascii()).unwrap();
    assert_eq!(ack.seq, Some(6));
    assert_eq!(ack.status, AckStatus::Stored);
    hub.wait_for("both readings", |r| r.readings_stored == 2)
        .await;
}

#[tokio::test]
async fn connect_refusals_are_typed_and_counted() {
    let world = HubWorld::new().await;
    let secret = world.register("cgm-1", "cgm").await;
    let unregistered_secret = world.provision_only("stranger-cgm");
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-1").await;

    let refused = |r: Result<SimulatedDevice, SimError>| match r {
        Err(SimError::Refused(code)) => code,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        refused(SimulatedDevice::connect(hub.mqtt, "cgm-1", "not-the-secret").await),
        ConnectReturnCode::BadUserNamePassword
    );
    assert_eq!(
        refused(SimulatedDevice::connect(hub.mqtt, "nobody", &secret).await),
        ConnectReturnCode::BadUserNamePassword
    );
    // Valid credentials, but the device is not registered to the patient on chain.
    assert_eq!(
        refused(SimulatedDevice::connect(hub.mqtt, "stranger-cgm", &unregistered_secret).await),
        ConnectReturnCode::NotAuthorized
    );
    let report = hub
        .wait_for("three refusals", |r| {
            Hub::refusals(r, "bad_credentials") == 2 && Hub::refusals(r, "unregistered") == 1
        })
        .await;
    assert_eq!(report.readings_stored, 0);

    // mosquitto_pub with a client id that is not the username is refused too.
    let status = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &hub.mqtt.port().to_string(),
            "-i",
            "someone-else",
        ])
        .args([
            "-u",
            "cgm-1",
            "-P",
            &secret,
            "-t",
            "glyco/v1/readings/cgm-1",
            "-m",
            "{}",
        ])
        .status()
        .await
        .unwrap();
    assert!(!status.success());
    hub.wait_for("the client-id refusal", |r| {
        Hub::refusals(r, "bad_credentials") == 3
    })
    .await;
}

#[tokio::test]
async fn a_device_can_publish_only_to_its_own_topic() {
    let world = HubWorld::new().await;
    let cuff_secret = world.register("cuff-a", "blood-pressure").await;
    let _other_secret = world.register("cuff-b", "blood-pressure").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cuff-b").await;

    let cuff = SimulatedDevice::connect(hub.mqtt, "cuff-a", &cuff_secret)
        .await
        .unwrap();
    cuff.publish_to(
        "glyco/v1/readings/cuff-b",
        sim::blood_pressure_payload(1, now_ms(), 120.0, 80.0),
    )
    .await
    .unwrap();
    let report = hub
        .wait_for("the wrong-topic refusal", |r| {
            Hub::refusals(r, "wrong_topic") == 1
        })
        .await;
    assert_eq!(
        report.readings_stored, 0,
        "nothing was stored under cuff-b's name"
    );
    // The gatekeeper closed the connection: cuff-a is no longer connected.
    hub.wait_for("cuff-a disconnected", |r| {
        r.devices.iter().all(|d| !d.connected)
    })
    .await;
}

/// The catalogue of bad input: each payload is rejected with its reason and
/// counted, and a valid reading sent between them is stored.
#[tokio::test]
async fn bad_input_catalogue() {
    let world = HubWorld::new().await;
    let secret = world.register("meter-1", "glucometer").await;
    let hub = world.start_hub().await;
    hub.wait_registered("meter-1").await;
    let mut meter = SimulatedDevice::connect(hub.mqtt, "meter-1", &secret)
        .await
        .unwrap();
    let now = now_ms();

    let glucose = |seq: u64, value: &str, unit: &str, time: i64| {
        format!(
            r#"{{"v":1,"seq":{seq},"time_ms":{time},"measurement":{{"kind":"glucose","value":{value},"unit":"{unit}"}}}}"#
        )
    };
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "malformed JSON",
            "{\"v\":1,\"seq\":10,".into(),
            "invalid_payload",
            "not valid JSON",
        ),
        (
            "unknown unit",
            glucose(11, "5.5", "mg/dl", now),
            "invalid_payload",
            "unit \"mg/dl\"",
        ),
        (
            "NaN literal",
            glucose(12, "NaN", "mg/dL", now),
            "invalid_payload",
            "not valid JSON",
        ),
        (
            "NaN as a string",
            glucose(13, "\"NaN\"", "mg/dL", now),
            "invalid_payload",
            "version 1",
        ),
        (
            "negative value",
            glucose(14, "-40", "mg/dL", now),
            "invalid_reading",
            "outside 20-600",
        ),
        (
            "out of range",
            glucose(15, "900", "mg/dL", now),
            "invalid_reading",
            "outside 20-600",
        ),
        (
            "far future",
            glucose(16, "110", "mg/dL", now + 86_400_000),
            "invalid_reading",
            "ahead of the hub's clock",
        ),
        (
            "unsupported version",
            r#"{"v":9,"seq":17}"#.into(),
            "invalid_payload",
            "version 9",
        ),
        (
            "no version",
            r#"{"seq":18}"#.into(),
            "invalid_payload",
            "\"v\"",
        ),
        (
            "unknown field",
            r#"{"v":1,"seq":19,"x":1,"measurement":{"kind":"glucose","value":5,"unit":"mmol/L"}}"#
                .into(),
            "invalid_payload",
            "unknown field",
        ),
        (
            "oversized",
            format!(r#"{{"v":1,"seq":20,"pad":"{}"}}"#, "x".repeat(4200)),
            "invalid_payload",
            "at most 4096",
        ),
    ];
    let mut expected_invalid_payload = 0;
    let mut expected_invalid_reading = 0;
    for (i, (name, payload, reason, detail)) in cases.iter().enumerate() {
        meter.publish(payload.clone().into_bytes()).await.unwrap();
        let ack: Ack = meter
            .next_ack(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{name}: no ack"));
        assert_eq!(ack.status, AckStatus::Rejected, "{name}");
        let why = ack.reason.unwrap_or_default();
        assert!(why.contains(detail), "{name}: {why}");
        match *reason {
            "invalid_payload" => expected_invalid_payload += 1,
            _ => expected_invalid_reading += 1,
        }
        // A valid reading between bad ones is never lost.
        let seq = 100 + i as u64;
        let ok = meter
            .send_until_acked(seq, sim::glucose_payload(seq, now, 110.0, "mg/dL"), 3)
            .await
            .unwrap();
        assert_eq!(
            ok.status,
            AckStatus::Stored,
            "{name}: the valid reading after it"
        );
    }

    // A replayed sequence number: seq 100 again, with a different value.
    let replay = meter
        .send_until_acked(100, sim::glucose_payload(100, now, 250.0, "mg/dL"), 3)
        .await
        .unwrap();
    assert_eq!(replay.status, AckStatus::Rejected);
    assert!(replay.reason.unwrap().contains("already used"));

    let report = hub
        .wait_for("every refusal counted", |r| {
            Hub::refusals(r, "invalid_payload") == expected_invalid_payload
                && Hub::refusals(r, "invalid_reading") == expected_invalid_reading
                && Hub::refusals(r, "replayed_sequence") == 1
        })
        .await;
    assert_eq!(report.readings_stored, cases.len() as u64);
    assert_eq!(hub.terminate().await.code(), Some(0));
}

#[tokio::test]
async fn a_removal_on_chain_takes_effect_within_two_blocks() {
    let world = HubWorld::with_block_time(1).await;
    let secret = world.register("cgm-9", "cgm").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-9").await;
    let mut cgm = SimulatedDevice::connect(hub.mqtt, "cgm-9", &secret)
        .await
        .unwrap();
    let ack = cgm
        .send_until_acked(1, sim::cgm_payload(1, now_ms(), 140.0), 3)
        .await
        .unwrap();
    assert_eq!(ack.status, AckStatus::Stored);

    let removed_at = world.remove_on_chain("cgm-9").await;
    let id = world.device_id(&DeviceIdentity::name("cgm-9").unwrap());
    let report = hub
        .wait_for("the removal in the mirror", |r| {
            r.devices
                .iter()
                .any(|d| d.device_id == id && d.standing == Standing::Removed)
        })
        .await;
    // The mirror saw it no later than two blocks after the removal's block.
    let seen_at = world.client(0).block_number().await.unwrap();
    assert!(
        seen_at <= removed_at + 2,
        "removal in block {removed_at}, effective by block {seen_at} (status synced to {:?})",
        report.chain.synced_block
    );
    // The device was disconnected, and can no longer connect.
    hub.wait_for("cgm-9 disconnected", |r| {
        r.devices.iter().all(|d| !d.connected)
    })
    .await;
    match SimulatedDevice::connect(hub.mqtt, "cgm-9", &secret).await {
        Err(SimError::Refused(ConnectReturnCode::NotAuthorized)) => {}
        other => panic!("expected NotAuthorized, got {other:?}"),
    }
    hub.wait_for("the removed refusal", |r| Hub::refusals(r, "removed") == 1)
        .await;
}

#[tokio::test]
async fn with_the_chain_unreachable_the_hub_keeps_its_last_mirror() {
    let world = HubWorld::new().await;
    let secret = world.register("scale-1", "weight").await;
    let stranger_secret = world.provision_only("scale-2");
    let hub = world.start_hub().await;
    hub.wait_registered("scale-1").await;

    let HubWorld { consortium, .. } = &world;
    // Stop the chain under the hub's feet.
    let rpc = consortium.devnet.rpc_url();
    let pid = consortium.devnet.pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let report = hub
        .wait_for("the chain reported unreachable", |r| !r.chain.reachable)
        .await;
    assert!(report.chain.last_error.is_some());
    assert_eq!(report.chain.rpc_url, rpc.to_string());

    // The registered device still gets in and its readings are stored.
    let mut scale = SimulatedDevice::connect(hub.mqtt, "scale-1", &secret)
        .await
        .unwrap();
    let payload =
        br#"{"v":1,"seq":1,"measurement":{"kind":"weight","value":71.4,"unit":"kg"}}"#.to_vec();
    assert_eq!(
        scale.send_until_acked(1, payload, 3).await.unwrap().status,
        AckStatus::Stored
    );
    // An unknown device stays out.
    assert!(matches!(
        SimulatedDevice::connect(hub.mqtt, "scale-2", &stranger_secret).await,
        Err(SimError::Refused(ConnectReturnCode::NotAuthorized))
    ));
}

#[tokio::test]
async fn acknowledged_readings_survive_sigkill_and_replays_are_caught_after_restart() {
    let world = HubWorld::new().await;
    let secret = world.register("cgm-2", "cgm").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-2").await;
    let now = now_ms();
    {
        let mut cgm = SimulatedDevice::connect(hub.mqtt, "cgm-2", &secret)
            .await
            .unwrap();
        for seq in 1..=20 {
            let ack = cgm
                .send_until_acked(
                    seq,
                    sim::cgm_payload(seq, now + seq as i64, 100.0 + seq as f64),
                    3,
                )
                .await
                .unwrap();
            assert_eq!(ack.status, AckStatus::Stored);
        }
    }
    hub.kill().await;

    let hub = world.start_hub().await;
    // The mirror is loaded from disk: the device is admitted at once.
    let report = hub
        .wait_for("the restarted hub", |r| r.readings_stored == 20)
        .await;
    assert!(
        report
            .devices
            .iter()
            .any(|d| d.standing == Standing::Registered)
    );
    let mut cgm = SimulatedDevice::connect(hub.mqtt, "cgm-2", &secret)
        .await
        .unwrap();
    let dup = cgm
        .send_until_acked(7, sim::cgm_payload(7, now + 7, 107.0), 3)
        .await
        .unwrap();
    assert_eq!(dup.status, AckStatus::Duplicate);
    let replay = cgm
        .send_until_acked(7, sim::cgm_payload(7, now + 7, 300.0), 3)
        .await
        .unwrap();
    assert_eq!(replay.status, AckStatus::Rejected);
    let report = hub
        .wait_for("the replay counted", |r| {
            Hub::refusals(r, "replayed_sequence") == 1
        })
        .await;
    assert_eq!(report.readings_stored, 20);
}

#[tokio::test]
async fn garbage_on_the_device_port_is_refused_and_the_hub_carries_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let world = HubWorld::new().await;
    let secret = world.register("hr-1", "heart-rate").await;
    let hub = world.start_hub().await;
    hub.wait_registered("hr-1").await;

    let garbage: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: hub\r\n\r\n",
        &[0x30, 0x05, 0, 1, b'x', 1, 2], // PUBLISH before CONNECT
        &[0x10, 0xff, 0xff, 0xff, 0xff, 0x7f], // malformed remaining length
        &[0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 9, 2, 0, 60, 0, 0], // protocol level 9
    ];
    for bytes in garbage {
        let mut stream = tokio::net::TcpStream::connect(hub.mqtt).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await;
    }
    hub.wait_for("four protocol violations", |r| {
        Hub::refusals(r, "protocol_violation") == 4
    })
    .await;
    // A well-behaved device is unaffected.
    let mut strap = SimulatedDevice::connect(hub.mqtt, "hr-1", &secret)
        .await
        .unwrap();
    let payload =
        br#"{"v":1,"seq":1,"measurement":{"kind":"heart_rate","value":64,"unit":"bpm"}}"#.to_vec();
    assert_eq!(
        strap.send_until_acked(1, payload, 3).await.unwrap().status,
        AckStatus::Stored
    );
}
