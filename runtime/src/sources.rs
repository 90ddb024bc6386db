//! Sources: where each tick's metric values come from. A value a source cannot
//! get is *missing* (absent from the snapshot), never zero.

use crate::config::{MetricQuery, ScalerConfig, SourceConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Metric values by snapshot field or custom metric name. Shared, because a
/// static source hands the same values to every tick (10,000 scalers must not
/// copy a map each per second).
pub type Values = Arc<BTreeMap<String, f64>>;

/// Why a source produced nothing this tick.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("cannot read trace {path}: {message}")]
    Trace { path: String, message: String },
    #[error("trace {path} is exhausted after {rows} rows")]
    Exhausted { path: String, rows: usize },
    #[error("source unavailable: {0}")]
    Unavailable(String),
}

impl SourceError {
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::Trace { .. } => "trace",
            SourceError::Exhausted { .. } => "exhausted",
            SourceError::Unavailable(_) => "unavailable",
        }
    }
}

/// One tick's readings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// Values by snapshot field or custom metric name.
    pub values: Values,
    /// Names the source should have filled but could not.
    pub missing: Vec<String>,
    /// Time recorded in the trace, when replaying one.
    pub time_ms: Option<u64>,
    /// A whole recorded snapshot (audit replay): used as it is, with the
    /// current replica count taken from the target.
    pub snapshot: Option<crate::host::Snapshot>,
}

/// A configured source.
#[derive(Debug)]
pub enum Source {
    Static(Values),
    Replay(Replay),
    Prometheus(Prometheus),
    /// The simulator's cluster: what a scrape-based source would report over
    /// the window since the last tick.
    Simulated(crate::sim::ClusterHandle),
    /// Snapshots recorded in an audit log, replayed whole (`wasmscale replay`).
    Recorded(std::collections::VecDeque<(crate::host::Snapshot, Vec<String>)>),
}

impl Source {
    pub fn from_config(s: &ScalerConfig, base: &Path) -> Result<Self, SourceError> {
        match &s.source {
            SourceConfig::Static => Ok(Source::Static(Arc::new(
                s.metrics
                    .iter()
                    .filter_map(|(k, q)| match q {
                        MetricQuery::Value(v) => Some((k.clone(), *v)),
                        MetricQuery::Query(_) => None,
                    })
                    .collect(),
            ))),
            SourceConfig::Replay { path, repeat } => {
                Replay::open(&base.join(path), *repeat).map(Source::Replay)
            }
            SourceConfig::Prometheus { url, timeout_ms } => {
                Prometheus::new(url, *timeout_ms, &s.metrics).map(Source::Prometheus)
            }
        }
    }

