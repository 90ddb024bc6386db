//! Tenants over real HTTP: tokens (missing, bad, revoked, expired), each
//! role's permissions, and every documented route tried across tenants. A
//! route the OpenAPI document lists but this table does not fails the test,
//! so a new endpoint cannot go untried.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmscale_tests::admin_http::{exchange, json, wait_up};
use wasmscale_tests::{free_port, host, write_file};

fn scaler(name: &str, tenant: &str) -> String {
    format!(
        r#"
[[scaler]]
name = "{name}"
tenant = "{tenant}"
policy = "builtin:queue-depth"
params = {{ target_per_replica = 10 }}
min_replicas = 1
max_replicas = 8
interval_seconds = 0.1
metrics = {{ queue_depth = 35 }}
"#
    )
}

/// Serve the four scalers for `ticks` ticks of 0.1 s.
fn serve(dir: &Path, port: u16, ticks: u64) -> std::thread::JoinHandle<wasmscale::RunSummary> {
    let text = format!(
        "state_dir = \"state\"\n[audit]\npath = \"audit.jsonl\"\n[admin]\nlisten = \"127.0.0.1:{port}\"\nauth = \"tokens\"\n{}{}{}{}",
        scaler("acme/chat", "acme"),
        scaler("acme/only-acme", "acme"),
        scaler("globex/chat", "globex"),
        scaler("ops", "default"),
    );
    let path = write_file(dir, "wasmscale.toml", &text);
    std::thread::spawn(move || {
        wasmscale::cli::serve(Arc::new(host()), &path, Some(ticks), false).unwrap()
    })
}

/// Call with a bearer token (or none).
fn call(port: u16, token: Option<&str>, method: &str, path: &str, body: &str) -> (u16, String) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("Authorization", b)])
        .unwrap_or_default();
    exchange(port, method, path, &headers, body.as_bytes())
}

