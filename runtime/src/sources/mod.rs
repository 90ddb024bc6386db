//! Sources: where each tick's metric values come from. A value a source cannot
//! get is *missing* (absent from the snapshot), never zero.
//!
//! Each kind is a module with its config beside its code. Adding one is a
//! module, a variant of [`SourceConfig`] and its arm in [`SourceConfig::build`].
//! The simulator's cluster and `replay`'s recorded snapshots implement
//! [`Source`] too, from above: nothing here knows them.

mod fixed;
mod prometheus;
mod recorded;
mod replay;

pub use fixed::Fixed;
pub use prometheus::{Prometheus, PrometheusConfig};
pub use recorded::Recorded;
pub use replay::{Replay, ReplayConfig};

use futures_core::future::BoxFuture;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
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
    pub snapshot: Option<crate::model::Snapshot>,
}

/// Where a scaler's readings come from. Boxed futures keep the trait object
/// safe, so a scaler holds any kind; sources that answer at once return a
/// ready one.
pub trait Source: Send + std::fmt::Debug {
    /// Read one tick.
    fn read(&mut self) -> BoxFuture<'_, Result<Reading, SourceError>>;
}

/// Where snapshots come from (`source = { type = ... }`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SourceConfig {
    /// Constant values from `metrics` (for examples and tests).
    #[default]
    Static,
    /// Instant queries against a Prometheus server, one per `metrics` entry.
    Prometheus(PrometheusConfig),
    /// A recorded trace (CSV with a header, or JSON lines of snapshots), one row per tick.
    Replay(ReplayConfig),
}

/// A metric's query (Prometheus) or constant value (static source).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum MetricQuery {
    Value(f64),
    Query(String),
}

impl SourceConfig {
    /// The configured source. `metrics` is the scaler's `metrics` table;
    /// `base` resolves relative paths.
    pub fn build(
        &self,
        metrics: &BTreeMap<String, MetricQuery>,
        base: &Path,
    ) -> Result<Box<dyn Source>, SourceError> {
        Ok(match self {
            SourceConfig::Static => Box::new(Fixed::new(metrics)),
            SourceConfig::Replay(c) => Box::new(Replay::open(&base.join(&c.path), c.repeat)?),
            SourceConfig::Prometheus(c) => Box::new(Prometheus::new(c, metrics)?),
        })
    }

    /// The metric names this source can fill, for validation: a trace's
    /// columns, otherwise the `metrics` table's keys.
    pub fn provided(
        &self,
        metrics: &BTreeMap<String, MetricQuery>,
        base: &Path,
    ) -> Result<Vec<String>, SourceError> {
        match self {
            SourceConfig::Replay(c) => Ok(Replay::open(&base.join(&c.path), false)?.columns()),
            _ => Ok(metrics.keys().cloned().collect()),
        }
    }

    /// Values like those this source would give, for a trial evaluation:
    /// static values, a trace's first row, or 1.0 for each query.
    pub fn sample(
        &self,
        metrics: &BTreeMap<String, MetricQuery>,
        base: &Path,
    ) -> Option<BTreeMap<String, f64>> {
        match self {
            SourceConfig::Replay(c) => Replay::open(&base.join(&c.path), false)
                .ok()
                .map(|r| r.first_row()),
            _ => Some(
                metrics
                    .iter()
                    .map(|(k, q)| match q {
                        MetricQuery::Value(v) => (k.clone(), *v),
                        MetricQuery::Query(_) => (k.clone(), 1.0),
                    })
                    .collect(),
            ),
        }
    }

    /// Its request timeout, for the config's bounds on every duration.
    pub fn timeout_ms(&self) -> Option<u64> {
        match self {
            SourceConfig::Prometheus(c) => Some(c.timeout_ms),
            SourceConfig::Static | SourceConfig::Replay(_) => None,
        }
    }

    /// How to fill metric `name` with this kind of source.
    pub fn fill_hint(&self, name: &str) -> String {
        match self {
            SourceConfig::Replay(_) => format!("add a `{name}` column to the trace"),
            SourceConfig::Static => format!("add metrics.{name} = <value>"),
            SourceConfig::Prometheus(_) => format!("add metrics.{name} = \"<PromQL query>\""),
        }
    }
}

/// A source that answers at once.
fn ready<'a>(reading: Result<Reading, SourceError>) -> BoxFuture<'a, Result<Reading, SourceError>> {
    Box::pin(std::future::ready(reading))
}
