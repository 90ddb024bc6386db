//! Guardrails: what a policy proposes is only a proposal. These rules run in the
//! host, outside the sandbox, in one fixed order, and no policy can skip them.
//! Three shape the proposal first ([`shape`]):
//!
//! - **missing-metric**: a metric the source could not fill blocks scale-down,
//!   never scale-up (the HPA rule);
//! - **no-pods**: a target that reports no pods for a non-zero count blocks
//!   scale-down (the HPA holds when it sees no pods);
//! - **fallback**: after `after_failed_ticks` failed ticks in a row, the
//!   configured count (as KEDA does). It wins over the two before it: it is
//!   the operator's count for a scaler that cannot see.
//!
//! Then:
//!
//! 1. **invalid decision**: a failed or invalid evaluation holds the current count
//!    (the host has already rejected NaN, infinite, negative and absurd values);
//! 2. **rate** (`rate`): HPA `behavior` (stabilization windows, `Pods`/`Percent`
//!    policies with periods, `selectPolicy`), or the legacy no-behavior path
//!    (`max(2 x current, 4)` scale-up cap, 300 s down-stabilization), or none;
//! 3. **bounds**: `min_replicas` / `max_replicas`;
//! 4. **cooldown**: minimum time after a scale-up before the next scale-up, and
//!    after any scaling before a scale-down;
//! 5. **cost ceiling**: replicas x price per hour within a budget (never below
//!    `min_replicas`);
//! 6. **circuit breaker**: manual pause / freeze / scale-in-only / scale-out-only
//!    with an expiry, and an automatic freeze when decisions flap;
//! 7. **pools**: a decision's per-pool targets are fitted to the settled total
//!    and to each pool's bounds ([`pools::split`]); when none fits, the total
//!    wins and the split is dropped. A pause or freeze drops it too.
//!
//! Every rule that changes the count leaves an [`Intervention`] saying why. The
//! guard knows nothing of WebAssembly: it sees numbers and a clock, and its
//! whole memory is the serializable [`GuardState`], so a restart inside a
//! stabilization window keeps the window.

pub mod hpa;
pub mod pools;

use crate::model::PoolTarget;
use hpa::{Behavior, Recommendation, ScaleEvent};
pub use pools::{PoolBounds, PoolLimits};
use serde::{Deserialize, Serialize};

/// Rate limiting, the HPA way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Rate {
    /// No rate limits or stabilization.
    None,
    /// The HPA without `spec.behavior`: down-stabilization over the window and
    /// a scale-up cap of `max(2 x current, 4)`.
    Legacy {
        downscale_stabilization_seconds: u32,
    },
    /// The HPA with `spec.behavior`.
    Behavior(Behavior),
}

impl Default for Rate {
    fn default() -> Self {
        Rate::Behavior(Behavior::default())
    }
}

/// Cost ceiling: `replicas x price_per_replica_hour <= budget_per_hour`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostCeiling {
    pub budget_per_hour: f64,
    /// Price to assume; when absent, the snapshot's on-demand price is used.
    #[serde(default)]
    pub price_per_replica_hour: Option<f64>,
}

/// Automatic flap detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlapBreaker {
    /// Trip when decisions change direction more than this many times ...
    pub max_direction_changes: u32,
    /// ... within this window ...
    pub window_seconds: u64,
    /// ... and then freeze for this long.
    pub freeze_seconds: u64,
}

impl Default for FlapBreaker {
    fn default() -> Self {
        FlapBreaker {
            max_direction_changes: 4,
            window_seconds: 600,
            freeze_seconds: 900,
        }
    }
}

/// Guardrail configuration of one scaler: its bounds and its rules.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub rules: GuardRules,
    pub fallback: FallbackConfig,
    /// Bounds of each capacity pool, by name; a pool not named is unbounded.
    pub pools: PoolLimits,
}

/// What a scaler does after repeated failed ticks (source down, policy failing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FallbackConfig {
    /// Consecutive failed ticks before the fallback applies.
    pub after_failed_ticks: u32,
    /// Fixed replica count to go to; absent = hold the current count.
    pub replicas: Option<u32>,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            after_failed_ticks: 3,
            replicas: None,
        }
    }
}

