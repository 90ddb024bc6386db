//! The Kubernetes HPA's normalization stages, exactly as upstream computes them
//! (`pkg/controller/podautoscaler/horizontal.go`): stabilization windows, the
//! `behavior` rate policies, and the legacy no-behavior path. Pure functions of
//! explicit history and a clock value, so they can be persisted and tested with
//! a fake clock.
//!
//! A sample or event is inside a window while its age is strictly less than
//! the window (an event exactly `period` old is outside).

use serde::{Deserialize, Serialize};

/// How to pick among several rate policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectPolicy {
    /// The policy allowing the largest change (upstream default).
    #[default]
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// `Pods` (a number of replicas) or `Percent` (of the replicas at the start of
/// the period) per `period_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RatePolicyKind {
    Pods,
    Percent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatePolicy {
    #[serde(rename = "type")]
    pub kind: RatePolicyKind,
    pub value: u32,
    pub period_seconds: u32,
}

/// One direction's rules (`spec.behavior.scaleUp` or `scaleDown`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingRules {
    #[serde(default)]
    pub stabilization_window_seconds: u32,
    #[serde(default)]
    pub select_policy: SelectPolicy,
    pub policies: Vec<RatePolicy>,
}

impl ScalingRules {
    /// Upstream's default scale-up rules: max of +4 pods or +100 % per 15 s, no window.
    pub fn default_scale_up() -> Self {
        ScalingRules {
            stabilization_window_seconds: 0,
            select_policy: SelectPolicy::Max,
            policies: vec![
                RatePolicy {
                    kind: RatePolicyKind::Pods,
                    value: 4,
                    period_seconds: 15,
                },
                RatePolicy {
                    kind: RatePolicyKind::Percent,
                    value: 100,
                    period_seconds: 15,
                },
            ],
        }
    }

    /// Upstream's default scale-down rules: -100 % per 15 s, 300 s window.
    pub fn default_scale_down() -> Self {
        ScalingRules {
            stabilization_window_seconds: 300,
            select_policy: SelectPolicy::Max,
            policies: vec![RatePolicy {
                kind: RatePolicyKind::Percent,
                value: 100,
                period_seconds: 15,
            }],
        }
    }

    fn longest_period_ms(&self) -> u64 {
        self.policies
            .iter()
            .map(|p| u64::from(p.period_seconds) * 1000)
            .max()
            .unwrap_or(0)
    }
}

/// `spec.behavior`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behavior {
    #[serde(default = "ScalingRules::default_scale_up")]
    pub scale_up: ScalingRules,
    #[serde(default = "ScalingRules::default_scale_down")]
    pub scale_down: ScalingRules,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            scale_up: ScalingRules::default_scale_up(),
            scale_down: ScalingRules::default_scale_down(),
        }
    }
}

/// An unstabilized recommendation, with its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    pub at_ms: u64,
    pub replicas: u32,
}

/// A past scaling action (a positive change), with its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleEvent {
    pub at_ms: u64,
    pub change: u32,
}

fn inside(now_ms: u64, at_ms: u64, window_ms: u64) -> bool {
    now_ms.saturating_sub(at_ms) < window_ms
}

/// Record `replicas` as the newest recommendation, reusing the slot of one that
/// is outside every window (as upstream does), so history stays bounded.
fn record(
    history: &mut Vec<Recommendation>,
    now_ms: u64,
    replicas: u32,
    is_old: impl Fn(&Recommendation) -> bool,
) {
    let new = Recommendation {
        at_ms: now_ms,
        replicas,
    };
    match history.iter().rposition(is_old) {
        Some(i) => history[i] = new,
        None => history.push(new),
    }
}

