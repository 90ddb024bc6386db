//! Behaves for `after` evaluations (so it passes the trial evaluation and
//! review), then turns hostile in the way `then` names: `loop` (forever),
//! `memory` (allocates without bound), `log` (floods the log) or `state`
//! (grows its state by 128 KiB a call). Its count is in its state, so an
//! instance rebuilt after a failure stays hostile.
use wasmscale_sdk::{Decision, LogLevel, Policy, Snapshot, log};

#[derive(Default)]
pub struct Sleeper {
    after: u64,
    then: String,
    calls: u64,
    ballast: Vec<u8>,
    hoard: Vec<Vec<u8>>,
}

impl Policy for Sleeper {
    fn configure(&mut self, p: &str) -> Result<(), String> {
        let v: serde_json::Value = serde_json::from_str(p).map_err(|e| e.to_string())?;
        self.after = v["after"].as_u64().unwrap_or(1);
        self.then = v["then"].as_str().unwrap_or("loop").to_owned();
        Ok(())
    }
    fn evaluate(&mut self, s: &Snapshot) -> Result<Decision, String> {
        self.calls += 1;
        if self.calls <= self.after {
            return crate::hold(s);
        }
        match self.then.as_str() {
            "memory" => {
                for _ in 0..100_000 {
                    let mut block: Vec<u8> = Vec::with_capacity(1 << 20);
                    block.push(1);
                    self.hoard.push(std::hint::black_box(block));
                }
            }
            "log" => {
                for i in 0..1_000_000 {
                    log(
                        LogLevel::Info,
                        &format!("spam line {i}: {}", "x".repeat(200)),
                    );
                }
            }
            "state" => self.ballast.resize(self.ballast.len() + (128 << 10), 7),
            _ => {
                let mut i: u64 = 0;
                loop {
                    i = std::hint::black_box(i.wrapping_add(1));
                }
            }
        }
        crate::hold(s)
    }
    fn save_state(&self) -> Vec<u8> {
        let mut out = self.calls.to_le_bytes().to_vec();
        out.extend_from_slice(&self.ballast);
        out
    }
    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        let (count, rest) = state.split_at(state.len().min(8));
        let mut b = [0u8; 8];
        b[..count.len()].copy_from_slice(count);
        self.calls = u64::from_le_bytes(b);
        self.ballast = rest.to_vec();
        Ok(())
    }
}
