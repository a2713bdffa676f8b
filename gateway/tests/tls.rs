//! TLS on the device listener: a standard client verifies the hub's
//! certificate and then goes through the same gate as on plain TCP.

mod support;

use glyco_gateway::config::TlsConfig;
use glyco_gateway::sim;
use support::{HubWorld, now_ms};
use tokio::process::Command;

#[tokio::test]
async fn devices_connect_over_tls_and_plain_tcp_is_not_spoken_there() {
    let mut world = HubWorld::new().await;
    let dir = world.dir.path().to_owned();
    let (cert, key) = support::throwaway_cert(&dir).await;
    world.edit_config(|c| {
        c.mqtt.tls = Some(TlsConfig {
            cert_file: cert.clone(),
            key_file: key.clone(),
        })
    });
    let secret = world.register("cgm-tls", "cgm").await;
    let hub = world.start_hub().await;
    hub.wait_registered("cgm-tls").await;
    let port = hub.mqtt.port().to_string();
    let payload = String::from_utf8(sim::cgm_payload(1, now_ms(), 120.0)).unwrap();
    let publish = |tls: bool| {
        let mut command = Command::new("mosquitto_pub");
        command
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-i",
                "cgm-tls",
                "-u",
                "cgm-tls",
                "-P",
                &secret,
            ])
            .args(["-t", "glyco/v1/readings/cgm-tls", "-q", "1", "-m", &payload]);
        if tls {
            command.arg("--cafile").arg(&cert);
        }
        command.status()
    };
    assert!(
        !publish(false).await.unwrap().success(),
        "plain MQTT on the TLS port fails"
    );
    assert!(publish(true).await.unwrap().success());
    let report = hub
        .wait_for("the TLS reading", |r| r.readings_stored == 1)
        .await;
    assert!(report.mqtt.state.contains("TLS"));
}
