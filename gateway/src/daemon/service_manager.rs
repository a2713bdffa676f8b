//! systemd's service protocol (`Type=notify`, systemd/glyco-hub.service):
//! READY=1 once the hub serves, STOPPING=1 when it begins to stop, and,
//! under `WatchdogSec=`, WATCHDOG=1 every half period while the journal
//! writer takes commands, every stage still runs, and neither the chain
//! follower nor the analysis has been busy with one piece of work for
//! longer than its limit. A writer stuck in a commit, a stage gone or a
//! stage stuck stops the pings and systemd restarts the hub.
//! Outside systemd (no NOTIFY_SOCKET) all of this does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::journal::JournalWriter;
use crate::supervisor::{Busy, StageState, Stages};

/// A stage whose pieces of work must end within `limit`.
#[derive(Debug, Clone)]
pub struct Progress {
    pub stage: &'static str,
    pub busy: Busy,
    pub limit: Duration,
}

/// The first stage stuck at `now_ms`, in words.
pub fn stuck(progress: &[Progress], now_ms: i64) -> Option<String> {
    progress.iter().find_map(|p| {
        p.busy
            .busy_for(now_ms)
            .filter(|took| *took > p.limit)
            .map(|took| format!("the {} has been on one piece of work for {took:?}", p.stage))
    })
}

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
async fn unhealthy(
    journal: &JournalWriter,
    stages: &Stages,
    progress: &[Progress],
) -> Option<String> {
    if let Some(why) = stuck(progress, crate::reading::now_millis()) {
        return Some(why);
    }
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
pub async fn watchdog(
    journal: JournalWriter,
    stages: Stages,
    progress: Vec<Progress>,
    shutdown: CancellationToken,
) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let every = Duration::from_micros(usec) / 2;
    tracing::info!(every = ?every, "feeding systemd's watchdog");
    loop {
        match unhealthy(&journal, &stages, &progress).await {
            None => send(&[NotifyState::Watchdog]),
            Some(why) => tracing::error!(%why, "not feeding systemd's watchdog"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Feeds systemd's watchdog until `shutdown` while the hub waits for
/// enrolment: no pipeline runs yet, only the enrolment page.
pub async fn watchdog_while_waiting(shutdown: CancellationToken) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    loop {
        send(&[NotifyState::Watchdog]);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_micros(usec) / 2) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_busy_past_its_limit_is_stuck_and_an_idle_one_is_not() {
        let follower = Busy::default();
        let analysis = Busy::default();
        let progress = [
            Progress {
                stage: "chain follower",
                busy: follower.clone(),
                limit: Duration::from_secs(90),
            },
            Progress {
                stage: "analysis",
                busy: analysis.clone(),
                limit: Duration::from_secs(60),
            },
        ];
        let now = crate::reading::now_millis();
        assert_eq!(stuck(&progress, now + 3_600_000), None, "idle is not stuck");
        let round = follower.enter();
        assert_eq!(
            stuck(&progress, now + 30_000),
            None,
            "busy within its limit"
        );
        let why = stuck(&progress, now + 120_000).unwrap();
        assert!(why.contains("chain follower"), "{why}");
        drop(round);
        assert_eq!(stuck(&progress, now + 120_000), None, "the round ended");
        let _reading = analysis.enter();
        assert!(stuck(&progress, now + 61_000).unwrap().contains("analysis"));
    }
}
