//! Errors of the library. The binary wraps them in anyhow for its reports.

use std::path::PathBuf;

/// Everything that can go wrong inside glyco-ml. `observe` returns these
/// instead of panicking on bad input.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// A measurement value that is not a finite number.
    #[error("{what} is not a finite number")]
    NotFinite { what: &'static str },
    /// A finite value outside what any sensor of that kind can report.
    #[error("{what} = {value} is outside the plausible range {min}..={max}")]
    Implausible {
        what: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
    /// A timestamp before 1970 or after 2100: a broken device clock.
    #[error("timestamp {at_ms} ms is outside 1970..2100")]
    Timestamp { at_ms: i64 },
    /// A second CGM reading with the same timestamp as the previous one.
    #[error("duplicate CGM timestamp {at_ms} ms")]
    DuplicateTimestamp { at_ms: i64 },
    /// A model file could not be read.
    #[error("reading model file {path}: {source}")]
    ModelIo {
        path: PathBuf,
        source: std::io::Error,
    },
    /// tract refused or failed to run a model.
    #[error("model {model}: {message}")]
    Model {
        model: &'static str,
        message: String,
    },
    /// The model configuration (detector.json) does not match this code.
    #[error("model configuration: {0}")]
    Config(String),
    /// A user data file could not be parsed.
    #[error("{file}:{line}: {message}")]
    Parse {
        file: String,
        line: usize,
        message: String,
    },
    /// A user data file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl MlError {
    pub(crate) fn model(model: &'static str, error: impl std::fmt::Display) -> Self {
        MlError::Model {
            model,
            message: format!("{error:#}"),
        }
    }
}
