//! The hub part of the demo: the real `glyco-hub` daemon admits readings
//! from registered simulated MQTT devices and from simulated Bluetooth
//! devices on a mock BlueZ, stores them before acknowledging them, refuses
//! an unregistered device and a bad reading, and runs the anomaly detector
//! on every stored reading; `seal_flows` follows the readings on to the
//! chain and the clinic.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use glyco_ble::testing::{MockBluez, frames};
use glyco_contracts::keys::{DEV_MNEMONIC, dev_account};
use glyco_contracts::testkit::accounts::{EMERGENCY_SERVICE, HUB, PATIENT, PHYSICIAN};
use glyco_gateway::config::HubConfig;
use glyco_gateway::credentials::CredentialsFile;
use glyco_gateway::mqtt::wire::AckStatus;
use glyco_gateway::reading::now_millis;
use glyco_gateway::sim::{self, SimError, SimulatedDevice};
use glyco_gateway::status::{self, StatusReport};
use tokio::process::{Child, Command};

use crate::chain_flows::{BLE_CGM, BLE_GLUCOMETER, ChainWorld, address};
use crate::narrate::{section, step};

/// A binary built beside this one (scripts/demo.sh builds glyco-hub and
/// glyco-clinic with it).
pub fn sibling_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} not found: build it with `cargo build --bin {name}`",
            path.display()
        );
    }
    Ok(path)
}

pub fn hub_binary() -> Result<PathBuf> {
    sibling_binary("glyco-hub")
}

fn write_hub_config(dir: &Path, world: &ChainWorld) -> Result<(PathBuf, HubConfig)> {
    let state_dir = dir.join("hub");
    std::fs::create_dir_all(&state_dir)?;
    // The hub acts with the dev account the patient authorised in step 3.
    let key = dev_account(DEV_MNEMONIC, HUB)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(state_dir.join("hub.key"))?;
    writeln!(file, "{}", key.to_bytes())?;
    let mut config = HubConfig {
        state_dir,
        ..HubConfig::default()
    };
    config.chain.rpc_url = world.devnet.rpc_url().to_string();
    config.chain.deployment_file = dir.join("deployment.json");
    config.chain.device_id_key_file = world.device_id_key_file.clone();
    config.chain.patient = Some(address(PATIENT));
    config.chain.poll_interval_ms = 500;
    config.mqtt.listen = vec!["127.0.0.1:0".parse()?];
    config.ble.enabled = true;
    // The web app on loopback, a free port unless GLYCO_DEMO_WEB names one.
    config.web.listen = std::env::var("GLYCO_DEMO_WEB")
        .unwrap_or_else(|_| "127.0.0.1:0".into())
        .parse()?;
    // Short windows so the demo shows batches sealed and anchored quickly;
    // the replica finds the hub's iroh endpoint on a fixed loopback port.
    config.seal.max_batch_wait_secs = 3;
    config.seal.anchor_interval_secs = 3;
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    config.seal.iroh_listen = format!("127.0.0.1:{port}").parse()?;
    let path = dir.join("hub.toml");
    std::fs::write(&path, toml::to_string(&config)?)?;
    Ok((path, config))
}

