//! Section 20: the physician's dashboard, served by `glyco-clinic
//! dashboard` with the physician's machine of section 16. Signed in with
//! Sign-In with Ethereum: the message the page issues, signed by
//! `glyco-clinic physician sign-in` (a browser wallet does the same), then
//! the patients page, the alerts and the 14-day report opened through both
//! proxies, each opening an entry in the patient's on-chain access log.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use glyco_contracts::testkit::accounts::{PATIENT, PHYSICIAN};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

use crate::chain_flows::{ChainWorld, address};
use crate::clinic_flows::{Proxies, chain_args, spawn_clinic, strings};
use crate::hub_flows::sibling_binary;
use crate::narrate::{section, step};

/// The value of the first `name="<field>" value="…"` in `page`, unescaped.
fn field(page: &str, field: &str) -> Option<String> {
    let marker = format!("name=\"{field}\" value=\"");
    let rest = page.split(&marker).nth(1)?;
    Some(unescape(rest.split('"').next()?))
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The text of the element after `marker`, tags dropped, up to `end`.
fn text(page: &str, marker: &str, end: &str) -> String {
    let Some(rest) = page.split(marker).nth(1) else {
        return "?".into();
    };
    let chunk = rest.split(end).next().unwrap_or_default();
    let mut out = String::new();
    let mut in_tag = false;
    for c in chunk.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    unescape(&out.split_whitespace().collect::<Vec<_>>().join(" "))
}

async fn sign_in_signature(key: &Path, message: &str) -> Result<String> {
    let mut child = Command::new(sibling_binary("glyco-clinic")?)
        .args(["physician", "sign-in", "--key"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(message.as_bytes())
        .await?;
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "physician sign-in: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub async fn run(dir: &Path, world: &ChainWorld, clinic: &Proxies) -> Result<Child> {
    section(
        "20. The physician's dashboard: Sign-In with Ethereum, patients, alerts, the report through the proxies",
    );
    let machine = dir.join(format!("physician-{PHYSICIAN}"));
    let key = dir.join(format!("physician-{PHYSICIAN}.key"));
    let mut args = strings(&["dashboard", "--dir"]);
    args.push(machine.to_string_lossy().into_owned());
    args.push("--key".into());
    args.push(key.to_string_lossy().into_owned());
    args.extend(strings(&[
        "--listen",
        "127.0.0.1:0",
        "--threshold",
        "2",
        "--inbox",
    ]));
    args.push(clinic.inbox.clone());
    args.push("--replica".into());
    args.push(dir.join("replica").to_string_lossy().into_owned());
    for p in &clinic.args {
        args.push("--proxy".into());
        args.push(p.clone());
    }
    args.extend(chain_args(dir, world));
    let (child, line) = spawn_clinic(&args, &dir.join("dashboard.log"), "dashboard").await?;
    let base = line
        .split(" on ")
        .nth(1)
        .context("the dashboard's address line")?
        .trim_end_matches('/')
        .to_owned();
    step(&format!(
        "glyco-clinic dashboard --dir … --key … --inbox … --replica … --proxy P1 --proxy P2: {line}"
    ));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()?;
    let login = http
        .get(format!("{base}/login"))
        .send()
        .await?
        .text()
        .await?;
    let message = field(&login, "message").context("no sign-in message on the page")?;
    step(
        "the sign-in page issues an EIP-4361 message (this host, chain 31337, a one-time nonce, 5 minutes):",
    );
    for l in message.lines() {
        println!("      | {l}");
    }
    let signature = sign_in_signature(&key, &message).await?;
    let form = glyco_tests::form;
    let signed_in = http
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", &base)
        .body(form(&[("message", &message), ("signature", &signature)]))
        .send()
        .await?;
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("the dashboard refused the sign-in")?
        .to_owned();
    step(&format!(
        "signed with glyco-clinic physician sign-in (a wallet's personal_sign does the same): {}…; signed in as {}",
        &signature[..18],
        address(PHYSICIAN)
    ));
    let get = |path: String| {
        let request = http.get(format!("{base}{path}")).header("cookie", &cookie);
        async move { anyhow::Ok(request.send().await?.text().await?) }
    };
    let patients = get("/".into()).await?;
    step(&format!(
        "My patients: {}",
        text(&patients, "<table class=\"patients\">", "</table>").trim_start_matches(
            "Patient Access Newest data anchored Open alerts Last glucose you read "
        )
    ));
    let alerts = get("/alerts".into()).await?;
    let csrf = field(&alerts, "csrf").context("no CSRF token on the alerts page")?;
    let ids: Vec<String> = alerts
        .split("name=\"id\" value=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next().map(str::to_owned))
        .collect();
    for id in &ids {
        let acked = http
            .post(format!("{base}/alerts/ack"))
            .header("cookie", &cookie)
            .header("origin", &base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("csrf", &csrf), ("id", id)]))
            .send()
            .await?;
        if !acked.status().is_redirection() {
            bail!("acknowledging {id}: {}", acked.text().await?);
        }
    }
    step(&format!(
        "Alerts: {} from St Luke's inbox; Acknowledge on each (the one acknowledged from the CLI in section 16 the inbox takes as already acknowledged)",
        ids.len()
    ));
    let patient = format!("{:#x}", address(PATIENT));
    let page = get(format!("/patients/{patient}")).await?;
    let csrf = field(&page, "csrf").context("no CSRF token on the patient's page")?;
    let report = http
        .post(format!("{base}/patients/{patient}/report"))
        .header("cookie", &cookie)
        .header("origin", &base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", &csrf)]))
        .send()
        .await?;
    let status = report.status();
    let report = report.text().await?;
    if !status.is_success() {
        bail!("the report did not open ({status}): {report}");
    }
    step(&format!(
        "Open the 14-day report: {}",
        text(&report, "<p class=\"no-print opened\">", "</p>")
    ));
    step(&format!(
        "the report: {} CGM readings in 14 days, mean {}, GMI {}; {}",
        text(&report, "<th>Readings</th><td>", "</td>"),
        text(&report, "<th>Mean glucose</th><td>", "</td>"),
        text(&report, "<th>GMI</th><td>", "</td>"),
        text(&report, "<tr class=\"in-range\">", "</tr>"),
    ));
    step(&format!(
        "open {base}/ in a browser whose wallet holds the physician's key ({}), or sign the page's message with glyco-clinic physician sign-in --key {}",
        key.display(),
        key.display()
    ));
    Ok(child)
}
