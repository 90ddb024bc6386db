//! The guest SDK for wasmscale policies.
//!
//! A policy is a type that implements [`Policy`]; one call to [`export_policy!`]
//! turns it into a WebAssembly component that the wasmscale host can run. Authors
//! never write bindings by hand, and the same code runs natively so it can be unit
//! tested with plain `cargo test`.
//!
//! ```
//! use wasmscale_sdk::{Decision, Policy, Snapshot};
//!
//! #[derive(Default)]
//! struct Double;
//!
//! impl Policy for Double {
//!     fn configure(&mut self, _params: &str) -> Result<(), String> { Ok(()) }
//!     fn evaluate(&mut self, s: &Snapshot) -> Result<Decision, String> {
//!         Ok(Decision::new(f64::from(s.replicas.current) * 2.0, "double"))
//!     }
//! }
//!
//! wasmscale_sdk::export_policy!(Double);
//! ```
//!
//! Build it with `wasmscale build` (or `cargo build --target wasm32-unknown-unknown`
//! followed by componentization); see the README.

pub mod alloc;
pub mod helpers;
mod snapshot;
/// The 0.2 contract (a draft), behind the `v2` feature: its bindings must not
/// reach 0.1 components, whose imports would then name 0.2 as well.
#[cfg(feature = "v2")]
pub mod v2;

/// Guests use the size-class allocator (see [`alloc`]); native builds keep the
/// system allocator.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static GUEST_ALLOCATOR: alloc::SizeClassAlloc = alloc::SizeClassAlloc::new();

pub use helpers::{Ewma, Hysteresis, SeasonalForecaster, SlidingWindow};

pub use snapshot::SIGNAL_NAMES;

/// Generated bindings for the `wasmscale:policy` world. Public only so that
/// [`export_policy!`] can reach it from the policy's crate.
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
        path: "../wit",
        world: "wasmscale:policy/policy",
        pub_export_macro: true,
        export_macro_name: "export_policy_world",
        default_bindings_module: "wasmscale_sdk::bindings",
    });
}

pub use bindings::wasmscale::policy::types::{
    Cost, Decision, LogLevel, NamedValue, ReplicaCounts, ReplicaSample, ReplicaState, Snapshot,
};

/// A scaling policy. Implement this and export it with [`export_policy!`].
///
/// The host calls `configure` once per instance, `load_state` when it re-creates
/// an instance, then `evaluate` every tick and `save_state` after successful
/// evaluations. A policy must be a pure function of its state and the snapshot:
/// read time from [`Snapshot::time_ms`], never from a clock.
pub trait Policy: Default + 'static {
    /// Accept parameters (a JSON document). Return a message that tells the
    /// operator what to fix when they are invalid. [`parse_params`] helps.
    fn configure(&mut self, params: &str) -> Result<(), String>;

    /// Decide from one snapshot. An `Err` makes the host hold the current count.
    fn evaluate(&mut self, snapshot: &Snapshot) -> Result<Decision, String>;

    /// Serialize the policy's memory. Stateless policies keep the default.
    fn save_state(&self) -> Vec<u8> {
        Vec::new()
    }

    /// Restore memory written by `save_state`. An empty slice means "no state".
    fn load_state(&mut self, _state: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// Parse JSON parameters into `T`, turning serde's error into an operator-facing
/// message. An empty string or `null` means "all defaults" (parsed from `{}`).
pub fn parse_params<T: serde::de::DeserializeOwned>(params: &str) -> Result<T, String> {
    let trimmed = params.trim();
    let text = if trimmed.is_empty() || trimmed == "null" {
        "{}"
    } else {
        trimmed
    };
    serde_json::from_str(text).map_err(|e| format!("invalid params: {e}"))
}

/// Serialize policy state as JSON bytes (helper for [`Policy::save_state`]).
pub fn save_json<T: serde::Serialize>(state: &T) -> Vec<u8> {
    serde_json::to_vec(state).unwrap_or_default()
}

/// A policy's params, set by `configure`: `configured!(self.params, "name")`
/// is `Some(&params)`'s value, or the error `"name: configure was not called"`
/// when the host calls `evaluate` first. A macro, so the message is a
/// constant and the check costs the same fuel as writing it out.
#[macro_export]
macro_rules! configured {
    ($params:expr, $policy:literal) => {
        $params
            .as_ref()
            .ok_or(concat!($policy, ": configure was not called"))
    };
}

/// Restore JSON state written by [`save_json`]; empty input leaves `T::default()`.
pub fn load_json<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, String> {
    if bytes.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| format!("invalid saved state: {e}"))
}

/// Log a line through the host (rate-limited per evaluation). Natively, for unit
/// tests, the line goes to stderr.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::wasmscale::policy::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

impl Decision {
    /// A decision with no spot-fraction opinion.
    pub fn new(desired: f64, reason: impl Into<String>) -> Self {
        Decision {
            desired,
            spot_fraction: None,
            reason: reason.into(),
        }
    }

    /// Keep the current replica count.
    pub fn hold(snapshot: &Snapshot, reason: impl Into<String>) -> Self {
        Decision::new(f64::from(snapshot.replicas.current), reason)
    }
}

