//! `log`: prints decisions, and remembers the count it was told to set, as if
//! a perfect target had applied it at once.

use super::{Actuator, ActuatorError, Observed, ready, settled};
use futures_core::future::BoxFuture;

#[derive(Debug)]
pub struct Log {
    scaler: String,
    replicas: u32,
}

impl Log {
    pub fn new(scaler: &str, replicas: u32) -> Self {
        Log {
            scaler: scaler.to_owned(),
            replicas,
        }
    }
}

impl Actuator for Log {
    fn observe(&mut self) -> BoxFuture<'_, Result<Observed, ActuatorError>> {
        ready(Ok(settled(self.replicas)))
    }

    fn apply<'a>(
        &'a mut self,
        desired: u32,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<bool, ActuatorError>> {
        if self.replicas == desired {
            return ready(Ok(false));
        }
        println!("{}: {} -> {desired} ({reason})", self.scaler, self.replicas);
        self.replicas = desired;
        ready(Ok(true))
    }

    fn resume_at(&mut self, replicas: u32) {
        self.replicas = replicas;
    }
}
