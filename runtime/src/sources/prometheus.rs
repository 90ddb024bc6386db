//! `prometheus`: instant queries, one per `metrics` entry.

use super::{MetricQuery, Reading, Source, SourceError};
use futures_core::future::BoxFuture;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// `source = { type = "prometheus", url = "...", timeout_ms = 2000 }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    pub url: String,
    /// One deadline for all of a tick's queries.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    2_000
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
        config: &PrometheusConfig,
        metrics: &BTreeMap<String, MetricQuery>,
    ) -> Result<Self, SourceError> {
        let PrometheusConfig { url, timeout_ms } = config;
        crate::tls::install_provider();
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
            timeout: std::time::Duration::from_millis((*timeout_ms).max(1)),
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

    async fn read_all(&mut self) -> Result<Reading, SourceError> {
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

impl Source for Prometheus {
    fn read(&mut self) -> BoxFuture<'_, Result<Reading, SourceError>> {
        Box::pin(self.read_all())
    }
}
