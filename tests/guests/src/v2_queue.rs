//! Not hostile: a 0.2 policy for the contract's tests. It declares
//! `queue_depth` and `custom:backlog` (plus any names in `params.signals`,
//! and `params.many` custom ones), scales on their sum, holds when the queue is
//! unknown, and returns its state (how often its decision changed, padded to
//! `params.state_bytes`) only when the decision changes.
//!
//! Pools and replicas, by params:
//! - `spot_share`: split the count over the tick's `on-demand` and `spot`
//!   pools (spot gets the share, rounded down);
//! - `replica_signals`: read replicas with these per-replica signals, and
//!   remove first the ones whose first signal is 0 (idle), youngest first;
//! - `remove_first`: ids to remove first, in this order, those the tick has;
//! - hostile on purpose: `bad_sum` (pool targets one short), `ghost_pool`
//!   (a target for a pool the tick lacks), `ghost_victim` (a replica id the
//!   tick lacks).

use wasmscale_sdk::v2::{Outcome, Policy, Reads, View};

#[derive(Default)]
pub struct V2Queue {
    target: f64,
    state_bytes: usize,
    spot_share: Option<f64>,
    reads_replicas: bool,
    idle_signal: Option<String>,
    named: Vec<String>,
    hostile: Vec<String>,
    last: Option<f64>,
    changes: u32,
}

impl Policy for V2Queue {
    fn configure(&mut self, params: &str) -> Result<Reads, String> {
        let v: serde_json::Value = serde_json::from_str(params).map_err(|e| e.to_string())?;
        let mut reads_pools = false;
        self.target = v["target_per_replica"].as_f64().unwrap_or(10.0);
        self.state_bytes = v["state_bytes"].as_u64().unwrap_or(0) as usize;
        self.spot_share = v["spot_share"].as_f64();
        if self.spot_share.is_some() {
            reads_pools = true;
        }
        self.hostile = ["bad_sum", "ghost_pool", "ghost_victim"]
            .into_iter()
            .filter(|k| v[*k].as_bool() == Some(true))
            .map(str::to_owned)
            .collect();
        let mut reads = Reads::new().signal("queue_depth").custom("backlog");
        if reads_pools {
            reads = reads.pools();
        }
        if let Some(extra) = v["signals"].as_array() {
            reads = reads.signals(extra.iter().filter_map(|s| s.as_str()));
        }
        if let Some(n) = v["many"].as_u64() {
            reads = reads.signals((0..n).map(|i| format!("custom:m{i}")));
        }
        if let Some(ids) = v["remove_first"].as_array() {
            self.named = ids
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect();
            self.reads_replicas = true;
            reads = reads.replicas::<&str>([]);
        }
        if let Some(per_replica) = v["replica_signals"].as_array() {
            let names: Vec<&str> = per_replica.iter().filter_map(|s| s.as_str()).collect();
            self.reads_replicas = true;
            self.idle_signal = names.first().map(|s| (*s).to_owned());
            reads = reads.replicas(names);
        }
        Ok(reads)
    }

    fn evaluate(&mut self, tick: &View<'_>) -> Result<Outcome, String> {
        let Some(queue) = tick.queue_depth() else {
            return Ok(Outcome::hold("queue_depth unknown"));
        };
        let backlog = tick.custom("backlog").unwrap_or(0.0);
        let desired = ((queue + backlog) / self.target).ceil();
        let mut outcome = Outcome::scale(desired, format!("queue {queue} + backlog {backlog}"));
        if let Some(share) = self.spot_share {
            let total = desired.max(0.0) as u32;
            let spot = (f64::from(total) * share).floor() as u32;
            let short = u32::from(self.hostile.iter().any(|h| h == "bad_sum"));
            outcome = outcome
                .pool("on-demand", total - spot - short.min(total - spot))
                .pool("spot", spot);
            if self.hostile.iter().any(|h| h == "ghost_pool") {
                outcome = outcome.pool("reserved-nowhere", 0);
            }
        }
        if self.reads_replicas {
            let mut idle: Vec<_> = tick
                .replicas()
                .filter(|r| {
                    self.idle_signal
                        .as_deref()
                        .is_some_and(|s| r.value(s) == Some(0.0))
                })
                .collect();
            idle.sort_by_key(|r| r.age_ms().unwrap_or(u64::MAX));
            outcome = outcome.remove_first(idle.iter().map(|r| r.id()));
            let named = self
                .named
                .iter()
                .filter(|id| tick.replicas().any(|r| r.id() == id.as_str()));
            outcome = outcome.remove_first(named.cloned());
            if self.hostile.iter().any(|h| h == "ghost_victim") {
                outcome = outcome.remove_first(["no-such-replica"]);
            }
        }
        if self.last == Some(desired) {
            return Ok(outcome);
        }
        self.last = Some(desired);
        self.changes += 1;
        let mut state = self.changes.to_le_bytes().to_vec();
        state.resize(state.len().max(self.state_bytes), 0);
        Ok(outcome.with_state(state))
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        let bytes: [u8; 4] = state
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or("state too short")?;
        self.changes = u32::from_le_bytes(bytes);
        Ok(())
    }
}