/// Everything but the bounds (the `[scaler.guard]` table of a config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardRules {
    /// Default: HPA `behavior` with upstream's default rules.
    pub rate: Rate,
    /// Minimum seconds between two scale-ups.
    pub scale_up_cooldown_seconds: u64,
    /// Minimum seconds after any scaling before a scale-down.
    pub scale_down_cooldown_seconds: u64,
    pub cost_ceiling: Option<CostCeiling>,
    pub flap_breaker: Option<FlapBreaker>,
    /// HPA convention: a target scaled to 0 by hand while `min_replicas > 0`
    /// has autoscaling disabled, and is left alone.
    pub zero_disables: bool,
}

impl Default for GuardRules {
    fn default() -> Self {
        GuardRules {
            rate: Rate::default(),
            scale_up_cooldown_seconds: 0,
            scale_down_cooldown_seconds: 0,
            cost_ceiling: None,
            flap_breaker: None,
            zero_disables: true,
        }
    }
}

impl GuardRules {
    /// No rate limits, cooldowns, ceiling or breaker: bounds only.
    pub fn off() -> Self {
        GuardRules {
            rate: Rate::None,
            ..GuardRules::default()
        }
    }
}

impl GuardConfig {
    /// Bounds only, everything else off.
    pub fn bounds(min_replicas: u32, max_replicas: u32) -> Self {
        GuardConfig {
            min_replicas,
            max_replicas,
            rules: GuardRules::off(),
            fallback: FallbackConfig::default(),
            pools: PoolLimits::new(),
        }
    }

    /// Bounds with these rules.
    pub fn new(min_replicas: u32, max_replicas: u32, rules: GuardRules) -> Self {
        GuardConfig {
            min_replicas,
            max_replicas,
            rules,
            fallback: FallbackConfig::default(),
            pools: PoolLimits::new(),
        }
    }

    /// With these pool bounds.
    pub fn with_pools(mut self, pools: PoolLimits) -> Self {
        self.pools = pools;
        self
    }

    /// With this fallback (the default holds, after 3 failed ticks).
    pub fn with_fallback(mut self, fallback: FallbackConfig) -> Self {
        self.fallback = fallback;
        self
    }
}

/// Manual circuit-breaker modes an operator can set, each with an expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerMode {
    /// Hold the current count and do not act at all.
    Pause,
    /// Hold the current count.
    Freeze,
    /// Allow only scale-in.
    ScaleInOnly,
    /// Allow only scale-out.
    ScaleOutOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerSetting {
    pub mode: BreakerMode,
    /// Time the setting lapses, ms since the epoch (None = until cleared).
    pub until_ms: Option<u64>,
    /// Tripped automatically (flapping) rather than set by an operator.
    pub automatic: bool,
}

/// Everything the guard remembers, persisted by the controller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardState {
    /// `None` until the first tick: then the current count is recorded as a
    /// recommendation, which blocks scale-down for the window (as the HPA does).
    pub recommendations: Option<Vec<Recommendation>>,
    pub scale_up_events: Vec<ScaleEvent>,
    pub scale_down_events: Vec<ScaleEvent>,
    pub last_scale_up_ms: Option<u64>,
    pub last_scale_down_ms: Option<u64>,
    /// Times and directions (+1/-1) of recent changes, for flap detection.
    pub direction_changes: Vec<(u64, i8)>,
    pub breaker: Option<BreakerSetting>,
}

/// One guardrail changing the count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Intervention {
    pub guard: &'static str,
    pub before: u32,
    pub after: u32,
    pub why: String,
}

/// What the guard decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub replicas: u32,
    /// False when the breaker is paused: nothing should be written.
    pub act: bool,
    pub interventions: Vec<Intervention>,
    /// The total split over capacity pools (empty: the decision set none,
    /// or no split fit).
    pub pools: Vec<PoolTarget>,
}

impl Verdict {
    /// The proposal as it is, with no guard stage run (`eval` without
    /// guardrails); without a proposal the count holds.
    pub fn unguarded(tick: &Tick<'_>) -> Self {
        Verdict {
            replicas: tick.proposal.unwrap_or(tick.current),
            act: true,
            interventions: Vec::new(),
            pools: tick.pools.to_vec(),
        }
    }
}

/// Inputs of one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick<'a> {
    pub now_ms: u64,
    pub current: u32,
    /// The policy's validated decision; `None` when evaluation failed.
    pub proposal: Option<u32>,
    /// Price per replica-hour from the snapshot, for the cost ceiling.
    pub price_per_replica_hour: Option<f64>,
    /// Metrics the source should have filled but could not.
    pub missing: &'a [String],
    /// The target reports no pods for its non-zero count (its controller
    /// has not reported yet).
    pub no_pods: bool,
    /// Failed ticks in a row, this one included.
    pub failed_ticks: u32,
    /// The policy said "hold" (no opinion): the count stays, and the rate
    /// stage records no recommendation for this tick.
    pub hold: bool,
    /// The decision's per-pool targets (empty: no opinion on the mix).
    pub pools: &'a [PoolTarget],
}

