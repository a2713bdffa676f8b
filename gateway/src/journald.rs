//! Logging to the systemd journal with structured fields. Under systemd
//! (stderr is the journal's stream: JOURNAL_STREAM) every tracing event
//! becomes one journal entry through systemd-journal-logger: MESSAGE, the
//! priority from the level, the target and code location, and each field
//! of the event and of its spans as `GLYCO_<NAME>` (`device` →
//! `GLYCO_DEVICE`, `reason`, `kind`, `severity`, ...), so that
//! `journalctl -u glyco-hub GLYCO_DEVICE=ble:C0:26:DA:01:02:03` finds a
//! device's story. Elsewhere the hub keeps writing text to stderr.

use std::fmt::Write as _;

use systemd_journal_logger::JournalLog;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Fields longer than this are cut (a journal entry is not a dump).
const MAX_FIELD_BYTES: usize = 4096;

/// The journal field for a tracing field: `GLYCO_` and the name in capitals,
/// anything else than letters and digits an underscore.
pub fn field_name(name: &str) -> String {
    let mut out = String::from("GLYCO_");
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    out.truncate(64);
    out
}

#[derive(Debug, Default, Clone)]
struct Fields {
    message: Option<String>,
    pairs: Vec<(String, String)>,
}

impl Fields {
    fn put(&mut self, field: &Field, mut value: String) {
        if value.len() > MAX_FIELD_BYTES {
            let mut end = MAX_FIELD_BYTES;
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            value.truncate(end);
        }
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            let name = field_name(field.name());
            self.pairs.retain(|(n, _)| *n != name);
            self.pairs.push((name, value));
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.put(field, text);
    }
}

/// A tracing layer that sends each event to the journal.
pub struct JournalLayer {
    journal: JournalLog,
}

impl JournalLayer {
    /// The layer, if stderr is the journal's stream and its socket answers.
    pub fn when_under_systemd() -> Option<Self> {
        if !systemd_journal_logger::connected_to_journal() {
            return None;
        }
        let journal = JournalLog::new().ok()?;
        Some(Self {
            journal: journal.with_syslog_identifier("glyco-hub".into()),
        })
    }
}

fn log_level(level: &Level) -> log::Level {
    match *level {
        Level::ERROR => log::Level::Error,
        Level::WARN => log::Level::Warn,
        Level::INFO => log::Level::Info,
        Level::DEBUG => log::Level::Debug,
        Level::TRACE => log::Level::Trace,
    }
}

impl<S> Layer<S> for JournalLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // The spans' fields first (outermost first), then the event's own,
        // which win on a clash.
        let mut fields = Fields::default();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(own) = span.extensions().get::<Fields>() {
                    for (name, value) in &own.pairs {
                        fields.pairs.retain(|(n, _)| n != name);
                        fields.pairs.push((name.clone(), value.clone()));
                    }
                }
            }
        }
        let mut own = Fields::default();
        event.record(&mut own);
        for (name, value) in own.pairs {
            fields.pairs.retain(|(n, _)| *n != name);
            fields.pairs.push((name, value));
        }
        let meta = event.metadata();
        let message = own.message.unwrap_or_default();
        let pairs: Vec<(&str, &str)> = fields
            .pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        // A lost log line must not take the hub down.
        let _ = self.journal.journal_send(
            &log::Record::builder()
                .args(format_args!("{message}"))
                .level(log_level(meta.level()))
                .target(meta.target())
                .module_path(meta.module_path())
                .file(meta.file())
                .line(meta.line())
                .key_values(&pairs)
                .build(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracing_fields_become_glyco_journal_fields() {
        assert_eq!(field_name("device"), "GLYCO_DEVICE");
        assert_eq!(field_name("finding.kind"), "GLYCO_FINDING_KIND");
        assert_eq!(field_name(&"x".repeat(100)).len(), 64);
    }
}
