//! The scalers: list, status, recent decisions, and those created, replaced
//! and deleted through the API. An API scaler is checked as a config file's
//! entry is (and its policy probed), started, then stored in the registry,
//! so that a restart brings it back.

use super::{ApiError, App};
use crate::tenants::Caller;
use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

/// A scaler as the API shows it.
#[derive(Debug, serde::Serialize)]
pub(super) struct ScalerView {
    name: String,
    tenant: String,
    /// The policy as configured.
    policy: String,
    /// `file` (the config file's) or `api` (created through this API).
    origin: &'static str,
    /// An API scaler's entry as stored, and when and by whom it last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    stored: Option<crate::registry::StoredScaler>,
    /// Why a stored scaler is not running.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
    /// The per-instance limits it runs with, when not the host's (its own,
    /// or its tenant's quotas).
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<crate::host::Limits>,
    /// What runs now, from the scaler's task (absent if it did not answer).
    running: Option<crate::controller::Inspection>,
    counters: Option<crate::controller::ScalerStatus>,
}

/// Ask a scaler's task what it holds; 404 for a scaler that does not run
/// (or that the caller may not see).
pub(super) async fn inspect(
    app: &App,
    caller: &Caller,
    name: &str,
) -> Result<crate::controller::Inspection, ApiError> {
    let desk = desk(app, caller, name)?;
    crate::controller::inspect(&desk).await.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("scaler {name} did not answer (it is stopping, or a tick is stuck)"),
        )
    })
}

/// The scaler's name inside the process, as `caller` addresses it: a
/// tenant's scalers are named `TENANT/NAME`, and its tokens address them as
/// `NAME`, so one tenant can never name (or learn of) another's. None for a
/// name no tenant token can address.
pub(super) fn internal_name(caller: &Caller, name: &str) -> Option<String> {
    match &caller.tenant {
        None => Some(name.to_owned()),
        Some(_) if name.contains('/') => None,
        Some(t) => Some(format!("{t}/{name}")),
    }
}