impl Tick<'_> {
    /// A tick with nothing missing, pods reported and no failures before it.
    pub fn new(now_ms: u64, current: u32, proposal: Option<u32>) -> Self {
        Tick {
            now_ms,
            current,
            proposal,
            price_per_replica_hour: None,
            missing: &[],
            no_pods: false,
            failed_ticks: 0,
            hold: false,
            pools: &[],
        }
    }
}

/// The three rules that shape a proposal before the others see it, in their
/// order (see the module docs): the proposal they leave, and what each
/// changed. Pure: it keeps no state.
pub fn shape(config: &GuardConfig, tick: &Tick<'_>) -> (Option<u32>, Vec<Intervention>) {
    let current = tick.current;
    let mut proposal = tick.proposal;
    let mut changes = Vec::new();
    if !tick.missing.is_empty()
        && let Some(p) = proposal
        && p < current
    {
        changes.push(Intervention {
            guard: "missing-metric",
            before: p,
            after: current,
            why: format!("missing {}: scale-down blocked", tick.missing.join(", ")),
        });
        proposal = Some(current);
    }
    if tick.no_pods
        && let Some(p) = proposal
        && p < current
    {
        changes.push(Intervention {
            guard: "no-pods",
            before: p,
            after: current,
            why: format!(
                "the target reports no pods for {current} desired: scale-down blocked until it does"
            ),
        });
        proposal = Some(current);
    }
    let fallback = &config.fallback;
    if tick.failed_ticks >= fallback.after_failed_ticks.max(1)
        && let Some(r) = fallback.replicas
    {
        changes.push(Intervention {
            guard: "fallback",
            before: proposal.unwrap_or(current),
            after: r,
            why: format!("{} failed ticks in a row", tick.failed_ticks),
        });
        proposal = Some(r);
    }
    (proposal, changes)
}

/// Apply every guardrail, in order, to one tick's proposal.
pub fn apply(config: &GuardConfig, state: &mut GuardState, tick: Tick<'_>) -> Verdict {
    let mut v = apply_to_total(config, state, tick);
    let frozen = state
        .breaker
        .is_some_and(|b| matches!(b.mode, BreakerMode::Pause | BreakerMode::Freeze));
    if tick.pools.is_empty() || tick.proposal.is_none() {
        return v;
    }
    let total = v.replicas;
    let dropped = |why: String| Intervention {
        guard: "pools",
        before: total,
        after: total,
        why,
    };
    if frozen {
        v.interventions.push(dropped(
            "the breaker holds the count: the mix is held too".into(),
        ));
        return v;
    }
    match pools::split(total, tick.pools, &config.pools) {
        Ok((split, changed)) => {
            if let Some(why) = changed {
                v.interventions.push(dropped(why));
            }
            v.pools = split;
        }
        Err(why) => v.interventions.push(dropped(why)),
    }
    v
}

