//! The JSON form of a snapshot, as `wasmscale eval` reads it: the WIT record's
//! field names in snake_case. Everything optional may be left out; unknown keys
//! are errors (a typo must not silently read as "metric missing").
//!
//! ```json
//! {"time_ms": 1700000000000, "replicas": {"current": 3, "ready": 3},
//!  "gpu_utilization": 0.82, "queue_depth": 40, "latency_p95_ms": 850,
//!  "cost": {"on_demand_per_hour": 2.5},
//!  "pods": [{"state": "ready", "metrics": [{"name": "cpu", "value": 0.3}], "request": 1.0}],
//!  "custom": {"tokens_in_flight": 1200}}
//! ```
//! `custom` may be a list of `{"name", "value"}` (the WIT form) or an object.

use crate::host::signal_field_mut as field_mut;
use crate::host::signal_values;
use crate::model::Snapshot;
use serde_json::{Map, Value};

/// Values used for the parts of a snapshot that JSON leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub time_ms: u64,
    pub interval_ms: u32,
    /// Current replicas, when `replicas.current` is absent.
    pub current: u32,
}

/// Longest error message built from input: a 10 MB string in a snapshot,
/// config or trace is cut, not echoed whole.
pub const MAX_MESSAGE_BYTES: usize = 400;

/// Cut `s` to at most `max` bytes (on a character boundary), saying how long
/// it was.
pub fn clip(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… (cut from {} bytes)", &s[..cut], s.len()).into()
}

/// [`clip`] to [`MAX_MESSAGE_BYTES`], owned: for error messages.
pub fn clip_message(s: String) -> String {
    if s.len() <= MAX_MESSAGE_BYTES {
        return s;
    }
    clip(&s, MAX_MESSAGE_BYTES).into_owned()
}

/// Parse one snapshot. Returns it and whether it gave `replicas.current` itself.
pub fn from_json(text: &str, defaults: Defaults) -> Result<(Snapshot, bool), String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| clip_message(format!("malformed JSON: {e}")))?;
    from_value(value, defaults)
}

/// As [`from_json`], from a parsed value.
pub fn from_value(value: Value, defaults: Defaults) -> Result<(Snapshot, bool), String> {
    parse_value(value, defaults).map_err(clip_message)
}

fn parse_value(value: Value, defaults: Defaults) -> Result<(Snapshot, bool), String> {
    let Value::Object(mut obj) = value else {
        return Err("a snapshot must be a JSON object".into());
    };
    obj.entry("time_ms").or_insert(defaults.time_ms.into());
    obj.entry("interval_ms")
        .or_insert(defaults.interval_ms.into());
    let replicas = obj
        .entry("replicas")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(replicas) = replicas else {
        return Err("replicas must be an object like {\"current\": 3}".into());
    };
    let gave_current = replicas.contains_key("current");
    replicas.entry("current").or_insert(defaults.current.into());
    obj.entry("cost")
        .or_insert_with(|| Value::Object(Map::new()));
    obj.entry("pods")
        .or_insert_with(|| Value::Array(Vec::new()));
    match obj.get_mut("custom") {
        None => {
            obj.insert("custom".into(), Value::Array(Vec::new()));
        }
        Some(Value::Object(map)) => {
            let list = std::mem::take(map)
                .into_iter()
                .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
                .collect();
            obj.insert("custom".into(), Value::Array(list));
        }
        Some(_) => {}
    }
    if let Some(Value::Array(pods)) = obj.get_mut("pods") {
        for pod in pods.iter_mut() {
            if let Some(state) = pod.get_mut("state")
                && let Some(s) = state.as_str()
            {
                *state = Value::String(variant_name(s));
            }
            if let Value::Object(p) = pod {
                p.entry("metrics")
                    .or_insert_with(|| Value::Array(Vec::new()));
                // An explicit `null` is "unknown", as a key left out is.
                p.retain(|k, v| !v.is_null() || k == "request");
            }
        }
    }
    if let Some(Value::Array(pools)) = obj.get_mut("pools") {
        for pool in pools.iter_mut() {
            if let Value::Object(p) = pool {
                p.retain(|_, v| !v.is_null());
            }
        }
    }
    let input = Value::Object(obj);
    let snapshot: Snapshot =
        serde_json::from_value(input.clone()).map_err(|e| format!("invalid snapshot: {e}"))?;
    let echoed = serde_json::to_value(&snapshot).map_err(|e| e.to_string())?;
    if let Some(path) = unknown_key(&input, &echoed, String::new()) {
        return Err(format!("unknown field `{path}`{}", suggest(&path)));
    }
    Ok((snapshot, gave_current))
}

