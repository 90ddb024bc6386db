//! Recurses without bound. Expected: a trap (stack overflow).
use wasmscale_sdk::{Decision, Policy, Snapshot};

#[derive(Default)]
pub struct DeepRecursion;

#[inline(never)]
#[allow(
    unconditional_recursion,
    reason = "the fixture recurses without bound on purpose"
)]
fn descend(depth: u64, buf: &mut [u64; 16]) -> u64 {
    buf[(depth % 16) as usize] = depth;
    let mut local = [depth; 16];
    std::hint::black_box(&mut local);
    descend(depth + 1, &mut local) + std::hint::black_box(buf[0])
}

impl Policy for DeepRecursion {
    fn configure(&mut self, p: &str) -> Result<(), String> {
        crate::accept(p)
    }
    fn evaluate(&mut self, s: &Snapshot) -> Result<Decision, String> {
        let mut buf = [0u64; 16];
        let n = descend(0, &mut buf);
        let _ = std::hint::black_box(n);
        crate::hold(s)
    }
}