/// Forward a panic's message to the host before the trap: without it the
/// host sees only "wasm `unreachable` instruction executed". Installed by
/// [`export_policy!`] on the first `configure`, which every instance runs.
/// The line starts with `panicked at ` (the host looks for it).
#[doc(hidden)]
pub fn __install_panic_hook() {
    #[cfg(target_arch = "wasm32")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let payload = info.payload();
                let message = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("a panic without a message");
                let line = match info.location() {
                    Some(l) => format!("panicked at {}:{}: {message}", l.file(), l.line()),
                    None => format!("panicked at an unknown place: {message}"),
                };
                log(LogLevel::Error, &line);
            }));
        });
    }
}

/// Export a [`Policy`] type as the component's implementation of the
/// `wasmscale:policy` world. Call it once, at the crate root of a `cdylib`.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        #[allow(
            unsafe_code,
            reason = "the component exports that wit-bindgen generates"
        )]
        const _: () = {
            struct WasmscaleExport;

            ::std::thread_local! {
                static POLICY: ::core::cell::RefCell<$policy> =
                    ::core::cell::RefCell::new(<$policy as ::core::default::Default>::default());
            }

            impl $crate::bindings::Guest for WasmscaleExport {
                fn configure(
                    params: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__install_panic_hook();
                    POLICY.with(|p| $crate::Policy::configure(&mut *p.borrow_mut(), &params))
                }
                fn evaluate(
                    snapshot: $crate::Snapshot,
                ) -> ::core::result::Result<$crate::Decision, ::std::string::String> {
                    POLICY.with(|p| $crate::Policy::evaluate(&mut *p.borrow_mut(), &snapshot))
                }
                fn save_state() -> ::std::vec::Vec<u8> {
                    POLICY.with(|p| $crate::Policy::save_state(&*p.borrow()))
                }
                fn load_state(
                    state: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    POLICY.with(|p| $crate::Policy::load_state(&mut *p.borrow_mut(), &state))
                }
            }

    $crate::bindings::export_policy_world!(WasmscaleExport with_types_in $crate::bindings);
        };
    };
}

/// A number for a decision's reason, formatted cheaply: integers as integers,
/// others with at most two decimals. `format!("{}", Num(x))` costs a fraction
/// of `{x}`, whose shortest-round-trip float printing is the most expensive
/// thing many policies do per evaluation (fuel is time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Num(pub f64);

impl Num {
    /// Append the number to `out` without going through `core::fmt`.
    pub fn append_to(self, out: &mut String) {
        let v = self.0;
        if !v.is_finite() || v.abs() >= 1e13 {
            out.push_str(&v.to_string());
            return;
        }
        let scaled = (v * 100.0).round() as i64;
        if scaled < 0 {
            out.push('-');
        }
        let scaled = scaled.unsigned_abs();
        let (int, frac) = (scaled / 100, scaled % 100);
        // Integer digits, most significant first.
        let mut digits = [0u8; 20];
        let mut n = int;
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for &d in &digits[i..] {
            out.push(char::from(d));
        }
        if frac != 0 {
            out.push('.');
            out.push(char::from(b'0' + (frac / 10) as u8));
            if frac % 10 != 0 {
                out.push(char::from(b'0' + (frac % 10) as u8));
            }
        }
    }
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        self.append_to(&mut s);
        f.write_str(&s)
    }
}

/// Builds a decision's reason by appending text and numbers, without the
/// `core::fmt` machinery (a policy's most frequent and costliest formatting).
///
/// ```
/// use wasmscale_sdk::Reason;
/// let r = Reason::new().text("queue ").num(42.0).text(" -> ").num(5.0).build();
/// assert_eq!(r, "queue 42 -> 5");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    pub fn new() -> Self {
        Reason(String::with_capacity(64))
    }

    pub fn text(mut self, s: &str) -> Self {
        self.0.push_str(s);
        self
    }

    pub fn num(mut self, v: f64) -> Self {
        Num(v).append_to(&mut self.0);
        self
    }

    pub fn build(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod num_tests {
    use super::Num;

    #[test]
    fn formats_like_a_person_would() {
        let s = |v: f64| Num(v).to_string();
        assert_eq!(s(120.0), "120");
        assert_eq!(s(0.5), "0.5");
        assert_eq!(s(0.456), "0.46");
        assert_eq!(s(-0.25), "-0.25");
        assert_eq!(s(-3.0), "-3");
        assert_eq!(s(-1.05), "-1.05");
        assert_eq!(s(0.0), "0");
        assert_eq!(s(1e20), "100000000000000000000");
        assert_eq!(s(f64::NAN), "NaN");
    }
}

#[cfg(test)]
mod opening_checks {
    use super::Snapshot;

    #[test]
    fn require_and_configured_give_the_errors_that_hold_the_count() {
        let mut s = Snapshot::new(0, 2);
        assert_eq!(
            s.require("queue_depth"),
            Err("queue_depth is missing".into())
        );
        s.queue_depth = Some(f64::NAN);
        assert_eq!(
            s.require("queue_depth"),
            Err("queue_depth is missing".into())
        );
        s.queue_depth = Some(12.0);
        assert_eq!(s.require("queue_depth"), Ok(12.0));
        let none: Option<u8> = None;
        assert_eq!(
            crate::configured!(none, "p"),
            Err("p: configure was not called")
        );
        assert_eq!(crate::configured!(Some(3u8), "p"), Ok(&3));
    }
}
