//! User data files for `glyco-ml eval`: CSV and Nightscout entries JSON.
//!
//! CSV (header row required, column names case-insensitive, extra columns
//! ignored):
//! - `subject_id` (or `subject`, `patient_id`, `id`): optional, default "subject"
//! - `timestamp` (or `time`, `date`, `datetime`): RFC 3339 or unix s / ms
//! - `glucose_mg_dl` (or `glucose`, `sgv`, `mg_dl`, `gl` as iglu writes it): mg/dL
//! - `fault` (or `label`): optional per-reading label, see `FaultKind`
//! - `source` (or `type`): optional, `cgm`/`sgv` (default) or `capillary`/`mbg`
//! - `sensor_session` (or `sensor_id`, `sensor_serial`): optional; a change
//!   of value between CGM rows is a sensor change-over
//!
//! Rows are kept in file order per subject: the order is how the device sent
//! them, and a timestamp that goes backwards is itself a finding.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::MlError;
use crate::finding::FaultKind;
use crate::time::parse_timestamp_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cgm,
    Capillary,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub at_ms: i64,
    pub mg_dl: f64,
    pub source: Source,
    /// `None`: the file has no labels. `Some(None)`: labelled clean.
    pub label: Option<Option<FaultKind>>,
    /// Which sensor made the reading, when the file says.
    pub sensor: Option<String>,
}

/// Readings per subject, each in arrival order.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub subjects: BTreeMap<String, Vec<Record>>,
    /// Whether the file carried fault labels.
    pub labelled: bool,
    /// Rows skipped because the glucose cell was empty.
    pub skipped_rows: usize,
}

impl Dataset {
    pub fn readings(&self) -> usize {
        self.subjects.values().map(Vec::len).sum()
    }
}

impl Record {
    /// The reading as a monitor takes it; `new_sensor` marks a CGM reading
    /// whose sensor differs from the previous CGM reading's.
    pub fn sample(&self, new_sensor: bool) -> crate::sample::Sample {
        use crate::sample::{Measurement, Sample, SensorFlags};
        let measurement = match self.source {
            Source::Cgm => Measurement::CgmGlucose { mg_dl: self.mg_dl },
            Source::Capillary => Measurement::CapillaryGlucose { mg_dl: self.mg_dl },
        };
        Sample::new(self.at_ms, measurement).with_flags(SensorFlags {
            new_sensor,
            ..SensorFlags::default()
        })
    }
}

/// Per record of one subject: whether it is the first reading of a new
/// sensor (its `sensor` differs from the previous CGM record's).
pub fn sensor_changes(records: &[Record]) -> Vec<bool> {
    let mut previous: Option<&str> = None;
    records
        .iter()
        .map(|r| {
            if r.source != Source::Cgm {
                return false;
            }
            let current = r.sensor.as_deref();
            let changed = matches!((previous, current), (Some(a), Some(b)) if a != b);
            if current.is_some() {
                previous = current;
            }
            changed
        })
        .collect()
}

/// Times a monitor accepts (1970..2100); others are errors in the file.
fn in_range(at_ms: i64) -> Result<i64, String> {
    if crate::sample::TIMESTAMP_RANGE_MS.contains(&at_ms) {
        Ok(at_ms)
    } else {
        Err(format!("timestamp {at_ms} ms is outside 1970..2100"))
    }
}

fn find_column(headers: &csv::StringRecord, names: &[&str]) -> Option<usize> {
    headers
        .iter()
        .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
}

fn parse_source(text: &str) -> Result<Source, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "cgm" | "sgv" => Ok(Source::Cgm),
        "capillary" | "mbg" | "meter" | "fingerstick" => Ok(Source::Capillary),
        other => Err(format!("unknown source {other:?} (cgm or capillary)")),
    }
}

