//! Allocates without bound in `evaluate`. Expected: memory limit.
use wasmscale_sdk::{Decision, Policy, Snapshot};

#[derive(Default)]
pub struct MemoryBomb {
    hoard: Vec<Vec<u8>>,
}

impl Policy for MemoryBomb {
    fn configure(&mut self, p: &str) -> Result<(), String> {
        crate::accept(p)
    }
    fn evaluate(&mut self, s: &Snapshot) -> Result<Decision, String> {
        for _ in 0..100_000 {
            self.hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
        crate::hold(s)
    }
}
