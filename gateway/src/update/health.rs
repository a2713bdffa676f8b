//! The health check after each boot (`glyco-update-health.service`, root).
//! With no update pending it marks the running slot good (GRUB gives a slot
//! one try until it is). After an update:
//! - booted into the new slot: the hub's service must come up and stay up,
//!   its journal must be readable, the hub must reach the chain, and a test
//!   reading must go through its pipeline ([`super::selftest`]), all within
//!   `update.health_timeout_secs`. Then the slot is marked good and the
//!   update is `kept`; otherwise it is marked bad and the machine reboots
//!   into the old slot (`rolled_back`).
//! - booted into the old slot: the new one failed its check or never
//!   reached it (GRUB fell back); it is marked bad and the update recorded
//!   as rolled back.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use glyco_seal::fleet::UpdateOutcome;

use super::UpdateError;
use super::check::last_line;
use super::record::{self, PENDING, Pending};
use crate::config::UpdateConfig;

/// The hub's service must stay up this long after it first is.
const SETTLE: Duration = Duration::from_secs(30);
/// Restarts that fail the check at once.
const MAX_RESTARTS: u32 = 2;
const POLL: Duration = Duration::from_secs(2);

/// What the check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not an A/B system: nothing to do.
    NoSlots,
    /// No update pending: the running slot is marked good.
    Good { slot: String },
    /// The update passed: its slot is marked good.
    Kept(Pending),
    /// The update failed; `reboot` when the machine must now go back to
    /// the old slot.
    RolledBack {
        pending: Pending,
        why: String,
        reboot: bool,
    },
}

pub struct HealthCheck {
    pub state_dir: PathBuf,
    pub config: UpdateConfig,
    pub status_socket: PathBuf,
    /// The hub's systemd unit.
    pub hub_unit: String,
}

impl HealthCheck {
    pub async fn run(&self) -> Result<Verdict, UpdateError> {
        let Some(booted) = record::booted_slot() else {
            return Ok(Verdict::NoSlots);
        };
        let pending_path = self.config.install_dir.join(PENDING);
        let Some(pending) = record::load_pending(&self.config.install_dir)? else {
            self.mark("mark-good", "booted").await?;
            return Ok(Verdict::Good { slot: booted });
        };
        let sha256 = pending.sha256;
        if pending.to_slot == booted {
            let deadline = Instant::now() + Duration::from_secs(self.config.health_timeout_secs);
            match self.probe(deadline).await {
                Ok(()) => {
                    self.mark("mark-good", "booted").await?;
                    record::save_outcome(
                        &self.state_dir,
                        &pending.version,
                        sha256,
                        UpdateOutcome::Kept,
                    )?;
                    record::remove(&pending_path)?;
                    Ok(Verdict::Kept(pending))
                }
                Err(why) => {
                    // Recorded before the reboot, where the old slot's hub
                    // reads it; the pending record stays for the old slot's
                    // check.
                    self.rolled_back(&pending, &why)?;
                    self.mark("mark-bad", "booted").await?;
                    Ok(Verdict::RolledBack {
                        pending,
                        why,
                        reboot: true,
                    })
                }
            }
        } else {
            let why = match record::load_outcome(&self.state_dir) {
                Some(last) if last.sha256 == sha256.0 => match last.outcome {
                    UpdateOutcome::RolledBack { why } => why,
                    _ => did_not_boot(&pending),
                },
                _ => did_not_boot(&pending),
            };
            self.rolled_back(&pending, &why)?;
            self.mark("mark-bad", "other").await?;
            self.mark("mark-good", "booted").await?;
            record::remove(&pending_path)?;
            Ok(Verdict::RolledBack {
                pending,
                why,
                reboot: false,
            })
        }
    }

    fn rolled_back(&self, pending: &Pending, why: &str) -> Result<(), UpdateError> {
        record::save_outcome(
            &self.state_dir,
            &pending.version,
            pending.sha256,
            UpdateOutcome::RolledBack {
                why: why.to_owned(),
            },
        )
    }

    /// Every check, each until `deadline`; the first failure, in words.
    async fn probe(&self, deadline: Instant) -> Result<(), String> {
        self.service_steady(deadline).await?;
        journal_readable(&self.hub_unit).await?;
        let socket = self.status_socket.as_path();
        until(deadline, "the chain", || async move {
            match crate::status::query(socket).await {
                Ok(report) if report.chain.reachable => Ok(()),
                Ok(_) => Err("the hub does not reach the chain".to_owned()),
                Err(e) => Err(format!("the hub's status: {e}")),
            }
        })
        .await?;
        until(deadline, "the test reading", || async move {
            let report = crate::status::query_self_test(socket)
                .await
                .map_err(|e| format!("the hub's status: {e}"))?;
            match report.first_failure() {
                None if report.passed() => Ok(()),
                None => Err("no step ran".to_owned()),
                Some(why) => Err(why),
            }
        })
        .await
    }

    /// The hub's unit active, and still active without restarts after
    /// [`SETTLE`].
    async fn service_steady(&self, deadline: Instant) -> Result<(), String> {
        let unit = self.hub_unit.as_str();
        until(deadline, "the hub's service", || async move {
            let (state, restarts) = unit_state(unit).await?;
            if restarts > MAX_RESTARTS {
                return Err(format!("restarted {restarts} times"));
            }
            match state.as_str() {
                "active" => Ok(()),
                other => Err(format!("{other}, not active")),
            }
        })
        .await?;
        tokio::time::sleep(SETTLE).await;
        let (state, restarts) = unit_state(unit).await?;
        if state != "active" || restarts > 0 {
            return Err(format!(
                "the hub's service: {state} after {restarts} restarts"
            ));
        }
        Ok(())
    }

    async fn mark(&self, how: &str, slot: &str) -> Result<(), UpdateError> {
        super::rauc::run(
            &self.config.rauc,
            &["status", how, slot],
            "rauc status failed",
        )
        .await?
        .map_err(UpdateError::Rauc)?;
        tracing::info!(how, slot, "rauc status");
        Ok(())
    }
}

fn did_not_boot(pending: &Pending) -> String {
    format!(
        "slot {} did not reach its health check; running slot {} again",
        pending.to_slot, pending.from_slot
    )
}

/// Tries `check` every [`POLL`] until it passes or `deadline`; the last
/// failure names `what`.
async fn until<F, Fut>(deadline: Instant, what: &str, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    loop {
        match check().await {
            Ok(()) => return Ok(()),
            Err(why) if why.starts_with("restarted") => return Err(format!("{what}: {why}")),
            Err(why) if Instant::now() >= deadline => return Err(format!("{what}: {why}")),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

async fn unit_state(unit: &str) -> Result<(String, u32), String> {
    let output = tokio::process::Command::new("systemctl")
        .args(["show", "--property=ActiveState,NRestarts", unit])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("systemctl: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_default()
            .to_owned()
    };
    Ok((
        field("ActiveState"),
        field("NRestarts").parse().unwrap_or(0),
    ))
}

async fn journal_readable(unit: &str) -> Result<(), String> {
    let output = tokio::process::Command::new("journalctl")
        .args([
            "--boot",
            "--unit",
            unit,
            "--lines=1",
            "--output=cat",
            "--quiet",
        ])
        .arg("--no-pager")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("the journal: journalctl: {e}"))?;
    if output.status.success() && !output.stdout.iter().all(u8::is_ascii_whitespace) {
        Ok(())
    } else {
        Err(format!(
            "the journal: nothing from {unit} this boot ({})",
            last_line(&output.stderr, "no entries")
        ))
    }
}
