//! Section 21: a new hub out of the box. It starts with no patient (as the
//! appliance image's does), makes its keys and shows its enrolment page;
//! the physician's `glyco-clinic physician enrol` draws a one-time QR code;
//! its picture, uploaded to the hub, enrols it: the token is spent, the
//! patient role offered and accepted, the hub authorised, and the hub runs
//! for its new patient with the clinic's proxies and inbox. The image and
//! its boot test are `image/build.sh` and `scripts/hil.sh` (minutes under
//! qemu; not part of the demo).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use glyco_contracts::Role;
use glyco_contracts::testkit::accounts::PHYSICIAN;
use glyco_gateway::config::HubConfig;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::chain_flows::{ChainWorld, address};
use crate::clinic_flows::chain_args;
use crate::hub_flows::{hub_binary, sibling_binary, stop, wait_status};
use crate::narrate::{section, step};

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub async fn run(dir: &Path, world: &ChainWorld, clinic_config: &HubConfig) -> Result<()> {
    section("21. A new hub out of the box: first boot, the physician's QR code, enrolled");
    let hub_dir = dir.join("new-hub");
    std::fs::create_dir_all(&hub_dir)?;
    let web = format!("127.0.0.1:{}", free_port()?);
    // What the appliance image's /etc/glyco/hub.toml says, on loopback.
    let mut config = HubConfig {
        state_dir: hub_dir.join("state"),
        ..HubConfig::default()
    };
    config.enrolment.await_enrolment = true;
    config.web.listen = web.parse()?;
    config.mqtt.listen = vec!["127.0.0.1:0".parse()?];
    config.seal.iroh_listen = "127.0.0.1:0".parse()?;
    config.ble.enabled = false;
    let config_path = hub_dir.join("hub.toml");
    std::fs::write(&config_path, toml::to_string(&config)?)?;
    let hub = Command::new(hub_binary()?)
        .arg("--config")
        .arg(&config_path)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(hub_dir.join("hub.log"))?)
        .kill_on_drop(true)
        .spawn()?;
    let http = reqwest::Client::new();
    let mut page = String::new();
    for _ in 0..100 {
        if let Ok(response) = http.get(format!("http://{web}/")).send().await {
            page = response.text().await?;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !page.contains("waiting for enrolment") {
        bail!("the new hub shows no enrolment page");
    }
    let shown = |label: &str| {
        page.split(label)
            .nth(1)
            .and_then(|rest| rest.split("<code>").nth(1))
            .and_then(|rest| rest.split('<').next())
            .unwrap_or("?")
            .to_owned()
    };
    step(&format!(
        "glyco-hub run with no patient: keys made (hub {}, the patient's record {}), enrolment page at http://{web}/",
        shown("<dt>Hub</dt>"),
        shown("<dt>Your patient record</dt>")
    ));

    let png = hub_dir.join("enrol.png");
    let enrol_port = free_port()?;
    let mut args = vec![
        "physician".to_owned(),
        "enrol".into(),
        "--dir".into(),
        dir.join(format!("physician-{PHYSICIAN}"))
            .to_string_lossy()
            .into_owned(),
        "--key".into(),
        dir.join(format!("physician-{PHYSICIAN}.key"))
            .to_string_lossy()
            .into_owned(),
        "--device-id-key".into(),
        world.device_id_key_file.to_string_lossy().into_owned(),
        "--listen".into(),
        format!("127.0.0.1:{enrol_port}"),
        "--threshold".into(),
        clinic_config.seal.proxy_threshold.to_string(),
        "--out".into(),
        png.to_string_lossy().into_owned(),
    ];
    for proxy in &clinic_config.seal.proxies {
        args.extend(["--proxy".to_owned(), proxy.clone()]);
    }
    if let Some(inbox) = &clinic_config.alerts.inbox {
        args.extend(["--inbox".to_owned(), inbox.clone()]);
    }
    args.extend(chain_args(dir, world));
    let mut physician = Command::new(sibling_binary("glyco-clinic")?)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(hub_dir.join("enrol.log"))?)
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(physician.stdout.take().context("stdout")?).lines();
    // The QR code on the terminal, then the tool's lines.
    loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("glyco-clinic physician enrol")??
            .context("glyco-clinic physician enrol exited")?;
        if line.starts_with("enrolment node") {
            step(&line);
            break;
        }
        if line.starts_with("enrolment code") {
            step(&format!("glyco-clinic physician enrol: {line}"));
        } else {
            println!("      {line}");
        }
    }

    let picture = std::fs::read(&png)?;
    let body = glyco_tests::form(&[
        ("pin", "135790"),
        ("picture", &data_encoding::BASE64.encode(&picture)),
    ]);
    let response = http
        .post(format!("http://{web}/enrol"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", format!("http://{web}"))
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let answer = response.text().await?;
    if !status.is_success() {
        bail!("enrolment refused: {answer}");
    }
    step(&format!(
        "the patient uploads the code's picture ({} bytes) with a PIN for the web app: {answer}",
        picture.len()
    ));
    let mut patient = None;
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line.split(" for patient ").nth(1) {
            patient = rest
                .split(':')
                .next()
                .and_then(|p| p.trim().parse::<glyco_contracts::Address>().ok());
            step(&format!("the physician's tool: {line}"));
        }
    }
    physician.wait().await?;
    let patient = patient.context("the enrolled patient")?;
    let report = wait_status(&config.status_socket(), "the enrolled hub to run", |r| {
        r.patient == Some(patient)
    })
    .await?;
    let chain = world.client(PHYSICIAN);
    let role = chain.role_of(patient).await?.unwrap_or(Role::None);
    step(&format!(
        "on chain: {patient} is a {role:?} of physician {} and the hub {} serves it; the hub runs with {} proxies and the clinic's inbox",
        address(PHYSICIAN),
        report.hub,
        clinic_config.seal.proxies.len()
    ));
    let replay = Command::new(hub_binary()?)
        .arg("--config")
        .arg(&config_path)
        .args(["enrol"])
        .arg(&png)
        .output()
        .await?;
    step(&format!(
        "the same code again: {}",
        String::from_utf8_lossy(&replay.stderr)
            .lines()
            .find(|l| l.starts_with("Error"))
            .unwrap_or("refused")
    ));
    step(
        "the appliance image: sudo ./image/build.sh arm64 (Raspberry Pi) or amd64 (qemu); scripts/hil.sh boots it and runs this enrolment against it",
    );
    stop(hub).await
}
