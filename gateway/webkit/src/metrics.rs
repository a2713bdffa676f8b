//! The Prometheus text exposition format (version 0.0.4), written from a
//! snapshot at each scrape: the hub and the clinic node compute their
//! numbers from their status, so there is no registry to keep in step.
//! Names follow Prometheus's conventions: a `glyco_` prefix, base units
//! (`_seconds`, `_bytes`), `_total` on counters.

use std::fmt::Write as _;

/// The content type Prometheus expects for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One scrape's text, family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a metric family: its help line and type. Samples of it follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        debug_assert!(valid_name(name), "{name}");
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// A sample with labels (names are the program's, values are escaped).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
        self
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// A `Name:   123 kB` field of a /proc file, in KiB.
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    })
}

/// This process's resident memory (KiB) and user plus system CPU time
/// (ms), from /proc/self; `None` for what cannot be read.
pub fn process_figures() -> (Option<u64>, Option<u64>) {
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| kib_field(&status, "VmRSS:"));
    // utime and stime, fields 14 and 15, in clock ticks (100 a second on
    // Linux); the command name may hold spaces, so count from its ')'.
    let cpu_ms = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let rest = stat.rsplit_once(')')?.1.to_owned();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some(ticks * 10)
        });
    (rss_kib, cpu_ms)
}

/// The standard process metrics (`process_resident_memory_bytes`,
/// `process_cpu_seconds_total`) from figures the caller has (see
/// [`process_figures`]); nothing is written for a figure it lacks.
pub fn process(e: &mut Exposition, rss_kib: Option<u64>, cpu_ms: Option<u64>) {
    if let Some(kib) = rss_kib {
        e.single(
            "process_resident_memory_bytes",
            Kind::Gauge,
            "Resident memory size in bytes.",
            (kib * 1024) as f64,
        );
    }
    if let Some(ms) = cpu_ms {
        e.single(
            "process_cpu_seconds_total",
            Kind::Counter,
            "Total user and system CPU time spent in seconds.",
            ms as f64 / 1000.0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escapes() {
        let mut e = Exposition::new();
        e.single("glyco_up", Kind::Gauge, "Whether it runs.", 1.0);
        e.family(
            "glyco_refusals_total",
            Kind::Counter,
            "Refusals.\nBy reason.",
        )
        .sample("glyco_refusals_total", &[("reason", "a\"b\\c\nd")], 3.0)
        .sample(
            "glyco_refusals_total",
            &[("reason", "x"), ("transport", "ble")],
            0.5,
        );
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP glyco_up Whether it runs.\n# TYPE glyco_up gauge\nglyco_up 1\n\
             # HELP glyco_refusals_total Refusals.\\nBy reason.\n# TYPE glyco_refusals_total counter\n\
             glyco_refusals_total{reason=\"a\\\"b\\\\c\\nd\"} 3\n\
             glyco_refusals_total{reason=\"x\",transport=\"ble\"} 0.5\n"
        );
        assert_eq!(number(f64::NAN), "NaN");
        assert!(!valid_name("9x") && valid_name("glyco_x:y"));
    }
}