/// Legacy (no `behavior`) stabilization: the max of the recommendations inside
/// the downscale window and the new one. Records the new one.
pub fn stabilize_legacy(
    history: &mut Vec<Recommendation>,
    now_ms: u64,
    desired: u32,
    window_ms: u64,
) -> u32 {
    let stabilized = history
        .iter()
        .filter(|r| inside(now_ms, r.at_ms, window_ms))
        .map(|r| r.replicas)
        .fold(desired, u32::max);
    record(history, now_ms, desired, |r| {
        !inside(now_ms, r.at_ms, window_ms)
    });
    stabilized
}

/// Stabilization with `behavior`: clamp `current` between the min of the
/// recommendations in the up window and the max of those in the down window
/// (both including the new one). Records the new one.
pub fn stabilize_with_behavior(
    history: &mut Vec<Recommendation>,
    now_ms: u64,
    current: u32,
    desired: u32,
    behavior: &Behavior,
) -> u32 {
    let up_ms = u64::from(behavior.scale_up.stabilization_window_seconds) * 1000;
    let down_ms = u64::from(behavior.scale_down.stabilization_window_seconds) * 1000;
    let (mut up, mut down) = (desired, desired);
    for r in history.iter() {
        if inside(now_ms, r.at_ms, up_ms) {
            up = up.min(r.replicas);
        }
        if inside(now_ms, r.at_ms, down_ms) {
            down = down.max(r.replicas);
        }
    }
    let stabilized = current.max(up).min(down);
    record(history, now_ms, desired, |r| {
        !inside(now_ms, r.at_ms, up_ms) && !inside(now_ms, r.at_ms, down_ms)
    });
    stabilized
}

fn change_in_period(events: &[ScaleEvent], now_ms: u64, period_ms: u64) -> i64 {
    events
        .iter()
        .filter(|e| inside(now_ms, e.at_ms, period_ms))
        .map(|e| i64::from(e.change))
        .sum()
}

fn period_start(
    current: u32,
    up: &[ScaleEvent],
    down: &[ScaleEvent],
    now_ms: u64,
    period_ms: u64,
) -> i64 {
    i64::from(current) - change_in_period(up, now_ms, period_ms)
        + change_in_period(down, now_ms, period_ms)
}

/// The most replicas `rules` allow now (upstream `calculateScaleUpLimitWithScalingRules`).
pub fn scale_up_limit(
    current: u32,
    up: &[ScaleEvent],
    down: &[ScaleEvent],
    now_ms: u64,
    rules: &ScalingRules,
) -> i64 {
    let pick: fn(i64, i64) -> i64 = match rules.select_policy {
        SelectPolicy::Disabled => return i64::from(current),
        SelectPolicy::Min => i64::min,
        SelectPolicy::Max => i64::max,
    };
    let mut result = if rules.select_policy == SelectPolicy::Min {
        i64::from(i32::MAX)
    } else {
        i64::from(i32::MIN)
    };
    for p in &rules.policies {
        let start = period_start(
            current,
            up,
            down,
            now_ms,
            u64::from(p.period_seconds) * 1000,
        );
        let proposed = match p.kind {
            RatePolicyKind::Pods => start + i64::from(p.value),
            RatePolicyKind::Percent => {
                (start as f64 * (1.0 + f64::from(p.value) / 100.0)).ceil() as i64
            }
        };
        result = pick(result, proposed);
    }
    result
}

/// The fewest replicas `rules` allow now (upstream `calculateScaleDownLimitWithBehaviors`).
pub fn scale_down_limit(
    current: u32,
    up: &[ScaleEvent],
    down: &[ScaleEvent],
    now_ms: u64,
    rules: &ScalingRules,
) -> i64 {
    let pick: fn(i64, i64) -> i64 = match rules.select_policy {
        SelectPolicy::Disabled => return i64::from(current),
        SelectPolicy::Min => i64::max,
        SelectPolicy::Max => i64::min,
    };
    let mut result = if rules.select_policy == SelectPolicy::Min {
        i64::from(i32::MIN)
    } else {
        i64::from(i32::MAX)
    };
    for p in &rules.policies {
        let start = period_start(
            current,
            up,
            down,
            now_ms,
            u64::from(p.period_seconds) * 1000,
        );
        let proposed = match p.kind {
            RatePolicyKind::Pods => start - i64::from(p.value),
            // Go's int32(float64) conversion truncates toward zero.
            RatePolicyKind::Percent => {
                (start as f64 * (1.0 - f64::from(p.value) / 100.0)).trunc() as i64
            }
        };
        result = pick(result, proposed);
    }
    result
}

