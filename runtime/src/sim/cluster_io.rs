//! The simulated cluster as a scaler's source and target: what a scrape-based
//! source would report over the window since the last tick, and a target that
//! launches and retires replicas in the model.

use super::model::Cluster;
use crate::actuators::{Actuator, ActuatorError, Observed};
use crate::model::{Capacity, Pool, PoolTarget};
use crate::sources::{Reading, Source, SourceError};
use futures_core::future::BoxFuture;
use std::sync::{Arc, Mutex, MutexGuard};

/// The simulated pools' names.
pub(crate) const ON_DEMAND: &str = "on-demand";
pub(crate) const SPOT: &str = "spot";

/// One handle of the cluster; the simulator keeps another to advance it.
#[derive(Debug, Clone)]
pub struct SimulatedCluster(Arc<Mutex<Cluster>>);

impl SimulatedCluster {
    pub fn new(cluster: Cluster) -> Self {
        SimulatedCluster(Arc::new(Mutex::new(cluster)))
    }

    /// The cluster. The simulator is single-threaded per cluster; a poisoned
    /// lock (a panic elsewhere) still holds a consistent cluster, so take it.
    pub fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Source for SimulatedCluster {
    fn read(&mut self) -> BoxFuture<'_, Result<Reading, SourceError>> {
        let values = self
            .lock()
            .read_signals()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        Box::pin(std::future::ready(Ok(Reading {
            values: Arc::new(values),
            ..Reading::default()
        })))
    }
}

impl Actuator for SimulatedCluster {
    fn observe(&mut self) -> BoxFuture<'_, Result<Observed, ActuatorError>> {
        let c = self.lock();
        let model = c.model();
        let pool =
            |name: &str, capacity, (current, ready, starting): (u32, u32, u32), price| Pool {
                name: name.to_owned(),
                capacity,
                current,
                ready: Some(ready),
                starting: Some(starting),
                pending: None,
                price_per_hour: Some(price),
                interruptions_per_hour: (capacity == Capacity::Spot)
                    .then_some(model.spot_interruptions_per_hour),
                min: None,
                max: None,
            };
        let [on_demand, spot] = c.pools();
        let observed = Observed {
            current: c.count(),
            observed: Some(c.total()),
            ready: Some(c.ready()),
            starting: Some(c.starting()),
            pools: vec![
                pool(
                    ON_DEMAND,
                    Capacity::OnDemand,
                    on_demand,
                    model.on_demand_per_hour,
                ),
                pool(SPOT, Capacity::Spot, spot, model.spot_per_hour),
            ],
            replicas: Vec::new(),
        };
        drop(c);
        Box::pin(std::future::ready(Ok(observed)))
    }

    fn apply<'a>(
        &'a mut self,
        desired: u32,
        _reason: &'a str,
    ) -> BoxFuture<'a, Result<bool, ActuatorError>> {
        let mut c = self.lock();
        let changed = c.count() != desired;
        if changed {
            c.set_replicas(desired, None);
        }
        drop(c);
        Box::pin(std::future::ready(Ok(changed)))
    }

    fn set_spot_fraction(&mut self, fraction: f64) {
        let mut c = self.lock();
        let count = c.count();
        c.set_replicas(count, Some(fraction));
    }

    /// The mix: the `spot` pool's count on spot, the rest on demand; running
    /// replicas are replaced over time to reach it.
    fn set_pools(&mut self, pools: &[PoolTarget]) -> bool {
        let spot = pools
            .iter()
            .filter(|p| p.pool == SPOT)
            .map(|p| p.replicas)
            .sum();
        self.lock().set_mix(spot);
        true
    }
}