/// The name `caller` knows a scaler by.
fn shown_name(caller: &Caller, internal: &str) -> String {
    match &caller.tenant {
        Some(t) => internal
            .strip_prefix(t.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or(internal)
            .to_owned(),
        None => internal.to_owned(),
    }
}

/// The answer for a scaler that does not exist, and for one the caller may
/// not see: the same, so the two cannot be told apart.
pub(super) fn no_such_scaler(name: &str) -> ApiError {
    ApiError::not_found(format!("no scaler named {name:?}"))
        .hint("list the running scalers with GET /v1/scalers")
}

/// The running scaler `name` as `caller` addresses it.
pub(super) fn desk(
    app: &App,
    caller: &Caller,
    name: &str,
) -> Result<crate::controller::Desk, ApiError> {
    internal_name(caller, name)
        .and_then(|n| app.handle.controls.desk(&n))
        .filter(|d| caller.sees(&d.tenant))
        .ok_or_else(|| no_such_scaler(name))
}

/// The viewer's refusal: it reads, never changes.
pub(super) fn must_write(caller: &Caller) -> Result<(), ApiError> {
    if caller.writes() {
        Ok(())
    } else {
        Err(
            ApiError::new(StatusCode::FORBIDDEN, "a viewer token only reads")
                .hint("use a tenant-admin token to change scalers"),
        )
    }
}

async fn view(app: &App, caller: &Caller, desk: crate::controller::Desk) -> ScalerView {
    let running = crate::controller::inspect(&desk).await;
    let stored = stored(app, &desk.scaler);
    ScalerView {
        counters: app.handle.metrics.status(&desk.scaler),
        origin: if stored.is_some() { "api" } else { "file" },
        stored,
        problem: None,
        name: shown_name(caller, &desk.scaler),
        limits: desk.limits,
        tenant: desk.tenant,
        policy: desk.policy,
        running,
    }
}

fn stored(app: &App, name: &str) -> Option<crate::registry::StoredScaler> {
    let (registry, _) = app.registry().ok()?;
    registry.scaler(name).ok().flatten()
}

/// The tenant a stored entry belongs to.
fn stored_tenant(s: &crate::registry::StoredScaler) -> String {
    let entry: serde_json::Value = serde_json::from_str(&s.spec).unwrap_or_default();
    entry["tenant"].as_str().unwrap_or("default").to_owned()
}

/// A stored scaler with no running task: it was refused at start.
fn not_running(caller: &Caller, s: crate::registry::StoredScaler) -> ScalerView {
    let entry: serde_json::Value = serde_json::from_str(&s.spec).unwrap_or_default();
    let field = |k: &str| entry[k].as_str().unwrap_or_default().to_owned();
    ScalerView {
        name: shown_name(caller, &s.name),
        tenant: stored_tenant(&s),
        policy: field("policy"),
        origin: "api",
        stored: Some(s),
        limits: None,
        problem: Some(
            "stored, but not running: its entry was refused when the server started (the server's log says why); PUT it again to fix it".into(),
        ),
        running: None,
        counters: None,
    }
}

#[utoipa::path(
    get,
    path = "/v1/scalers",
    tag = "scalers",
    summary = "Every scaler: the config file's and the API's",
    responses((status = 200, description = "the scalers", body = Vec<serde_json::Value>), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn list(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
) -> Json<Vec<ScalerView>> {
    let mut out = Vec::new();
    let mine = |name: &str, tenant: &str| {
        caller.sees(tenant)
            && caller
                .tenant
                .as_ref()
                .is_none_or(|t| name.starts_with(&format!("{t}/")))
    };
    let desks: Vec<_> = app
        .handle
        .controls
        .desks()
        .into_iter()
        .filter(|d| mine(&d.scaler, &d.tenant))
        .collect();
    let stored = app
        .registry()
        .ok()
        .and_then(|(r, _)| r.scalers().ok())
        .unwrap_or_default();
    for s in stored {
        if !desks.iter().any(|d| d.scaler == s.name) && mine(&s.name, &stored_tenant(&s)) {
            out.push(not_running(&caller, s));
        }
    }
    for desk in desks {
        out.push(view(&app, &caller, desk).await);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Json(out)
}

#[utoipa::path(
    get,
    path = "/v1/scalers/{name}",
    tag = "scalers",
    summary = "One scaler: what it runs, its breaker, its counters",
    params(("name" = String, Path, description = "the scaler's name")),
    responses((status = 200, description = "the scaler", body = serde_json::Value), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn status(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<ScalerView>, ApiError> {
    match desk(&app, &caller, &name) {
        Ok(desk) => Ok(Json(view(&app, &caller, desk).await)),
        Err(e) => visible_stored(&app, &caller, &name)
            .map(|s| Json(not_running(&caller, s)))
            .ok_or(e),
    }
}

/// A stored entry `caller` may see, by the name it addresses it with.
fn visible_stored(app: &App, caller: &Caller, name: &str) -> Option<crate::registry::StoredScaler> {
    let internal = internal_name(caller, name)?;
    stored(app, &internal).filter(|s| caller.sees(&stored_tenant(s)))
}

use super::policies::who as user;

/// Check an entry (a `[[scaler]]` table as JSON) for scaler `name`, as a
/// config file's would be, and probe its policy.
async fn check_entry(
    app: &App,
    caller: &Caller,
    name: &str,
    entry: &mut serde_json::Value,
) -> Result<crate::config::ScalerConfig, ApiError> {
    let host = app
        .registry
        .as_ref()
        .map(|(_, h)| h.clone())
        .ok_or_else(ApiError::no_registry)?;
    let Some(object) = entry.as_object_mut() else {
        return Err(ApiError::bad_request("the body must be a JSON object: the keys of one [[scaler]] entry")
            .hint("e.g. {\"policy\": \"builtin:queue-depth\", \"min_replicas\": 1, \"max_replicas\": 8, \"metrics\": {\"queue_depth\": 12}}"));
    };
    let shown = shown_name(caller, name);
    match object.get("name") {
        None => {}
        Some(n) if n.as_str() == Some(shown.as_str()) => {}
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "the body names scaler {n}, the path {shown:?}"
            ))
            .hint("leave `name` out of the body, or make the two agree"));
        }
    }
    object.insert("name".into(), name.into());
    // A tenant's token puts scalers in its own tenant, and only there.
    if let Some(t) = &caller.tenant {
        match object.get("tenant") {
            None => {
                object.insert("tenant".into(), t.clone().into());
            }
            Some(v) if v.as_str() == Some(t.as_str()) => {}
            Some(_) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "a tenant's token creates scalers in its own tenant only",
                )
                .hint("leave `tenant` out of the entry"));
            }
        }
    }
    let tenant = object
        .get("tenant")
        .and_then(|t| t.as_str())
        .unwrap_or("default")
        .to_owned();
    if let Some(policy) = object.get("policy").and_then(|p| p.as_str()) {
        super::tenants::admit_policy(app, &tenant, policy)?;
    }
    // A tenant's policies are its own: `registry:NAME` is its NAME, a pin
    // is one of its versions, and no path on the server is one.
    if let Some(t) = &caller.tenant {
        if let Some(p) = object.get("policy").and_then(|p| p.as_str()) {
            let mine = tenant_policy(app, t, p)?;
            object.insert("policy".into(), mine.into());
        }
        // What it reaches, before validation reads anything it names. An
        // entry that does not parse is left to validation's own message.
        let part = |key: &str, default: &str| {
            object
                .get(key)
                .cloned()
                .unwrap_or_else(|| serde_json::json!({ "type": default }))
        };
        super::tenants::admit_reach(
            app,
            t,
            serde_json::from_value(part("source", "static"))
                .ok()
                .as_ref(),
            serde_json::from_value(part("target", "log")).ok().as_ref(),
        )?;
        if let Some(net) = object.get_mut("safety_net").and_then(|n| n.as_object_mut())
            && let Some(p) = net.get("policy").and_then(|p| p.as_str())
        {
            let mine = tenant_policy(app, t, p)?;
            net.insert("policy".into(), mine.into());
        }
    }
    let base = app.handle.base.clone();
    let origin = format!("scaler {name}");
    let entry = entry.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let mut checked = crate::config::check_entry(&origin, &entry, &base);
        crate::controller::probe(&mut checked, &host);
        checked.into_result()
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    checked?
        .scalers
        .pop()
        .ok_or_else(|| ApiError::bad_request("the entry holds no scaler"))
}

