//! Actuators: read the target's replica count and apply decisions.

use crate::config::{ScalerConfig, TargetConfig};

/// What the target reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub current: u32,
    pub ready: Option<u32>,
}

/// Why an actuator could not read or write.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActuatorError {
    #[error("target not supported yet: {0}")]
    Unsupported(String),
}

impl ActuatorError {
    pub fn kind(&self) -> &'static str {
        match self {
            ActuatorError::Unsupported(_) => "unsupported",
        }
    }
}

/// A configured actuator.
#[derive(Debug)]
pub enum Actuator {
    /// Prints decisions and remembers the count it was told to set, as if a
    /// perfect target had applied it at once.
    Log { scaler: String, replicas: u32 },
}

impl Actuator {
    /// `initial` is the log target's starting count (usually `min_replicas`).
    pub fn from_config(s: &ScalerConfig, initial: u32) -> Result<Self, ActuatorError> {
        match &s.target {
            TargetConfig::Log => Ok(Actuator::Log {
                scaler: s.name.clone(),
                replicas: initial,
            }),
            TargetConfig::Kubernetes { resource, name, .. } => {
                Err(ActuatorError::Unsupported(format!(
                    "kubernetes {resource}/{name}: the kubernetes actuator is not built yet (log is)"
                )))
            }
        }
    }

    pub fn observe(&mut self) -> Result<Observed, ActuatorError> {
        match self {
            Actuator::Log { replicas, .. } => Ok(Observed {
                current: *replicas,
                ready: Some(*replicas),
            }),
        }
    }

    /// Set the replica count; returns whether anything was written (no write
    /// when the count is unchanged).
    pub fn apply(&mut self, desired: u32, reason: &str) -> Result<bool, ActuatorError> {
        match self {
            Actuator::Log { scaler, replicas } => {
                if *replicas == desired {
                    return Ok(false);
                }
                println!("{scaler}: {} -> {desired} ({reason})", *replicas);
                *replicas = desired;
                Ok(true)
            }
        }
    }
}
