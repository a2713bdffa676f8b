//! systemd's service protocol (`Type=notify`, systemd/glyco-hub.service):
//! READY=1 once the hub serves, STOPPING=1 when it begins to stop, and,
//! under `WatchdogSec=`, WATCHDOG=1 every half period while the journal
//! writer takes commands and every stage still runs. A writer stuck in a
//! commit, or a stage gone, stops the pings and systemd restarts the hub.
//! Outside systemd (no NOTIFY_SOCKET) all of this does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::journal::JournalWriter;
use crate::supervisor::{StageState, Stages};

/// How long the journal writer may take to answer a ping.
const PING_WAIT: Duration = Duration::from_secs(10);

fn send(state: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::warn!(error = %e, "cannot tell systemd");
    }
}

/// The hub serves: systemd may start what waits for it.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// The hub begins to stop.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Why the watchdog was not fed, if it was not.
async fn unhealthy(journal: &JournalWriter, stages: &Stages) -> Option<String> {
    match tokio::time::timeout(PING_WAIT, journal.ping()).await {
        Err(_) => {
            return Some(format!(
                "the journal writer did not answer within {PING_WAIT:?}"
            ));
        }
        Ok(Err(e)) => return Some(format!("the journal writer: {e}")),
        Ok(Ok(())) => {}
    }
    stages
        .snapshot()
        .into_iter()
        .find(|(_, state)| *state != StageState::Running)
        .map(|(stage, state)| format!("stage {stage}: {state:?}"))
}

/// Feeds systemd's watchdog until `shutdown`, if the unit asks for one.
pub async fn watchdog(journal: JournalWriter, stages: Stages, shutdown: CancellationToken) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let every = Duration::from_micros(usec) / 2;
    tracing::info!(every = ?every, "feeding systemd's watchdog");
    loop {
        match unhealthy(&journal, &stages).await {
            None => send(&[NotifyState::Watchdog]),
            Some(why) => tracing::error!(%why, "not feeding systemd's watchdog"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
