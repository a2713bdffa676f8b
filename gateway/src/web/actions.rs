//! Every change made through the web app, logged: in the hub's log, and the
//! latest ones in the journal (meta `web-actions`) for the Hub page.

use std::collections::VecDeque;
use std::net::IpAddr;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::journal::{Journal, JournalWriter};
use crate::reading::now_millis;

pub const ACTIONS_META: &str = "web-actions";
/// Actions kept in the journal and shown.
const KEPT: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub at_ms: i64,
    pub from: IpAddr,
    pub what: String,
}

#[derive(Debug, Default)]
pub struct ActionLog {
    recent: Mutex<VecDeque<Action>>,
}

impl ActionLog {
    /// The log as kept in the journal.
    pub fn load(journal: &Journal) -> Self {
        let recent = journal
            .meta(ACTIONS_META)
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<VecDeque<Action>>(&bytes).ok())
            .unwrap_or_default();
        Self {
            recent: Mutex::new(recent),
        }
    }

    /// Logs `what`, done from `from`, and keeps it.
    pub async fn record(&self, writer: &JournalWriter, from: IpAddr, what: String) {
        tracing::info!(target: "glyco_gateway::web", %from, action = %what, "web action");
        let json = {
            let mut recent = self.recent.lock();
            if recent.len() == KEPT {
                recent.pop_front();
            }
            recent.push_back(Action {
                at_ms: now_millis(),
                from,
                what,
            });
            serde_json::to_vec(&*recent).unwrap_or_default()
        };
        if let Err(e) = writer.save_meta(ACTIONS_META, json).await {
            tracing::warn!(error = %e, "a web action was not kept in the journal");
        }
    }

    /// The latest actions, newest first.
    pub fn newest(&self, limit: usize) -> Vec<Action> {
        self.recent
            .lock()
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }
}
