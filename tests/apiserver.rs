//! The Kubernetes actuator against a real kube-apiserver (1.20, with etcd,
//! RBAC and tokens; see `wasmscale_tests::kube_apiserver`). Each case is one
//! that the in-process fake could not show: a Deployment whose status no
//! controller has reported, RBAC denials, a missing object, a server that is
//! down, a 409 whose re-read already shows the count, and connections kept
//! alive across ticks, and pods marked with a deletion cost before a
//! scale-down. Skips with a message where `../shared/` is absent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::path::Path;
use wasmscale::audit;
use wasmscale::config::Config;
use wasmscale::controller::{PersistedState, Scaler};
use wasmscale_tests::host;
use wasmscale_tests::kube_apiserver::{ApiServer, api_server, kubeconfig};

/// The tests share one server and count this process's connections to it:
/// one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Target<'a> {
    kubeconfig: &'a Path,
    namespace: &'a str,
    name: &'a str,
    timeout_ms: u64,
}

/// A scaler on one Deployment: `policy` and `params` as TOML, static metrics.
fn scaler(
    t: &Target<'_>,
    policy: &str,
    params: &str,
    metrics: &str,
    extra: &str,
    state_dir: Option<&Path>,
) -> Scaler {
    let text = format!(
        r#"[[scaler]]
name = "{name}"
policy = "{policy}"
params = {params}
min_replicas = 1
max_replicas = 20
interval_seconds = 1
metrics = {metrics}
target = {{ type = "kubernetes", namespace = "{ns}", name = "{name}", kubeconfig = {kc:?}, timeout_ms = {timeout} }}
[scaler.guard]
rate = "none"
{extra}
"#,
        name = t.name,
        ns = t.namespace,
        kc = t.kubeconfig.display().to_string(),
        timeout = t.timeout_ms,
    );
    let config: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Scaler::new(&config.scalers[0], Path::new("."), &host(), state_dir).unwrap()
}

/// A queue-depth scaler (10 per replica) at a static `queue`.
fn queue_scaler(t: &Target<'_>, queue: u32, extra: &str, state_dir: Option<&Path>) -> Scaler {
    let metrics = format!("{{ queue_depth = {queue} }}");
    scaler(t, "builtin:queue-depth", QUEUE, &metrics, extra, state_dir)
}

const GPU: &str =
    r#"{ metrics = [{ type = "object", name = "gpu_utilization", target = { value = 0.6 } }] }"#;
const QUEUE: &str = "{ target_per_replica = 10 }";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn setup() -> Option<(&'static ApiServer, std::sync::MutexGuard<'static, ()>)> {
    let server = api_server()?;
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    Some((server, guard))
}

#[test]
fn an_overloaded_deployment_whose_pods_are_not_reported_scales_up_never_down() {
    let Some((server, _serial)) = setup() else {
        return;
    };
    runtime().block_on(async {
        let admin = server.admin().await;
        let ns = server.namespace(&admin, "overload").await;
        server.deployment(&admin, &ns, "hot", 5).await;
        server.deployment(&admin, &ns, "idle", 5).await;
        let target = |name| Target {
            kubeconfig: &server.admin_kubeconfig,
            namespace: &ns,
            name,
            timeout_ms: 5000,
        };
        // status.replicas is 0: no controller has reported pods. It is not
        // "0 ready": the policy sees ready unknown and scales on the count.
        let mut hot = scaler(
            &target("hot"),
            "builtin:target-tracking",
            GPU,
            "{ gpu_utilization = 0.9 }",
            "",
            None,
        );
        let r = hot.tick(1_700_000_000_000).await;
        assert!(r.failures.is_empty(), "{r:?}");
        let snapshot = r.snapshot.as_ref().unwrap();
        assert_eq!(
            (snapshot.replicas.observed, snapshot.replicas.ready),
            (Some(0), None)
        );
        assert_eq!(
            (r.previous_replicas, r.final_replicas, r.wrote),
            (5, 8, true),
            "{r:?}"
        );
        assert_eq!(server.replicas(&admin, &ns, "hot").await, 8);

        // Under target with no pods reported: the scale-down is held.
        let mut idle = scaler(
            &target("idle"),
            "builtin:target-tracking",
            GPU,
            "{ gpu_utilization = 0.3 }",
            "",
            None,
        );
        let r = idle.tick(1_700_000_000_000).await;
        assert_eq!(
            (r.previous_replicas, r.final_replicas, r.wrote),
            (5, 5, false),
            "{r:?}"
        );
        assert!(r.guardrails.iter().any(|g| g.guard == "no-pods"), "{r:?}");
        assert_eq!(server.replicas(&admin, &ns, "idle").await, 5);
        // Once the pods are reported, it scales down: ceil(0.5 x 5) = 3.
        server.report_status(&admin, &ns, "idle", 5).await;
        let r = idle.tick(1_700_000_015_000).await;
        assert_eq!(
            (r.previous_replicas, r.final_replicas, r.wrote),
            (5, 3, true),
            "{r:?}"
        );
        assert_eq!(server.replicas(&admin, &ns, "idle").await, 3);
    });
}