/// A tenant's policy reference, as the registry knows it.
fn tenant_policy(app: &App, tenant: &str, policy: &str) -> Result<String, ApiError> {
    use crate::registry::RegistryError;
    if policy.starts_with("builtin:") || policy.starts_with("oci://") {
        return Ok(policy.to_owned());
    }
    if let Some(name) = policy.strip_prefix("registry:") {
        if name.contains('/') {
            let bare = name.split('@').next().unwrap_or(name);
            return Err(RegistryError::UnknownPolicy(bare.to_owned()).into());
        }
        return Ok(format!("registry:{tenant}/{name}"));
    }
    if policy.starts_with("sha256:") {
        let (registry, _) = app.registry()?;
        if registry.has_digest_under(&format!("{tenant}/"), policy)? {
            return Ok(policy.to_owned());
        }
        return Err(RegistryError::UnknownDigest(policy.to_owned()).into());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "a tenant's scaler names its policy as builtin:NAME, registry:NAME, sha256:DIGEST or oci://REF",
    )
    .hint("files on the server are the operator's: push the .wasm with `wasmscale policy push` and use registry:NAME"))
}

fn changes(app: &App) -> Result<&crate::controller::ScalerChanges, ApiError> {
    app.handle.changes.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server takes no scaler changes",
        )
    })
}

