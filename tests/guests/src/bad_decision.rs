//! Returns the decision its params name: `{"desired": "nan" | "inf" | -3 | 1e12 | 2, "spot": 2.0}`.
//! Expected: invalid decision for NaN, infinite, negative, absurd or a spot fraction outside 0..1.
use wasmscale_sdk::{Decision, Policy, Snapshot};

#[derive(Default)]
pub struct BadDecision {
    desired: f64,
    spot: Option<f64>,
}

impl Policy for BadDecision {
    fn configure(&mut self, p: &str) -> Result<(), String> {
        let v: serde_json::Value = serde_json::from_str(p).map_err(|e| e.to_string())?;
        self.desired = match &v["desired"] {
            serde_json::Value::String(s) if s == "nan" => f64::NAN,
            serde_json::Value::String(s) if s == "inf" => f64::INFINITY,
            serde_json::Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
            other => other
                .as_f64()
                .ok_or("desired must be a number, \"nan\" or \"inf\"")?,
        };
        self.spot = v["spot"].as_f64();
        Ok(())
    }
    fn evaluate(&mut self, _s: &Snapshot) -> Result<Decision, String> {
        Ok(Decision {
            desired: self.desired,
            spot_fraction: self.spot,
            reason: "whatever".into(),
        })
    }
}