fn names(body: &str) -> Vec<String> {
    json(body)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// What a tenant's token must get on each documented route.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Anyone: probes and the API's description.
    Open,
    /// 403 for a tenant, whatever the path names.
    OperatorOnly,
    /// A route on one scaler or policy (named): another tenant's answers
    /// exactly as one that does not exist.
    One(&'static str),
    /// The scaler list: only its own.
    List,
    /// Create: in its own tenant only.
    Create,
    /// Its own usage; another tenant's answers as one that does not exist.
    Usage,
    /// The policy list: only its own.
    PolicyList,
}

fn expectation(route: &str) -> Option<Expect> {
    use Expect::*;
    Some(match route {
        "GET /healthz" | "GET /readyz" => Open,
        "GET /metrics" => OperatorOnly,
        "GET /v1/usage" => Usage,
        "GET /v1/policies" => PolicyList,
        r if r.contains(" /v1/policies/{name}") => One("policy"),
        r if r.contains(" /v1/tenants") => OperatorOnly,
        "GET /v1/scalers" => List,
        "POST /v1/scalers" => Create,
        r if r.contains("/scalers/{name}") => One("scaler"),
        _ => return None,
    })
}

#[test]
fn tenants_see_only_their_own_and_every_route_is_tried_across_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let daemon = serve(dir.path(), port, 250);
    wait_up(port);
    let token_file = dir.path().join("state/operator.token");
    let operator = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let op = Some(operator.as_str());

    // No token, a bad one: 401 with a hint; probes are open.
    let (status, body) = call(port, None, "GET", "/v1/scalers", "");
    assert_eq!(status, 401, "{body}");
    assert!(json(&body)["hint"].as_str().unwrap().contains("Bearer"));
    for bad in [
        "nonsense",
        "wst_0000000000000000_00",
        &format!("{operator}x"),
    ] {
        let (status, body) = call(port, Some(bad), "GET", "/v1/scalers", "");
        assert_eq!(status, 401, "{bad}: {body}");
    }
    assert_eq!(call(port, None, "GET", "/healthz", "").0, 200);
    assert_eq!(call(port, None, "GET", "/openapi.json", "").0, 200);

    // The operator makes two tenants and their tokens.
    for t in ["acme", "globex"] {
        let (status, body) = call(
            port,
            op,
            "POST",
            "/v1/tenants",
            &format!(r#"{{"name": "{t}"}}"#),
        );
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(
        call(port, op, "POST", "/v1/tenants", r#"{"name": "acme"}"#).0,
        409
    );
    let issue = |tenant: &str, role: &str, expires: Option<&str>| -> (String, String) {
        let body = match expires {
            Some(e) => format!(r#"{{"role": "{role}", "expires": "{e}"}}"#),
            None => format!(r#"{{"role": "{role}"}}"#),
        };
        let (status, text) = call(
            port,
            op,
            "POST",
            &format!("/v1/tenants/{tenant}/tokens"),
            &body,
        );
        assert_eq!(status, 201, "{text}");
        let v = json(&text);
        (
            v["token"].as_str().unwrap().to_owned(),
            v["info"]["id"].as_str().unwrap().to_owned(),
        )
    };
    let (acme, _) = issue("acme", "tenant-admin", None);
    let (acme_viewer, viewer_id) = issue("acme", "viewer", None);
    let (globex, _) = issue("globex", "tenant-admin", None);
    let (short, _) = issue("globex", "viewer", Some("1s"));
    let (status, body) = call(
        port,
        op,
        "POST",
        "/v1/tenants/acme/tokens",
        r#"{"role": "operator"}"#,
    );
    assert_eq!(
        status, 400,
        "a tenant's token is never an operator's: {body}"
    );
    let (status, body) = call(port, op, "GET", "/v1/tenants/acme/tokens", "");
    assert_eq!(status, 200);
    assert!(
        !body.contains(&acme[acme.len() - 64..]),
        "tokens are listed without their text"
    );

    // Each sees its own, by the names it knows them by.
    let (_, body) = call(port, Some(&acme), "GET", "/v1/scalers", "");
    assert_eq!(names(&body), ["chat", "only-acme"]);
    let (_, body) = call(port, Some(&globex), "GET", "/v1/scalers", "");
    assert_eq!(names(&body), ["chat"]);
    let (_, body) = call(port, op, "GET", "/v1/scalers", "");
    assert_eq!(
        names(&body),
        ["acme/chat", "acme/only-acme", "globex/chat", "ops"]
    );

    // acme pushes a policy of its own: NAME to it, acme/NAME inside.
    let qd = wasmscale::host::builtin_bytes("queue-depth").unwrap();
    let bearer = format!("Bearer {acme}");
    let (status, body) = exchange(
        port,
        "POST",
        "/v1/policies/only-acme/versions?activate=true",
        &[("Authorization", &bearer)],
        qd,
    );
    assert_eq!(status, 201, "{body}");
    let digest = json(&body)["version"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body) = call(port, Some(&acme), "GET", "/v1/policies", "");
    assert!(body.contains("acme/only-acme"), "{body}");
    let (_, body) = call(port, Some(&globex), "GET", "/v1/policies", "");
    assert_eq!(json(&body), serde_json::json!([]), "{body}");
    let (_, body) = call(port, op, "GET", "/v1/policies", "");
    assert!(body.contains("acme/only-acme"), "{body}");
    let follow = |policy: &str| {
        format!(
            r#"{{"policy": "{policy}", "params": {{"target_per_replica": 10}}, "min_replicas": 1, "max_replicas": 3, "interval_seconds": 0.1, "metrics": {{"queue_depth": 35}}}}"#
        )
    };
    let (status, body) = call(
        port,
        Some(&acme),
        "PUT",
        "/v1/scalers/follower",
        &follow("registry:only-acme"),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(json(&body)["policy"], "registry:acme/only-acme", "{body}");
    // globex can neither follow, pin nor name it, nor reach a server file.
    for (policy, want) in [
        ("registry:acme/only-acme", 404),
        (digest.as_str(), 404),
        ("/etc/passwd", 403),
    ] {
        let (status, body) = call(
            port,
            Some(&globex),
            "PUT",
            "/v1/scalers/thief",
            &follow(policy),
        );
        assert_eq!(status, want, "{policy}: {body}");
    }
    let (status, body) = call(
        port,
        Some(&globex),
        "PUT",
        "/v1/scalers/thief",
        &follow("registry:only-acme"),
    );
    assert!(status >= 400 && !body.contains(&digest), "{body}");
    let (status, body) = call(
        port,
        Some(&acme_viewer),
        "POST",
        "/v1/policies/only-acme/rollback",
        "",
    );
    assert_eq!(status, 403, "a viewer only reads: {body}");

    // Every documented route, tried by globex on acme's scaler.
    let (_, doc) = call(port, None, "GET", "/openapi.json", "");
    let doc = json(&doc);
    let mut tried = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            let route = format!("{method} {path}");
            let expect = expectation(&route)
                .unwrap_or_else(|| panic!("{route} is not in the cross-tenant table: add it"));
            tried += 1;
            let at = |name: &str| {
                path.replace("{name}", name)
                    .replace("{tenant}", "acme")
                    .replace("{version}", "1")
                    .replace("{id}", &viewer_id)
            };
            let body = if method == "PUT" && path.ends_with("/breaker") {
                r#"{"mode": "pause"}"#
            } else {
                "{}"
            };
            match expect {
                Expect::Open => {
                    let (status, text) = call(port, None, &method, &at("x"), "");
                    assert!(![401, 403].contains(&status), "{route}: {text}");
                }
                Expect::OperatorOnly => {
                    let (status, text) = call(port, Some(&globex), &method, &at("chat"), body);
                    assert_eq!(status, 403, "{route}: {text}");
                }
                Expect::One(what) => {
                    let theirs = call(port, Some(&globex), &method, &at("only-acme"), body);
                    let missing = call(port, Some(&globex), &method, &at("never-was"), body);
                    assert_eq!(theirs.0, missing.0, "{route}: {}", theirs.1);
                    if method == "GET" || method == "DELETE" {
                        assert_eq!(theirs.0, 404, "{route}: {}", theirs.1);
                    }
                    assert_eq!(
                        theirs.1.replace("only-acme", "NAME"),
                        missing.1.replace("never-was", "NAME"),
                        "{route}: another tenant's {what} answers as one that does not exist"
                    );
                }
                Expect::List => {
                    let (_, text) = call(port, Some(&globex), &method, &at(""), "");
                    assert!(!text.contains("acme"), "{route}: {text}");
                }
                Expect::PolicyList => {
                    let (_, text) = call(port, Some(&globex), &method, path, "");
                    assert!(!text.contains("acme"), "{route}: {text}");
                }
                Expect::Usage => {
                    let (status, text) = call(port, Some(&globex), &method, path, "");
                    assert_eq!(status, 200, "{route}: {text}");
                    assert_eq!(json(&text)["tenant"], "globex", "{text}");
                    let theirs = call(
                        port,
                        Some(&globex),
                        &method,
                        &format!("{path}?tenant=acme"),
                        "",
                    );
                    let missing = call(
                        port,
                        Some(&globex),
                        &method,
                        &format!("{path}?tenant=never-was"),
                        "",
                    );
                    assert_eq!(theirs.0, 404, "{route}: {}", theirs.1);
                    assert_eq!(
                        theirs.1.replace("acme", "NAME"),
                        missing.1.replace("never-was", "NAME"),
                        "{route}: another tenant's usage answers as a tenant that does not exist"
                    );
                }
                Expect::Create => {
                    let entry = r#"{"name": "only-acme", "tenant": "acme", "policy": "builtin:queue-depth", "min_replicas": 1, "max_replicas": 2, "metrics": {"queue_depth": 1}}"#;
                    let (status, text) = call(port, Some(&globex), &method, path, entry);
                    assert_eq!(status, 403, "{route}: another tenant's entry: {text}");
                }
            }
        }
    }
    assert!(tried >= 25, "{tried} routes");
    // Nothing globex did reached acme's scaler.
    let (_, body) = call(
        port,
        Some(&acme),
        "GET",
        "/v1/scalers/only-acme/breaker",
        "",
    );
    assert!(json(&body)["breaker"].is_null(), "{body}");

    // Roles: the viewer reads, the admin changes, within acme.
    assert_eq!(
        call(port, Some(&acme_viewer), "GET", "/v1/scalers/chat", "").0,
        200
    );
    for (method, path, body) in [
        ("PUT", "/v1/scalers/chat/breaker", r#"{"mode": "pause"}"#),
        ("DELETE", "/v1/scalers/chat/breaker", ""),
        ("POST", "/v1/scalers", r#"{"name": "x"}"#),
        ("DELETE", "/v1/scalers/chat", ""),
    ] {
        let (status, text) = call(port, Some(&acme_viewer), method, path, body);
        assert_eq!(status, 403, "{method} {path}: {text}");
    }
    let (status, body) = call(
        port,
        Some(&acme),
        "PUT",
        "/v1/scalers/chat/breaker",
        r#"{"mode": "pause", "for": "1h"}"#,
    );
    assert_eq!(status, 202, "{body}");
    let entry = r#"{"policy": "builtin:queue-depth", "params": {"target_per_replica": 10}, "min_replicas": 1, "max_replicas": 3, "interval_seconds": 0.1, "metrics": {"queue_depth": 35}}"#;
    let (status, body) = call(port, Some(&acme), "PUT", "/v1/scalers/batch", entry);
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (json(&body)["name"].clone(), json(&body)["tenant"].clone()),
        ("batch".into(), "acme".into())
    );
    let (_, body) = call(port, op, "GET", "/v1/scalers", "");
    assert!(names(&body).contains(&"acme/batch".to_owned()), "{body}");
    let (_, body) = call(port, Some(&globex), "GET", "/v1/scalers", "");
    assert_eq!(
        names(&body),
        ["chat"],
        "globex never sees acme's new scaler"
    );
    assert_eq!(
        call(port, Some(&globex), "DELETE", "/v1/scalers/batch", "").0,
        404
    );
    assert_eq!(
        call(port, Some(&acme), "DELETE", "/v1/scalers/batch", "").0,
        204
    );
    // /metrics is the operator's.
    assert_eq!(call(port, op, "GET", "/metrics", "").0, 200);

    // Revoked and expired tokens stop working.
    assert_eq!(
        call(
            port,
            op,
            "DELETE",
            &format!("/v1/tenants/acme/tokens/{viewer_id}"),
            ""
        )
        .0,
        204
    );
    assert_eq!(
        call(port, Some(&acme_viewer), "GET", "/v1/scalers", "").0,
        401
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while call(port, Some(&short), "GET", "/v1/scalers", "").0 != 401 {
        assert!(
            Instant::now() < deadline,
            "a 1 s token still works after 5 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Deleting a tenant revokes its tokens.
    assert_eq!(call(port, op, "DELETE", "/v1/tenants/globex", "").0, 204);
    assert_eq!(call(port, Some(&globex), "GET", "/v1/scalers", "").0, 401);
    daemon.join().unwrap();
}

const TIERS: &str = r#"
[tiers.free]
builtins = ["queue-depth", "step-scaling"]
custom_wasm = false
[tiers.free.quotas]
scalers = 2
max_replicas = 10
cost_per_hour = 20.0
memory_bytes = 8388608
concurrency = 1
"#;

/// A tenant-admin token for `tenant`, issued with the operator's token.
fn tenant_admin(port: u16, operator: Option<&str>, tenant: &str) -> String {
    let (status, text) = call(
        port,
        operator,
        "POST",
        &format!("/v1/tenants/{tenant}/tokens"),
        r#"{"role": "tenant-admin"}"#,
    );
    assert_eq!(status, 201, "{text}");
    json(&text)["token"].as_str().unwrap().to_owned()
}

/// A scaler entry for the API: `max` replicas, `extra` keys after.
fn entry(policy: &str, max: u32, extra: &str) -> String {
    format!(
        r#"{{"policy": "{policy}", "params": {{"target_per_replica": 10}}, "min_replicas": 1, "max_replicas": {max}, "interval_seconds": 0.1, "metrics": {{"queue_depth": 35}}{extra}}}"#
    )
}

const CEILING: &str =
    r#", "guard": {"cost_ceiling": {"budget_per_hour": 5, "price_per_replica_hour": 1}}"#;

#[test]
fn each_quota_exceeded_is_refused_with_its_name_use_and_limit_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = format!(
        "state_dir = \"state\"\n[audit]\npath = \"audit.jsonl\"\n[admin]\nlisten = \"127.0.0.1:{port}\"\nauth = \"tokens\"\n{TIERS}{}",
        scaler("ops", "default"),
    );
    let path = write_file(dir.path(), "wasmscale.toml", &text);
    let daemon = std::thread::spawn(move || {
        wasmscale::cli::serve(Arc::new(host()), &path, Some(200), false).unwrap()
    });
    wait_up(port);
    let operator = std::fs::read_to_string(dir.path().join("state/operator.token")).unwrap();
    let op = Some(operator.trim());
    let (status, body) = call(
        port,
        op,
        "POST",
        "/v1/tenants",
        r#"{"name": "small", "tier": "gold"}"#,
    );
    assert_eq!(status, 400, "an unknown tier: {body}");
    assert!(
        json(&body)["hint"].as_str().unwrap().contains("free"),
        "{body}"
    );
    for t in [r#"{"name": "small", "tier": "free"}"#, r#"{"name": "big"}"#] {
        assert_eq!(call(port, op, "POST", "/v1/tenants", t).0, 201);
    }
    let token = |t: &str| tenant_admin(port, op, t);
    let (small, big) = (token("small"), token("big"));
    let put = |tok: &str, name: &str, body: &str| {
        call(port, Some(tok), "PUT", &format!("/v1/scalers/{name}"), body)
    };

    let (status, body) = put(&small, "a", &entry("builtin:queue-depth", 4, CEILING));
    assert_eq!(status, 201, "{body}");
    let memory = r#", "limits": {"max_memory_bytes": 16777216}"#;
    let refused = [
        (entry("builtin:predictive", 2, CEILING), "builtins"),
        (entry("policy.wasm", 2, CEILING), "custom_wasm"),
        (entry("builtin:queue-depth", 2, ""), "cost_per_hour"),
        (entry("builtin:queue-depth", 8, CEILING), "max_replicas"),
        (
            entry("builtin:queue-depth", 2, &format!("{CEILING}{memory}")),
            "memory_bytes",
        ),
    ];
    for (body, quota) in &refused {
        let (status, text) = put(&small, "b", body);
        assert_eq!(status, 403, "{quota}: {text}");
        let v = json(&text);
        assert_eq!(v["quota"], *quota, "{text}");
        assert!(v["hint"].is_string() && v["limit"].is_number(), "{text}");
    }
    let (status, text) = put(&small, "b", &entry("builtin:queue-depth", 2, CEILING));
    assert_eq!(status, 201, "within every quota: {text}");
    let (status, text) = put(&small, "c", &entry("builtin:queue-depth", 1, CEILING));
    let v = json(&text);
    assert_eq!(
        (
            status,
            v["quota"].as_str(),
            v["used"].as_f64(),
            v["limit"].as_f64()
        ),
        (403, Some("scalers"), Some(3.0), Some(2.0)),
        "{text}"
    );
    // Replacing a scaler counts it once.
    assert_eq!(
        put(&small, "b", &entry("builtin:queue-depth", 5, CEILING)).0,
        200
    );

    // The tenant reads its quotas, its use and its refusals; the limits it
    // left to the host were lowered to its memory quota.
    // (A replaced scaler's task hands over when its tick ends.)
    let deadline = Instant::now() + Duration::from_secs(5);
    let v = loop {
        let (status, text) = call(port, Some(&small), "GET", "/v1/usage", "");
        assert_eq!(status, 200, "{text}");
        let v = json(&text);
        if v["usage"]["max_replicas"] == 9 || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(v["usage"]["scalers"], 2, "{v}");
    assert_eq!(v["usage"]["max_replicas"], 9, "{v}");
    assert_eq!(v["plan"]["tier"], "free");
    let recorded: Vec<&str> = v["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["quota"].as_str().unwrap())
        .collect();
    assert_eq!(
        recorded,
        [
            "scalers",
            "memory_bytes",
            "max_replicas",
            "cost_per_hour",
            "custom_wasm",
            "builtins"
        ]
    );
    let (_, text) = call(port, Some(&small), "GET", "/v1/scalers/a", "");
    assert_eq!(
        json(&text)["limits"]["max_memory_bytes"],
        8_388_608,
        "{text}"
    );

    // Overrides over the tier: one more scaler, under a fuel sum.
    let (status, text) = call(
        port,
        op,
        "PATCH",
        "/v1/tenants/small",
        r#"{"quotas": {"scalers": 3, "fuel_per_tick": 2500000}}"#,
    );
    assert_eq!(status, 200, "{text}");
    let (status, text) = put(&small, "c", &entry("builtin:queue-depth", 1, CEILING));
    assert_eq!(
        (status, json(&text)["quota"].clone()),
        (403, "fuel_per_tick".into()),
        "{text}"
    );
    let fuel = r#", "limits": {"fuel": 400000}"#;
    let (status, text) = put(
        &small,
        "c",
        &entry("builtin:queue-depth", 1, &format!("{CEILING}{fuel}")),
    );
    assert_eq!(
        (status, json(&text)["quota"].clone()),
        (403, "memory_bytes".into()),
        "limits it asks for itself must fit: {text}"
    );
    let fuel = r#", "limits": {"fuel": 400000, "max_memory_bytes": 8388608}"#;
    let (status, text) = put(
        &small,
        "c",
        &entry("builtin:queue-depth", 1, &format!("{CEILING}{fuel}")),
    );
    assert_eq!(status, 201, "{text}");
    // Not a quota: a bad entry is refused as one.
    assert_eq!(put(&small, "d", "{\"policy\": 3}").0, 422);

    // None of it touched another tenant: big has no tier, no quotas.
    for name in ["x", "y", "z"] {
        let (status, text) = put(&big, name, &entry("builtin:queue-depth", 50, ""));
        assert_eq!(status, 201, "{text}");
    }
    let (_, text) = call(port, Some(&big), "GET", "/v1/usage", "");
    assert!(
        json(&text)["refusals"].as_array().unwrap().is_empty(),
        "{text}"
    );
    // Uploads: a tier without custom .wasm, a size quota, a rate.
    let qd = wasmscale::host::builtin_bytes("queue-depth").unwrap();
    let upload = |tok: &str| {
        let bearer = format!("Bearer {tok}");
        let (status, text) = exchange(
            port,
            "POST",
            "/v1/policies/mine/versions",
            &[("Authorization", &bearer)],
            qd,
        );
        (status, json(&text))
    };
    let (status, v) = upload(&small);
    assert_eq!(
        (status, v["quota"].as_str()),
        (403, Some("custom_wasm")),
        "{v}"
    );
    let patch = |body: &str| call(port, op, "PATCH", "/v1/tenants/big", body).0;
    assert_eq!(patch(r#"{"quotas": {"policy_bytes": 1000}}"#), 200);
    let (status, v) = upload(&big);
    assert_eq!(
        (status, v["quota"].as_str(), v["limit"].as_f64()),
        (403, Some("policy_bytes"), Some(1000.0)),
        "{v}"
    );
    assert_eq!(patch(r#"{"quotas": {"uploads_per_minute": 2}}"#), 200);
    assert!(upload(&big).0 < 300);
    assert!(upload(&big).0 < 300);
    let (status, v) = upload(&big);
    assert_eq!(
        (status, v["quota"].as_str()),
        (429, Some("uploads_per_minute")),
        "{v}"
    );
    // The history names the token that was checked, not a header alone.
    let (_, text) = call(port, Some(&big), "GET", "/v1/policies/mine", "");
    let token_id = &big["wst_".len().."wst_".len() + 16];
    let shown = json(&text);
    let uploaders: Vec<&str> = shown["policy"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["uploader"].as_str().unwrap())
        .collect();
    assert!(
        !uploaders.is_empty() && uploaders.iter().all(|u| *u == format!("token {token_id}")),
        "{text}"
    );
    // A zero concurrency is no quota.
    let (status, _) = call(
        port,
        op,
        "PATCH",
        "/v1/tenants/big",
        r#"{"quotas": {"concurrency": 0}}"#,
    );
    assert_eq!(status, 400);
    daemon.join().unwrap();
}

const LAB: &str = r#"
[tiers.lab]
prometheus_urls = ["http://127.0.0.1:9/"]
namespaces = ["{tenant}", "shared"]
"#;

/// A tenant's scaler reaches only what its tier offers: no file, cluster
/// or identity of the server, only the tier's Prometheus servers and
/// namespaces. The refusals come before anything named is touched: a
/// trace that does not exist is refused as one that does.
#[test]
fn a_tenants_scaler_reaches_only_what_its_tier_offers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = format!(
        "state_dir = \"state\"\n[admin]\nlisten = \"127.0.0.1:{port}\"\nauth = \"tokens\"\n{LAB}{}",
        scaler("ops", "default"),
    );
    let path = write_file(dir.path(), "wasmscale.toml", &text);
    let trace = write_file(dir.path(), "secret.csv", "queue_depth\n7\n");
    let daemon = std::thread::spawn(move || {
        wasmscale::cli::serve(Arc::new(host()), &path, Some(100), false).unwrap()
    });
    wait_up(port);
    let operator = std::fs::read_to_string(dir.path().join("state/operator.token")).unwrap();
    let op = Some(operator.trim());
    for t in [r#"{"name": "acme", "tier": "lab"}"#, r#"{"name": "solo"}"#] {
        assert_eq!(call(port, op, "POST", "/v1/tenants", t).0, 201);
    }
    let token = |t: &str| tenant_admin(port, op, t);
    let (acme, solo) = (token("acme"), token("solo"));
    let put = |tok: &str, body: &str| call(port, Some(tok), "PUT", "/v1/scalers/s", body);
    let kube =
        |extra: &str| format!(r#", "target": {{"type": "kubernetes", "name": "web"{extra}}}"#);
    let refused = [
        (
            format!(
                r#", "source": {{"type": "replay", "path": {:?}}}"#,
                trace.display()
            ),
            "files",
        ),
        (
            r#", "source": {"type": "replay", "path": "/no/such/trace.csv"}"#.to_owned(),
            "files",
        ),
        (
            r#", "source": {"type": "prometheus", "url": "http://169.254.169.254/"}"#.to_owned(),
            "prometheus_urls",
        ),
        (kube(r#", "namespace": "globex""#), "namespaces"),
        (kube(r#", "namespace": "default""#), "namespaces"),
        (
            kube(r#", "namespace": "acme", "kubeconfig": "/root/.kube/config""#),
            "files",
        ),
        (
            kube(r#", "namespace": "acme", "api_server": "https://10.0.0.1:6443""#),
            "targets",
        ),
    ];
    for (extra, quota) in &refused {
        let (status, text) = put(&acme, &entry("builtin:queue-depth", 4, extra));
        let v = json(&text);
        assert_eq!(
            (status, v["quota"].as_str()),
            (403, Some(*quota)),
            "{extra}: {text}"
        );
        assert!(
            !text.contains("queue_depth\\n7"),
            "nothing of the file shows: {text}"
        );
    }
    // A tenant on no tier gets the defaults: no Prometheus, its own namespace.
    let (status, text) = put(
        &solo,
        &entry(
            "builtin:queue-depth",
            4,
            r#", "source": {"type": "prometheus", "url": "http://127.0.0.1:9/"}"#,
        ),
    );
    assert_eq!(
        (status, json(&text)["quota"].as_str()),
        (403, Some("prometheus_urls")),
        "{text}"
    );
    // What the tier offers is taken (a trailing slash is no difference).
    let (status, text) = put(
        &acme,
        &entry(
            "builtin:queue-depth",
            4,
            r#", "source": {"type": "prometheus", "url": "http://127.0.0.1:9"}, "metrics": {"queue_depth": "sum(q)"}"#,
        ),
    );
    assert!(status == 201, "{text}");
    // The operator's own entries are trusted as the config file's are.
    let (status, text) = call(
        port,
        op,
        "PUT",
        "/v1/scalers/replayed",
        &entry(
            "builtin:queue-depth",
            4,
            &format!(
                r#", "source": {{"type": "replay", "path": {:?}, "repeat": true}}"#,
                trace.display()
            ),
        ),
    );
    assert_eq!(status, 201, "{text}");
    let (_, text) = call(port, Some(&acme), "GET", "/v1/usage", "");
    let recorded: Vec<String> = json(&text)["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["quota"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        recorded.len(),
        refused.len(),
        "each refusal recorded: {text}"
    );
    daemon.join().unwrap();
}

/// A small deterministic generator: the same run every time, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Send a request and read the status, tolerating a server that answers
/// (and closes) before the body is sent.
fn raw(port: u16, head: &str, body: &[u8]) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Some((status, body))
}

/// Generated bad requests on every documented route, with and without
/// tokens of each kind: the server never panics, stays up, and answers no
/// 5xx but `/readyz`'s documented 503.
#[test]
fn generated_bad_requests_get_4xx_never_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let daemon = serve(dir.path(), port, 150);
    wait_up(port);
    let started = Instant::now();
    let operator = std::fs::read_to_string(dir.path().join("state/operator.token")).unwrap();
    let operator = operator.trim().to_owned();
    assert_eq!(
        call(
            port,
            Some(&operator),
            "POST",
            "/v1/tenants",
            r#"{"name": "acme"}"#
        )
        .0,
        201
    );
    let acme = tenant_admin(port, Some(&operator), "acme");
    let (_, doc) = call(port, None, "GET", "/openapi.json", "");
    let doc = json(&doc);
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.push((method.to_uppercase(), path.clone()));
        }
    }
    let long = "x".repeat(5000);
    let segments: Vec<&str> = vec![
        "chat",
        "only-acme",
        "acme",
        "globex%2Fchat",
        "..%2F..",
        "%00",
        "%ff%fe",
        "1",
        "-1",
        "99999999999999999999",
        "sha256:zz",
        "ü",
        &long,
        "a/b",
        "",
    ];
    let bodies: Vec<&[u8]> = vec![
        b"", b"{", b"null", b"[]", b"{}", b"\xff\xfe\x00", b"{\"mode\": \"pause\", \"for\": \"-1h\"}",
        b"{\"name\": 7}", b"{\"policy\": \"builtin:queue-depth\", \"min_replicas\": -1}",
        b"{\"version\": 1e999}", b"{\"role\": \"operator\"}", b"{\"tier\": null, \"quotas\": {\"scalers\": -3}}",
        b"{\"quotas\": {\"cost_per_hour\": \"NaN\"}}",
        b"{\"policy\": \"builtin:queue-depth\", \"min_replicas\": 1, \"max_replicas\": 4294967295, \"interval_seconds\": 1e-300}",
    ];
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let bearer_op = format!("Bearer {operator}");
    let bearer_acme = format!("Bearer {acme}");
    // Mostly valid tokens, so that most requests reach the handlers.
    let auths: Vec<&str> = vec![
        "",
        "Bearer ",
        "Basic abc",
        "Bearer wst_0000000000000000_zz",
        &bearer_op,
        &bearer_op,
        &bearer_op,
        &bearer_acme,
        &bearer_acme,
        &bearer_acme,
    ];
    let methods = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "BREW",
    ];
    let mut rng = Rng(0x5eed_cafe);
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for i in 0..3000u32 {
        let (doc_method, path) = &routes[(rng.next() % routes.len() as u64) as usize];
        let method = if rng.next().is_multiple_of(4) {
            rng.pick(&methods)
        } else {
            doc_method.as_str()
        };
        let mut target = path.clone();
        for key in ["{name}", "{tenant}", "{version}", "{id}"] {
            target = target.replace(key, rng.pick(&segments));
        }
        if rng.next().is_multiple_of(5) {
            target.push_str(rng.pick(&[
                "?since=-5m",
                "?limit=0",
                "?limit=99999",
                "?tenant=globex",
                "?activate=maybe",
                "?%zz",
            ]));
        }
        let body: &[u8] = if i.is_multiple_of(97) {
            nested.as_bytes()
        } else {
            rng.pick(&bodies)
        };
        let auth = rng.pick(&auths);
        let auth_line = if auth.is_empty() {
            String::new()
        } else {
            format!("Authorization: {auth}\r\n")
        };
        // Sometimes a Content-Length short of the body: the rest is garbage
        // after the request. (One longer than the body only makes the server
        // wait for bytes that never come, as it should.)
        let length = if rng.next().is_multiple_of(10) {
            body.len().saturating_sub(3)
        } else {
            body.len()
        };
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {length}\r\nContent-Type: application/json\r\n{auth_line}\r\n"
        );
        let t0 = Instant::now();
        let status = raw(port, &head, body);
        if t0.elapsed() > Duration::from_millis(500) {
            println!(
                "slow {:?}: {method} {target} {} bytes, length {length}",
                t0.elapsed(),
                body.len()
            );
        }
        let Some((status, answer)) = status else {
            panic!("{method} {target}: no answer");
        };
        // The one 503 seen: readiness, while a scaler the fuzz put has not ticked.
        if status == 503 {
            assert!(
                target.starts_with("/readyz"),
                "{method} {target}: 503 {answer}"
            );
        }
        *statuses.entry(status).or_default() += 1;
        assert!(
            status < 500 || status == 503,
            "{method} {target} ({auth}): {status}"
        );
    }
    println!("fuzz: statuses {statuses:?} in {:?}", started.elapsed());
    assert_eq!(call(port, None, "GET", "/healthz", "").0, 200, "still up");
    let (_, body) = call(port, Some(&operator), "GET", "/v1/scalers", "");
    assert_eq!(
        names(&body).len(),
        4,
        "every file scaler still runs: {body}"
    );
    daemon.join().unwrap();
}