    /// Read one tick.
    pub async fn read(&mut self) -> Result<Reading, SourceError> {
        match self {
            Source::Prometheus(p) => p.read().await,
            Source::Static(values) => Ok(Reading {
                values: values.clone(),
                ..Reading::default()
            }),
            Source::Replay(r) => r.next(),
            Source::Simulated(cluster) => Ok(Reading {
                values: Arc::new(
                    crate::sim::lock(cluster)
                        .read_signals()
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                ),
                ..Reading::default()
            }),
            Source::Recorded(queue) => match queue.pop_front() {
                Some((snapshot, missing)) => Ok(Reading {
                    time_ms: Some(snapshot.time_ms),
                    snapshot: Some(snapshot),
                    missing,
                    ..Reading::default()
                }),
                None => Err(SourceError::Unavailable(
                    "no recorded snapshots left".into(),
                )),
            },
        }
    }
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

/// The columns (metric names) a trace provides, for config validation.
pub fn replay_columns(path: &Path) -> Result<Vec<String>, String> {
    Replay::open(path, false)
        .map(|r| r.columns)
        .map_err(|e| e.to_string())
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

    /// The trace's first row.
    pub fn first_row(&self) -> BTreeMap<String, f64> {
        self.rows.first().cloned().unwrap_or_default()
    }

    fn next(&mut self) -> Result<Reading, SourceError> {
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

/// Instant queries against Prometheus, one per metric, all at once under one
/// deadline per tick (`timeout_ms`).
/// An empty result, NaN or a failed query is *missing*; several series are
/// missing too (the query must aggregate to one value, e.g. with `sum`). When
/// every query fails the source is unavailable for the tick.
pub struct Prometheus {
    client: prometheus_http_query::Client,
    url: String,
    timeout: std::time::Duration,
    queries: Vec<(String, Arc<str>)>,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("url", &self.url)
            .field("queries", &self.queries)
            .finish()
    }
}

impl Prometheus {
    pub fn new(
        url: &str,
        timeout_ms: u64,
        metrics: &BTreeMap<String, MetricQuery>,
    ) -> Result<Self, SourceError> {
        let client = url
            .parse::<prometheus_http_query::Client>()
            .map_err(|e| SourceError::Unavailable(format!("bad prometheus url {url:?}: {e}")))?;
        let queries = metrics
            .iter()
            .filter_map(|(k, q)| match q {
                MetricQuery::Query(q) => Some((k.clone(), Arc::from(q.as_str()))),
                MetricQuery::Value(_) => None,
            })
            .collect();
        Ok(Prometheus {
            client,
            url: url.to_owned(),
            timeout: std::time::Duration::from_millis(timeout_ms.max(1)),
            queries,
        })
    }

    async fn query(
        client: prometheus_http_query::Client,
        query: Arc<str>,
    ) -> Result<Option<f64>, String> {
        let result = client
            .query(&*query)
            .get()
            .await
            .map_err(|e| e.to_string())?;
        use prometheus_http_query::response::Data;
        let value = match result.data() {
            Data::Scalar(s) => Some(s.value()),
            Data::Vector(v) if v.len() == 1 => Some(v[0].sample().value()),
            Data::Vector(v) if v.is_empty() => None,
            Data::Vector(v) => {
                return Err(format!(
                    "{} series returned; aggregate the query to one value (e.g. sum(...))",
                    v.len()
                ));
            }
            Data::Matrix(_) => {
                return Err("a range vector was returned; use an instant query".into());
            }
        };
        Ok(value.filter(|v| v.is_finite()))
    }

    async fn read(&mut self) -> Result<Reading, SourceError> {
        let mut reading = Reading::default();
        let mut values = BTreeMap::new();
        let mut failures = Vec::new();
        // Every query at once, under one deadline for the tick: a hung server
        // costs one timeout, not one per metric.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut pending = tokio::task::JoinSet::new();
        for (i, (_, q)) in self.queries.iter().enumerate() {
            let (client, q) = (self.client.clone(), q.clone());
            pending.spawn(async move { (i, Self::query(client, q).await) });
        }
        let mut results: Vec<Option<Result<Option<f64>, String>>> = vec![None; self.queries.len()];
        loop {
            match tokio::time::timeout_at(deadline, pending.join_next()).await {
                Ok(Some(Ok((i, r)))) => results[i] = Some(r),
                Ok(Some(Err(e))) => {
                    tracing::error!(error = %e, "a prometheus query task failed");
                }
                Ok(None) => break,
                Err(_) => {
                    pending.abort_all();
                    break;
                }
            }
        }
        for ((name, _), result) in self.queries.iter().zip(results) {
            let result =
                result.unwrap_or_else(|| Err(format!("timed out after {:?}", self.timeout)));
            match result {
                Ok(Some(v)) => {
                    values.insert(name.clone(), v);
                }
                Ok(None) => reading.missing.push(name.clone()),
                Err(e) => {
                    tracing::warn!(metric = %name, error = %e, url = %self.url, "prometheus query failed; the metric is missing this tick");
                    reading.missing.push(name.clone());
                    failures.push(e);
                }
            }
        }
        if !self.queries.is_empty() && failures.len() == self.queries.len() {
            return Err(SourceError::Unavailable(format!(
                "prometheus at {}: {}",
                self.url, failures[0]
            )));
        }
        reading.values = Arc::new(values);
        Ok(reading)
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
        let first = r.next().unwrap();
        assert_eq!((first.time_ms, first.missing.len()), (Some(5), 0));
        let second = r.next().unwrap();
        assert_eq!(second.missing, ["gpu_utilization"]);
        assert_eq!(second.values.get("queue_depth"), Some(&20.0));
        let end = r.next().unwrap_err();
        assert_eq!(end.kind(), "exhausted");
        // With repeat it starts over.
        let mut r = Replay::open(&path, true).unwrap();
        for _ in 0..3 {
            r.next().unwrap();
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
