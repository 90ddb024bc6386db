//! A scaler and its tick: observe, read, evaluate, guard, act, record.

use crate::actuators::{Actuator, Observed};
use crate::audit::{AuditRecord, Failure, GuardrailRecord, RecordedDecision, Stage};
use crate::config::ScalerConfig;
use crate::guard::{self, BreakerSetting, GuardConfig, GuardState, Tick};
use crate::host::{Host, PolicyInstance};
use crate::model::ReplicaCounts;
use crate::sources::{Reading, Source};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a scaler keeps across restarts (in `state_dir/<scaler>.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersistedState {
    pub guard: GuardState,
    /// The policy's own bytes, as base64 (a JSON array of numbers, as older
    /// files have it, still reads).
    #[serde(with = "base64_bytes")]
    pub policy_state: Vec<u8>,
    pub failed_ticks: u32,
    /// The policy's digest when the state was saved.
    pub policy_digest: String,
    /// The count last set, so the log target resumes where it was.
    #[serde(default)]
    pub last_replicas: Option<u32>,
}

/// Policy state in the state file: base64, not a JSON array of numbers
/// (3.5 bytes a byte), and an array still reads.
mod base64_bytes {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub(super) fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
            for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub(super) fn decode(text: &str) -> Result<Vec<u8>, String> {
        let text = text.trim_end_matches('=');
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        let (mut acc, mut bits) = (0u32, 0u32);
        for c in text.bytes() {
            let v = ALPHABET
                .iter()
                .position(|a| *a == c)
                .ok_or_else(|| format!("{:?} is not base64", char::from(c)))?;
            acc = (acc << 6) | v as u32;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits & 0xff) as u8);
            }
        }
        Ok(out)
    }

    pub(super) fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            Numbers(Vec<u8>),
        }
        match <Form as serde::Deserialize>::deserialize(d)? {
            Form::Text(t) => decode(&t).map_err(serde::de::Error::custom),
            Form::Numbers(n) => Ok(n),
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn round_trips_and_older_arrays_still_read() {
            for bytes in [
                &b""[..],
                b"a",
                b"ab",
                b"abc",
                b"abcd",
                &[0, 255, 7, 128, 64],
            ] {
                let text = super::encode(bytes);
                assert_eq!(super::decode(&text).unwrap(), bytes, "{text}");
            }
            assert_eq!(super::encode(b"abcd"), "YWJjZA==");
            assert!(super::decode("@@").is_err());
            let mut old = serde_json::to_value(super::super::PersistedState::default()).unwrap();
            old["policy_state"] = serde_json::json!([1, 2, 3]);
            let state: super::super::PersistedState = serde_json::from_value(old).unwrap();
            assert_eq!(state.policy_state, [1, 2, 3]);
            let written = serde_json::to_string(&state).unwrap();
            assert!(written.contains(r#""policy_state":"AQID""#), "{written}");
        }
    }
}

/// A scaler (or the run around it) could not be built: which, and why.
#[derive(Debug, thiserror::Error)]
#[error("scaler {scaler}: {cause}")]
pub struct SetupError {
    /// The scaler's name, or `*` for the run as a whole.
    pub scaler: String,
    pub cause: SetupCause,
}

/// Why a scaler could not be built, keeping the typed error underneath.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupCause {
    #[error("{0}")]
    Policy(crate::host::PolicyError),
    #[error("safety net: {0}")]
    SafetyNet(crate::host::PolicyError),
    #[error("{0}")]
    Source(crate::sources::SourceError),
    #[error("{0}")]
    Target(crate::actuators::ActuatorError),
    /// The scaler's config as a caller assembled it (replay's params).
    #[error("{0}")]
    Config(String),
    #[error("cannot open the audit log {path}: {error}")]
    AuditLog {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

impl SetupError {
    pub fn new(scaler: &str, cause: SetupCause) -> Self {
        SetupError {
            scaler: scaler.to_owned(),
            cause,
        }
    }
}

/// How to build a [`Scaler`]: its config, plus what `run`, the simulator,
/// `replay` and `eval` each change.
pub struct ScalerBuilder<'a> {
    config: &'a ScalerConfig,
    base: &'a Path,
    host: &'a Host,
    state_dir: Option<&'a Path>,
    io: Option<(Box<dyn Source>, Box<dyn Actuator>)>,
    deterministic: bool,
    guarded: bool,
}

impl<'a> ScalerBuilder<'a> {
    /// Keep state in `dir/<scaler>.json` across restarts.
    pub fn state_dir(mut self, dir: Option<&'a Path>) -> Self {
        self.state_dir = dir;
        self
    }

    /// This source and target instead of the configured ones.
    pub fn io(mut self, source: Box<dyn Source>, actuator: Box<dyn Actuator>) -> Self {
        self.io = Some((source, actuator));
        self
    }

    /// Decisions that do not depend on how busy this machine is: the
    /// wall-clock deadline is lifted ([`crate::host::Limits::deterministic`]);
    /// fuel, memory and log limits stay. For virtual clocks.
    pub fn deterministic(mut self) -> Self {
        self.deterministic = true;
        self
    }

    /// The policy's proposal is acted on as it is: no guard stage runs (the
    /// default of `eval`, which shows what a policy decides).
    pub fn unguarded(mut self) -> Self {
        self.guarded = false;
        self
    }

    pub fn build(self) -> Result<Scaler, SetupError> {
        Scaler::build(self)
    }
}

/// One configured scaler, ready to tick.
pub struct Scaler {
    /// Whether the guard runs (always, but in `eval` when not asked).
    guarded: bool,
    config: ScalerConfig,
    guard: GuardConfig,
    state: PersistedState,
    policy: PolicyInstance,
    /// The safety-net policy, when configured (its state is not persisted).
    safety: Option<PolicyInstance>,
    source: Box<dyn Source>,
    actuator: Box<dyn Actuator>,
    state_file: Option<PathBuf>,
    /// Who writes each audit record, shared with the records.
    identity: Identity,
    /// Failures between ticks, reported in the next tick's record.
    pending_failures: Vec<Failure>,
    /// Configured metrics its source does not query, because no policy
    /// read them when it was built: a swapped-in version may not read them.
    unqueried: Vec<String>,
    /// A version swapped in and still watched, with the one it replaced.
    probation: Option<Box<OnProbation>>,
    /// A probation that failed, for whoever serves this scaler.
    rolled_back: Option<super::Notice>,
    /// A candidate version evaluated beside the policy on every snapshot;
    /// it never acts.
    shadow: Option<Box<Shadow>>,
    /// Its tenant's lane, under `run` (fair scheduling); None on virtual clocks.
    gate: Option<super::schedule::Gate>,
    /// What it takes from its tenant's quotas.
    footprint: crate::tenants::Footprint,
}

/// A shadow version and how its answers compared.
struct Shadow {
    policy: PolicyInstance,
    stats: super::ShadowStats,
}

impl Shadow {
    /// Evaluate on the active version's snapshot and compare with its proposal.
    fn observe(
        &mut self,
        s: &crate::model::Snapshot,
        active: Option<u32>,
    ) -> crate::audit::ShadowDecision {
        let st = &mut self.stats;
        st.evaluations += 1;
        let (desired, failure) = match self.policy.evaluate(s) {
            Ok(eval) => (Some(eval.decision.desired), None),
            Err(e) => {
                st.failures += 1;
                (None, Some(e.to_string()))
            }
        };
        if let (Some(a), Some(d)) = (active, desired) {
            st.compared += 1;
            let diff = a.abs_diff(d);
            if diff > 0 {
                st.differing += 1;
            }
            st.total_abs_difference += u64::from(diff);
            st.max_abs_difference = st.max_abs_difference.max(diff);
        }
        crate::audit::ShadowDecision {
            digest: st.digest.clone(),
            desired,
            failure,
        }
    }
}

/// A swapped-in version on probation, and the version it replaced.
struct OnProbation {
    previous: PolicyInstance,
    previous_label: Arc<str>,
    ticks: u32,
    failures: u32,
    /// The last tick held against it, for the record.
    last_failure: String,
}

/// The fields every audit record of a scaler repeats.
#[derive(Debug, Clone)]
struct Identity {
    scaler: Arc<str>,
    tenant: Arc<str>,
    policy: Arc<str>,
    policy_digest: Arc<str>,
}

impl std::fmt::Debug for Scaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scaler")
            .field("name", &self.config.name)
            .finish()
    }
}

impl Scaler {
    /// Build a scaler: load its policy, source and actuator, and restore any
    /// state it persisted (so a restart inside a stabilization window keeps it).
    pub fn new(
        config: &ScalerConfig,
        base: &Path,
        host: &Host,
        state_dir: Option<&Path>,
    ) -> Result<Self, SetupError> {
        Self::builder(config, base, host)
            .state_dir(state_dir)
            .build()
    }

    /// Build a scaler whose source and target are given rather than configured
    /// (the simulator's cluster, or an audit log's snapshots), on a virtual
    /// clock: see [`ScalerBuilder::deterministic`].
    pub fn with_io(
        config: &ScalerConfig,
        base: &Path,
        host: &Host,
        source: Box<dyn Source>,
        actuator: Box<dyn Actuator>,
    ) -> Result<Self, SetupError> {
        Self::builder(config, base, host)
            .io(source, actuator)
            .deterministic()
            .build()
    }

    /// Every way of building a scaler; [`Self::new`] and [`Self::with_io`]
    /// are the two common ones.
    pub fn builder<'a>(
        config: &'a ScalerConfig,
        base: &'a Path,
        host: &'a Host,
    ) -> ScalerBuilder<'a> {
        ScalerBuilder {
            config,
            base,
            host,
            state_dir: None,
            io: None,
            deterministic: false,
            guarded: true,
        }
    }

    fn build(b: ScalerBuilder<'_>) -> Result<Self, SetupError> {
        let ScalerBuilder {
            config,
            base,
            host,
            state_dir,
            io,
            deterministic,
            guarded,
        } = b;
        let (source, actuator) = io.unzip();
        let mut owned;
        let config = if deterministic {
            owned = config.clone();
            owned.limits = Some(
                config
                    .limits
                    .as_ref()
                    .unwrap_or(host.limits())
                    .deterministic(),
            );
            &owned
        } else {
            config
        };
        let fail = |cause: SetupCause| SetupError::new(&config.name, cause);
        // A scaler's own `[scaler.limits]` replace the host's for its policies.
        let with_limits = |c: crate::host::CompiledPolicy| match &config.limits {
            Some(l) => c.with_limits(l.clone()),
            None => c,
        };
        let compiled = with_limits(
            host.load(&config.policy_source(base))
                .map_err(|e| fail(SetupCause::Policy(e)))?,
        );
        if !config.require_signed_by.is_empty() {
            let digest = format!("sha256:{}", compiled.digest());
            let signers = host
                .signers(&digest)
                .map_err(|e| fail(SetupCause::Policy(e)))?;
            check_signed(&config.require_signed_by, &digest, &signers)
                .map_err(|why| fail(SetupCause::Policy(crate::host::PolicyError::Registry(why))))?;
        }
        let mut policy = compiled
            .instantiate(&config.params_json())
            .map_err(|e| fail(SetupCause::Policy(e)))?;
        let safety = match &config.safety_net {
            Some(net) => {
                let source = crate::host::PolicySource::resolve(&net.policy, base);
                let compiled = with_limits(
                    host.load(&source)
                        .map_err(|e| fail(SetupCause::SafetyNet(e)))?,
                );
                Some(
                    compiled
                        .instantiate(&net.params_json())
                        .map_err(|e| fail(SetupCause::SafetyNet(e)))?,
                )
            }
            None => None,
        };
        // A source asks only for what the policies read, when they say (0.2
        // manifests): a Prometheus scaler then sends no query nobody reads.
        let metrics = match read_by_policies(&policy, safety.as_ref()) {
            Some(read) => config
                .metrics
                .iter()
                .filter(|(name, _)| read.contains(name) || guard_reads(config, name))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            None => config.metrics.clone(),
        };
        let unqueried = config
            .metrics
            .keys()
            .filter(|k| !metrics.contains_key(*k))
            .cloned()
            .collect();
        let source = match source {
            Some(s) => s,
            None => config
                .source
                .build(&metrics, base)
                .map_err(|e| fail(SetupCause::Source(e)))?,
        };
        let state_file = state_dir.map(|d| d.join(format!("{}.json", sanitize(&config.name))));
        let mut state = PersistedState::default();
        let mut pending_failures = Vec::new();
        if let Some(path) = &state_file
            && let Ok(text) = std::fs::read_to_string(path)
        {
            match serde_json::from_str::<PersistedState>(&text) {
                Ok(saved) => {
                    if !saved.policy_state.is_empty()
                        && let Err(e) = policy.load_state(&saved.policy_state)
                    {
                        tracing::warn!(scaler = %config.name, error = %e, "policy rejected its saved state; starting it fresh");
                        pending_failures.push(state_rejected(&e));
                    }
                    state = saved;
                }
                Err(e) => {
                    tracing::warn!(scaler = %config.name, path = %path.display(), error = %e, "ignoring unreadable state")
                }
            }
        }
        state.policy_digest = policy.compiled().digest().to_owned();
        let initial = state.last_replicas.unwrap_or(config.min_replicas);
        let actuator = match actuator {
            Some(a) => a,
            None => config
                .target
                .build(&config.name, base, initial)
                .map_err(|e| fail(SetupCause::Target(e)))?,
        };
        let identity = Identity {
            scaler: config.name.as_str().into(),
            tenant: config.tenant.as_str().into(),
            policy: config.policy.as_str().into(),
            policy_digest: state.policy_digest.as_str().into(),
        };
        Ok(Scaler {
            guarded,
            identity,
            config: config.clone(),
            guard: config.guard_config(),
            state,
            policy,
            safety,
            source,
            actuator,
            state_file,
            pending_failures,
            unqueried,
            probation: None,
            rolled_back: None,
            shadow: None,
            gate: None,
            footprint: super::schedule::footprint(config, host.limits()),
        })
        .map(|mut scaler| {
            // A registry policy with a shadow set: the shadow comes back too.
            if let Some(shadow) = host.load_shadow(&config.policy_source(base)) {
                match shadow.and_then(|(label, c)| {
                    with_limits(c)
                        .instantiate(&config.params_json())
                        .map(|p| (p, label))
                }) {
                    Ok(shadow) => scaler.set_shadow(Some(shadow)),
                    Err(e) => {
                        tracing::warn!(scaler = %config.name, error = %e, "cannot start the shadow version; running without it")
                    }
                }
            }
            scaler
        })
    }

    /// Evaluate `policy` beside the running one on every snapshot from now
    /// on, without acting on it (`None`: stop).
    pub fn set_shadow(&mut self, shadow: Option<(PolicyInstance, String)>) {
        self.shadow = shadow.map(|(policy, label)| {
            Box::new(Shadow {
                stats: super::ShadowStats {
                    label,
                    digest: policy.compiled().digest().to_owned(),
                    ..super::ShadowStats::default()
                },
                policy,
            })
        });
    }

    /// What this scaler offers its server: what it runs, and `commands`.
    pub(crate) fn desk(
        &self,
        commands: tokio::sync::mpsc::Sender<super::swap::Command>,
    ) -> super::Desk {
        super::Desk {
            scaler: self.config.name.clone(),
            tenant: self.config.tenant.clone(),
            policy: self.config.policy.clone(),
            params: self.config.params_json(),
            limits: self.config.limits.clone(),
            unqueried: self.unqueried.clone(),
            require_signed_by: self.config.require_signed_by.clone(),
            footprint: self.footprint.clone(),
            commands,
        }
    }

    /// Evaluate through its tenant's lane (`run` only).
    pub(crate) fn set_gate(&mut self, gate: super::schedule::Gate) {
        self.gate = Some(gate);
    }

    /// The digest of the policy running now.
    pub fn policy_digest(&self) -> &str {
        self.policy.compiled().digest()
    }

    /// Swap `next` in for the running policy, between two ticks. The old
    /// version's state is handed over; if the new one rejects it, it starts
    /// fresh and the next record says why. The old version is kept through
    /// the new one's probation (`[scaler.rollout]`).
    pub fn swap_policy(&mut self, mut next: PolicyInstance, label: &str) -> super::Swapped {
        let started = Instant::now();
        let old_state = self.policy.last_good_state();
        let mut rejected = None;
        if !old_state.is_empty()
            && let Err(e) = next.load_state(old_state)
        {
            tracing::warn!(scaler = %self.config.name, error = %e, "the swapped-in version rejected the old state; it starts fresh");
            self.pending_failures.push(state_rejected(&e));
            rejected = Some(e.to_string());
        }
        if self
            .shadow
            .as_ref()
            .is_some_and(|s| s.stats.digest == next.compiled().digest())
        {
            // Promoted: what shadowed now runs.
            self.shadow = None;
        }
        let previous = std::mem::replace(&mut self.policy, next);
        let from_digest = previous.compiled().digest().to_owned();
        let previous_label = std::mem::replace(&mut self.identity.policy, label.into());
        self.probation = (self.config.rollout.probation_ticks > 0).then(|| {
            Box::new(OnProbation {
                previous,
                previous_label,
                ticks: 0,
                failures: 0,
                last_failure: String::new(),
            })
        });
        self.adopt_running_policy();
        tracing::info!(scaler = %self.config.name, from = %from_digest, to = %self.policy_digest(), label, "policy swapped");
        super::Swapped {
            scaler: self.config.name.clone(),
            from_digest,
            to_digest: self.policy_digest().to_owned(),
            state_handed_over: rejected.is_none(),
            state_rejected: rejected,
            pause_us: started.elapsed().as_micros() as u64,
        }
    }

    /// What it holds now, for the admin API.
    pub fn inspect(&self) -> super::Inspection {
        super::Inspection {
            policy: self.identity.policy.to_string(),
            policy_digest: self.policy_digest().to_owned(),
            breaker: self.state.guard.breaker,
            on_probation: self.probation.is_some(),
            failed_ticks: self.state.failed_ticks,
            last_replicas: self.state.last_replicas,
            shadow: self.shadow.as_ref().map(|s| s.stats.clone()),
        }
    }

    /// Take a notice of what this scaler did on its own (a rollback).
    pub fn take_notice(&mut self) -> Option<super::Notice> {
        self.rolled_back.take()
    }

    /// The running policy's digest and state into the identity and state file.
    fn adopt_running_policy(&mut self) {
        let digest = self.policy.compiled().digest();
        self.identity.policy_digest = digest.into();
        self.state.policy_digest = digest.to_owned();
        self.state.policy_state.clear();
        self.state
            .policy_state
            .extend_from_slice(self.policy.last_good_state());
        self.persist();
    }

    /// Count one tick of a version on probation; past `max_failures`
    /// failed or out-of-band ticks, the previous version comes back.
    fn watch_probation(&mut self, failed: Option<String>) {
        let Some(p) = self.probation.as_mut() else {
            return;
        };
        let rollout = &self.config.rollout;
        p.ticks += 1;
        if let Some(why) = failed {
            p.failures += 1;
            p.last_failure = why;
        }
        if p.failures > rollout.max_failures {
            let Some(p) = self.probation.take() else {
                return;
            };
            let OnProbation {
                previous,
                previous_label,
                ticks,
                failures,
                last_failure,
            } = *p;
            let why =
                format!("{failures} of its first {ticks} ticks failed (the last: {last_failure})");
            let bad = std::mem::replace(&mut self.policy, previous);
            let bad_label = std::mem::replace(&mut self.identity.policy, previous_label);
            tracing::error!(scaler = %self.config.name, version = %bad_label, %why, "a swapped-in policy failed its probation: the previous version is back");
            self.pending_failures.push(Failure::new(
                Stage::Policy,
                "rolled-back",
                format!("{bad_label} rolled back to {}: {why}", self.identity.policy),
            ));
            self.rolled_back = Some(super::Notice::RolledBack {
                scaler: self.config.name.clone(),
                policy: self.config.policy.clone(),
                from_digest: bad.compiled().digest().to_owned(),
                to_digest: self.policy.compiled().digest().to_owned(),
                why,
            });
            self.adopt_running_policy();
        } else if p.ticks >= rollout.probation_ticks {
            tracing::info!(scaler = %self.config.name, "a swapped-in policy passed its probation");
            self.probation = None;
        }
    }

    /// Why this tick counts against a version on probation, if it does.
    fn probation_failure(&self, failures: &[Failure], proposal: Option<u32>) -> Option<String> {
        self.probation.as_ref()?;
        if let Some(f) = failures.iter().find(|f| f.stage == Stage::Policy) {
            return Some(format!("{}: {}", f.kind, f.message));
        }
        let r = &self.config.rollout;
        let lo = r.band_min.unwrap_or(self.config.min_replicas);
        let hi = r.band_max.unwrap_or(self.config.max_replicas);
        proposal
            .filter(|p| *p < lo || *p > hi)
            .map(|p| format!("proposed {p}, outside the band [{lo}, {hi}]"))
    }

    pub fn tenant(&self) -> &str {
        &self.config.tenant
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The tick interval. Validation bounds it; an unvalidated config gets
    /// the nearest bound rather than a panic.
    pub fn interval(&self) -> Duration {
        let seconds = self.config.interval_seconds;
        let seconds = if seconds.is_nan() {
            crate::config::MAX_INTERVAL_SECONDS
        } else {
            seconds.clamp(
                crate::config::MIN_INTERVAL_SECONDS,
                crate::config::MAX_INTERVAL_SECONDS,
            )
        };
        Duration::from_secs_f64(seconds)
    }

    pub fn state(&self) -> &PersistedState {
        &self.state
    }

    /// What this scaler hands to the one that replaces it (a reload).
    pub(super) fn into_state(self) -> PersistedState {
        self.state
    }

    /// Take over the state of the scaler this one replaces (config reload):
    /// guard history, failed ticks, the target's count, and the policy's memory
    /// (which the new policy may reject: then it starts fresh).
    pub fn adopt(&mut self, old: PersistedState) {
        if !old.policy_state.is_empty()
            && let Err(e) = self.policy.load_state(&old.policy_state)
        {
            tracing::warn!(scaler = %self.config.name, error = %e, "the new policy rejected the old one's state; it starts fresh");
            self.pending_failures.push(state_rejected(&e));
        }
        let digest = std::mem::take(&mut self.state.policy_digest);
        self.state = PersistedState {
            policy_digest: digest,
            ..old
        };
        if let Some(n) = self.state.last_replicas {
            self.actuator.resume_at(n);
        }
    }

    /// Set (or clear) the circuit breaker by operator request; persisted.
    pub fn set_breaker(&mut self, setting: Option<BreakerSetting>) {
        tracing::warn!(scaler = %self.config.name, ?setting, "circuit breaker changed by an operator");
        self.state.guard.breaker = setting;
        self.persist();
    }

    /// One tick: observe, read, evaluate, guard, act, record. Never panics;
    /// every failure ends up in the returned record.
    pub async fn tick(&mut self, now_ms: u64) -> AuditRecord {
        let started = Instant::now();
        // Failures noticed between ticks (a policy that rejected its saved
        // state) are reported with the next record.
        let mut failures = std::mem::take(&mut self.pending_failures);
        let mut guardrails: Vec<GuardrailRecord> = Vec::new();
        let fail = Failure::new;

        // An unreadable target leaves the count unknown: nothing is decided,
        // the tick fails (toward the fallback), and the record and metrics
        // carry the last count known, never a made-up 0.
        let observed = match self.actuator.observe().await {
            Ok(o) => Some(o),
            Err(e) => {
                failures.push(fail(Stage::ActuatorRead, e.kind(), e.to_string()));
                None
            }
        };
        let current = match &observed {
            Some(o) => o.current,
            None => self.state.last_replicas.unwrap_or(0),
        };
        let target_read = observed.is_some();
        let no_pods = observed
            .as_ref()
            .is_some_and(|o| o.current > 0 && o.observed.is_none_or(|n| n == 0));
        let (snapshot, missing) = match observed {
            Some(o) => self.read_snapshot(o, now_ms, &mut failures).await,
            None => (None, Vec::new()),
        };

        // Under `run`, the tenant's lane says whether (and when) to evaluate.
        let wait = self.interval() / 2;
        let admitted = match (self.gate.as_mut(), &snapshot) {
            (Some(gate), Some(_)) => match gate.admit(wait).await {
                Ok(a) => Some(a),
                Err(why) => {
                    failures.push(fail(Stage::Policy, "throttled", why));
                    None
                }
            },
            _ => None,
        };
        let evaluate = self.gate.is_none() || admitted.is_some();
        // A scaler of a tenant with a concurrency quota and a recent slow
        // evaluation: the worker hands its other tasks (other tenants'
        // ticks) on, and the evaluation runs at the lowest OS priority.
        let isolate = self.gate.as_ref().is_some_and(|g| g.isolates());
        let evaluated_at = Instant::now();
        let evaluation = snapshot.as_ref().filter(|_| evaluate).map(|s| {
            if isolate {
                let policy = &mut self.policy;
                tokio::task::block_in_place(|| {
                    super::schedule::at_low_priority(|| policy.evaluate(s))
                })
            } else {
                self.policy.evaluate(s)
            }
        });
        let (mut decision, mut fuel) = match evaluation {
            Some(Ok(eval)) => (Some(eval.decision), Some(eval.cost.fuel)),
            Some(Err(e)) => {
                failures.push(fail(Stage::Policy, e.kind(), e.to_string()));
                (None, Some(self.policy.failed_fuel()))
            }
            None => (None, None),
        };
        let shadowed = match (self.shadow.as_mut(), snapshot.as_ref()) {
            (Some(shadow), Some(s)) => {
                Some(shadow.observe(s, decision.as_ref().map(|d| d.desired)))
            }
            _ => None,
        };
        // The safety net's proposal is a floor under the main policy's.
        if let (Some(net), Some(s)) = (self.safety.as_mut(), snapshot.as_ref().filter(|_| evaluate))
        {
            match net.evaluate(s) {
                Ok(eval) => {
                    fuel = Some(fuel.unwrap_or(0) + eval.cost.fuel);
                    let wins = decision
                        .as_ref()
                        .is_none_or(|d| eval.decision.desired > d.desired);
                    if wins {
                        let mut d = eval.decision;
                        d.reason = format!("safety net: {}", d.reason);
                        if let Some(main) = &decision {
                            d.spot_fraction = main.spot_fraction;
                        }
                        decision = Some(d);
                    }
                }
                Err(e) => {
                    fuel = Some(fuel.unwrap_or(0) + net.failed_fuel());
                    failures.push(fail(Stage::SafetyNet, e.kind(), e.to_string()));
                }
            }
        }
        if let Some(gate) = self.gate.as_mut()
            && admitted.is_some()
        {
            let hit_deadline = failures.iter().any(|f| {
                f.kind == "deadline" && matches!(f.stage, Stage::Policy | Stage::SafetyNet)
            });
            gate.spent(fuel.unwrap_or(0), hit_deadline, evaluated_at.elapsed());
        }
        drop(admitted);
        if self.probation.is_some() && snapshot.is_some() {
            let why = self.probation_failure(&failures, decision.as_ref().map(|d| d.desired));
            self.watch_probation(why);
        }
        // A tick fails when the target cannot be read, when nothing produced
        // a valid proposal (source down, every policy failed), or when the
        // write fails (counted below); each counts toward the fallback.
        if decision.is_none() {
            self.state.failed_ticks = self.state.failed_ticks.saturating_add(1);
        }
        let tick = Tick {
            now_ms,
            current,
            proposal: decision.as_ref().map(|d| d.desired),
            price_per_replica_hour: snapshot.as_ref().and_then(|s| s.cost.on_demand_per_hour),
            missing: &missing,
            no_pods,
            failed_ticks: self.state.failed_ticks,
            hold: decision.as_ref().is_some_and(|d| d.hold),
            pools: decision.as_ref().map_or(&[], |d| d.pools.as_slice()),
        };

        // With the target unreadable only the fallback is acted on, and only
        // from a count known before; otherwise the record says what the
        // shaping rules (the fallback) would have done.
        if !target_read {
            let (shaped, changes) = if self.guarded {
                guard::shape(&self.guard, &tick)
            } else {
                (None, Vec::new())
            };
            if shaped.is_none() || self.state.last_replicas.is_none() {
                guardrails.extend(changes.iter().map(GuardrailRecord::from));
                self.persist();
                return self.finish(
                    now_ms, started, None, missing, None, failures, guardrails, current, current,
                    false,
                );
            }
        }

        let verdict = if self.guarded {
            guard::apply(&self.guard, &mut self.state.guard, tick)
        } else {
            guard::Verdict::unguarded(&tick)
        };
        guardrails.extend(verdict.interventions.iter().map(GuardrailRecord::from));
        let target = verdict.replicas;

        let mut wrote = false;
        let mut write_failed = false;
        if verdict.act
            && let Some(f) = decision.as_ref().and_then(|d| d.spot_fraction)
        {
            self.actuator.set_spot_fraction(f);
        }
        // The mix, then the replicas to go first, then the count. A target
        // without pools, or that cannot choose, says so in the record.
        let mut ignored: Vec<String> = Vec::new();
        if verdict.act && !verdict.pools.is_empty() && !self.actuator.set_pools(&verdict.pools) {
            ignored.push("pools".into());
        }
        if verdict.act
            && target < current
            && let Some(d) = decision.as_ref().filter(|d| !d.remove_first.is_empty())
        {
            match self.actuator.remove_first(&d.remove_first).await {
                Ok(true) => {}
                Ok(false) => ignored.push("remove-first".into()),
                // The scale-down still goes ahead: the target picks the replicas.
                Err(e) => failures.push(fail(Stage::ActuatorWrite, e.kind(), e.to_string())),
            }
        }
        if verdict.act && target != current {
            let reason = decision
                .as_ref()
                .map_or("guardrails", |d| d.reason.as_str());
            match self.actuator.apply(target, reason).await {
                Ok(w) => wrote = w,
                Err(e) => {
                    write_failed = true;
                    failures.push(fail(Stage::ActuatorWrite, e.kind(), e.to_string()));
                }
            }
        }
        // A tick with a decision fails only if its write does (an unreadable
        // target leaves no decision, and was counted above).
        if decision.is_some() {
            self.state.failed_ticks = if write_failed {
                self.state.failed_ticks.saturating_add(1)
            } else {
                0
            };
        }
        let saved = self.policy.last_good_state();
        if self.state.policy_state != saved {
            self.state.policy_state.clear();
            self.state.policy_state.extend_from_slice(saved);
        }
        // What the target holds now: the new count only if it was written
        // (or needed no write).
        let final_replicas = if write_failed || !verdict.act {
            current
        } else {
            target
        };
        if !write_failed {
            self.state.last_replicas = Some(final_replicas);
        }
        self.persist();
        let recorded = decision.as_ref().map(RecordedDecision::from);
        self.finish(
            now_ms,
            started,
            snapshot,
            missing,
            recorded,
            failures,
            guardrails,
            current,
            final_replicas,
            wrote,
        )
        .with_fuel(fuel)
        .with_pools(verdict.pools, ignored)
        .with_shadow(shadowed)
    }

    /// The source's reading as the snapshot the policy sees, with the replica
    /// counts the target reported.
    async fn read_snapshot(
        &mut self,
        observed: Observed,
        now_ms: u64,
        failures: &mut Vec<Failure>,
    ) -> (Option<crate::model::Snapshot>, Vec<String>) {
        let current = observed.current;
        match self.source.read().await {
            Ok(Reading {
                snapshot: Some(mut recorded),
                missing,
                ..
            }) => {
                // A recorded snapshot is fed as it was, with the counts the
                // target reports now (replay runs closed-loop).
                recorded.replicas.current = current;
                recorded.replicas.observed = observed.observed;
                if recorded.pools.is_empty() {
                    recorded.pools = self.bounded(observed.pools);
                }
                if recorded.pods.is_empty() {
                    recorded.pods = observed.replicas;
                }
                (Some(recorded), missing)
            }
            Ok(r) => {
                let replicas = ReplicaCounts {
                    current,
                    observed: observed.observed,
                    ready: observed.ready,
                    starting: observed.starting,
                    pending: None,
                    min: Some(self.config.min_replicas),
                    max: Some(self.config.max_replicas),
                };
                let interval_ms = (self.config.interval_seconds * 1000.0) as u32;
                let time = r.time_ms.unwrap_or(now_ms);
                match crate::snapshot::from_values(
                    r.values.iter().map(|(k, v)| (k.as_str(), *v)),
                    time,
                    interval_ms,
                    replicas,
                ) {
                    Ok(mut s) => {
                        s.pools = self.bounded(observed.pools);
                        s.pods = observed.replicas;
                        (Some(s), r.missing)
                    }
                    Err(e) => {
                        failures.push(Failure::new(Stage::Source, "snapshot", e));
                        (None, r.missing)
                    }
                }
            }
            Err(e) => {
                failures.push(Failure::new(Stage::Source, e.kind(), e.to_string()));
                (None, Vec::new())
            }
        }
    }

    /// The target's pools with the bounds this scaler configures for each.
    fn bounded(&self, mut pools: Vec<crate::model::Pool>) -> Vec<crate::model::Pool> {
        for p in &mut pools {
            if let Some(b) = self.config.pools.get(&p.name) {
                p.min = Some(b.min);
                p.max = b.max;
            }
        }
        pools
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "every field of a record, named at the one call site"
    )]
    fn finish(
        &self,
        now_ms: u64,
        started: Instant,
        snapshot: Option<crate::model::Snapshot>,
        missing: Vec<String>,
        decision: Option<RecordedDecision>,
        failures: Vec<Failure>,
        guardrails: Vec<GuardrailRecord>,
        previous: u32,
        final_replicas: u32,
        wrote: bool,
    ) -> AuditRecord {
        let count_unknown = self.state.last_replicas.is_none()
            && failures.iter().any(|f| f.stage == Stage::ActuatorRead);
        AuditRecord {
            time_ms: now_ms,
            scaler: self.identity.scaler.clone(),
            tenant: self.identity.tenant.clone(),
            policy: self.identity.policy.clone(),
            policy_digest: self.identity.policy_digest.clone(),
            snapshot,
            missing,
            decision,
            failures,
            guardrails,
            previous_replicas: previous,
            final_replicas,
            count_unknown,
            wrote,
            fuel: None,
            pools: Vec::new(),
            ignored: Vec::new(),
            shadow: None,
            latency_us: started.elapsed().as_micros() as u64,
        }
    }

    /// Write state atomically (write a temp file, then rename).
    fn persist(&self) {
        let Some(path) = &self.state_file else { return };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("json.tmp");
            std::fs::write(
                &tmp,
                serde_json::to_vec(&self.state).map_err(std::io::Error::other)?,
            )?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            tracing::error!(scaler = %self.config.name, path = %path.display(), error = %e, "cannot persist scaler state");
        }
    }
}

impl AuditRecord {
    fn with_pools(mut self, pools: Vec<crate::model::PoolTarget>, ignored: Vec<String>) -> Self {
        self.pools = pools;
        self.ignored = ignored;
        self
    }

    fn with_fuel(mut self, fuel: Option<u64>) -> Self {
        self.fuel = fuel;
        self
    }

    fn with_shadow(mut self, shadow: Option<crate::audit::ShadowDecision>) -> Self {
        self.shadow = shadow;
        self
    }
}

/// The metrics the policies read, when every one of them declares it (0.2);
/// `None` when one reads the whole snapshot (0.1).
fn read_by_policies(main: &PolicyInstance, safety: Option<&PolicyInstance>) -> Option<Vec<String>> {
    let mut read = Vec::new();
    for policy in std::iter::once(main).chain(safety) {
        let (contract, signals) = policy.contract();
        if contract != Some(crate::host::Contract::V2) {
            return None;
        }
        read.extend(signals.iter().map(|s| crate::host::metric_of(s).to_owned()));
    }
    Some(read)
}

/// A metric the guard itself reads: the on-demand price, for a cost ceiling
/// that takes its price from the snapshot.
fn guard_reads(config: &ScalerConfig, metric: &str) -> bool {
    metric == "cost.on_demand_per_hour"
        && config
            .guard
            .cost_ceiling
            .is_some_and(|c| c.price_per_replica_hour.is_none())
}

/// A scaler's `require_signed_by` against who signed `digest`: Ok when it
/// requires nothing or one of its keys signed it, else why not.
pub fn check_signed(required: &[String], digest: &str, signers: &[String]) -> Result<(), String> {
    if required.is_empty() || signers.iter().any(|s| required.contains(s)) {
        Ok(())
    } else if signers.is_empty() {
        Err(format!(
            "{digest} is not signed, and this scaler requires a signature (require_signed_by)"
        ))
    } else {
        Err(format!(
            "{digest} is signed by {}, none of the keys this scaler requires (require_signed_by)",
            signers.join(", ")
        ))
    }
}

/// The record of a policy that rejected the state it was handed.
fn state_rejected(e: &crate::host::PolicyError) -> Failure {
    Failure::new(
        Stage::Policy,
        e.kind(),
        format!("{e}; the policy started without it"),
    )
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
