//! Not hostile: the built-in step-scaling policy, unchanged, exported under
//! the 0.2 contract through the SDK's adapter, for the contract's tests and
//! the 0.1-against-0.2 bench. It reads the one metric its params name.

use wasmscale_policies::step_scaling::StepScaling;
use wasmscale_sdk::{Decision, Policy, Snapshot, v2::Reads};

#[derive(Default)]
pub struct V2StepScaling {
    inner: StepScaling,
    metric: String,
}

impl Policy for V2StepScaling {
    fn configure(&mut self, params: &str) -> Result<(), String> {
        let v: serde_json::Value = serde_json::from_str(params).map_err(|e| e.to_string())?;
        self.metric = v["metric"].as_str().unwrap_or_default().to_owned();
        self.inner.configure(params)
    }

    fn evaluate(&mut self, snapshot: &Snapshot) -> Result<Decision, String> {
        self.inner.evaluate(snapshot)
    }

    fn save_state(&self) -> Vec<u8> {
        self.inner.save_state()
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        self.inner.load_state(state)
    }
}

impl Reads for V2StepScaling {
    fn reads(&self) -> Vec<String> {
        vec![self.metric.clone()]
    }
}
