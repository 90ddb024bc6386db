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
        // Reserve (not fill) a MiB at a time: memory grows with little fuel spent.
        for _ in 0..100_000 {
            let mut block: Vec<u8> = Vec::with_capacity(1 << 20);
            block.push(1);
            self.hoard.push(std::hint::black_box(block));
        }
        crate::hold(s)
    }
}
