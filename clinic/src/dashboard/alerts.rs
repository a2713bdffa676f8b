//! The dashboard's copy of the physician's alerts: a follower keeps a live
//! stream open to the clinic's alert inbox (reconnecting with a growing
//! pause when it drops) and holds the newest alerts in memory; what the
//! physician acknowledged here is kept in `<dir>/dashboard.acked` so a
//! restart does not show it open again.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use glyco_contracts::Address;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::Dashboard;
use crate::alert_client::{Follow, Followed, ReceivedAlert};

/// Alerts held; older ones stay in the inbox (and the CLI shows them).
const MAX_ALERTS: usize = 500;
/// Acknowledgements remembered across restarts.
const MAX_ACKED: usize = 2000;
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// One alert as the pages show it.
#[derive(Debug, Clone)]
pub struct ShownAlert {
    pub seq: u64,
    pub id: String,
    pub raw_id: [u8; 16],
    pub hub: Address,
    pub patient: Address,
    pub kind: String,
    pub severity: String,
    pub step: u8,
    pub created_at_ms: i64,
    /// (device, explanation) opened with the physician's umbral key.
    pub details: Result<(String, String), String>,
    pub emergency: Option<Address>,
    /// When the physician acknowledged it here.
    pub acknowledged_at_ms: Option<i64>,
}

impl ShownAlert {
    fn from_received(alert: ReceivedAlert, acked: Option<i64>) -> Self {
        let body = &alert.envelope.body;
        Self {
            seq: alert.seq,
            raw_id: body.id,
            hub: body.hub,
            patient: body.patient,
            kind: body.kind.clone(),
            severity: body.severity.clone(),
            step: body.step,
            created_at_ms: body.created_at_ms,
            emergency: body.emergency,
            id: alert.id,
            details: alert.details,
            acknowledged_at_ms: acked,
        }
    }
}

#[derive(Debug, Default)]
struct Book {
    alerts: VecDeque<ShownAlert>,
    acked: HashMap<String, i64>,
    through_seq: u64,
    connected: bool,
    error: Option<String>,
}

/// The alerts the follower has received, newest last.
#[derive(Debug)]
pub struct AlertBook {
    book: Mutex<Book>,
    acked_file: PathBuf,
}

/// The follower's state, for the pages.
#[derive(Debug, Clone)]
pub struct InboxState {
    pub configured: bool,
    pub connected: bool,
    pub error: Option<String>,
}

impl AlertBook {
    /// A book that remembers acknowledgements in `acked_file`.
    pub fn load(acked_file: PathBuf) -> Self {
        let mut acked = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(&acked_file) {
            for line in text.lines().rev().take(MAX_ACKED) {
                if let Some((id, at)) = line.split_once(' ')
                    && let Ok(at) = at.parse()
                {
                    acked.entry(id.to_owned()).or_insert(at);
                }
            }
        }
        Self {
            book: Mutex::new(Book {
                acked,
                ..Book::default()
            }),
            acked_file,
        }
    }

    fn add(&self, alert: ReceivedAlert) {
        let mut book = self.book.lock();
        book.through_seq = book.through_seq.max(alert.seq);
        if book.alerts.iter().any(|a| a.id == alert.id) {
            return;
        }
        let acked = book.acked.get(&alert.id).copied();
        book.alerts
            .push_back(ShownAlert::from_received(alert, acked));
        while book.alerts.len() > MAX_ALERTS {
            book.alerts.pop_front();
        }
    }

    /// Newest first.
    pub fn newest(&self) -> Vec<ShownAlert> {
        self.book.lock().alerts.iter().rev().cloned().collect()
    }

    pub fn find(&self, id: &str) -> Option<ShownAlert> {
        self.book.lock().alerts.iter().find(|a| a.id == id).cloned()
    }

    /// Records that the physician acknowledged `id` at `at_ms`.
    pub fn acknowledged(&self, id: &str, at_ms: i64) {
        let mut book = self.book.lock();
        for alert in book.alerts.iter_mut().filter(|a| a.id == id) {
            alert.acknowledged_at_ms = Some(at_ms);
        }
        book.acked.insert(id.to_owned(), at_ms);
        if book.acked.len() > MAX_ACKED {
            // Keep the newest: rewrite the file from memory.
            let mut newest: Vec<(String, i64)> = book.acked.drain().collect();
            newest.sort_by_key(|(_, at)| std::cmp::Reverse(*at));
            newest.truncate(MAX_ACKED / 2);
            book.acked = newest.iter().cloned().collect();
            let text: String = newest
                .iter()
                .rev()
                .map(|(id, at)| format!("{id} {at}\n"))
                .collect();
            if let Err(e) =
                glyco_contracts::files::write_atomically(&self.acked_file, text.as_bytes())
            {
                tracing::warn!(error = %e, "cannot keep acknowledgements");
            }
            return;
        }
        drop(book);
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.acked_file)
            .and_then(|mut f| writeln!(f, "{id} {at_ms}"));
        if let Err(e) = appended {
            tracing::warn!(error = %e, "cannot keep the acknowledgement");
        }
    }

    pub fn state(&self, configured: bool) -> InboxState {
        let book = self.book.lock();
        InboxState {
            configured,
            connected: book.connected,
            error: book.error.clone(),
        }
    }

    fn set_connection(&self, connected: bool, error: Option<String>) {
        let mut book = self.book.lock();
        book.connected = connected;
        book.error = error;
    }

    fn through(&self) -> u64 {
        self.book.lock().through_seq
    }
}

/// Follows the inbox until `shutdown`.
pub async fn follow(dash: Arc<Dashboard>, shutdown: CancellationToken) {
    let Some(inbox) = dash.inbox.clone() else {
        return;
    };
    let mut pause = Duration::from_secs(1);
    loop {
        let mut connected = false;
        let round = async {
            let mut stream = Follow::start(
                &dash.endpoint,
                &inbox,
                &dash.signer,
                dash.alerts.through(),
                true,
            )
            .await?;
            dash.alerts.set_connection(true, None);
            connected = true;
            while let Some(next) = stream.next(&dash.umbral).await? {
                if let Followed::Alert(alert) = next {
                    dash.alerts.add(alert);
                }
            }
            stream.close();
            Ok::<_, crate::alert_client::AlertClientError>(())
        };
        let ended = tokio::select! {
            _ = shutdown.cancelled() => return,
            ended = round => ended,
        };
        let why = match ended {
            Ok(()) => "the inbox closed the stream".to_owned(),
            Err(e) => e.to_string(),
        };
        if connected {
            pause = Duration::from_secs(1);
        }
        tracing::warn!(error = %why, "alert inbox stream ended; reconnecting");
        dash.alerts.set_connection(false, Some(why));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}