/// Rules 1 to 6: the total.
fn apply_to_total(config: &GuardConfig, state: &mut GuardState, tick: Tick<'_>) -> Verdict {
    let (proposal, interventions) = shape(config, &tick);
    let Tick {
        now_ms, current, ..
    } = tick;
    let mut v = Verdict {
        replicas: current,
        act: true,
        interventions,
        pools: Vec::new(),
    };
    // `why` is only written when the guard changed something: formatting it
    // on every tick of every scaler was an allocation each.
    let step = |v: &mut Verdict, guard: &'static str, after: u32, why: &dyn Fn() -> String| {
        if after != v.replicas {
            v.interventions.push(Intervention {
                guard,
                before: v.replicas,
                after,
                why: why(),
            });
            v.replicas = after;
        }
    };
    let history = state.recommendations.get_or_insert_with(|| {
        vec![Recommendation {
            at_ms: now_ms,
            replicas: current,
        }]
    });

    // 1. Invalid decision: hold.
    let Some(desired) = proposal else {
        v.interventions.push(Intervention {
            guard: "invalid-decision",
            before: current,
            after: current,
            why: "no valid decision this tick: holding the current count".into(),
        });
        return finish(config, state, tick, v);
    };
    v.replicas = desired;

    // HPA convention: scaled to zero by hand with a floor above zero = disabled.
    if config.rules.zero_disables && current == 0 && config.min_replicas > 0 {
        step(&mut v, "bounds", 0, &|| {
            "the target is at 0 with min_replicas > 0: autoscaling is disabled".into()
        });
        return finish(config, state, tick, v);
    }
    // A count outside the bounds goes straight to the nearest bound.
    if current > config.max_replicas || current < config.min_replicas {
        let bound = current.clamp(config.min_replicas, config.max_replicas);
        step(&mut v, "bounds", bound, &|| {
            format!(
                "current count {current} is outside [{}, {}]",
                config.min_replicas, config.max_replicas
            )
        });
        return finish(config, state, tick, v);
    }
    // A hold is no recommendation: nothing enters the stabilization history
    // and the count stays (the bounds above still apply to it).
    if tick.hold && desired == current {
        return finish(config, state, tick, v);
    }

    // 2. Rate: stabilization and rate policies, the HPA way (min/max included,
    //    as upstream applies them in the same step).
    match &config.rules.rate {
        Rate::None => {}
        Rate::Legacy {
            downscale_stabilization_seconds,
        } => {
            let window_ms = u64::from(*downscale_stabilization_seconds) * 1000;
            let stabilized = hpa::stabilize_legacy(history, now_ms, desired, window_ms);
            step(&mut v, "stabilization", stabilized, &|| {
                format!("highest recommendation in the last {downscale_stabilization_seconds}s")
            });
            let (limited, reason) = hpa::convert_with_rules(
                current,
                stabilized,
                config.min_replicas,
                config.max_replicas,
            );
            step(&mut v, "rate", limited, &|| {
                format!("{reason:?}: legacy scale-up cap max(2 x {current}, 4) and bounds")
            });
        }
        Rate::Behavior(b) => {
            let stabilized = hpa::stabilize_with_behavior(history, now_ms, current, desired, b);
            step(&mut v, "stabilization", stabilized, &|| {
                format!(
                    "stabilization windows: up {}s, down {}s",
                    b.scale_up.stabilization_window_seconds,
                    b.scale_down.stabilization_window_seconds
                )
            });
            let (limited, reason) = hpa::convert_with_behavior_rate(
                current,
                stabilized,
                config.min_replicas,
                config.max_replicas,
                &state.scale_up_events,
                &state.scale_down_events,
                now_ms,
                b,
            );
            step(&mut v, "rate", limited, &|| {
                format!("{reason:?} under the behavior policies")
            });
        }
    }

    // 3. Bounds.
    let bounded = v.replicas.clamp(config.min_replicas, config.max_replicas);
    step(&mut v, "bounds", bounded, &|| {
        format!(
            "min_replicas {} / max_replicas {}",
            config.min_replicas, config.max_replicas
        )
    });

    // 4. Cooldowns.
    let since = |t: Option<u64>| t.map(|t| now_ms.saturating_sub(t));
    if v.replicas > current
        && let Some(age) = since(state.last_scale_up_ms)
        && age < config.rules.scale_up_cooldown_seconds * 1000
    {
        step(&mut v, "cooldown", current, &|| {
            format!(
                "scaled up {}s ago; scale-up cooldown is {}s",
                age / 1000,
                config.rules.scale_up_cooldown_seconds
            )
        });
    }
    if v.replicas < current {
        let last = state.last_scale_up_ms.max(state.last_scale_down_ms);
        if let Some(age) = since(last)
            && age < config.rules.scale_down_cooldown_seconds * 1000
        {
            step(&mut v, "cooldown", current, &|| {
                format!(
                    "scaled {}s ago; scale-down cooldown is {}s",
                    age / 1000,
                    config.rules.scale_down_cooldown_seconds
                )
            });
        }
    }

    // 5. Cost ceiling.
    if let Some(c) = config.rules.cost_ceiling
        && let Some(price) = c
            .price_per_replica_hour
            .or(tick.price_per_replica_hour)
            .filter(|p| p.is_finite() && *p > 0.0)
    {
        let affordable = (c.budget_per_hour / price)
            .floor()
            .clamp(0.0, f64::from(u32::MAX)) as u32;
        let cap = affordable.max(config.min_replicas);
        if v.replicas > cap {
            let (wanted, budget) = (v.replicas, c.budget_per_hour);
            step(&mut v, "cost-ceiling", cap, &|| {
                format!("{wanted} replicas x {price}/h would exceed the budget of {budget}/h")
            });
        }
    }

    finish(config, state, tick, v)
}

