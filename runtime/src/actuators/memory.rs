//! `memory`: as `log`, silently; the target of `wasmscale replay`.

use super::{Actuator, ActuatorError, Observed, ready, settled};
use futures_core::future::BoxFuture;

#[derive(Debug)]
pub struct Memory {
    replicas: u32,
}

impl Memory {
    pub fn new(replicas: u32) -> Self {
        Memory { replicas }
    }
}

impl Actuator for Memory {
    fn observe(&mut self) -> BoxFuture<'_, Result<Observed, ActuatorError>> {
        ready(Ok(settled(self.replicas)))
    }

    fn apply<'a>(
        &'a mut self,
        desired: u32,
        _reason: &'a str,
    ) -> BoxFuture<'a, Result<bool, ActuatorError>> {
        let changed = self.replicas != desired;
        self.replicas = desired;
        ready(Ok(changed))
    }

    fn resume_at(&mut self, replicas: u32) {
        self.replicas = replicas;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_target_applies_at_once_and_writes_only_a_change() {
        let mut a = Memory::new(2);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let o = a.observe().await.unwrap();
            assert_eq!((o.current, o.observed, o.ready), (2, Some(2), Some(2)));
            assert!(!a.apply(2, "same").await.unwrap());
            assert!(a.apply(5, "more").await.unwrap());
            assert_eq!(a.observe().await.unwrap().current, 5);
        });
    }
}
