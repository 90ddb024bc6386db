//! Panics when given saved state. Expected: a load-state error.
use wasmscale_sdk::{Decision, Policy, Snapshot};

#[derive(Default)]
pub struct LoadStatePanic;

impl Policy for LoadStatePanic {
    fn configure(&mut self, p: &str) -> Result<(), String> {
        crate::accept(p)
    }
    fn evaluate(&mut self, s: &Snapshot) -> Result<Decision, String> {
        crate::hold(s)
    }
    fn save_state(&self) -> Vec<u8> {
        b"some state".to_vec()
    }
    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        if !state.is_empty() {
            panic!("cannot load state");
        }
        Ok(())
    }
}