/// The body of `POST /v1/scalers`: a `[[scaler]]` entry with its name.
#[utoipa::path(
    post,
    path = "/v1/scalers",
    tag = "scalers",
    summary = "Create a scaler from a [[scaler]] entry as JSON; it is checked as the config file's are, and kept across restarts",
    params(("X-Wasmscale-User" = Option<String>, Header, description = "who makes the change, for the history")),
    request_body(content = serde_json::Value, description = "the keys of one [[scaler]] entry, with its name"),
    responses((status = 201, description = "created and running", body = serde_json::Value), (status = 409, description = "a scaler of that name exists", body = super::errors::ErrorBody), (status = 422, description = "the entry is invalid: `problems` lists each", body = super::errors::ErrorBody), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn create(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<ScalerView>), ApiError> {
    must_write(&caller)?;
    let entry = parse_body(&body)?;
    let Some(name) = entry
        .get("name")
        .and_then(|n| n.as_str())
        .map(str::to_owned)
    else {
        return Err(ApiError::bad_request("the entry has no `name`").hint(
            "POST /v1/scalers takes the name in the body; PUT /v1/scalers/NAME in the path",
        ));
    };
    put_entry(&app, &caller, &name, entry, &user(&caller, &headers), true).await
}

/// `PUT /v1/scalers/{name}`: create the scaler, or replace it.
#[utoipa::path(
    put,
    path = "/v1/scalers/{name}",
    tag = "scalers",
    summary = "Create or replace an API scaler (a replaced one keeps its state)",
    params(("name" = String, Path, description = "the scaler's name"), ("X-Wasmscale-User" = Option<String>, Header, description = "who makes the change, for the history")),
    request_body(content = serde_json::Value, description = "the keys of one [[scaler]] entry"),
    responses((status = 201, description = "created", body = serde_json::Value), (status = 200, description = "replaced", body = serde_json::Value), (status = 409, description = "it comes from the config file", body = super::errors::ErrorBody), (status = 422, description = "the entry is invalid: `problems` lists each", body = super::errors::ErrorBody), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn put(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<ScalerView>), ApiError> {
    must_write(&caller)?;
    let entry = parse_body(&body)?;
    put_entry(&app, &caller, &name, entry, &user(&caller, &headers), false).await
}

fn parse_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let hint = "send the keys of one [[scaler]] entry as a JSON object";
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")).hint(hint))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object").hint(hint));
    }
    Ok(value)
}

/// Check, store, then start: a scaler that cannot start is not stored (the
/// entry it replaced is put back), so what is stored is what runs.
async fn put_entry(
    app: &App,
    caller: &Caller,
    shown: &str,
    mut entry: serde_json::Value,
    by: &str,
    only_new: bool,
) -> Result<(StatusCode, Json<ScalerView>), ApiError> {
    let (registry, _) = app.registry()?;
    if shown.trim().is_empty() || shown.len() > 200 || shown.chars().any(char::is_control) {
        return Err(
            ApiError::bad_request(format!("{shown:?} is not a scaler name"))
                .hint("use 1 to 200 printable characters"),
        );
    }
    let internal = internal_name(caller, shown).ok_or_else(|| no_such_scaler(shown))?;
    let name = internal.as_str();
    // A running scaler the caller may not see is, to it, not there; and
    // one it sees but that is the file's is refused by the daemon (409).
    if let Some(d) = app.handle.controls.desk(name)
        && !caller.sees(&d.tenant)
    {
        return Err(no_such_scaler(shown));
    }
    let config = check_entry(app, caller, name, &mut entry).await?;
    let changes = changes(app)?;
    // The entry as checked: a restart checks the same.
    let spec = entry.to_string();
    // One change to the stored scalers at a time: a put racing another
    // could otherwise restore the wrong entry.
    let _one = app.scaler_changes.lock().await;
    if only_new && (app.handle.controls.desk(name).is_some() || stored(app, name).is_some()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("a scaler named {name:?} exists"),
        )
        .hint(format!("PUT /v1/scalers/{name} replaces it")));
    }
    // Under the lock: two puts racing cannot both fit the last of a quota.
    if let Some((_, host)) = &app.registry {
        super::tenants::admit(app, &config, host)?;
    }
    let old = registry.put_scaler(name, &spec, by)?;
    match changes.put(config).await {
        Ok(applied) => {
            let status = match applied {
                crate::controller::Applied::Created => StatusCode::CREATED,
                _ => StatusCode::OK,
            };
            drop(_one);
            let view = match app.handle.controls.desk(name) {
                Some(desk) => view(app, caller, desk).await,
                None => {
                    return Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the scaler started but has no desk",
                    ));
                }
            };
            Ok((status, Json(view)))
        }
        Err(e) => {
            if let Err(undo) = registry.restore_scaler(name, old.as_ref()) {
                tracing::error!(scaler = %name, error = %undo, "cannot restore the stored entry after a failed put; the registry holds the refused entry");
            }
            Err(e.into())
        }
    }
}

