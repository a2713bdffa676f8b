//! Supervision of the hub's long-lived stages (ingest, gatekeeper, BLE,
//! analysis, chain follower, status, behaviour summaries). A stage that ends
//! or panics before shutdown is never left dead behind a hub that looks
//! alive: the supervisor reports it (log and status), and the daemon stops
//! with an error so systemd restarts it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum StageState {
    Running,
    /// Ended after shutdown began.
    Stopped,
    /// Ended, failed or panicked while the hub was running.
    Failed(String),
}

/// When a stage began its current piece of work (0: idle), for the service
/// watchdog: a stage busy for longer than its limit is stuck, even though
/// its task lives.
#[derive(Debug, Clone, Default)]
pub struct Busy(Arc<std::sync::atomic::AtomicI64>);

impl Busy {
    /// Marks the start of a piece of work; the guard marks its end.
    pub fn enter(&self) -> BusyGuard<'_> {
        let now = crate::reading::now_millis().max(1);
        self.0.store(now, std::sync::atomic::Ordering::Relaxed);
        BusyGuard(self)
    }

    /// How long the current piece of work has taken at `now_ms`, if one is
    /// under way.
    pub fn busy_for(&self, now_ms: i64) -> Option<std::time::Duration> {
        let since = self.0.load(std::sync::atomic::Ordering::Relaxed);
        (since != 0).then(|| std::time::Duration::from_millis((now_ms - since).max(0) as u64))
    }
}

/// Ends a piece of work when dropped.
#[derive(Debug)]
pub struct BusyGuard<'a>(&'a Busy);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        (self.0).0.store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The stages and how each is doing, shared with the status report.
#[derive(Debug, Clone, Default)]
pub struct Stages(Arc<Mutex<BTreeMap<&'static str, StageState>>>);

impl Stages {
    pub fn snapshot(&self) -> BTreeMap<&'static str, StageState> {
        self.0.lock().clone()
    }

    fn set(&self, stage: &'static str, state: StageState) {
        self.0.lock().insert(stage, state);
    }
}

/// A stage that ended while the hub was meant to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageFailure {
    pub stage: &'static str,
    pub reason: String,
}

/// Spawns stages and watches them.
#[derive(Debug)]
pub struct Supervisor {
    set: JoinSet<(&'static str, Result<(), String>)>,
    /// Which task is which stage, for a task that panicked.
    names: BTreeMap<tokio::task::Id, &'static str>,
    stages: Stages,
    shutdown: CancellationToken,
}

impl Supervisor {
    /// `shutdown` is the token the stages stop on; a stage ending after it
    /// is cancelled is a normal stop.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            set: JoinSet::new(),
            names: BTreeMap::new(),
            stages: Stages::default(),
            shutdown,
        }
    }

    pub fn stages(&self) -> Stages {
        self.stages.clone()
    }

    /// Runs a stage under a tracing span named after it.
    pub fn spawn<F, E>(&mut self, stage: &'static str, future: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        self.stages.set(stage, StageState::Running);
        let span = tracing::info_span!("stage", name = stage);
        let handle = self.set.spawn(
            async move { (stage, future.await.map_err(|e| e.to_string())) }.instrument(span),
        );
        self.names.insert(handle.id(), stage);
    }

    /// Waits for the first stage to end while the hub runs; `None` once
    /// shutdown began (or no stage is left).
    pub async fn first_failure(&mut self) -> Option<StageFailure> {
        loop {
            let joined = tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                joined = self.set.join_next() => joined?,
            };
            let failure = self.settle(joined);
            if self.shutdown.is_cancelled() {
                continue;
            }
            if let Some(failure) = failure {
                return Some(failure);
            }
        }
    }

    /// After shutdown: waits for every stage to end, recording how each did.
    pub async fn drain(&mut self) -> Vec<StageFailure> {
        let mut failures = Vec::new();
        while let Some(joined) = self.set.join_next().await {
            if let Some(failure) = self.settle(joined) {
                failures.push(failure);
            }
        }
        failures
    }

    fn settle(
        &self,
        joined: Result<(&'static str, Result<(), String>), tokio::task::JoinError>,
    ) -> Option<StageFailure> {
        let running = !self.shutdown.is_cancelled();
        let (stage, result) = match joined {
            Ok(done) => done,
            Err(e) => {
                let stage = self.names.get(&e.id()).copied().unwrap_or("unknown");
                let reason = if e.is_panic() {
                    format!("panicked: {}", panic_message(e.into_panic()))
                } else {
                    "cancelled".to_owned()
                };
                (stage, Err(reason))
            }
        };
        let failure = match (result, running) {
            (Ok(()), false) => None,
            (Ok(()), true) => Some("ended while the hub was running".to_owned()),
            (Err(reason), _) => Some(reason),
        };
        match &failure {
            None => self.stages.set(stage, StageState::Stopped),
            Some(reason) => {
                tracing::error!(stage, reason = %reason, "a stage of the hub stopped");
                self.stages.set(stage, StageState::Failed(reason.clone()));
            }
        }
        failure.map(|reason| StageFailure { stage, reason })
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stage_that_ends_while_running_is_a_failure() {
        let token = CancellationToken::new();
        let mut supervisor = Supervisor::new(token.clone());
        let stop = token.clone();
        supervisor.spawn("steady", async move {
            stop.cancelled().await;
            Ok::<_, String>(())
        });
        supervisor.spawn("quitter", async { Ok::<_, String>(()) });
        let failure = supervisor.first_failure().await.unwrap();
        assert_eq!(failure.stage, "quitter");
        let stages = supervisor.stages().snapshot();
        assert!(matches!(stages["quitter"], StageState::Failed(_)));
        assert_eq!(stages["steady"], StageState::Running);
        token.cancel();
        assert!(supervisor.drain().await.is_empty());
        assert_eq!(
            supervisor.stages().snapshot()["steady"],
            StageState::Stopped
        );
    }

    #[tokio::test]
    async fn a_panicking_stage_is_named_and_its_message_kept() {
        let token = CancellationToken::new();
        let mut supervisor = Supervisor::new(token.clone());
        let stop = token.clone();
        supervisor.spawn("steady", async move {
            stop.cancelled().await;
            Ok::<_, String>(())
        });
        supervisor.spawn("ingest", async {
            tokio::task::yield_now().await;
            let overflow: Option<i64> = i64::MIN.checked_sub(1);
            if overflow.is_none() {
                panic!("arithmetic overflow");
            }
            Ok::<_, String>(())
        });
        let failure = supervisor.first_failure().await.unwrap();
        assert_eq!(failure.stage, "ingest");
        assert!(
            failure.reason.contains("arithmetic overflow"),
            "{failure:?}"
        );
        token.cancel();
        supervisor.drain().await;
    }

    #[tokio::test]
    async fn stages_ending_after_shutdown_are_stopped_not_failed() {
        let token = CancellationToken::new();
        let mut supervisor = Supervisor::new(token.clone());
        for stage in ["a", "b"] {
            let stop = token.clone();
            supervisor.spawn(stage, async move {
                stop.cancelled().await;
                Ok::<_, String>(())
            });
        }
        token.cancel();
        assert_eq!(supervisor.first_failure().await, None);
        assert!(supervisor.drain().await.is_empty());
        assert!(
            supervisor
                .stages()
                .snapshot()
                .values()
                .all(|s| *s == StageState::Stopped)
        );
    }
}
