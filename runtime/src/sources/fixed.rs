//! `static`: constant values from the scaler's `metrics` table, the same every
//! tick (examples, tests and the 10,000-scaler bench).

use super::{MetricQuery, Reading, Source, SourceError, Values, ready};
use futures_core::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The values, shared with every reading (no copy per tick).
#[derive(Debug, Clone)]
pub struct Fixed(Values);

impl Fixed {
    /// The numbers in `metrics`; queries are not values and are left out.
    pub fn new(metrics: &BTreeMap<String, MetricQuery>) -> Self {
        Fixed(Arc::new(
            metrics
                .iter()
                .filter_map(|(k, q)| match q {
                    MetricQuery::Value(v) => Some((k.clone(), *v)),
                    MetricQuery::Query(_) => None,
                })
                .collect(),
        ))
    }
}

impl Source for Fixed {
    fn read(&mut self) -> BoxFuture<'_, Result<Reading, SourceError>> {
        ready(Ok(Reading {
            values: self.0.clone(),
            ..Reading::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_shared_and_queries_left_out() {
        let metrics = [
            ("queue_depth".to_owned(), MetricQuery::Value(4.0)),
            ("p95".to_owned(), MetricQuery::Query("up".into())),
        ]
        .into();
        let mut s = Fixed::new(&metrics);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let a = rt.block_on(s.read()).unwrap();
        let b = rt.block_on(s.read()).unwrap();
        assert_eq!(a.values.len(), 1);
        assert!(Arc::ptr_eq(&a.values, &b.values));
    }
}