#[test]
fn a_forbidden_write_holds_the_count_records_it_and_reaches_the_fallback() {
    let Some((server, _serial)) = setup() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let admin = server.admin().await;
        let ns = server.namespace(&admin, "rbac").await;
        server.deployment(&admin, &ns, "ro", 1).await;
        server.report_status(&admin, &ns, "ro", 1).await;
        // May read the scale subresource, may not write it.
        let kc = server
            .account(&admin, &ns, "reader", &["get"], dir.path())
            .await;
        let t = Target {
            kubeconfig: &kc,
            namespace: &ns,
            name: "ro",
            timeout_ms: 5000,
        };
        let fallback = "[scaler.fallback]\nafter_failed_ticks = 2\nreplicas = 3";
        let mut s = queue_scaler(&t, 50, fallback, None);
        let first = s.tick(1_700_000_000_000).await;
        assert_eq!(
            first.failures[0].stage.as_str(),
            "actuator-write",
            "{first:?}"
        );
        assert_eq!(first.failures[0].kind, "forbidden", "{first:?}");
        // The object stayed at 1, and so does the record.
        assert_eq!(
            (first.previous_replicas, first.final_replicas, first.wrote),
            (1, 1, false),
            "{first:?}"
        );
        assert!(!first.guardrails.iter().any(|g| g.guard == "fallback"));
        let second = s.tick(1_700_000_015_000).await;
        assert_eq!(second.final_replicas, 1);
        assert_eq!(s.state().failed_ticks, 2, "each refused write counts");
        // A write is known to fail only once it is tried, so the fallback
        // takes over on the tick after the second refusal.
        let third = s.tick(1_700_000_030_000).await;
        assert!(
            third
                .guardrails
                .iter()
                .any(|g| g.guard == "fallback" && g.after == 3),
            "two failed writes reach the fallback: {third:?}"
        );
        assert_eq!(third.final_replicas, 1, "its write is refused too");
        assert_eq!(server.replicas(&admin, &ns, "ro").await, 1);
        assert!(
            audit::explain(&third).contains("held at 1"),
            "{}",
            audit::explain(&third)
        );

        // No role at all: the read is forbidden too, and counts as well.
        let none = server.account(&admin, &ns, "nobody", &[], dir.path()).await;
        let t = Target {
            kubeconfig: &none,
            namespace: &ns,
            name: "ro",
            timeout_ms: 5000,
        };
        let mut s = queue_scaler(&t, 50, fallback, None);
        let r = s.tick(1_700_000_000_000).await;
        assert_eq!(
            (r.failures[0].stage.as_str(), r.failures[0].kind.as_str()),
            ("actuator-read", "forbidden")
        );
        assert!(r.count_unknown, "no count was ever read: {r:?}");
        let r = s.tick(1_700_000_015_000).await;
        assert!(r.guardrails.iter().any(|g| g.guard == "fallback"), "{r:?}");
        assert_eq!(s.state().failed_ticks, 2);
    });
}