/// `DELETE /v1/scalers/{name}`: stop and forget an API scaler.
#[utoipa::path(
    delete,
    path = "/v1/scalers/{name}",
    tag = "scalers",
    summary = "Stop and forget an API scaler",
    params(("name" = String, Path, description = "the scaler's name"), ("X-Wasmscale-User" = Option<String>, Header, description = "who makes the change, for the history")),
    responses((status = 204, description = "deleted"), (status = 409, description = "it comes from the config file", body = super::errors::ErrorBody), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn delete(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(shown): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<StatusCode, ApiError> {
    must_write(&caller)?;
    let (registry, _) = app.registry()?;
    if desk(&app, &caller, &shown).is_err() && visible_stored(&app, &caller, &shown).is_none() {
        return Err(no_such_scaler(&shown));
    }
    let name = internal_name(&caller, &shown).ok_or_else(|| no_such_scaler(&shown))?;
    let changes = changes(&app)?;
    let _one = app.scaler_changes.lock().await;
    let old = registry.delete_scaler(&name, &user(&caller, &headers))?;
    match changes.remove(&name).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        // Stored but not running (refused at start): deleting it is all there is.
        Err(crate::controller::ChangeError::NotManaged(_)) if old.is_some() => {
            Ok(StatusCode::NO_CONTENT)
        }
        Err(e) => {
            if old.is_some()
                && let Err(undo) = registry.restore_scaler(&name, old.as_ref())
            {
                tracing::error!(scaler = %name, error = %undo, "cannot restore the stored entry after a failed delete");
            }
            Err(e.into())
        }
    }
}

/// The stored scalers, checked as at their creation, to start with `run`:
/// one that no longer passes (or has a file scaler's name) is left out with
/// an error in the log, and `GET /v1/scalers` shows it as not running.
pub fn stored_scalers(
    registry: &crate::registry::Registry,
    host: &crate::host::Host,
    base: &std::path::Path,
    file: &crate::config::Config,
) -> Vec<crate::config::ScalerConfig> {
    let stored = match registry.scalers() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the scalers created through the admin API; none of them start");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for s in stored {
        if file.scalers.iter().any(|f| f.name == s.name) {
            tracing::error!(scaler = %s.name, "a scaler created through the admin API has the name of one in the config file; the file's runs");
            continue;
        }
        let entry: serde_json::Value = match serde_json::from_str(&s.spec) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(scaler = %s.name, error = %e, "a stored scaler's entry is not JSON; it does not start");
                continue;
            }
        };
        let mut checked = crate::config::check_entry(&format!("scaler {}", s.name), &entry, base);
        crate::controller::probe(&mut checked, host);
        match checked.into_result() {
            Ok(mut c) if c.scalers.len() == 1 && c.scalers[0].name == s.name => {
                out.extend(c.scalers.pop());
            }
            Ok(_) => {
                tracing::error!(scaler = %s.name, "a stored scaler's entry names another scaler; it does not start")
            }
            Err(errors) => {
                tracing::error!(scaler = %s.name, %errors, "a stored scaler's entry no longer passes its checks; it does not start (PUT it again to fix it)")
            }
        }
    }
    out
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DecisionsQuery {
    /// How far back (`15m`, `1h`); default: all the log holds.
    since: Option<String>,
    /// At most this many, the newest (default 50, at most 1000).
    limit: Option<usize>,
}

/// The most records `decisions` returns.
const MAX_DECISIONS: usize = 1000;

#[utoipa::path(
    get,
    path = "/v1/scalers/{name}/decisions",
    tag = "scalers",
    summary = "Recent decisions, from the audit log, newest last",
    params(("name" = String, Path, description = "the scaler's name"), ("since" = Option<String>, Query, description = "how far back: 90s, 15m, 1h, 2d"), ("limit" = Option<usize>, Query, description = "at most this many, the newest (default 50, at most 1000)")),
    responses((status = 200, description = "audit records", body = Vec<serde_json::Value>), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn decisions(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    query: Result<Query<DecisionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<crate::audit::AuditRecord>>, ApiError> {
    let name = desk(&app, &caller, &name)?.scaler;
    let Query(q) =
        query.map_err(|e| ApiError::bad_request(e.body_text()).hint("use ?since=1h&limit=50"))?;
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_DECISIONS {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_DECISIONS} (got {limit})"
        )));
    }
    let since_ms = match q.since.as_deref() {
        Some(s) => {
            let d = super::parse_duration(s).map_err(ApiError::bad_request)?;
            crate::controller::wall_clock_ms().saturating_sub(d.as_millis() as u64)
        }
        None => 0,
    };
    let Some(path) = app.handle.audit.clone() else {
        return Ok(Json(Vec::new()));
    };
    let records =
        tokio::task::spawn_blocking(move || crate::audit::recent(&path, &name, since_ms, limit))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot read the audit log: {e}"),
                )
            })?;
    Ok(Json(records))
}
