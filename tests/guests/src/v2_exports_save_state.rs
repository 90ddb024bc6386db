//! Hostile: a 0.2 component that also exports 0.1's `save-state`. Built
//! straight from the contract (not through the SDK, which cannot make one);
//! it logs once, so it imports 0.2's `host` interface.

#[allow(
    unsafe_code,
    unused_qualifications,
    clippy::all,
    missing_docs,
    reason = "generated bindings"
)]
mod bindings {
    wit_bindgen::generate!({
        inline: "package test:hostile;\nworld both {\n  include wasmscale:policy/scaler-policy@0.2.0;\n  export save-state: func() -> list<u8>;\n}\n",
        path: "../../wit/v0.2",
        world: "test:hostile/both",
        generate_all,
    });
}

use bindings::wasmscale::policy::types::{Decision, LogLevel, Manifest, Outcome, Proposal, Tick};

struct Both;

impl bindings::Guest for Both {
    fn configure(_params: String) -> Result<Manifest, String> {
        bindings::wasmscale::policy::host::log(LogLevel::Info, "configured");
        Ok(Manifest {
            signals: vec!["queue_depth".into()],
            replica_signals: None,
            pools: false,
        })
    }

    fn evaluate(_tick: Tick) -> Result<Outcome, String> {
        Ok(Outcome {
            decision: Decision {
                proposal: Proposal::Hold,
                spot_fraction: None,
                reason: String::new(),
                pools: Vec::new(),
                remove_first: Vec::new(),
            },
            state: None,
        })
    }

    fn load_state(_state: Vec<u8>) -> Result<(), String> {
        Ok(())
    }

    fn save_state() -> Vec<u8> {
        Vec::new()
    }
}

bindings::export!(Both with_types_in bindings);
