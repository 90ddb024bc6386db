//! The one writer of the audit log: records arrive through a channel from
//! every scaler, gather for a short linger, and are written and flushed once
//! per batch.

use super::{AuditLog, AuditRecord};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Records waiting for the writer; a full channel makes ticks wait.
pub const CHANNEL: usize = 4096;

/// How long the writer lets records gather before one write and flush, in
/// microseconds: 10 ms, or a quarter of the shortest tick interval if that
/// is shorter, so a crash loses at most each scaler's last record (see the
/// README).
pub fn linger_for(shortest_interval_seconds: f64) -> u64 {
    ((shortest_interval_seconds / 4.0).clamp(0.0, 0.01) * 1e6) as u64
}

/// Run the writer until every sender is gone, then sync the log. Returns the
/// records that could not be written (each also logged); scaling never waits
/// on a failing disk. `linger` (µs) may change while it runs (a reload).
pub fn spawn(
    mut log: AuditLog,
    mut records: tokio::sync::mpsc::Receiver<AuditRecord>,
    linger: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut errors = 0u64;
        let mut batch = Vec::new();
        // Wake on the first record, let the others of that moment gather
        // for a short linger (asleep: senders wake nobody), then write them
        // all and flush once. One write per linger instead of one per tick
        // (10,000 a second); every record still reaches the OS well before
        // its scaler ticks again.
        while records.recv_many(&mut batch, CHANNEL).await > 0 {
            let micros = linger.load(Ordering::Relaxed);
            tokio::time::sleep(Duration::from_micros(micros)).await;
            while batch.len() < CHANNEL * 4
                && let Ok(record) = records.try_recv()
            {
                batch.push(record);
            }
            let n = batch.len() as u64;
            let mut failed = 0u64;
            for record in batch.drain(..) {
                if let Err(e) = log.append(&record) {
                    failed += 1;
                    tracing::error!(error = %e, "cannot write the audit log; scaling continues");
                }
            }
            if let Err(e) = log.flush() {
                // None of this batch is known to have reached the OS.
                failed = n;
                tracing::error!(error = %e, "cannot write the audit log; scaling continues");
            }
            errors += failed;
        }
        if let Err(e) = log.sync() {
            tracing::error!(error = %e, "cannot sync the audit log");
        }
        errors
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_linger_is_short_beside_every_interval() {
        assert_eq!(super::linger_for(1.0), 10_000);
        assert_eq!(super::linger_for(0.02), 5_000);
        assert_eq!(super::linger_for(f64::INFINITY), 10_000, "no scalers");
        assert_eq!(super::linger_for(0.0), 0);
    }
}
