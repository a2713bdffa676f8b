//! The journal thread: the one owner of the write path. It takes commands
//! from [`JournalWriter`] handles, groups whatever queued up while the
//! previous commit ran into one transaction (so the fsync is shared when many
//! devices publish at once), and answers each command. Readings and named
//! state come first; node-behaviour events ride along, and when they arrive
//! faster than they can be written the surplus is dropped and counted by the
//! sender, never waited for.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::store::{Batch, JournalStore};
use super::{AppendOutcome, JournalError, Outbox};
use crate::behaviour::NodeEvent;
use crate::reading::Reading;

/// Largest group of readings committed together.
const MAX_GROUP: usize = 512;
/// Largest group of events committed together.
const MAX_EVENT_GROUP: usize = 1024;
/// Events waiting for the journal; beyond this they are dropped (counted).
const EVENT_QUEUE: usize = 4096;

enum Command {
    Append {
        reading: Box<Reading>,
        reply: oneshot::Sender<Result<AppendOutcome, JournalError>>,
    },
    SaveMeta {
        key: String,
        value: Vec<u8>,
        reply: oneshot::Sender<Result<(), JournalError>>,
    },
    PutOutbox {
        records: Vec<(Outbox, u64, Vec<u8>)>,
        reply: oneshot::Sender<Result<(), JournalError>>,
    },
    /// Answered once the thread gets to it: the writer is not stuck.
    Ping { reply: oneshot::Sender<()> },
}

/// A handle to the journal thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct JournalWriter {
    commands: mpsc::Sender<Command>,
    events: mpsc::Sender<NodeEvent>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Append { .. } => f.write_str("Append"),
            Self::SaveMeta { key, .. } => write!(f, "SaveMeta({key})"),
            Self::PutOutbox { records, .. } => write!(f, "PutOutbox({})", records.len()),
            Self::Ping { .. } => f.write_str("Ping"),
        }
    }
}

/// The journal thread, to wait for at shutdown (and to watch before).
#[derive(Debug, Clone)]
pub struct JournalTask {
    /// `None` while the thread runs; its result once it ended. A thread that
    /// panicked drops the sender without a result.
    done: watch::Receiver<Option<Result<(), Arc<JournalError>>>>,
}

impl JournalTask {
    /// Waits until the thread has written everything it was given and
    /// stopped (every [`JournalWriter`] must be dropped for that).
    pub async fn wait(mut self) -> Result<(), JournalError> {
        let ended = self.done.wait_for(Option::is_some).await;
        match ended.as_deref() {
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(e))) => Err(JournalError::Commit(e.clone())),
            Ok(None) | Err(_) => Err(JournalError::WriterGone),
        }
    }
}

impl JournalStore {
    /// Moves the store onto its own thread; returns the handle that sends it
    /// commands and the task to wait for.
    pub fn spawn(self) -> Result<(JournalWriter, JournalTask), JournalError> {
        let (commands, command_rx) = mpsc::channel(4 * MAX_GROUP);
        let (events, event_rx) = mpsc::channel(EVENT_QUEUE);
        let (done_tx, done) = watch::channel(None);
        std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || {
                let result = run(self, command_rx, event_rx).map_err(Arc::new);
                let _ = done_tx.send(Some(result));
            })
            .map_err(JournalError::Thread)?;
        Ok((JournalWriter { commands, events }, JournalTask { done }))
    }
}

fn run(
    mut store: JournalStore,
    mut commands: mpsc::Receiver<Command>,
    mut events: mpsc::Receiver<NodeEvent>,
) -> Result<(), JournalError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(JournalError::Thread)?;
    runtime.block_on(async move {
        let (mut commands_open, mut events_open) = (true, true);
        let mut received = Vec::with_capacity(MAX_GROUP);
        let mut event_group = Vec::with_capacity(MAX_EVENT_GROUP);
        while commands_open || events_open {
            tokio::select! {
                biased;
                n = commands.recv_many(&mut received, MAX_GROUP), if commands_open => {
                    commands_open = n > 0;
                }
                n = events.recv_many(&mut event_group, MAX_EVENT_GROUP), if events_open => {
                    events_open = n > 0;
                }
            }
            // Whatever else is already queued joins this commit.
            while received.len() < MAX_GROUP {
                match commands.try_recv() {
                    Ok(command) => received.push(command),
                    Err(_) => break,
                }
            }
            while event_group.len() < MAX_EVENT_GROUP {
                match events.try_recv() {
                    Ok(event) => event_group.push(event),
                    Err(_) => break,
                }
            }
            if received.is_empty() && event_group.is_empty() {
                continue;
            }
            if let Err(poisoned) = commit(
                &mut store,
                std::mem::take(&mut received),
                std::mem::take(&mut event_group),
            ) {
                // redb takes no write after an I/O error until reopened:
                // the journal stops, the hub exits and its service restarts
                // it (committed entries are kept).
                tracing::error!(error = %poisoned, "the journal must be reopened; stopping");
                return Err(poisoned);
            }
        }
        Ok(())
    })
}