#[test]
fn a_missing_deployment_and_a_server_that_is_down_reach_the_fallback_and_keep_the_count() {
    let Some((server, _serial)) = setup() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let admin = server.admin().await;
        let ns = server.namespace(&admin, "gone").await;
        let fallback = "[scaler.fallback]\nafter_failed_ticks = 2\nreplicas = 3";
        let t = Target {
            kubeconfig: &server.admin_kubeconfig,
            namespace: &ns,
            name: "nope",
            timeout_ms: 5000,
        };
        let mut s = queue_scaler(&t, 50, fallback, None);
        let r = s.tick(1_700_000_000_000).await;
        assert_eq!(r.failures[0].kind, "not-found", "{r:?}");
        assert!(r.count_unknown);
        assert!(
            audit::explain(&r).contains("no count known yet"),
            "{}",
            audit::explain(&r)
        );
        let r = s.tick(1_700_000_015_000).await;
        assert!(r.guardrails.iter().any(|g| g.guard == "fallback"), "{r:?}");

        // A server that is down (nothing listens), with a count known from
        // before the restart: the record keeps it, the gauges too.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let down = dir.path().join("down.kubeconfig");
        std::fs::write(&down, kubeconfig(&format!("https://127.0.0.1:{port}"), "t")).unwrap();
        let state_dir = dir.path().join("state");
        std::fs::create_dir_all(&state_dir).unwrap();
        let saved = PersistedState {
            last_replicas: Some(5),
            ..Default::default()
        };
        std::fs::write(
            state_dir.join("web.json"),
            serde_json::to_vec(&saved).unwrap(),
        )
        .unwrap();
        let t = Target {
            kubeconfig: &down,
            namespace: &ns,
            name: "web",
            timeout_ms: 500,
        };
        let mut s = queue_scaler(&t, 50, fallback, Some(&state_dir));
        let mut last = None;
        for i in 0..15 {
            let r = s.tick(1_700_000_000_000 + i * 1000).await;
            assert_eq!(r.failures[0].stage.as_str(), "actuator-read", "{r:?}");
            assert_eq!(r.failures[0].kind, "transport", "{r:?}");
            assert_eq!(
                (r.previous_replicas, r.final_replicas, r.count_unknown),
                (5, 5, false),
                "{r:?}"
            );
            assert_eq!(
                r.guardrails.iter().any(|g| g.guard == "fallback"),
                i >= 1,
                "tick {i}: {r:?}"
            );
            last = Some(r);
        }
        let last = last.unwrap();
        assert_eq!(s.state().failed_ticks, 15);
        assert!(
            audit::explain(&last).contains("target unreadable: held at its last known count 5"),
            "{}",
            audit::explain(&last)
        );
        // The gauges keep the last count read: a good record, then failures.
        let mut good = last.clone();
        good.failures.clear();
        let metrics = wasmscale::controller::Metrics::new(1);
        metrics.scaler("web").observe(&good);
        metrics.scaler("web").observe(&last);
        let text = metrics.render();
        assert!(
            text.contains("wasmscale_current_replicas{scaler=\"web\",tenant=\"default\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("stage=\"actuator-read\",kind=\"transport\"} 1"),
            "{text}"
        );
    });
}

#[test]
fn after_a_conflict_a_reread_that_already_shows_the_count_is_no_write() {
    let Some((server, _serial)) = setup() else {
        return;
    };
    runtime().block_on(async {
        let admin = server.admin().await;
        let ns = server.namespace(&admin, "conflict").await;
        server.deployment(&admin, &ns, "web", 2).await;
        let text = format!(
            "[[scaler]]\nname = \"web\"\npolicy = \"builtin:queue-depth\"\nmin_replicas = 1\nmax_replicas = 9\n\
             target = {{ type = \"kubernetes\", namespace = \"{ns}\", name = \"web\", kubeconfig = {:?} }}\n",
            server.admin_kubeconfig.display().to_string()
        );
        let config: Config = toml::from_str(&text).unwrap();
        let s = &config.scalers[0];
        let mut actuator = s.target.build(&s.name, Path::new("."), 1).unwrap();
        assert_eq!(actuator.observe().await.unwrap().current, 2);
        // Someone else sets the very count we are about to write.
        server.scale(&admin, &ns, "web", 6).await;
        let wrote = actuator.apply(6, "test").await.unwrap();
        assert!(!wrote, "409, re-read shows 6: nothing was written by us");
        assert_eq!(server.replicas(&admin, &ns, "web").await, 6);
        // A real write after a conflict is one.
        server.scale(&admin, &ns, "web", 4).await;
        assert!(actuator.apply(7, "test").await.unwrap());
        assert_eq!(server.replicas(&admin, &ns, "web").await, 7);
    });
}