pub async fn hub_cli(config: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new(hub_binary()?)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .await?;
    if !output.status.success() {
        bail!(
            "glyco-hub {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub async fn wait_status(
    socket: &Path,
    what: &str,
    done: impl Fn(&StatusReport) -> bool,
) -> Result<StatusReport> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(report) = status::query(socket).await
            && done(&report)
        {
            return Ok(report);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn stop(mut hub: Child) -> Result<()> {
    if let Some(pid) = hub.id() {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
    }
    let status = tokio::time::timeout(Duration::from_secs(20), hub.wait()).await??;
    step(&format!("hub stopped on SIGTERM ({status})"));
    Ok(())
}

pub async fn run(dir: &Path, world: &ChainWorld, keep_serving: bool) -> Result<()> {
    section("10. The hub: MQTT devices registered through the hub, Bluetooth devices bonded");
    let (config_path, mut config) = write_hub_config(dir, world)?;
    // The hospital's two re-encryption proxies; the hub shares each grant's
    // kfrags with both, 2 of 2 needed.
    let proxies = crate::clinic_flows::start_proxies(dir, world).await?;
    config.seal.proxies = proxies.args.clone();
    config.seal.proxy_threshold = 2;
    config.seal.share_poll_secs = 1;
    // Alerts: the patient at once, the physician through St Luke's inbox;
    // an urgent low no one acknowledged within 30 s reaches City
    // Ambulance's duty paramedic through its own inbox.
    config.alerts.inbox = Some(proxies.inbox.clone());
    config.alerts.inboxes = vec![proxies.emergency_inbox.clone()];
    config.alerts.ladder = vec![
        glyco_gateway::config::LadderStepConfig {
            after_secs: 0,
            to: vec![
                "patient".into(),
                format!("physician:{:#x}", crate::chain_flows::address(PHYSICIAN)),
            ],
        },
        glyco_gateway::config::LadderStepConfig {
            after_secs: 30,
            to: vec![format!(
                "emergency:{:#x}",
                crate::chain_flows::address(EMERGENCY_SERVICE)
            )],
        },
    ];
    // Heartbeats to St Luke's node every 5 s (a minute by default), and
    // the patient allows their physicians to propose alert policies.
    config.fleet.interval_secs = 5;
    config.fleet.remote_config = glyco_gateway::config::RemoteConfig::Apply;
    // Update bundles are checked against St Luke's release key (made in
    // section 23); "glyco-demo" is what the demo's bundles are built for.
    // The hub takes the releases its fleet node offers, as the appliance
    // does; the installer's directory is the demo's, not the system's.
    config.update.keyring = dir.join("release").join("release.cert.pem");
    config.update.compatible = "glyco-demo".into();
    config.update.accept_offers = true;
    config.update.install_dir = dir.join("installer");
    std::fs::write(&config_path, toml::to_string(&config)?)?;
    let web_secrets = crate::web_flows::provision(&config)?;
    let mut secrets = Vec::new();
    for (name, kind) in [
        ("wifi-glucometer", "glucometer"),
        ("bp-cuff-1", "blood-pressure"),
        ("wifi-cgm", "cgm"),
    ] {
        let out = hub_cli(
            &config_path,
            &["device", "add", "--name", name, "--kind", kind],
        )
        .await?;
        let tx_line = out.lines().next().unwrap_or_default();
        step(&format!("glyco-hub device add --name {name}: {tx_line}"));
        let secret = out
            .lines()
            .find_map(|l| l.strip_prefix("MQTT password (shown once): "))
            .context("the CLI prints the device secret")?;
        secrets.push(secret.trim().to_owned());
    }
    // A device with credentials on the hub but no registration on chain.
    let mut credentials = CredentialsFile::load(&config.credentials_path())?;
    let intruder_secret = credentials.provision("unregistered-thermometer")?;
    credentials.save(&config.credentials_path())?;

    // Bluetooth without hardware: a private D-Bus with a mock BlueZ, the
    // two BLE devices the patient registered in step 4 bonded to it.
    let bluez_dir = dir.join("bluez");
    std::fs::create_dir_all(&bluez_dir)?;
    let bluez = MockBluez::start(&bluez_dir)?;
    bluez.add_adapter("hci0")?;
    let meter = bluez.add_glucometer("hci0", BLE_GLUCOMETER)?;
    let stored_records = [(1, 95, 104), (2, 62, 131), (3, 31, 97)];
    bluez.set_stored_records(
        &meter.device,
        &stored_records
            .iter()
            .map(|&(seq, minutes_ago, mg_dl)| {
                frames::glucose_record(seq, frames::utc_minutes_ago(minutes_ago), mg_dl)
            })
            .collect::<Vec<_>>(),
    )?;
    let cgm = bluez.add_cgm("hci0", BLE_CGM)?;
    // A new meter, not bonded yet: the patient pairs it on the web app
    // (section 19), typing the passkey it shows.
    let new_meter = bluez.add_glucometer_bonded("hci0", crate::web_flows::NEW_METER, false)?;
    bluez.require_passkey(&new_meter.device, crate::web_flows::NEW_METER_PASSKEY)?;
    bluez.set_stored_records(
        &new_meter.device,
        &[frames::glucose_record(1, frames::utc_minutes_ago(12), 118)],
    )?;
    step(&format!(
        "mock BlueZ on a private D-Bus ({}): glucometer {BLE_GLUCOMETER} holding 3 stored records, CGM {BLE_CGM}, and a new meter {} in pairing mode",
        bluez.address(),
        crate::web_flows::NEW_METER
    ));

    section("11. The hub runs: admitted readings are stored, then acknowledged");
    let log = std::fs::File::create(dir.join("hub.log"))?;
    let hub = Command::new(hub_binary()?)
        .arg("--config")
        .arg(&config_path)
        .arg("run")
        .env("DBUS_SYSTEM_BUS_ADDRESS", bluez.address())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?;
    let socket = config.status_socket();
    let report = wait_status(&socket, "the hub to mirror its devices", |r| {
        !r.mqtt.listen.is_empty() && r.devices.len() >= 5
    })
    .await?;
    let mqtt = report.mqtt.listen[0];
    step(&format!(
        "glyco-hub run: hub {} for patient {}, MQTT on {mqtt}, {} devices mirrored from chain (log: {})",
        report.hub,
        report.patient.map(|p| p.to_string()).unwrap_or_default(),
        report.devices.len(),
        dir.join("hub.log").display()
    ));

    let now = now_millis();
    let mut glucometer = SimulatedDevice::connect(mqtt, "wifi-glucometer", &secrets[0]).await?;
    let readings = [
        (
            1,
            sim::glucose_payload(1, now - 600_000, 5.8, "mmol/L"),
            "5.8 mmol/L",
        ),
        (
            2,
            sim::glucose_payload(2, now - 300_000, 132.0, "mg/dL"),
            "132 mg/dL",
        ),
        (3, sim::glucose_payload(3, now, 68.0, "mg/dL"), "68 mg/dL"),
    ];
    for (seq, payload, label) in readings {
        let ack = glucometer.send_until_acked(seq, payload, 3).await?;
        step(&format!(
            "wifi-glucometer reading #{seq} ({label}) -> {:?}",
            ack.status
        ));
    }
    let mut cuff = SimulatedDevice::connect(mqtt, "bp-cuff-1", &secrets[1]).await?;
    for (seq, sys, dia) in [(1, 128.0, 82.0), (2, 141.0, 90.0)] {
        let ack = cuff
            .send_until_acked(seq, sim::blood_pressure_payload(seq, now, sys, dia), 3)
            .await?;
        step(&format!(
            "bp-cuff-1 reading #{seq} ({sys}/{dia} mmHg) -> {:?}",
            ack.status
        ));
    }
    let meter_id = world
        .device_id_key
        .id_of(&glyco_contracts::DeviceIdentity::ble(BLE_GLUCOMETER)?);
    let report = wait_status(&socket, "the BLE meter's stored records", |r| {
        r.devices
            .iter()
            .any(|d| d.device_id == meter_id && d.last_reading.as_ref().is_some_and(|l| l.seq == 3))
    })
    .await?;
    step(&format!(
        "BLE glucometer {BLE_GLUCOMETER}: its 3 stored records fetched over the Record Access Control Point; state: {}",
        report.ble.state
    ));
    let cgm_id = world
        .device_id_key
        .id_of(&glyco_contracts::DeviceIdentity::ble(BLE_CGM)?);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !bluez.is_notifying(&cgm.measurement)? {
        if tokio::time::Instant::now() > deadline {
            bail!("the hub did not subscribe to the CGM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bluez.notify(&cgm.measurement, &frames::cgm_record(118, 1440))?;
    wait_status(&socket, "the BLE CGM reading", |r| {
        r.devices
            .iter()
            .any(|d| d.device_id == cgm_id && d.last_reading.is_some())
    })
    .await?;
    step(&format!(
        "BLE CGM {BLE_CGM}: a CGM Measurement notification (118 mg/dL) -> stored"
    ));
    let resend = glucometer
        .send_until_acked(2, sim::glucose_payload(2, now - 300_000, 132.0, "mg/dL"), 3)
        .await?;
    step(&format!(
        "wifi-glucometer resends #2 (its ack was 'lost') -> {:?}: stored once",
        resend.status
    ));

    section("12. The hub refuses what it must");
    let bad = glucometer
        .send_until_acked(4, sim::glucose_payload(4, now, 900.0, "mg/dL"), 3)
        .await?;
    if bad.status != AckStatus::Rejected {
        bail!("an impossible glucose value was not rejected");
    }
    step(&format!(
        "wifi-glucometer reading #4 (900 mg/dL) -> Rejected: {}",
        bad.reason.unwrap_or_default()
    ));
    match SimulatedDevice::connect(mqtt, "unregistered-thermometer", &intruder_secret).await {
        Err(SimError::Refused(code)) => step(&format!(
            "unregistered-thermometer (valid secret, not on chain) -> CONNECT refused: {code:?}"
        )),
        Ok(_) => bail!("an unregistered device was let in"),
        Err(e) => return Err(e.into()),
    }
    match SimulatedDevice::connect(mqtt, "bp-cuff-1", "a guessed password").await {
        Err(SimError::Refused(code)) => step(&format!(
            "bp-cuff-1 with a guessed password -> CONNECT refused: {code:?}"
        )),
        Ok(_) => bail!("a wrong secret was accepted"),
        Err(e) => return Err(e.into()),
    }
    // Failed logins are answered later and later (from the fourth on);
    // the real device is never delayed.
    let mut answered_after = Vec::new();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        match SimulatedDevice::connect(mqtt, "bp-cuff-1", "another guess").await {
            Err(SimError::Refused(_)) => answered_after.push(started.elapsed().as_millis()),
            Ok(_) => bail!("a wrong secret was accepted"),
            Err(e) => return Err(e.into()),
        }
    }
    step(&format!(
        "five more guesses for bp-cuff-1 -> refused, answered after {} ms: each failure past the third waits twice as long (up to 30 s), and 20 in 10 minutes ban the address",
        answered_after
            .iter()
            .map(|ms| ms.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    cuff.disconnect().await;
    let started = std::time::Instant::now();
    cuff = SimulatedDevice::connect(mqtt, "bp-cuff-1", &secrets[1]).await?;
    step(&format!(
        "bp-cuff-1 with its own secret -> connected in {} ms: a device is never delayed by someone guessing its name",
        started.elapsed().as_millis()
    ));

    bluez.notify(&cgm.measurement, &[0x06, 0x00, 0x8e])?;
    step(
        "BLE CGM sends a truncated CGM Measurement frame -> refused as a malformed frame, counted",
    );

    wait_status(&socket, "the refusals to be counted", |r| {
        r.refusals.iter().map(|c| c.count).sum::<u64>() >= 9
    })
    .await?;

    section(
        "13. On-hub anomaly detection: a falling CGM trace (forecasts combined per patient, the predicted low with its probability), and a device that misbehaves",
    );
    let mut wifi_cgm = SimulatedDevice::connect(mqtt, "wifi-cgm", &secrets[2]).await?;
    // Two hours of 5-minute readings: steady, then falling ~1.5 mg/dL/min
    // down to a level-2 low.
    let trace = [
        148, 151, 149, 152, 150, 147, 150, 149, 151, 148, 150, 149, 146, 143, 139, 134, 128, 121,
        113, 105, 97, 89, 81, 74, 68, 62, 55, 48,
    ];
    let start = now_millis() - (trace.len() as i64 - 1) * 300_000;
    for (i, mg_dl) in trace.iter().enumerate() {
        let seq = i as u64 + 1;
        let payload = sim::cgm_payload(seq, start + i as i64 * 300_000, f64::from(*mg_dl));
        wifi_cgm.send_until_acked(seq, payload, 3).await?;
    }
    step(&format!(
        "wifi-cgm sent {} readings, 5 minutes apart, falling from 150 to 48 mg/dL",
        trace.len()
    ));
    let report = wait_status(&socket, "the findings", |r| {
        r.analysis
            .counts
            .iter()
            .any(|(kind, _, _)| kind == "low_glucose")
    })
    .await?;
    for finding in report
        .analysis
        .recent
        .iter()
        .filter(|f| f.device == "name:wifi-cgm")
    {
        step(&format!(
            "{} [{}, {:.0}%] {}",
            finding.kind,
            finding.severity,
            finding.confidence * 100.0,
            finding.explanation
        ));
    }
    wifi_cgm.disconnect().await;

    // Node behaviour: each device's own normal, learned on the hub. A meter
    // reads a few times a day; 30 fresh readings in seconds is a flood,
    // even though every reading is valid (and every one is stored).
    for seq in 100..130u64 {
        let payload = sim::glucose_payload(seq, now_millis(), 104.0, "mg/dL");
        glucometer.send_until_acked(seq, payload, 3).await?;
    }
    step(
        "wifi-glucometer sends 30 valid readings within seconds (a meter reads a few times a day)",
    );
    let report = wait_status(&socket, "the node-behaviour finding", |r| {
        r.analysis
            .recent
            .iter()
            .any(|f| f.kind.starts_with("node_behaviour:"))
    })
    .await?;
    for finding in report
        .analysis
        .recent
        .iter()
        .filter(|f| f.kind.starts_with("node_behaviour:"))
    {
        step(&format!(
            "{} on {} [{}, {:.0}%] {}",
            finding.kind,
            finding.device,
            finding.severity,
            finding.confidence * 100.0,
            finding.explanation
        ));
    }

    // Alerts: the patient sees them at once; the physician's wait for a grant.
    wait_status(&socket, "the alerts", |r| {
        r.alerts.open.iter().any(|a| a.kind == "predicted_low")
    })
    .await?;
    let alerts = hub_cli(&config_path, &["alerts"]).await?;
    step("glyco-hub alerts (the patient's list; physicians are told through the clinic's inbox):");
    for line in alerts.lines() {
        println!("      {line}");
    }

    section("14. glyco-hub status (the paramedic's emergency access is announced)");
    wait_status(&socket, "the emergency access notice", |r| {
        !r.emergency_accesses.is_empty()
    })
    .await?;
    for line in hub_cli(&config_path, &["status"]).await?.lines() {
        println!("    {line}");
    }
    glucometer.disconnect().await;
    cuff.disconnect().await;
    crate::seal_flows::run(dir, world, &config_path, &config).await?;
    let mut clinic = crate::clinic_flows::run(dir, world, &config_path, &config, proxies).await?;
    Box::pin(crate::web_flows::run(&socket, &web_secrets)).await?;
    let dashboard = crate::dashboard_flows::run(dir, world, &clinic).await?;
    clinic.children.push(dashboard);
    crate::enrol_flows::run(dir, world, &config).await?;
    let (prometheus, hub_address) = crate::fleet_flows::run(dir, &clinic, &config).await?;
    crate::fleet_flows::release(dir, world, &config_path, &mut clinic, &config).await?;
    if keep_serving {
        step("the hub, the clinic's proxies, inbox and dashboard keep serving; Ctrl-C stops them");
        tokio::signal::ctrl_c().await?;
    }
    stop(hub).await?;
    crate::fleet_flows::after_stop(&clinic, hub_address).await?;
    drop(prometheus);
    for child in &mut clinic.children {
        child.kill().await?;
    }
    Ok(())
}
