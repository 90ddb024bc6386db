//! Counts its evaluations in its state and traps when the snapshot carries the
//! custom metric `trap`. Shows that a trapped instance is rebuilt with its last
//! good state: the count continues where it was.
use wasmscale_sdk::{Decision, Policy, Snapshot};

#[derive(Default)]
pub struct FlakyCounter {
    count: u64,
}

impl Policy for FlakyCounter {
    fn configure(&mut self, p: &str) -> Result<(), String> {
        crate::accept(p)
    }
    fn evaluate(&mut self, s: &Snapshot) -> Result<Decision, String> {
        self.count += 1;
        if s.custom("trap").is_some() {
            std::process::abort();
        }
        Ok(Decision::new(
            self.count as f64,
            format!("evaluation {}", self.count),
        ))
    }
    fn save_state(&self) -> Vec<u8> {
        self.count.to_le_bytes().to_vec()
    }
    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        if state.is_empty() {
            return Ok(());
        }
        let bytes: [u8; 8] = state.try_into().map_err(|_| "state must be 8 bytes")?;
        self.count = u64::from_le_bytes(bytes);
        Ok(())
    }
}