/// This process's established TCP connections to port 6443, by local port.
fn connections_to_apiserver() -> std::collections::BTreeSet<u16> {
    let mine: std::collections::HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect();
    let mut ports = std::collections::BTreeSet::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != "01" || !mine.contains(cols[9]) {
                continue;
            }
            let port = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if port(cols[2]) == Some(6443)
                && let Some(local) = port(cols[1])
            {
                ports.insert(local);
            }
        }
    }
    ports
}

#[test]
fn connections_are_kept_alive_across_ticks() {
    let Some((server, _serial)) = setup() else {
        return;
    };
    runtime().block_on(async {
        let admin = server.admin().await;
        let ns = server.namespace(&admin, "keepalive").await;
        server.deployment(&admin, &ns, "web", 2).await;
        server.report_status(&admin, &ns, "web", 2).await;
        let before = connections_to_apiserver();
        // A 1 s timeout and ticks 1.2 s apart: a client read timeout equal to
        // the request timeout used to close the pooled connection between
        // ticks, and sometimes fail a tick.
        let t = Target {
            kubeconfig: &server.admin_kubeconfig,
            namespace: &ns,
            name: "web",
            timeout_ms: 1000,
        };
        let mut s = queue_scaler(&t, 20, "", None);
        let mut seen = std::collections::BTreeSet::new();
        let ticks = 8;
        let mut latencies = Vec::new();
        for i in 0..ticks {
            let r = s.tick(1_700_000_000_000 + i * 1200).await;
            assert!(r.failures.is_empty(), "tick {i}: {r:?}");
            latencies.push(r.latency_us);
            seen.extend(connections_to_apiserver().difference(&before).copied());
            tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        }
        // Reported, not asserted: the first tick pays for the connection and
        // the TLS handshake, the others reuse it.
        let mut later = latencies[1..].to_vec();
        later.sort_unstable();
        eprintln!(
            "keep-alive: {ticks} ticks 1.2 s apart used {} connection(s); tick latency: first {} µs (connect + TLS), then median {} µs",
            seen.len(),
            latencies[0],
            later[later.len() / 2]
        );
        assert_eq!(seen.len(), 1, "one connection for every tick: {seen:?}");
    });
}

/// Resumes a stopped process when dropped, so a failed assertion never
/// leaves the shared API server frozen.
struct Frozen(String);

impl Frozen {
    fn stop(pid: String) -> Self {
        let ok = std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot stop the API server (pid {pid})");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0])
            .status();
    }
}

