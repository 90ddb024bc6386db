//! Hostile input for the three parsers a user feeds by hand: the config, the
//! snapshot JSON and the load trace. Every input either parses or gives a
//! typed error with a bounded message; nothing panics.
//!
//! The inputs are the shipped examples, mutated the way careless users and
//! attackers write them (absurd numbers, NaN, huge strings, wrong types, cut
//! files, random bytes), plus raw random bytes. Each target runs
//! `WASMSCALE_FUZZ_CASES` cases (256 by default, a few seconds in CI); run it
//! longer with, for example:
//!
//! ```sh
//! WASMSCALE_FUZZ_CASES=100000 cargo test -p wasmscale --test fuzz --release
//! ```
//!
//! A failing case is printed (proptest shrinks it); add it to the fixed cases
//! at the bottom of this file so it stays fixed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use proptest::prelude::*;
use std::path::Path;
use wasmscale::host::{Host, HostConfig};
use wasmscale::sim::trace::{TraceSpec, load_text};
use wasmscale::snapshot::{Defaults, MAX_MESSAGE_BYTES, from_json};

/// Longest message we accept from a parser, in bytes: the clipped echo plus
/// what the parser says around it (file, line, hint).
const MAX_ERROR_BYTES: usize = 4 * MAX_MESSAGE_BYTES;

