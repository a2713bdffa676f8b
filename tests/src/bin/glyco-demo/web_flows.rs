//! Section 19: the patient's web app and the Nightscout API, on the hub the
//! demo has been running: signed in with the PIN, the Now page and the AGP
//! report read back, and the newest entries as a Nightscout follower app
//! reads them.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use glyco_gateway::config::HubConfig;
use glyco_gateway::web::nightscout::NightscoutSecrets;

use crate::hub_flows::wait_status;
use crate::narrate::{section, step};

/// The demo's PIN (the patient would choose one at enrolment).
pub const DEMO_PIN: &str = "246810";
/// A Bluetooth glucometer the patient pairs on the Devices page, and the
/// passkey its screen shows.
pub const NEW_METER: &str = "00:1A:7D:DA:71:20";
pub const NEW_METER_PASSKEY: u32 = 246_813;

/// The PIN and the Nightscout secrets, before the hub starts.
pub fn provision(config: &HubConfig) -> Result<NightscoutSecrets> {
    glyco_gateway::web::auth::set_pin(&config.web_pin_path(), DEMO_PIN)?;
    Ok(NightscoutSecrets::create(&config.nightscout_path())?)
}

/// The text after `marker`, up to the next tag or quote, trimmed.
fn text_after(page: &str, marker: &str) -> String {
    page.split(marker)
        .nth(1)
        .and_then(|rest| rest.split(['<', '"']).next())
        .unwrap_or("?")
        .trim()
        .to_owned()
}

pub async fn run(socket: &Path, secrets: &NightscoutSecrets) -> Result<String> {
    section("19. The patient's web app and the Nightscout API");
    let report = wait_status(socket, "the web app", |r| r.web.listen.is_some()).await?;
    let base = format!("http://{}", report.web.listen.context("listen")?);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let login = http
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("pin={DEMO_PIN}"))
        .send()
        .await?;
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no session: the PIN was refused")?
        .to_owned();
    step(&format!(
        "signed in at {base}/login with the PIN (argon2id on the hub, throttled)"
    ));
    let now = http
        .get(format!("{base}/"))
        .header("cookie", &cookie)
        .send()
        .await?
        .text()
        .await?;
    step(&format!(
        "Now: latest CGM value {} {} {}",
        text_after(&now, "<span class=\"value\">"),
        text_after(&now, "<span class=\"unit\">"),
        text_after(&now, "<span class=\"trend\" title=\""),
    ));
    let page = http
        .get(format!("{base}/report"))
        .header("cookie", &cookie)
        .send()
        .await?
        .text()
        .await?;
    if !page.contains("Glucose report, 14 days") {
        bail!("the report page did not render");
    }
    step(&format!(
        "Report (14-day AGP): {} readings, mean {}, GMI {}, CV {}; {} KB of HTML with inline SVG",
        text_after(&page, "<th>Readings</th><td>"),
        text_after(&page, "<th>Mean glucose</th><td>"),
        text_after(&page, "<th>GMI</th><td>"),
        text_after(&page, "<th>Coefficient of variation</th><td>"),
        page.len() / 1000
    ));
    // Pairing the new Bluetooth meter on the Devices page.
    let origin = base.clone();
    let post = |path: &str, body: String| {
        http.post(format!("{base}{path}"))
            .header("cookie", &cookie)
            .header("origin", &origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let devices = http
        .get(format!("{base}/devices"))
        .header("cookie", &cookie)
        .send()
        .await?
        .text()
        .await?;
    let csrf = text_after(&devices, "name=\"csrf\" value=\"");
    let found = post("/devices/bluetooth/scan", format!("csrf={csrf}&seconds=2"))
        .await?
        .text()
        .await?;
    if !found.contains(NEW_METER) {
        bail!("the scan did not find the new meter");
    }
    step(&format!(
        "Devices → Look for devices: {} found nearby, {NEW_METER} among them",
        found.matches("<form class=\"pair\"").count()
    ));
    let address = NEW_METER.replace(':', "%3A");
    let paired = post(
        "/devices/bluetooth/pair",
        format!("csrf={csrf}&address={address}&kind=glucometer&passkey={NEW_METER_PASSKEY:06}"),
    )
    .await?;
    let status = paired.status();
    let paired = paired.text().await?;
    if !status.is_success() {
        bail!("pairing failed ({status}): {paired}");
    }
    let identity = glyco_contracts::DeviceIdentity::ble(NEW_METER)?.to_string();
    let report = wait_status(socket, "the paired meter's stored record", |r| {
        r.devices.iter().any(|d| {
            d.last_reading
                .as_ref()
                .is_some_and(|l| l.device.to_string() == identity)
        })
    })
    .await?;
    let last = report
        .devices
        .iter()
        .filter_map(|d| d.last_reading.as_ref())
        .find(|l| l.device.to_string() == identity)
        .map(|l| l.measurement.display_value())
        .unwrap_or_default();
    step(&format!(
        "Pair and register with the passkey on its screen ({NEW_METER_PASSKEY:06}): bonded through the hub's agent, registered on chain, its stored record read: {last}"
    ));
    let sha1 = {
        use sha1::Digest;
        hex::encode(sha1::Sha1::digest(secrets.secret.as_bytes()))
    };
    let entries: Vec<serde_json::Value> = serde_json::from_slice(
        &http
            .get(format!("{base}/api/v1/entries/sgv.json?count=3"))
            .header("api-secret", sha1)
            .send()
            .await?
            .bytes()
            .await?,
    )?;
    step(
        "Nightscout API (GET /api/v1/entries/sgv.json?count=3, API-SECRET = SHA-1 of the secret):",
    );
    for e in &entries {
        println!(
            "      {} sgv {} delta {} {}",
            e["dateString"].as_str().unwrap_or("?"),
            e["sgv"],
            e["delta"],
            e["direction"].as_str().unwrap_or("?")
        );
    }
    let refused = http
        .get(format!("{base}/api/v1/entries.json"))
        .send()
        .await?
        .status();
    step(&format!("without the secret: {refused}"));
    step(&format!(
        "open {base}/ in a browser (PIN {DEMO_PIN}); Nightscout followers: URL {base}, API secret {}",
        secrets.secret
    ));
    Ok(base)
}
