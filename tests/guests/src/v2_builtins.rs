//! Not hostile: built-in policies, unchanged, exported under the 0.2 contract
//! through the SDK's adapter, for the contract's tests and the 0.1-against-0.2
//! benches. Each reads the one metric its params name.

use wasmscale_sdk::{Decision, Policy, Snapshot, v2::Declares};

/// A built-in wrapped to name what it reads: `params.metric`, else `default`.
macro_rules! reads_its_metric {
    ($name:ident, $inner:ty, $default:literal) => {
        #[derive(Default)]
        pub struct $name {
            inner: $inner,
            metric: String,
        }

        impl Policy for $name {
            fn configure(&mut self, params: &str) -> Result<(), String> {
                let v: serde_json::Value =
                    serde_json::from_str(params).map_err(|e| e.to_string())?;
                self.metric = v["metric"].as_str().unwrap_or($default).to_owned();
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

        impl Declares for $name {
            fn declares(&self) -> Vec<String> {
                vec![self.metric.clone()]
            }
        }
    };
}

reads_its_metric!(
    V2StepScaling,
    wasmscale_policies::step_scaling::StepScaling,
    "request_rate"
);
reads_its_metric!(
    V2QueueDepth,
    wasmscale_policies::queue_depth::QueueDepth,
    "queue_depth"
);
