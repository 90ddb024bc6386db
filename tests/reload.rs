//! State across restarts and reloads: a stabilization window survives a
//! restart only when state is kept; swapping a scaler's policy keeps its
//! guard window and count.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use wasmscale::controller::{self, Scaler};
use wasmscale_tests::{block_on, host, replay_config, write_file};

/// Decisions of scaler `svc` for `ticks` (time offset in seconds, trace row),
/// optionally restarting (a new `Scaler` over the same state dir, or none) after
/// the first tick.
fn run_with_restart(persist: bool, restart: bool) -> Vec<u32> {
    let dir = tempfile::tempdir().unwrap();
    let high = replay_config(
        dir.path(),
        "queue_depth,gpu_utilization\n80,0.5\n10,0.1\n10,0.1\n",
        "",
    );
    let host = host();
    let state_dir = dir.path().join("state");
    let state = persist.then_some(state_dir.as_path());
    let t0 = 1_700_000_000_000;
    let mut scaler = Scaler::new(&high.scalers[0], dir.path(), &host, state).unwrap();
    let mut out = vec![block_on(scaler.tick(t0)).final_replicas];
    if restart {
        drop(scaler);
        // The new process replays from the trace's second row on.
        let low_dir = dir.path().join("after");
        std::fs::create_dir_all(&low_dir).unwrap();
        let low = replay_config(
            &low_dir,
            "queue_depth,gpu_utilization\n10,0.1\n10,0.1\n",
            "",
        );
        // Without persisted guard state the target still runs 5 replicas:
        // model that with a state file that only knows the count.
        let amnesia = dir.path().join("amnesia");
        std::fs::create_dir_all(&amnesia).unwrap();
        std::fs::write(
            amnesia.join("svc.json"),
            r#"{"guard": {"recommendations": null, "scale_up_events": [],
            "scale_down_events": [], "last_scale_up_ms": null, "last_scale_down_ms": null,
            "direction_changes": [], "breaker": null}, "policy_state": [], "failed_ticks": 0,
            "policy_digest": "", "last_replicas": 5}"#,
        )
        .unwrap();
        let state = if persist {
            state
        } else {
            Some(amnesia.as_path())
        };
        scaler = Scaler::new(&low.scalers[0], &low_dir, &host, state).unwrap();
        if !persist {
            // What a restarted HPA does: it only knows the current count.
            block_on(scaler.tick(t0 + 30_000));
        }
    }
    out.push(block_on(scaler.tick(t0 + 60_000)).final_replicas);
    out.push(block_on(scaler.tick(t0 + 301_000)).final_replicas);
    out
}

#[test]
fn stabilization_window_survives_a_restart() {
    let uninterrupted = run_with_restart(true, false);
    // 1 -> 5 (+4 pods / 15 s), held by the 300 s down window, then down to 1.
    assert_eq!(uninterrupted, [5, 5, 1]);
    // A restart with persisted state is invisible.
    assert_eq!(run_with_restart(true, true), uninterrupted);
    // Without it (the HPA's in-memory history), the window starts over at the
    // restart and the scale-down comes late.
    assert_eq!(run_with_restart(false, true), [5, 5, 5]);
}

#[test]
fn swapping_the_policy_keeps_the_guard_window_and_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let host = host();
    // Old policy: target-tracking over the replay trace (high load -> 5).
    let old_config = replay_config(dir.path(), "queue_depth,gpu_utilization\n80,0.5\n", "");
    let mut old = Scaler::new(&old_config.scalers[0], dir.path(), &host, None).unwrap();
    let t0 = 1_700_000_000_000;
    assert_eq!(block_on(old.tick(t0)).final_replicas, 5);
    // New policy: queue-depth, which on a low queue wants 1 replica.
    let path = write_file(
        dir.path(),
        "v2.toml",
        r#"[[scaler]]
name = "svc"
policy = "builtin:queue-depth"
params = { target_per_replica = 10, cooldown_seconds = 0 }
min_replicas = 1
max_replicas = 20
metrics = { queue_depth = 5 }
"#,
    );
    let new_config = controller::load(&path, &host).unwrap_or_else(|e| panic!("{e}"));
    let mut new = Scaler::new(&new_config.scalers[0], dir.path(), &host, None).unwrap();
    new.adopt(old.state().clone());
    let r = block_on(new.tick(t0 + 60_000));
    assert_eq!(&*r.policy, "builtin:queue-depth");
    assert_eq!(r.previous_replicas, 5, "the count carried over");
    assert_eq!(r.decision.as_ref().map(|d| d.desired), Some(1));
    // The old policy's 300 s down-stabilization window still holds the count.
    assert_eq!(r.final_replicas, 5, "{r:?}");
    assert!(
        r.guardrails.iter().any(|g| g.guard == "stabilization"),
        "{r:?}"
    );
}