fn cases() -> u32 {
    std::env::var("WASMSCALE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn host() -> &'static Host {
    static HOST: std::sync::OnceLock<Host> = std::sync::OnceLock::new();
    HOST.get_or_init(|| Host::new(HostConfig::default()).expect("host"))
}

/// Values a careless user or an attacker puts where a number or a string goes.
const HOSTILE: &[&str] = &[
    "1e20",
    "1e300",
    "-1e300",
    "nan",
    "inf",
    "-inf",
    "-5",
    "0",
    "-0.0",
    "99999",
    "4294967296",
    "18446744073709551616",
    "82",
    "\"\"",
    "\"/\"",
    "\"/dev/full\"",
    "\"/proc/self/mem\"",
    "\"/dev/null\"",
    "\"not-an-address\"",
    "\"127.0.0.1:99999\"",
    "\"0.0.0.0:80\"",
    "\"builtin:nope\"",
    "\"\\u0000\"",
    "[]",
    "{}",
    "true",
    "{ type = \"prometheus\" }",
    "{ type = \"kubernetes\" }",
];

/// One mutation of a text: replace a value, cut it, insert bytes, or
/// duplicate a line.
#[derive(Debug, Clone)]
enum Mutation {
    ReplaceValue {
        line: usize,
        field: usize,
        value: usize,
    },
    HugeValue {
        line: usize,
        field: usize,
        len: usize,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    DuplicateLine {
        line: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<usize>(), 0..HOSTILE.len())
            .prop_map(|(line, field, value)| Mutation::ReplaceValue { line, field, value }),
        1 => (any::<usize>(), any::<usize>(), 1usize..2_000_000)
            .prop_map(|(line, field, len)| Mutation::HugeValue { line, field, len }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => any::<usize>().prop_map(|line| Mutation::DuplicateLine { line }),
    ]
}

/// Apply mutations to `text`. Values are found after `=` (TOML), `:` (JSON)
/// or `,` (CSV).
fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for m in mutations {
        let s = String::from_utf8_lossy(&bytes).into_owned();
        let mut lines: Vec<String> = s.lines().map(str::to_owned).collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        match m {
            Mutation::ReplaceValue { line, field, value } => {
                let n = line % lines.len();
                lines[n] = replace_value(&lines[n], *field, HOSTILE[*value]);
                bytes = lines.join("\n").into_bytes();
            }
            Mutation::HugeValue { line, field, len } => {
                let n = line % lines.len();
                let huge = format!("\"{}\"", "x".repeat(*len));
                lines[n] = replace_value(&lines[n], *field, &huge);
                bytes = lines.join("\n").into_bytes();
            }
            Mutation::Truncate { at } => {
                let at = at % (bytes.len() + 1);
                bytes.truncate(at);
            }
            Mutation::Insert { at, bytes: b } => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::DuplicateLine { line } => {
                let n = line % lines.len();
                let l = lines[n].clone();
                lines.insert(n, l);
                bytes = lines.join("\n").into_bytes();
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Replace the `field`-th value of a line: the text from the start of the
/// line or after a separator (`=`, `:`, `,`) up to the next one.
fn replace_value(line: &str, field: usize, value: &str) -> String {
    let mut starts = vec![0];
    starts.extend(line.match_indices(['=', ':', ',']).map(|(i, _)| i + 1));
    let start = starts[field % starts.len()];
    let rest = &line[start..];
    let end = rest.find([',', '}', ']', '=', ':']).unwrap_or(rest.len());
    format!("{}{value}{}", &line[..start], &rest[end..])
}

fn example(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).expect("example")
}

fn assert_bounded(what: &str, message: &str) {
    assert!(
        message.len() <= MAX_ERROR_BYTES,
        "{what}: an error of {} bytes echoes too much: {}…",
        message.len(),
        &message[..message.floor_char_boundary(300)]
    );
}

/// Check config text and probe its policies; every error is located and bounded.
fn config_case(text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = wasmscale::config::check("fuzz.toml", text, dir.path());
    wasmscale::controller::probe(&mut checked, host());
    match checked.into_result() {
        Ok(_) => {}
        Err(errors) => {
            assert!(!errors.errors.is_empty(), "an Err with no errors");
            for e in &errors.errors {
                assert!(e.line >= 1 && e.column >= 1, "{e:?}");
                assert_bounded("config", &e.message);
            }
        }
    }
}

fn snapshot_case(text: &str) {
    let defaults = Defaults {
        time_ms: 0,
        interval_ms: 15_000,
        current: 1,
    };
    if let Err(e) = from_json(text, defaults) {
        assert_bounded("snapshot", &e);
    }
}

fn trace_case(text: &str, jsonl: bool) {
    for step_ms in [1_000, 60_000] {
        if let Err(e) = load_text("fuzz.csv", text, jsonl, &TraceSpec::default(), step_ms) {
            assert_bounded("trace", &e.to_string());
        }
    }
}

const CONFIGS: &[&str] = &[
    "examples/configs/gpu-inference.toml",
    "examples/configs/batch-training.toml",
    "examples/configs/three-tier-saas.toml",
];

const SNAPSHOT: &str = r#"{"time_ms": 1767261600000, "interval_ms": 15000,
 "replicas": {"current": 3, "observed": 3, "ready": 2, "starting": 1, "pending": 0, "min": 1, "max": 16},
 "gpu_utilization": 0.82, "queue_depth": 40, "request_rate": 31.5, "latency_p95_ms": 850,
 "cost": {"on_demand_per_hour": 2.5, "spot_per_hour": 0.9},
 "pods": [{"state": "ready", "metrics": [{"name": "cpu", "value": 0.45}], "request": 1.0}],
 "custom": {"tokens_in_flight": 1200}}"#;

fn small_traces() -> Vec<(String, bool)> {
    let servegen = example("examples/traces/alibaba_servegen_m_small_10min.csv");
    let head: String = servegen.lines().take(40).collect::<Vec<_>>().join("\n");
    vec![
        (head, false),
        (
            "arrival_s,input_tokens,output_tokens\n0,10,20\n0.5,3,4\n1.25,100,1\n".into(),
            false,
        ),
        ("t_min,requests\n0,10\n1,12\n2,0\n3,40\n".into(), false),
        ("{\"arrival_s\": 0}\n{\"arrival_s\": 1.5}\n".into(), true),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn config_parser_never_panics(which in 0..CONFIGS.len(), ms in proptest::collection::vec(mutation(), 1..4)) {
        config_case(&mutate(&example(CONFIGS[which]), &ms));
    }

    #[test]
    fn config_parser_takes_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        config_case(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn snapshot_parser_never_panics(ms in proptest::collection::vec(mutation(), 1..4)) {
        snapshot_case(&mutate(SNAPSHOT, &ms));
    }

    #[test]
    fn snapshot_parser_takes_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        snapshot_case(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn trace_parser_never_panics(which in 0..4usize, ms in proptest::collection::vec(mutation(), 1..4)) {
        let (text, jsonl) = small_traces().swap_remove(which);
        trace_case(&mutate(&text, &ms), jsonl);
    }

    #[test]
    fn trace_parser_takes_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512), jsonl in any::<bool>()) {
        trace_case(&String::from_utf8_lossy(&bytes), jsonl);
    }
}

/// Inputs that once panicked or misbehaved, kept so they stay fixed.
#[test]
fn known_bad_inputs_are_typed_errors() {
    // Issue 9.2: a time of 1e308 wrapped the step count to 0.
    let e = load_text(
        "t.csv",
        "arrival_s\n0\n1\n1e308\n",
        false,
        &TraceSpec::default(),
        1000,
    )
    .expect_err("too long");
    assert!(e.to_string().contains("steps"), "{e}");
    // Issue 9.8: a 10 MB string is not echoed whole.
    let huge = format!("{{\"gpu_utilization\": \"{}\"}}", "x".repeat(10 << 20));
    let defaults = Defaults {
        time_ms: 0,
        interval_ms: 1,
        current: 1,
    };
    let e = from_json(&huge, defaults).expect_err("a string is no number");
    assert!(e.len() < 1000 && e.contains("cut from"), "{}", e.len());
    let e = from_json(&format!("{{\"{}\": 1}}", "k".repeat(10 << 20)), defaults)
        .expect_err("unknown key");
    assert!(e.len() < 1000, "{}", e.len());
    // Issue 9.1: an interval of 1e20 s.
    config_case(&example(CONFIGS[0]).replace("interval_seconds = 1", "interval_seconds = 1e20"));
}