/// Commits one group and answers every command in it. `Err` when the
/// database cannot take writes any more.
fn commit(
    store: &mut JournalStore,
    commands: Vec<Command>,
    events: Vec<NodeEvent>,
) -> Result<(), JournalError> {
    let mut batch = Batch {
        events,
        ..Batch::default()
    };
    let mut append_replies = Vec::new();
    let mut meta_replies = Vec::new();
    for command in commands {
        match command {
            Command::Append { reading, reply } => {
                batch.readings.push(*reading);
                append_replies.push(reply);
            }
            Command::SaveMeta { key, value, reply } => {
                batch.meta.push((key, value));
                meta_replies.push(reply);
            }
            Command::PutOutbox { records, reply } => {
                batch.outbox.extend(records);
                meta_replies.push(reply);
            }
            Command::Ping { reply } => {
                let _ = reply.send(());
            }
        }
    }
    if batch.readings.is_empty()
        && batch.events.is_empty()
        && batch.meta.is_empty()
        && batch.outbox.is_empty()
    {
        // Pings only: nothing to write.
        return Ok(());
    }
    match store.commit(&mut batch) {
        Ok(outcomes) => {
            for (reply, outcome) in append_replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
            for reply in meta_replies {
                let _ = reply.send(Ok(()));
            }
            Ok(())
        }
        Err(e) => {
            // Nothing of the group was committed: every device is told so
            // and will resend; nothing is acknowledged.
            if matches!(e, JournalError::DiskFull { .. }) {
                // Said once by the pipeline, and in status; not per commit.
                tracing::debug!(error = %e, readings = append_replies.len(), "journal commit refused");
            } else {
                tracing::error!(error = %e, readings = append_replies.len(), "journal commit failed");
            }
            let e = Arc::new(e);
            for reply in append_replies {
                let _ = reply.send(Err(JournalError::Commit(e.clone())));
            }
            for reply in meta_replies {
                let _ = reply.send(Err(JournalError::Commit(e.clone())));
            }
            if e.is_poisoned() {
                return Err(JournalError::Commit(e));
            }
            Ok(())
        }
    }
}

impl JournalWriter {
    /// Stores a reading durably; returns once it is committed (or found to
    /// be a duplicate or a replay).
    pub async fn append(&self, reading: Reading) -> Result<AppendOutcome, JournalError> {
        let (reply, outcome) = oneshot::channel();
        self.commands
            .send(Command::Append {
                reading: Box::new(reading),
                reply,
            })
            .await
            .map_err(|_| JournalError::WriterGone)?;
        outcome.await.map_err(|_| JournalError::WriterGone)?
    }

    /// Waits until the journal thread takes a command: it is alive and not
    /// stuck in a commit (the service watchdog asks).
    pub async fn ping(&self) -> Result<(), JournalError> {
        let (reply, done) = oneshot::channel();
        self.commands
            .send(Command::Ping { reply })
            .await
            .map_err(|_| JournalError::WriterGone)?;
        done.await.map_err(|_| JournalError::WriterGone)
    }

    /// Saves a small named record durably.
    pub async fn save_meta(&self, key: &str, value: Vec<u8>) -> Result<(), JournalError> {
        let (reply, done) = oneshot::channel();
        self.commands
            .send(Command::SaveMeta {
                key: key.to_owned(),
                value,
                reply,
            })
            .await
            .map_err(|_| JournalError::WriterGone)?;
        done.await.map_err(|_| JournalError::WriterGone)?
    }

    /// Queues an event without waiting; false when the queue is full (the
    /// caller counts it as dropped) or the thread has stopped.
    /// Writes outbox records durably, all or none.
    pub async fn put_outbox(
        &self,
        records: Vec<(Outbox, u64, Vec<u8>)>,
    ) -> Result<(), JournalError> {
        let (reply, done) = oneshot::channel();
        self.commands
            .send(Command::PutOutbox { records, reply })
            .await
            .map_err(|_| JournalError::WriterGone)?;
        done.await.map_err(|_| JournalError::WriterGone)?
    }

    pub fn record_event(&self, event: NodeEvent) -> bool {
        self.events.try_send(event).is_ok()
    }
}
