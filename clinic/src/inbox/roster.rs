//! An emergency service's duty roster: the physicians its inbox names to a
//! hub whose patient's alert climbed to the emergency step. A text file,
//! one address per line (`#` starts a comment), read again on every
//! request so a shift change needs no restart. The chain stays the judge:
//! names that are not active physicians of the service are dropped.

use std::path::{Path, PathBuf};

use glyco_contracts::Address;
use glyco_seal::alerts::MAX_DUTY_ROSTER;

/// The largest roster file read.
const MAX_ROSTER_BYTES: u64 = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("reading the duty roster {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the duty roster {path} is over {MAX_ROSTER_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("the duty roster {path}, line {line}: {text:?} is not an address")]
    BadLine {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("the duty roster {path} names more than {MAX_DUTY_ROSTER} physicians")]
    TooMany { path: PathBuf },
}

#[derive(Debug, Clone)]
pub struct DutyRoster {
    path: PathBuf,
}

impl DutyRoster {
    /// A roster read from `path`; checked once now so a typo fails at start.
    pub fn open(path: &Path) -> Result<Self, RosterError> {
        let roster = Self {
            path: path.to_owned(),
        };
        roster.read()?;
        Ok(roster)
    }

    /// The physicians on duty now, in file order, without repeats.
    pub fn read(&self) -> Result<Vec<Address>, RosterError> {
        let path = &self.path;
        let read_error = |source| RosterError::Read {
            path: path.clone(),
            source,
        };
        let length = std::fs::metadata(path).map_err(read_error)?.len();
        if length > MAX_ROSTER_BYTES {
            return Err(RosterError::TooLarge { path: path.clone() });
        }
        parse(&std::fs::read_to_string(path).map_err(read_error)?, path)
    }
}

fn parse(text: &str, path: &Path) -> Result<Vec<Address>, RosterError> {
    let mut physicians = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        let physician: Address = entry.parse().map_err(|_| RosterError::BadLine {
            path: path.to_owned(),
            line: i + 1,
            text: entry.to_owned(),
        })?;
        if physicians.contains(&physician) {
            continue;
        }
        if physicians.len() == MAX_DUTY_ROSTER {
            return Err(RosterError::TooMany {
                path: path.to_owned(),
            });
        }
        physicians.push(physician);
    }
    Ok(physicians)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roster_is_addresses_with_comments_and_no_repeats() {
        let a = Address::repeat_byte(1);
        let b = Address::repeat_byte(2);
        let text = format!("# night shift\n{a}\n\n  {b}  # on call\n{a}\n");
        assert_eq!(parse(&text, Path::new("r")).unwrap(), vec![a, b]);
        let bad = parse("0x12\n", Path::new("r")).unwrap_err();
        assert!(matches!(bad, RosterError::BadLine { line: 1, .. }), "{bad}");
        let many: String = (0..=MAX_DUTY_ROSTER)
            .map(|i| format!("{}\n", Address::with_last_byte(i as u8)))
            .collect();
        assert!(matches!(
            parse(&many, Path::new("r")),
            Err(RosterError::TooMany { .. })
        ));
    }

    #[test]
    fn an_oversized_or_missing_roster_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("duty.txt");
        assert!(matches!(
            DutyRoster::open(&path),
            Err(RosterError::Read { .. })
        ));
        std::fs::write(&path, "#".repeat(MAX_ROSTER_BYTES as usize + 1)).unwrap();
        assert!(matches!(
            DutyRoster::open(&path),
            Err(RosterError::TooLarge { .. })
        ));
    }
}
