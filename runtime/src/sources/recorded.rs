//! Snapshots recorded in an audit log, replayed whole (`wasmscale replay`).

use super::{Reading, Source, SourceError, ready};
use crate::model::Snapshot;
use futures_core::future::BoxFuture;
use std::collections::VecDeque;

/// Each recorded snapshot with the metrics it lacked, in order.
#[derive(Debug, Default)]
pub struct Recorded(VecDeque<(Snapshot, Vec<String>)>);

impl Recorded {
    pub fn new(snapshots: impl IntoIterator<Item = (Snapshot, Vec<String>)>) -> Self {
        Recorded(snapshots.into_iter().collect())
    }
}

impl Source for Recorded {
    fn read(&mut self) -> BoxFuture<'_, Result<Reading, SourceError>> {
        ready(match self.0.pop_front() {
            Some((snapshot, missing)) => Ok(Reading {
                time_ms: Some(snapshot.time_ms),
                snapshot: Some(snapshot),
                missing,
                ..Reading::default()
            }),
            None => Err(SourceError::Unavailable(
                "no recorded snapshots left".into(),
            )),
        })
    }
}
