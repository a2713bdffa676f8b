//! `glyco-clinic physician alerts|ack`: the physician's alert inbox.
//!
//! Each alert is shown once across runs: the inbox's sequence number of the
//! last one shown is kept in `--dir/alerts.cursor` (written after it is
//! printed), and the hub of each shown alert in `--dir/alerts.shown`, so an
//! acknowledgement can name it.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use glyco_clinic::alert_client::{Follow, Followed, acknowledge};
use glyco_clinic::replica::{HubPeer, bind};
use glyco_contracts::Address;
use glyco_contracts::keys::load_key;
use glyco_seal::alerts::{self, Signed};

use crate::node_key;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn cursor(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("alerts.cursor"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

fn save_cursor(dir: &Path, seq: u64) -> Result<()> {
    let path = dir.join("alerts.cursor");
    let tmp = dir.join("alerts.cursor.tmp");
    std::fs::write(&tmp, seq.to_string())?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

fn hub_of_shown(dir: &Path, id: &str) -> Option<Address> {
    let text = std::fs::read_to_string(dir.join("alerts.shown")).ok()?;
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix(id)?.trim().parse().ok())
}

/// Shows the alerts after the cursor; with `follow`, then live ones.
pub async fn alerts(
    dir: &Path,
    key: &Path,
    inbox: &HubPeer,
    follow: bool,
    json: bool,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let signer = load_key(key)?;
    let umbral = crate::physician_cmd::umbral_key(dir)?;
    let mut shown_through = cursor(dir);
    let endpoint = bind(node_key(dir)?, "127.0.0.1:0".parse()?).await?;
    let mut stream = Follow::start(&endpoint, inbox, &signer, shown_through, follow).await?;
    let mut shown = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("alerts.shown"))?;
    let stdout = std::io::stdout();
    while let Some(next) = stream.next(&umbral).await? {
        let alert = match next {
            Followed::CaughtUp if follow => continue,
            Followed::CaughtUp => break,
            Followed::Skipped { seq } => {
                if seq > shown_through {
                    eprintln!("alert #{seq} is not signed by its hub or not for me; skipped");
                    save_cursor(dir, seq)?;
                    shown_through = seq;
                }
                continue;
            }
            Followed::Alert(alert) if alert.seq <= shown_through => continue,
            Followed::Alert(alert) => alert,
        };
        let (seq, id, envelope) = (alert.seq, &alert.id, &alert.envelope);
        let body = &envelope.body;
        let shown_at_ms = now_ms();
        let mut out = stdout.lock();
        if json {
            let line = serde_json::json!({
                "id": id, "seq": seq, "kind": body.kind, "severity": body.severity,
                "patient": body.patient, "hub": body.hub, "step": body.step,
                "created_at_ms": body.created_at_ms,
                "reading_received_at_ms": body.reading_received_at_ms,
                "shown_at_ms": shown_at_ms,
                // What the hub anchors for this alert (docs/BATCH.md).
                "evidence": envelope.evidence().ok().map(|d| d.to_string()),
                "device": alert.details.as_ref().map(|d| d.0.clone()).ok(),
                "explanation": alert.details.as_ref().map(|d| d.1.clone()).ok(),
                "emergency": body.emergency,
            });
            writeln!(out, "{line}")?;
        } else {
            let what = match &alert.details {
                Ok((device, explanation)) => format!("{device}: {explanation}"),
                Err(e) => format!("(details unreadable: {e})"),
            };
            writeln!(
                out,
                "[{}] {} for patient {} (step {}, alert {id}): {what}",
                body.severity, body.kind, body.patient, body.step
            )?;
            if let Some(service) = body.emergency {
                writeln!(
                    out,
                    "  EMERGENCY: no one up the ladder acknowledged; you are on duty for {service}.\n  \
                     Read the patient's emergency data: glyco-clinic physician emergency-access --patient {}",
                    body.patient
                )?;
            }
        }
        out.flush()?;
        writeln!(shown, "{id} {}", body.hub)?;
        save_cursor(dir, seq)?;
        shown_through = seq;
    }
    stream.close();
    Ok(())
}

/// Acknowledges an alert shown before; the hub stops escalating it.
pub async fn ack(dir: &Path, key: &Path, inbox: &HubPeer, id: &str) -> Result<()> {
    let signer = load_key(key)?;
    let alert = alerts::parse_id(id)?;
    let id = alerts::id_hex(&alert);
    let Some(hub) = hub_of_shown(dir, &id) else {
        bail!("alert {id} was not shown here (run `physician alerts` first)");
    };
    let endpoint = bind(node_key(dir)?, "127.0.0.1:0".parse()?).await?;
    let (already, evidence) = acknowledge(&endpoint, inbox, &signer, alert, hub).await?;
    println!(
        "alert {id} acknowledged{} (evidence {evidence})",
        if already { " (already)" } else { "" }
    );
    Ok(())
}

/// Signs an alert policy for a patient's hub and writes it as JSON.
pub fn sign_policy(
    file: &Path,
    key: &Path,
    patient: Address,
    hub: Address,
    version: u64,
    out: &Path,
) -> Result<()> {
    let wanted: alerts::PolicyFile = serde_json::from_slice(&std::fs::read(file)?)
        .with_context(|| format!("reading {}", file.display()))?;
    let doc = wanted.into_doc(patient, hub, version);
    let signed = Signed::sign(doc, &load_key(key)?)?;
    std::fs::write(out, serde_json::to_vec_pretty(&signed)?)?;
    println!(
        "alert policy version {version} signed by {}: {}",
        signed.signer()?,
        out.display()
    );
    Ok(())
}