/// The snapshot's optional number signals (`gpu_utilization`, `queue_depth`,
/// ...), derived from the WIT record itself: the top-level fields that an empty
/// snapshot leaves `null`.
pub fn signal_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let empty = Defaults {
            time_ms: 0,
            interval_ms: 0,
            current: 0,
        };
        from_value(Value::Object(Map::new()), empty)
            .ok()
            .and_then(|(s, _)| serde_json::to_value(s).ok())
            .and_then(|v| v.as_object().cloned())
            .map(|o| {
                o.into_iter()
                    .filter(|(_, v)| v.is_null())
                    .map(|(k, _)| k)
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Is `name` one of [`signal_names`]?
pub fn is_signal(name: &str) -> bool {
    signal_names().iter().any(|n| n == name)
}

/// Build a snapshot from named values (signals go to their fields, `cost.FIELD`
/// to the cost record, any other name becomes a custom metric) plus time and
/// replica counts. Built field by field, not through JSON: every tick of every
/// scaler (and of the simulator) comes through here.
pub fn from_values<'a>(
    values: impl IntoIterator<Item = (&'a str, f64)>,
    time_ms: u64,
    interval_ms: u32,
    replicas: crate::model::ReplicaCounts,
) -> Result<Snapshot, String> {
    let mut s = Snapshot {
        time_ms,
        interval_ms,
        replicas,
        gpu_utilization: None,
        gpu_memory_utilization: None,
        cpu_utilization: None,
        queue_depth: None,
        request_rate: None,
        tokens_per_second: None,
        latency_p50_ms: None,
        latency_p95_ms: None,
        latency_p99_ms: None,
        batch_seconds: None,
        ttft_p95_ms: None,
        itl_p95_ms: None,
        kv_cache_utilization: None,
        oldest_queued_seconds: None,
        cost: crate::model::Cost {
            on_demand_per_hour: None,
            spot_per_hour: None,
            spot_interruption_rate: None,
        },
        pods: Vec::new(),
        custom: Vec::new(),
        pools: Vec::new(),
    };
    for (name, value) in values {
        if !value.is_finite() {
            continue; // NaN or infinite is "missing", never a number.
        }
        match field_mut(&mut s, name) {
            Some(slot) => *slot = Some(value),
            None => s.custom.push(crate::model::NamedValue {
                name: name.to_owned(),
                value,
            }),
        }
    }
    Ok(s)
}

/// A snapshot in its compact JSON form: what [`from_value`] reads, with every
/// absent value left out rather than written as `null`. The audit log writes
/// one per decision, so its size is the log's size.
pub struct Compact<'a>(pub &'a Snapshot);

impl serde::Serialize for Compact<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let s = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("time_ms", &s.time_ms)?;
        map.serialize_entry("interval_ms", &s.interval_ms)?;
        let r = &s.replicas;
        let replicas = SomeFields([
            ("current", Some(r.current)),
            ("observed", r.observed),
            ("ready", r.ready),
            ("starting", r.starting),
            ("pending", r.pending),
            ("min", r.min),
            ("max", r.max),
        ]);
        map.serialize_entry("replicas", &replicas)?;
        let mut has_cost = false;
        for (name, value) in signal_values(s) {
            match (name.starts_with("cost."), value) {
                (true, Some(_)) => has_cost = true,
                (false, Some(v)) => map.serialize_entry(name, &v)?,
                (_, None) => {}
            }
        }
        if has_cost {
            map.serialize_entry("cost", &CompactCost(s))?;
        }
        if !s.pods.is_empty() {
            map.serialize_entry("pods", &s.pods)?;
        }
        if !s.custom.is_empty() {
            map.serialize_entry("custom", &s.custom)?;
        }
        if !s.pools.is_empty() {
            map.serialize_entry("pools", &s.pools)?;
        }
        map.end()
    }
}

/// The cost fields that are present, by their names in the cost record.
struct CompactCost<'a>(&'a Snapshot);

impl serde::Serialize for CompactCost<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in signal_values(self.0) {
            if let (Some(field), Some(v)) = (name.strip_prefix("cost."), value) {
                map.serialize_entry(field, &v)?;
            }
        }
        map.end()
    }
}

