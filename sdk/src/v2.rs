//! The 0.2 contract (`wit/v0.2`, a draft): a policy declares the signals it
//! reads in `configure`, gets their values as a dense list each tick, and
//! returns its state with its decision, only when it changed.
//!
//! ```ignore
//! #[derive(Default)]
//! struct Queue { target: f64 }
//! impl wasmscale_sdk::v2::Policy for Queue {
//!     fn configure(&mut self, _params: &str) -> Result<Vec<String>, String> {
//!         Ok(vec!["queue_depth".into()])
//!     }
//!     fn evaluate(&mut self, tick: &Tick) -> Result<Outcome, String> {
//!         Ok(match tick.values[0] {
//!             Some(q) => Outcome::scale((q / self.target).ceil(), "queue"),
//!             None => Outcome::hold("queue depth unknown"),
//!         })
//!     }
//! }
//! wasmscale_sdk::export_policy_v2!(Queue);
//! ```

/// Generated bindings for the 0.2 world. Public only so that
/// [`crate::export_policy_v2!`] can reach them.
#[doc(hidden)]
#[allow(
    unsafe_code,
    unused_qualifications,
    clippy::all,
    missing_docs,
    reason = "generated bindings"
)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/v0.2",
        world: "wasmscale:policy/scaler-policy@0.2.0",
        pub_export_macro: true,
        export_macro_name: "export_policy_v2_world",
        default_bindings_module: "wasmscale_sdk::v2::bindings",
    });
}

pub use bindings::wasmscale::policy::types::{
    Decision, LogLevel, Manifest, Outcome, Proposal, ReplicaCounts, Tick,
};

/// A 0.2 scaling policy. Export it with [`crate::export_policy_v2!`].
pub trait Policy: Default + 'static {
    /// Accept parameters (JSON) and name the signals to read, in the order
    /// their values arrive in [`Tick::values`].
    fn configure(&mut self, params: &str) -> Result<Vec<String>, String>;

    /// Decide from one tick; set [`Outcome::state`] only when the state changed.
    fn evaluate(&mut self, tick: &Tick) -> Result<Outcome, String>;

    /// Restore state an earlier `evaluate` returned. Stateless policies keep the default.
    fn load_state(&mut self, _state: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

impl Outcome {
    /// Scale to `desired` replicas, with no state change.
    pub fn scale(desired: f64, reason: impl Into<String>) -> Self {
        Outcome {
            decision: Decision {
                proposal: Proposal::Scale(desired),
                spot_fraction: None,
                reason: reason.into(),
            },
            state: None,
        }
    }

    /// No opinion this tick: the count holds, and nothing enters the
    /// guardrails' recommendation history.
    pub fn hold(reason: impl Into<String>) -> Self {
        Outcome {
            decision: Decision {
                proposal: Proposal::Hold,
                spot_fraction: None,
                reason: reason.into(),
            },
            state: None,
        }
    }

    /// This outcome with the policy's new state.
    pub fn with_state(mut self, state: Vec<u8>) -> Self {
        self.state = Some(state);
        self
    }
}

/// Export a [`Policy`] as the component's implementation of the 0.2 world.
#[macro_export]
macro_rules! export_policy_v2 {
    ($policy:ty) => {
        #[allow(
            unsafe_code,
            reason = "the component exports that wit-bindgen generates"
        )]
        const _: () = {
            ::std::thread_local! {
                static POLICY: ::core::cell::RefCell<$policy> =
                    ::core::cell::RefCell::new(<$policy as ::core::default::Default>::default());
            }
            struct WasmscaleExport;
            impl $crate::v2::bindings::Guest for WasmscaleExport {
                fn configure(
                    params: ::std::string::String,
                ) -> ::core::result::Result<$crate::v2::Manifest, ::std::string::String> {
                    $crate::__install_panic_hook();
                    POLICY.with(|p| {
                        $crate::v2::Policy::configure(&mut *p.borrow_mut(), &params)
                            .map(|signals| $crate::v2::Manifest { signals })
                    })
                }
                fn evaluate(
                    tick: $crate::v2::Tick,
                ) -> ::core::result::Result<$crate::v2::Outcome, ::std::string::String> {
                    POLICY.with(|p| $crate::v2::Policy::evaluate(&mut *p.borrow_mut(), &tick))
                }
                fn load_state(
                    state: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    POLICY.with(|p| $crate::v2::Policy::load_state(&mut *p.borrow_mut(), &state))
                }
            }
            $crate::v2::bindings::export_policy_v2_world!(WasmscaleExport with_types_in $crate::v2::bindings);
        };
    };
}

