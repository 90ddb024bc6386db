//! `replay`: a recorded trace played one row per tick.

use super::{Reading, Source, SourceError, ready};
use futures_core::future::BoxFuture;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `source = { type = "replay", path = "...", repeat = false }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// CSV with a header, or JSON lines; relative to the config file.
    pub path: PathBuf,
    /// Start over at the end instead of failing every tick.
    #[serde(default)]
    pub repeat: bool,
}

/// A recorded trace played one row per tick: CSV with a header whose columns
/// are snapshot fields (or custom metrics), or JSON lines of flat objects.
/// A `time_ms` column, if present, is kept as the row's time.
#[derive(Debug)]
pub struct Replay {
    path: PathBuf,
    /// Every column (or key) the trace has: a row without one of them is
    /// missing that metric on that tick.
    columns: Vec<String>,
    rows: Vec<BTreeMap<String, f64>>,
    next: usize,
    repeat: bool,
}

fn is_jsonl(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "ndjson" | "json")
    )
}

fn load_rows(path: &Path) -> Result<Vec<BTreeMap<String, f64>>, SourceError> {
    let err = |message: String| SourceError::Trace {
        path: path.display().to_string(),
        message: crate::snapshot::clip_message(message),
    };
    crate::host::regular_file(path).map_err(err)?;
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let mut rows = Vec::new();
    if is_jsonl(path) {
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(line).map_err(|e| err(format!("line {}: {e}", i + 1)))?;
            rows.push(
                v.into_iter()
                    .filter_map(|(k, v)| v.as_f64().map(|x| (k, x)))
                    .collect(),
            );
        }
    } else {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().map_err(|e| err(e.to_string()))?.clone();
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(|e| err(format!("row {}: {e}", i + 2)))?;
            // Empty or non-numeric cells are missing values.
            rows.push(
                headers
                    .iter()
                    .zip(record.iter())
                    .filter_map(|(h, v)| v.trim().parse::<f64>().ok().map(|x| (h.to_owned(), x)))
                    .collect(),
            );
        }
    }
    if rows.is_empty() {
        return Err(err("no rows".into()));
    }
    Ok(rows)
}

impl Replay {
    pub fn open(path: &Path, repeat: bool) -> Result<Self, SourceError> {
        let rows = load_rows(path)?;
        let mut columns: Vec<String> = rows.iter().flat_map(|r| r.keys().cloned()).collect();
        columns.sort();
        columns.dedup();
        columns.retain(|c| c != "time_ms");
        Ok(Replay {
            path: path.to_path_buf(),
            columns,
            rows,
            next: 0,
            repeat,
        })
    }

    /// The columns (metric names) the trace provides.
    pub fn columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    /// The trace's first row.
    pub fn first_row(&self) -> BTreeMap<String, f64> {
        self.rows.first().cloned().unwrap_or_default()
    }

    fn next_row(&mut self) -> Result<Reading, SourceError> {
        if self.next >= self.rows.len() {
            if !self.repeat {
                return Err(SourceError::Exhausted {
                    path: self.path.display().to_string(),
                    rows: self.rows.len(),
                });
            }
            self.next = 0;
        }
        let mut values = self.rows[self.next].clone();
        self.next += 1;
        let time_ms = values.remove("time_ms").map(|t| t as u64);
        let values = Arc::new(values);
        let missing = self
            .columns
            .iter()
            .filter(|c| !values.contains_key(*c))
            .cloned()
            .collect();
        Ok(Reading {
            values,
            missing,
            time_ms,
            snapshot: None,
        })
    }
}

impl Source for Replay {
    fn read(&mut self) -> BoxFuture<'_, Result<Reading, SourceError>> {
        ready(self.next_row())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(text: &str, name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_replayed_row_without_a_column_has_that_metric_missing_then_the_trace_ends() {
        let (_dir, path) = trace(
            "time_ms,queue_depth,gpu_utilization\n5,10,0.5\n6,20,\n",
            "t.csv",
        );
        let mut r = Replay::open(&path, false).unwrap();
        assert_eq!(r.columns, ["gpu_utilization", "queue_depth"]);
        let first = r.next_row().unwrap();
        assert_eq!((first.time_ms, first.missing.len()), (Some(5), 0));
        let second = r.next_row().unwrap();
        assert_eq!(second.missing, ["gpu_utilization"]);
        assert_eq!(second.values.get("queue_depth"), Some(&20.0));
        let end = r.next_row().unwrap_err();
        assert_eq!(end.kind(), "exhausted");
        // With repeat it starts over.
        let mut r = Replay::open(&path, true).unwrap();
        for _ in 0..3 {
            r.next_row().unwrap();
        }
    }

    #[test]
    fn bad_traces_are_typed_errors_with_short_messages() {
        let (_dir, path) = trace("", "empty.csv");
        assert_eq!(Replay::open(&path, false).unwrap_err().kind(), "trace");
        let (_dir, path) = trace("{not json\n", "bad.jsonl");
        assert!(
            Replay::open(&path, false)
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
        let e = Replay::open(Path::new("/dev/zero"), false).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let huge = format!("{{\"{}\": 1}}\n{{", "k".repeat(100_000));
        let (_dir, path) = trace(&huge, "huge.jsonl");
        assert!(Replay::open(&path, false).unwrap_err().to_string().len() < 1000);
    }
}