/// Why the rate stage limited (or did not limit) a decision: upstream's
/// `ScalingLimited` reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Limited {
    DesiredWithinRange,
    ScaleUpLimit,
    ScaleDownLimit,
    TooManyReplicas,
    TooFewReplicas,
}

/// Apply `behavior` rate policies and min/max (upstream
/// `convertDesiredReplicasWithBehaviorRate`).
#[allow(
    clippy::too_many_arguments,
    reason = "upstream's own signature, argument for argument"
)]
pub fn convert_with_behavior_rate(
    current: u32,
    desired: u32,
    min: u32,
    max: u32,
    up: &[ScaleEvent],
    down: &[ScaleEvent],
    now_ms: u64,
    behavior: &Behavior,
) -> (u32, Limited) {
    let (current_i, desired_i) = (i64::from(current), i64::from(desired));
    if desired > current {
        let limit = scale_up_limit(current, up, down, now_ms, &behavior.scale_up).max(current_i);
        let (allowed, reason) = if i64::from(max) > limit {
            (limit, Limited::ScaleUpLimit)
        } else {
            (i64::from(max), Limited::TooManyReplicas)
        };
        if desired_i > allowed {
            return (allowed as u32, reason);
        }
    } else if desired < current {
        let limit =
            scale_down_limit(current, up, down, now_ms, &behavior.scale_down).min(current_i);
        let (allowed, reason) = if i64::from(min) < limit {
            (limit, Limited::ScaleDownLimit)
        } else {
            (i64::from(min), Limited::TooFewReplicas)
        };
        if desired_i < allowed {
            return (allowed.max(0) as u32, reason);
        }
    }
    (desired, Limited::DesiredWithinRange)
}

/// The legacy path's scale-up cap: `max(2 x current, 4)`.
pub fn legacy_scale_up_limit(current: u32) -> u32 {
    current.saturating_mul(2).max(4)
}

/// Apply the legacy cap and min/max (upstream `convertDesiredReplicasWithRules`).
pub fn convert_with_rules(current: u32, desired: u32, min: u32, max: u32) -> (u32, Limited) {
    let cap = legacy_scale_up_limit(current);
    let (allowed, reason) = if max > cap {
        (cap, Limited::ScaleUpLimit)
    } else {
        (max, Limited::TooManyReplicas)
    };
    if desired < min {
        (min, Limited::TooFewReplicas)
    } else if desired > allowed {
        (allowed, reason)
    } else {
        (desired, Limited::DesiredWithinRange)
    }
}

/// Remember a scaling action for later rate limits (upstream `storeScaleEvent`):
/// reuses the slot of an event older than the direction's longest period.
pub fn store_scale_event(
    up: &mut Vec<ScaleEvent>,
    down: &mut Vec<ScaleEvent>,
    behavior: &Behavior,
    now_ms: u64,
    previous: u32,
    new: u32,
) {
    let (events, change, longest) = match new.cmp(&previous) {
        std::cmp::Ordering::Greater => (up, new - previous, behavior.scale_up.longest_period_ms()),
        std::cmp::Ordering::Less => (
            down,
            previous - new,
            behavior.scale_down.longest_period_ms(),
        ),
        std::cmp::Ordering::Equal => return,
    };
    let event = ScaleEvent {
        at_ms: now_ms,
        change,
    };
    match events
        .iter()
        .position(|e| !inside(now_ms, e.at_ms, longest))
    {
        Some(i) => events[i] = event,
        None => events.push(event),
    }
}
