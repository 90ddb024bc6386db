//! Keeps as much state as its params ask for (`{"bytes": N}`), growing by
//! `grow` bytes per evaluation. Expected: refused past `max_state_bytes`, the
//! instance rebuilt from its last good state.
use wasmscale_sdk::{Decision, Policy, Snapshot};

#[derive(Default)]
pub struct HugeState {
    state: Vec<u8>,
    grow: usize,
}

impl Policy for HugeState {
    fn configure(&mut self, p: &str) -> Result<(), String> {
        let v: serde_json::Value = serde_json::from_str(p).map_err(|e| e.to_string())?;
        let bytes = v["bytes"].as_u64().unwrap_or(0) as usize;
        self.grow = v["grow"].as_u64().unwrap_or(0) as usize;
        self.state = vec![7; bytes];
        Ok(())
    }
    fn evaluate(&mut self, s: &Snapshot) -> Result<Decision, String> {
        self.state.resize(self.state.len() + self.grow, 7);
        crate::hold(s)
    }
    fn save_state(&self) -> Vec<u8> {
        self.state.clone()
    }
    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        self.state = state.to_vec();
        Ok(())
    }
}
