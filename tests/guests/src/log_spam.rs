//! Logs a flood of lines on every evaluation. Expected: log limit.
use wasmscale_sdk::{Decision, LogLevel, Policy, Snapshot, log};

#[derive(Default)]
pub struct LogSpam;

impl Policy for LogSpam {
    fn configure(&mut self, p: &str) -> Result<(), String> {
        crate::accept(p)
    }
    fn evaluate(&mut self, s: &Snapshot) -> Result<Decision, String> {
        for i in 0..1_000_000 {
            log(
                LogLevel::Info,
                &format!("spam line {i}: {}", "x".repeat(200)),
            );
        }
        crate::hold(s)
    }
}
