//! Hits `unreachable` (a Rust panic under panic=abort). Expected: a trap.
use wasmscale_sdk::{Decision, Policy, Snapshot};

#[derive(Default)]
pub struct Unreachable;

impl Policy for Unreachable {
    fn configure(&mut self, p: &str) -> Result<(), String> {
        crate::accept(p)
    }
    fn evaluate(&mut self, s: &Snapshot) -> Result<Decision, String> {
        if std::hint::black_box(s.replicas.current) < u32::MAX {
            panic!("policy bug");
        }
        crate::hold(s)
    }
}