/// Parses CSV text; `file` names it in errors.
pub fn parse_csv(text: &str, file: &str) -> Result<Dataset, MlError> {
    let error = |line: usize, message: String| MlError::Parse {
        file: file.to_string(),
        line,
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| error(1, e.to_string()))?
        .clone();
    let subject_col = find_column(&headers, &["subject_id", "subject", "patient_id", "id"]);
    let time_col = find_column(&headers, &["timestamp", "time", "date", "datetime"])
        .ok_or_else(|| error(1, "no timestamp column".into()))?;
    let glucose_col = find_column(
        &headers,
        &["glucose_mg_dl", "glucose", "sgv", "mg_dl", "gl"],
    )
    .ok_or_else(|| error(1, "no glucose_mg_dl column".into()))?;
    let label_col = find_column(&headers, &["fault", "label"]);
    let source_col = find_column(&headers, &["source", "type"]);
    let sensor_col = find_column(&headers, &["sensor_session", "sensor_id", "sensor_serial"]);
    let mut data = Dataset {
        labelled: label_col.is_some(),
        ..Dataset::default()
    };
    for (index, row) in reader.records().enumerate() {
        let line = index + 2;
        let row = row.map_err(|e| error(line, e.to_string()))?;
        let cell = |col: usize| row.get(col).unwrap_or("").trim();
        if cell(glucose_col).is_empty() {
            data.skipped_rows += 1;
            continue;
        }
        let mg_dl: f64 = cell(glucose_col).parse().map_err(|_| {
            error(
                line,
                format!("glucose {:?} is not a number", cell(glucose_col)),
            )
        })?;
        let at_ms = parse_timestamp_ms(cell(time_col))
            .and_then(in_range)
            .map_err(|m| error(line, m))?;
        let label = match label_col {
            Some(col) => Some(FaultKind::parse_label(cell(col)).map_err(|m| error(line, m))?),
            None => None,
        };
        let source = match source_col {
            Some(col) => parse_source(cell(col)).map_err(|m| error(line, m))?,
            None => Source::Cgm,
        };
        let subject = subject_col.map_or("subject", |col| cell(col));
        let subject = if subject.is_empty() {
            "subject"
        } else {
            subject
        };
        data.subjects
            .entry(subject.to_string())
            .or_default()
            .push(Record {
                at_ms,
                mg_dl,
                source,
                label,
                sensor: sensor_col
                    .map(cell)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.chars().take(64).collect()),
            });
    }
    Ok(data)
}

#[derive(Deserialize)]
struct NightscoutEntry {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    sgv: Option<f64>,
    #[serde(default)]
    mbg: Option<f64>,
    #[serde(default)]
    date: Option<f64>,
    #[serde(rename = "dateString", default)]
    date_string: Option<String>,
    #[serde(default)]
    device: Option<String>,
    /// glyco extension: a per-entry fault label.
    #[serde(default)]
    fault: Option<String>,
}

/// Parses a Nightscout `/api/v1/entries.json` export: `sgv` entries are CGM,
/// `mbg` entries capillary, others (`cal`, ...) are ignored. The subject is
/// the entry's `device`, else `default_subject`. Nightscout lists newest
/// first, so each subject's entries are sorted by `date`.
pub fn parse_nightscout(text: &str, file: &str, default_subject: &str) -> Result<Dataset, MlError> {
    let entries: Vec<NightscoutEntry> = serde_json::from_str(text).map_err(|e| MlError::Parse {
        file: file.to_string(),
        line: e.line(),
        message: e.to_string(),
    })?;
    let mut data = Dataset {
        labelled: entries.iter().any(|e| e.fault.is_some()),
        ..Dataset::default()
    };
    for (index, entry) in entries.into_iter().enumerate() {
        let error = |message: String| MlError::Parse {
            file: file.to_string(),
            line: index + 1,
            message: format!("entry {index}: {message}"),
        };
        let (mg_dl, source) = match entry.kind.as_deref().unwrap_or("sgv") {
            "sgv" => (entry.sgv, Source::Cgm),
            "mbg" => (entry.mbg, Source::Capillary),
            _ => continue,
        };
        let Some(mg_dl) = mg_dl else {
            data.skipped_rows += 1;
            continue;
        };
        let at_ms = match (entry.date, &entry.date_string) {
            (Some(ms), _) if ms.is_finite() => in_range(ms as i64).map_err(error)?,
            (_, Some(text)) => parse_timestamp_ms(text).and_then(in_range).map_err(error)?,
            _ => return Err(error("no date or dateString".into())),
        };
        let label = if data.labelled {
            Some(FaultKind::parse_label(entry.fault.as_deref().unwrap_or("")).map_err(error)?)
        } else {
            None
        };
        let subject = entry.device.unwrap_or_else(|| default_subject.to_string());
        data.subjects.entry(subject).or_default().push(Record {
            at_ms,
            mg_dl,
            source,
            label,
            sensor: None,
        });
    }
    for records in data.subjects.values_mut() {
        records.sort_by_key(|r| r.at_ms);
    }
    Ok(data)
}