/// `[(name, value)]` as a JSON object of the values that are present.
struct SomeFields<T, const N: usize>([(&'static str, Option<T>); N]);

impl<T: serde::Serialize, const N: usize> serde::Serialize for SomeFields<T, N> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(None)?;
        for (k, v) in &self.0 {
            if let Some(v) = v {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// `ready` → `Ready`, the Rust variant name the bindings deserialize.
fn variant_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut upper = true;
    for c in s.chars() {
        if c == '-' || c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The first key present in `input` but not in what the record serializes back
/// to: a key serde ignored.
fn unknown_key(input: &Value, echoed: &Value, at: String) -> Option<String> {
    match (input, echoed) {
        (Value::Object(i), Value::Object(e)) => i.iter().find_map(|(k, v)| {
            let path = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            match e.get(k) {
                None => Some(path),
                Some(ev) => unknown_key(v, ev, path),
            }
        }),
        (Value::Array(i), Value::Array(e)) => i
            .iter()
            .zip(e)
            .enumerate()
            .find_map(|(n, (iv, ev))| unknown_key(iv, ev, format!("{at}[{n}]"))),
        _ => None,
    }
}

fn suggest(path: &str) -> String {
    let key = path.rsplit('.').next().unwrap_or(path);
    let known = record_field_names();
    known
        .iter()
        .copied()
        .chain(signal_names().iter().map(String::as_str))
        .map(|k| (strsim(key, k), k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

/// Field names of the snapshot record other than the signals, for suggestions.
fn record_field_names() -> [&'static str; 28] {
    [
        "time_ms",
        "interval_ms",
        "replicas",
        "current",
        "observed",
        "ready",
        "starting",
        "pending",
        "min",
        "max",
        "cost",
        "on_demand_per_hour",
        "spot_per_hour",
        "spot_interruption_rate",
        "pods",
        "custom",
        "state",
        "metrics",
        "request",
        "id",
        "pool",
        "age_s",
        "requests",
        "pools",
        "name",
        "capacity",
        "price_per_hour",
        "interruptions_per_hour",
    ]
}

/// Levenshtein distance, for "did you mean".
pub fn strsim(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A snapshot with every signal present: `check` evaluates a policy on it.
pub fn smoke() -> Result<Snapshot, String> {
    let text = r#"{"time_ms": 1767261600000, "interval_ms": 15000,
        "replicas": {"current": 3, "observed": 3, "ready": 3, "starting": 0, "pending": 0, "min": 1, "max": 10},
        "gpu_utilization": 0.72, "gpu_memory_utilization": 0.6, "cpu_utilization": 0.45,
        "queue_depth": 24, "request_rate": 30, "tokens_per_second": 5200,
        "latency_p50_ms": 180, "latency_p95_ms": 620, "latency_p99_ms": 910, "batch_seconds": 2.0,
        "ttft_p95_ms": 340, "itl_p95_ms": 45, "kv_cache_utilization": 0.5, "oldest_queued_seconds": 4,
        "cost": {"on_demand_per_hour": 2.5, "spot_per_hour": 0.9, "spot_interruption_rate": 0.05},
        "pods": [
          {"state": "ready", "metrics": [{"name": "cpu", "value": 0.45}], "request": 1.0},
          {"state": "ready", "metrics": [{"name": "cpu", "value": 0.5}], "request": 1.0},
          {"state": "ready", "metrics": [{"name": "cpu", "value": 0.4}], "request": 1.0}]}"#;
    let defaults = Defaults {
        time_ms: 0,
        interval_ms: 15_000,
        current: 3,
    };
    from_json(text, defaults).map(|(s, _)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Defaults = Defaults {
        time_ms: 5,
        interval_ms: 1000,
        current: 2,
    };

    #[test]
    fn minimal_snapshot_gets_defaults() {
        let (s, gave) = from_json(r#"{"request_rate": 12.5}"#, D).unwrap_or_else(|e| panic!("{e}"));
        assert!(!gave);
        assert_eq!(
            (s.time_ms, s.replicas.current, s.request_rate),
            (5, 2, Some(12.5))
        );
    }

    #[test]
    fn full_form_with_pods_and_custom_map() {
        let text = r#"{"replicas": {"current": 3, "ready": 2},
            "pods": [{"state": "ready", "metrics": [{"name": "cpu", "value": 0.3}], "request": 1.0},
                     {"state": "pending"}],
            "custom": {"tokens": 7}}"#;
        let (s, gave) = from_json(text, D).unwrap_or_else(|e| panic!("{e}"));
        assert!(gave);
        assert_eq!(s.pods.len(), 2);
        assert_eq!(s.custom[0].name, "tokens");
    }

    #[test]
    fn signal_names_come_from_the_record() {
        let names = signal_names();
        assert!(names.iter().any(|n| n == "gpu_utilization"));
        assert!(names.iter().any(|n| n == "oldest_queued_seconds"));
        assert!(!names.iter().any(|n| n == "replicas" || n == "time_ms"));
        assert_eq!(names.len(), 14);
        let replicas = crate::model::ReplicaCounts {
            current: 3,
            observed: None,
            ready: Some(3),
            starting: None,
            pending: None,
            min: None,
            max: None,
        };
        let s = from_values(
            [
                ("queue_depth", 7.0),
                ("tokens_in_flight", 9.0),
                ("gpu_utilization", f64::NAN),
            ],
            5,
            1000,
            replicas,
        )
        .unwrap();
        assert_eq!(
            (s.queue_depth, s.gpu_utilization, s.custom.len()),
            (Some(7.0), None, 1)
        );
    }

    #[test]
    fn from_values_fills_exactly_the_records_fields() {
        let replicas = crate::model::ReplicaCounts {
            current: 2,
            observed: Some(2),
            ready: Some(1),
            starting: Some(1),
            pending: None,
            min: Some(1),
            max: Some(9),
        };
        // Every signal the WIT record has is a field here, and only those.
        let mut values: Vec<(String, f64)> = signal_names()
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as f64 + 0.5))
            .collect();
        values.push(("cost.on_demand_per_hour".into(), 2.5));
        values.push(("cost.spot_interruption_rate".into(), 0.1));
        values.push(("tokens_in_flight".into(), 9.0));
        let direct = from_values(
            values.iter().map(|(k, v)| (k.as_str(), *v)),
            5,
            1000,
            replicas,
        )
        .unwrap();
        assert_eq!(direct.custom.len(), 1, "only the unknown name is custom");
        // The same snapshot through the JSON form.
        let mut obj = Map::new();
        for (k, v) in &values[..signal_names().len()] {
            obj.insert(k.clone(), (*v).into());
        }
        obj.insert(
            "cost".into(),
            serde_json::json!({"on_demand_per_hour": 2.5, "spot_interruption_rate": 0.1}),
        );
        obj.insert(
            "custom".into(),
            serde_json::json!({"tokens_in_flight": 9.0}),
        );
        obj.insert("replicas".into(), serde_json::to_value(replicas).unwrap());
        let (via_json, _) = from_value(Value::Object(obj), D).unwrap();
        assert_eq!(
            direct,
            Snapshot {
                time_ms: 5,
                interval_ms: 1000,
                ..via_json
            }
        );
        // The compact form (the audit log's) reads back to the same snapshot.
        let compact = serde_json::to_value(Compact(&direct)).unwrap();
        assert_eq!(from_value(compact, D).unwrap().0, direct);
    }

    #[test]
    fn the_compact_form_leaves_out_what_is_absent_and_reads_back() {
        let text = r#"{"time_ms": 7, "interval_ms": 1000, "replicas": {"current": 3, "ready": 2},
            "queue_depth": 40, "cost": {"spot_per_hour": 0.9},
            "pods": [{"state": "ready", "metrics": [{"name": "cpu", "value": 0.3}], "request": 1.0}],
            "custom": [{"name": "tokens", "value": 7}]}"#;
        let (s, _) = from_json(text, D).unwrap();
        let compact = serde_json::to_string(&Compact(&s)).unwrap();
        assert!(!compact.contains("null"), "{compact}");
        assert!(
            compact.starts_with(
                r#"{"time_ms":7,"interval_ms":1000,"replicas":{"current":3,"ready":2},"queue_depth":40.0,"cost":{"spot_per_hour":0.9},"pods":"#
            ),
            "{compact}"
        );
        assert_eq!(from_json(&compact, D).unwrap().0, s);
        let empty = from_values([], 1, 2, s.replicas).unwrap();
        assert_eq!(
            serde_json::to_string(&Compact(&empty)).unwrap(),
            r#"{"time_ms":1,"interval_ms":2,"replicas":{"current":3,"ready":2}}"#
        );
    }

    #[test]
    fn typos_are_errors_with_a_suggestion() {
        let e = from_json(r#"{"gpu_utilisation": 0.5}"#, D)
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("gpu_utilisation") && e.contains("did you mean `gpu_utilization`"),
            "{e}"
        );
        let e = from_json(r#"{"replicas": {"curent": 1}}"#, D)
            .err()
            .unwrap_or_default();
        assert!(e.contains("replicas.curent"), "{e}");
        assert!(from_json("[1]", D).is_err());
        assert!(from_json(r#"{"queue_depth": "lots"}"#, D).is_err());
    }
}
