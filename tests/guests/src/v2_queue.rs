//! Not hostile: a 0.2 policy for the contract's tests. It declares
//! `queue_depth` and `custom:backlog` (plus any names in `params.signals`,
//! and `params.many` custom ones), scales on their sum, holds when the queue is
//! unknown, and returns its state (how often its decision changed, padded to
//! `params.state_bytes`) only when the decision changes.

use wasmscale_sdk::v2::{Outcome, Policy, Tick};

#[derive(Default)]
pub struct V2Queue {
    target: f64,
    state_bytes: usize,
    last: Option<f64>,
    changes: u32,
}

impl Policy for V2Queue {
    fn configure(&mut self, params: &str) -> Result<Vec<String>, String> {
        let v: serde_json::Value = serde_json::from_str(params).map_err(|e| e.to_string())?;
        self.target = v["target_per_replica"].as_f64().unwrap_or(10.0);
        self.state_bytes = v["state_bytes"].as_u64().unwrap_or(0) as usize;
        let mut signals = vec!["queue_depth".to_owned(), "custom:backlog".to_owned()];
        if let Some(extra) = v["signals"].as_array() {
            signals.extend(extra.iter().filter_map(|s| s.as_str().map(str::to_owned)));
        }
        if let Some(n) = v["many"].as_u64() {
            signals.extend((0..n).map(|i| format!("custom:m{i}")));
        }
        Ok(signals)
    }

    fn evaluate(&mut self, tick: &Tick) -> Result<Outcome, String> {
        let Some(queue) = tick.values.first().copied().flatten() else {
            return Ok(Outcome::hold("queue_depth unknown"));
        };
        let backlog = tick.values.get(1).copied().flatten().unwrap_or(0.0);
        let desired = ((queue + backlog) / self.target).ceil();
        let outcome = Outcome::scale(desired, format!("queue {queue} + backlog {backlog}"));
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
