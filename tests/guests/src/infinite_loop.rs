//! Loops forever in `evaluate`. Expected: out of fuel (or the deadline).
use wasmscale_sdk::{Decision, Policy, Snapshot};

#[derive(Default)]
pub struct InfiniteLoop;

impl Policy for InfiniteLoop {
    fn configure(&mut self, p: &str) -> Result<(), String> {
        crate::accept(p)
    }
    fn evaluate(&mut self, _s: &Snapshot) -> Result<Decision, String> {
        let mut i: u64 = 0;
        loop {
            i = std::hint::black_box(i.wrapping_add(1));
        }
    }
}