/// Stage 6 (circuit breaker), then remember what was decided.
fn finish(config: &GuardConfig, state: &mut GuardState, tick: Tick<'_>, mut v: Verdict) -> Verdict {
    let Tick {
        now_ms, current, ..
    } = tick;
    if let Some(b) = state.breaker
        && b.until_ms.is_some_and(|t| now_ms >= t)
    {
        state.breaker = None;
    }
    if let Some(b) = state.breaker {
        let held = match b.mode {
            BreakerMode::Pause | BreakerMode::Freeze => current,
            BreakerMode::ScaleInOnly => v.replicas.min(current),
            BreakerMode::ScaleOutOnly => v.replicas.max(current),
        };
        if b.mode == BreakerMode::Pause {
            v.act = false;
        }
        if held != v.replicas {
            let who = if b.automatic {
                "tripped by flapping"
            } else {
                "set by an operator"
            };
            v.interventions.push(Intervention {
                guard: "circuit-breaker",
                before: v.replicas,
                after: held,
                why: format!("{:?} ({who})", b.mode),
            });
            v.replicas = held;
        }
    }

    if v.replicas != current && v.act {
        let direction: i8 = if v.replicas > current { 1 } else { -1 };
        if direction > 0 {
            state.last_scale_up_ms = Some(now_ms);
        } else {
            state.last_scale_down_ms = Some(now_ms);
        }
        if let Rate::Behavior(b) = &config.rules.rate {
            hpa::store_scale_event(
                &mut state.scale_up_events,
                &mut state.scale_down_events,
                b,
                now_ms,
                current,
                v.replicas,
            );
        }
        if let Some(f) = config.rules.flap_breaker {
            let window_ms = f.window_seconds * 1000;
            state
                .direction_changes
                .retain(|(t, _)| now_ms.saturating_sub(*t) < window_ms);
            state.direction_changes.push((now_ms, direction));
            let reversals = state
                .direction_changes
                .windows(2)
                .filter(|w| w[0].1 != w[1].1)
                .count() as u32;
            if reversals > f.max_direction_changes {
                state.breaker = Some(BreakerSetting {
                    mode: BreakerMode::Freeze,
                    until_ms: Some(now_ms + f.freeze_seconds * 1000),
                    automatic: true,
                });
                state.direction_changes.clear();
                tracing::warn!(
                    reversals,
                    freeze_seconds = f.freeze_seconds,
                    "decisions are flapping: circuit breaker frozen"
                );
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(now_s: u64, current: u32, proposal: u32) -> Tick<'static> {
        Tick::new(now_s * 1000, current, Some(proposal))
    }

    #[test]
    fn default_behavior_blocks_scale_down_for_the_window_then_allows_it() {
        let config = GuardConfig::new(1, 100, GuardRules::default());
        let mut state = GuardState::default();
        assert_eq!(apply(&config, &mut state, tick(0, 10, 10)).replicas, 10);
        assert_eq!(apply(&config, &mut state, tick(60, 10, 2)).replicas, 10);
        assert_eq!(apply(&config, &mut state, tick(299, 10, 2)).replicas, 10);
        // 300 s after the last recommendation of 10, scale-down is allowed.
        assert_eq!(apply(&config, &mut state, tick(300, 10, 2)).replicas, 2);
    }

    #[test]
    fn window_survives_a_restart_through_serialized_state() {
        let config = GuardConfig::new(1, 100, GuardRules::default());
        let mut state = GuardState::default();
        apply(&config, &mut state, tick(0, 10, 10));
        let saved = serde_json::to_string(&state).unwrap();
        let mut restored: GuardState = serde_json::from_str(&saved).unwrap();
        let v = apply(&config, &mut restored, tick(120, 10, 3));
        assert_eq!(v.replicas, 10);
        assert_eq!(v.interventions[0].guard, "stabilization");
    }

    #[test]
    fn cooldown_cost_and_bounds_in_order() {
        let rules = GuardRules {
            scale_up_cooldown_seconds: 60,
            cost_ceiling: Some(CostCeiling {
                budget_per_hour: 20.0,
                price_per_replica_hour: Some(2.5),
            }),
            ..GuardRules::off()
        };
        let config = GuardConfig::new(2, 50, rules);
        let mut state = GuardState::default();
        let v = apply(&config, &mut state, tick(0, 4, 100));
        assert_eq!(v.replicas, 8, "{v:?}"); // bounds 50, then budget 20/2.5 = 8
        assert_eq!(
            v.interventions.iter().map(|i| i.guard).collect::<Vec<_>>(),
            ["bounds", "cost-ceiling"]
        );
        let v = apply(&config, &mut state, tick(30, 8, 9));
        assert_eq!(v.replicas, 8); // cooldown
        assert_eq!(apply(&config, &mut state, tick(61, 8, 9)).replicas, 8); // budget
        assert_eq!(apply(&config, &mut state, tick(62, 8, 1)).replicas, 2); // min
    }

    #[test]
    fn flapping_trips_the_breaker_and_it_expires() {
        let rules = GuardRules {
            flap_breaker: Some(FlapBreaker {
                max_direction_changes: 2,
                window_seconds: 600,
                freeze_seconds: 300,
            }),
            ..GuardRules::off()
        };
        let config = GuardConfig::new(1, 10, rules);
        let mut state = GuardState::default();
        let mut current = 5;
        for (i, want) in [6, 5, 6, 5].into_iter().enumerate() {
            current = apply(&config, &mut state, tick(i as u64 * 15, current, want)).replicas;
        }
        assert!(
            state
                .breaker
                .is_some_and(|b| b.automatic && b.mode == BreakerMode::Freeze)
        );
        let v = apply(&config, &mut state, tick(100, current, 9));
        assert_eq!(v.replicas, current);
        assert_eq!(
            v.interventions.last().map(|i| i.guard),
            Some("circuit-breaker")
        );
        assert_eq!(
            apply(&config, &mut state, tick(400, current, 9)).replicas,
            9
        );
    }

    #[test]
    fn manual_modes() {
        let config = GuardConfig::bounds(1, 10);
        for (mode, want, act) in [
            (BreakerMode::Pause, 5, false),
            (BreakerMode::Freeze, 5, true),
            (BreakerMode::ScaleInOnly, 5, true),
            (BreakerMode::ScaleOutOnly, 8, true),
        ] {
            let mut state = GuardState {
                breaker: Some(BreakerSetting {
                    mode,
                    until_ms: Some(60_000),
                    automatic: false,
                }),
                ..GuardState::default()
            };
            let v = apply(&config, &mut state, tick(0, 5, 8));
            assert_eq!((v.replicas, v.act), (want, act), "{mode:?}");
            let down = apply(&config, &mut state, tick(1, 5, 2)).replicas;
            assert_eq!(
                down,
                if matches!(mode, BreakerMode::ScaleInOnly) {
                    2
                } else {
                    5
                },
                "{mode:?}"
            );
            // Expired: back to normal.
            assert_eq!(apply(&config, &mut state, tick(60, 5, 8)).replicas, 8);
        }
    }

    #[test]
    fn shaping_rules_run_first_in_their_order_and_the_fallback_wins() {
        let fallback = FallbackConfig {
            after_failed_ticks: 2,
            replicas: Some(3),
        };
        let config = GuardConfig::bounds(1, 10).with_fallback(fallback);
        let missing = vec!["gpu_utilization".to_owned()];
        // A missing metric, then no pods: each blocks the scale-down 2 < 6.
        let tick = Tick {
            missing: &missing,
            no_pods: true,
            ..Tick::new(0, 6, Some(2))
        };
        let (proposal, changes) = shape(&config, &tick);
        assert_eq!(proposal, Some(6));
        let guards: Vec<&str> = changes.iter().map(|c| c.guard).collect();
        assert_eq!(
            guards,
            ["missing-metric"],
            "no-pods had nothing left to block"
        );
        let (_, changes) = shape(
            &config,
            &Tick {
                missing: &[],
                ..tick
            },
        );
        assert_eq!(changes[0].guard, "no-pods");
        // Two failed ticks: the fallback overrides both and scales down.
        let failing = Tick {
            failed_ticks: 2,
            ..tick
        };
        let v = apply(&config, &mut GuardState::default(), failing);
        let guards: Vec<&str> = v.interventions.iter().map(|c| c.guard).collect();
        assert_eq!(guards, ["missing-metric", "fallback"]);
        assert_eq!(v.replicas, 3);
        // Scale-up is never blocked by either.
        let up = Tick {
            proposal: Some(8),
            ..tick
        };
        assert_eq!(shape(&config, &up), (Some(8), vec![]));
    }

    #[test]
    fn failed_evaluation_holds() {
        let config = GuardConfig::bounds(1, 10);
        let mut state = GuardState::default();
        let v = apply(&config, &mut state, Tick::new(0, 4, None));
        assert_eq!(v.replicas, 4);
        assert_eq!(v.interventions[0].guard, "invalid-decision");
    }
}