/// A 0.1-style [`crate::Policy`] exported under 0.2 by
/// [`crate::export_policy_as_v2!`]: it names what it reads, the SDK fills a
/// [`crate::Snapshot`] from those values each tick, and sends its state only
/// when it changed. The way an existing policy moves to 0.2 unchanged.
pub trait Reads: crate::Policy {
    /// The signals it reads (names from the host's table, or `custom:NAME`),
    /// known once it is configured.
    fn reads(&self) -> Vec<String>;
}

#[doc(hidden)]
#[derive(Default)]
pub struct Adapter<P> {
    policy: P,
    reads: Vec<String>,
    /// The state last sent to the host.
    sent: Vec<u8>,
}

impl<P: Reads> Policy for Adapter<P> {
    fn configure(&mut self, params: &str) -> Result<Vec<String>, String> {
        self.policy.configure(params)?;
        self.reads = self.policy.reads();
        Ok(self.reads.clone())
    }

    fn evaluate(&mut self, tick: &Tick) -> Result<Outcome, String> {
        let r = &tick.replicas;
        let mut s = crate::Snapshot::new(tick.time_ms, r.current);
        s.interval_ms = tick.interval_ms;
        s.replicas = crate::ReplicaCounts {
            current: r.current,
            observed: r.observed,
            ready: r.ready,
            starting: r.starting,
            pending: r.pending,
            min: r.min,
            max: r.max,
        };
        for (name, value) in self.reads.iter().zip(&tick.values) {
            s.set_signal(name, *value);
        }
        let d = self.policy.evaluate(&s)?;
        let state = self.policy.save_state();
        let state = (state != self.sent).then(|| {
            self.sent.clone_from(&state);
            state
        });
        Ok(Outcome {
            decision: Decision {
                proposal: Proposal::Scale(d.desired),
                spot_fraction: d.spot_fraction,
                reason: d.reason,
            },
            state,
        })
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        self.policy.load_state(state)?;
        self.sent = state.to_vec();
        Ok(())
    }
}

/// Export a 0.1-style [`crate::Policy`] that implements [`Reads`] as a 0.2
/// component: [`crate::export_policy_v2!`] of its [`Adapter`].
#[macro_export]
macro_rules! export_policy_as_v2 {
    ($policy:ty) => {
        $crate::export_policy_v2!($crate::v2::Adapter<$policy>);
    };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

    use super::*;

    /// Replicas for a queue (and a price read from `cost.`), with a state
    /// that changes only when the count does.
    #[derive(Default)]
    struct Queue {
        last: u32,
    }

    impl crate::Policy for Queue {
        fn configure(&mut self, _params: &str) -> Result<(), String> {
            Ok(())
        }

        fn evaluate(&mut self, s: &crate::Snapshot) -> Result<crate::Decision, String> {
            let q = s.require("queue_depth")? + s.custom("backlog").unwrap_or(0.0);
            let desired = (q / 10.0).ceil();
            self.last = desired as u32;
            Ok(crate::Decision {
                desired,
                spot_fraction: None,
                reason: format!("price {:?}", s.cost.spot_per_hour),
            })
        }

        fn save_state(&self) -> Vec<u8> {
            self.last.to_le_bytes().to_vec()
        }
    }

    impl Reads for Queue {
        fn reads(&self) -> Vec<String> {
            ["queue_depth", "custom:backlog", "cost.spot_per_hour"]
                .map(str::to_owned)
                .to_vec()
        }
    }

    fn tick(values: Vec<Option<f64>>) -> Tick {
        Tick {
            time_ms: 0,
            interval_ms: 1000,
            replicas: ReplicaCounts {
                current: 1,
                observed: None,
                ready: None,
                starting: None,
                pending: None,
                min: None,
                max: None,
            },
            values,
        }
    }

    #[test]
    fn the_adapter_fills_the_snapshot_in_manifest_order_and_sends_state_only_on_change() {
        let mut a = Adapter::<Queue>::default();
        let signals = a.configure("{}").unwrap();
        assert_eq!(
            signals,
            ["queue_depth", "custom:backlog", "cost.spot_per_hour"]
        );
        let out = a
            .evaluate(&tick(vec![Some(30.0), Some(20.0), Some(0.9)]))
            .unwrap();
        assert!(matches!(out.decision.proposal, Proposal::Scale(d) if d == 5.0));
        assert_eq!(out.decision.reason, "price Some(0.9)");
        assert_eq!(out.state, Some(5u32.to_le_bytes().to_vec()));
        // The same count: the same state, not sent again.
        let again = a
            .evaluate(&tick(vec![Some(45.0), Some(5.0), None]))
            .unwrap();
        assert_eq!(again.state, None);
        // An unknown first signal is the policy's own error (it holds the count).
        assert!(a.evaluate(&tick(vec![None, None, None])).is_err());
    }
}