fn read(path: &Path) -> Result<String, MlError> {
    std::fs::read_to_string(path).map_err(|source| MlError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub fn load_csv(path: &Path) -> Result<Dataset, MlError> {
    parse_csv(&read(path)?, &path.display().to_string())
}

pub fn load_nightscout(path: &Path) -> Result<Dataset, MlError> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("nightscout");
    parse_nightscout(&read(path)?, &path.display().to_string(), stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_labels_and_sources() {
        let text = "Subject_ID,timestamp,glucose_mg_dl,fault,source,extra\n\
                    a,2026-01-05T00:00:00Z,120,none,cgm,x\n\
                    a,2026-01-05T00:05:00Z,60,compression_low,,y\n\
                    b,1767571200,95,,capillary,z\n\
                    a,2026-01-05T00:10:00Z,,none,cgm,w\n";
        let data = parse_csv(text, "t.csv").expect("parses");
        assert!(data.labelled);
        assert_eq!(data.skipped_rows, 1);
        let a = &data.subjects["a"];
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].label, Some(Some(FaultKind::CompressionLow)));
        assert_eq!(a[1].at_ms - a[0].at_ms, 300_000);
        let b = &data.subjects["b"];
        assert_eq!(
            (b[0].source, b[0].label, b[0].at_ms),
            (Source::Capillary, Some(None), 1_767_571_200_000)
        );
    }

    #[test]
    fn iglu_columns_and_sensor_change_overs() {
        let text = "\"\",\"id\",\"time\",\"gl\",\"sensor_id\"\n\
                    \"1\",\"S 1\",2015-06-06 16:50:27,153,A\n\
                    \"2\",\"S 1\",2015-06-06 16:55:27,150,A\n\
                    \"3\",\"S 1\",2015-06-06 19:00:27,140,B\n\
                    \"4\",\"S 1\",2015-06-06 19:05:27,141,\n";
        let data = parse_csv(text, "iglu.csv").expect("parses");
        let records = &data.subjects["S 1"];
        assert_eq!(records.len(), 4);
        assert_eq!(records[0].mg_dl, 153.0);
        assert_eq!(sensor_changes(records), vec![false, false, true, false]);
        let sample = records[2].sample(true);
        assert!(sample.flags.new_sensor);
    }

    #[test]
    fn csv_minimal_and_errors() {
        let data = parse_csv("time,glucose\n0,100\n300000,101\n", "m.csv").expect("parses");
        assert!(!data.labelled);
        assert_eq!(data.subjects["subject"][0].label, None);
        let err =
            parse_csv("timestamp,glucose\n2026-01-05T00:00:00Z,abc\n", "bad.csv").unwrap_err();
        assert!(err.to_string().contains("bad.csv:2"), "{err}");
        assert!(parse_csv("when,glucose\n", "x").is_err());
        assert!(parse_csv("timestamp,glucose,fault\n0,100,melted\n", "x").is_err());
        assert!(parse_csv("timestamp,glucose\n9223372036854775807,100\n", "x").is_err());
    }

    #[test]
    fn nightscout_entries_sorted_oldest_first() {
        let text = r#"[
          {"type":"sgv","sgv":110,"date":1767571500000,"dateString":"2026-01-05T00:05:00.000Z","device":"xDrip-G6","direction":"Flat"},
          {"type":"sgv","sgv":112,"date":1767571200000,"device":"xDrip-G6"},
          {"type":"mbg","mbg":104,"dateString":"2026-01-05T00:02:00Z"},
          {"type":"cal","slope":1000,"date":1767571200000}
        ]"#;
        let data = parse_nightscout(text, "e.json", "me").expect("parses");
        assert!(!data.labelled);
        let g6 = &data.subjects["xDrip-G6"];
        assert_eq!(
            g6.iter().map(|r| r.mg_dl).collect::<Vec<_>>(),
            vec![112.0, 110.0]
        );
        assert_eq!(data.subjects["me"][0].source, Source::Capillary);
        assert!(parse_nightscout("{}", "e.json", "me").is_err());
    }
}