#[test]
fn a_hung_api_server_is_a_timeout() {
    let Some((server, _serial)) = setup() else {
        return;
    };
    let Ok(pid) = std::fs::read_to_string(server.admin_kubeconfig.with_file_name("apiserver.pid"))
    else {
        eprintln!("skipped: the API server's pid file is not where the script writes it");
        return;
    };
    runtime().block_on(async {
        let admin = server.admin().await;
        let ns = server.namespace(&admin, "hung").await;
        server.deployment(&admin, &ns, "web", 2).await;
        server.report_status(&admin, &ns, "web", 2).await;
        let t = Target {
            kubeconfig: &server.admin_kubeconfig,
            namespace: &ns,
            name: "web",
            timeout_ms: 500,
        };
        let mut s = queue_scaler(&t, 20, "", None);
        let ok = s.tick(1_700_000_000_000).await;
        assert!(ok.failures.is_empty(), "{ok:?}");
        // The server process stops answering (SIGSTOP): connections stay
        // open, nothing comes back.
        let frozen = Frozen::stop(pid.trim().to_owned());
        for i in 1..=2 {
            let r = s.tick(1_700_000_000_000 + i * 1000).await;
            assert_eq!(r.failures[0].stage.as_str(), "actuator-read", "{r:?}");
            assert_eq!(r.failures[0].kind, "timeout", "{r:?}");
            assert!(r.failures[0].message.contains("500ms"), "{r:?}");
            assert_eq!((r.previous_replicas, r.final_replicas), (2, 2), "{r:?}");
        }
        drop(frozen);
        // Back: the next tick reads and scales again.
        let mut back = None;
        for i in 3..40 {
            let r = s.tick(1_700_000_000_000 + i * 1000).await;
            if r.failures.is_empty() {
                back = Some(r);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        assert!(
            back.is_some(),
            "the scaler recovers once the server answers"
        );
    });
}

#[test]
fn scale_in_choice_marks_the_pods_a_decision_removes_first_with_a_deletion_cost() {
    let Some((server, _serial)) = setup() else {
        return;
    };
    runtime().block_on(async {
        let admin = server.admin().await;
        let ns = server.namespace(&admin, "victims").await;
        server.deployment(&admin, &ns, "llm", 3).await;
        server.report_status(&admin, &ns, "llm", 3).await;
        for pod in ["llm-a", "llm-b", "llm-c"] {
            server.pod(&admin, &ns, "llm", pod).await;
        }
        // Someone else's pod, outside the workload's selector.
        server.pod(&admin, &ns, "other", "other-x").await;
        let t = Target {
            kubeconfig: &server.admin_kubeconfig,
            namespace: &ns,
            name: "llm",
            timeout_ms: 5000,
        };
        let policy = wasmscale_tests::fixtures::V2_QUEUE;
        let params = r#"{ remove_first = ["llm-b", "llm-c"] }"#;
        let text = format!(
            r#"[[scaler]]
name = "llm"
policy = {policy:?}
params = {params}
min_replicas = 1
max_replicas = 20
metrics = {{ queue_depth = 20 }}
target = {{ type = "kubernetes", namespace = "{ns}", name = "llm", kubeconfig = {kc:?}, scale_in_choice = true }}
[scaler.guard]
rate = "none"
"#,
            kc = t.kubeconfig.display().to_string(),
        );
        let config: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let mut s = Scaler::new(&config.scalers[0], Path::new("."), &host(), None).unwrap();
        let r = s.tick(1_700_000_000_000).await;
        assert!(r.failures.is_empty(), "{r:?}");
        // The policy saw the workload's pods (and only those), with ids and ages.
        let pods = &r.snapshot.as_ref().unwrap().pods;
        let mut ids: Vec<&str> = pods.iter().filter_map(|p| p.id.as_deref()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["llm-a", "llm-b", "llm-c"]);
        assert!(pods.iter().all(|p| p.age_s.is_some()), "{pods:?}");
        assert_eq!(r.decision.as_ref().unwrap().remove_first, ["llm-b", "llm-c"]);
        assert!(r.ignored.is_empty(), "{r:?}");
        assert_eq!((r.previous_replicas, r.final_replicas), (3, 2), "{r:?}");
        // llm-b goes first (lowest cost), then llm-c; llm-a is left alone.
        let cost = |pod: &'static str| {
            let (server, admin, ns) = (server, admin.clone(), ns.clone());
            async move {
                server
                    .annotation(&admin, &ns, pod, wasmscale::actuators::DELETION_COST)
                    .await
            }
        };
        assert_eq!(cost("llm-b").await.as_deref(), Some("-2"));
        assert_eq!(cost("llm-c").await.as_deref(), Some("-1"));
        assert_eq!(cost("llm-a").await, None);
        assert_eq!(server.replicas(&admin, &ns, "llm").await, 2);

        // The ReplicaSet removes llm-b; someone scales back to 3. Next
        // scale-down: only llm-c is named, and the mark on the vanished
        // llm-b is no error.
        server.delete_pod(&admin, &ns, "llm-b").await;
        server.scale(&admin, &ns, "llm", 3).await;
        let r = s.tick(1_700_000_015_000).await;
        assert!(r.failures.is_empty(), "{r:?}");
        assert_eq!(r.decision.as_ref().unwrap().remove_first, ["llm-c"]);
        assert_eq!(cost("llm-c").await.as_deref(), Some("-1"));
        assert_eq!(cost("llm-a").await, None);
        assert_eq!(server.replicas(&admin, &ns, "llm").await, 2);
    });
}
