//! The registry's endpoints, and the hot swap that activation and rollback
//! drive: every scaler whose config says `policy = "registry:NAME"` follows
//! NAME's active version.
//!
//! Activation runs the pipeline (fetch and verify the blob, validate and
//! compile, then configure and smoke-evaluate for every following scaler)
//! before anything changes; only then does the registry's pointer move and
//! each scaler swap between two of its ticks. Any failure before that
//! leaves the old version active everywhere and names the failed step.

use super::{ApiError, App};
use crate::controller::{SwapError, SwapStep, Swapped};
use crate::registry::{PolicyInfo, Upload, Version};
use crate::tenants::Caller;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};

/// How many of a scaler's last recorded snapshots a swap smoke-evaluates.
pub(super) const SMOKE_SNAPSHOTS: usize = 5;

/// Who made a change, for the history: the checked token's id, with the
/// `X-Wasmscale-User` header as a label beside it (a header alone is
/// anyone's to send).
pub(super) fn who(caller: &Caller, headers: &HeaderMap) -> String {
    let claimed = headers
        .get("x-wasmscale-user")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128);
    // Without tokens the header is all there is; with them, the token
    // that was checked is the identity and the header only a label.
    match (caller.token_id.as_str(), claimed) {
        ("-", claimed) => claimed.unwrap_or("anonymous").to_owned(),
        (id, Some(claimed)) => format!("{claimed} (token {id})"),
        (id, None) => format!("token {id}"),
    }
}

/// Run blocking registry or compile work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

#[utoipa::path(
    get,
    path = "/v1/policies",
    tag = "policies",
    summary = "Every policy in the registry, with its versions",
    responses((status = 200, description = "the policies", body = Vec<PolicyInfo>), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn list(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<PolicyInfo>>, ApiError> {
    let app2 = app.clone();
    let all = blocking(move || Ok(app2.registry()?.0.policies()?)).await?;
    Ok(Json(match &caller.tenant {
        None => all,
        Some(t) => {
            let prefix = format!("{t}/");
            all.into_iter()
                .filter(|p| p.name.starts_with(&prefix))
                .collect()
        }
    }))
}

/// Whether tenant `t` may upload a policy of `size` bytes now: its tier
/// runs custom `.wasm`, the size is within `policy_bytes`, and it is
/// within `uploads_per_minute`. A refusal is recorded for the tenant.
fn admit_upload(app: &App, t: &str, size: usize) -> Result<(), ApiError> {
    let Some((store, plan)) = super::tenants::plan_of(app, t) else {
        return Ok(());
    };
    let refuse = |e| super::tenants::refused(store, t, e);
    plan.admit_policy(None).map_err(refuse)?;
    if let Some(limit) = plan.quotas.policy_bytes
        && size as u64 > limit
    {
        return Err(refuse(crate::tenants::Exceeded {
            quota: "policy_bytes".into(),
            used: size as f64,
            limit: limit as f64,
            rate: false,
            detail: "the uploaded component's size".into(),
        }));
    }
    store
        .take_upload(t, plan.quotas.uploads_per_minute)
        .map_err(refuse)
}

/// The registry's name for policy `name` as `caller` addresses it: a
/// tenant's policies are `TENANT/NAME` inside, NAME to it; another
/// tenant's answer as a policy that does not exist.
fn owned(caller: &Caller, name: &str) -> Result<String, ApiError> {
    super::scalers::internal_name(caller, name)
        .ok_or_else(|| crate::registry::RegistryError::UnknownPolicy(name.to_owned()).into())
}

#[utoipa::path(
    get,
    path = "/v1/policies/{name}",
    tag = "policies",
    summary = "One policy: its versions, the scalers that follow it, its history",
    params(("name" = String, Path, description = "the policy's name")),
    responses((status = 200, description = "the policy", body = serde_json::Value), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn show(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = owned(&caller, &name)?;
    blocking(move || {
        let registry = app.registry()?.0;
        let info = registry.policy(&name)?;
        let events = registry.events(Some(&name), 20)?;
        let followers: Vec<String> = followers(&app, &name)
            .into_iter()
            .map(|d| d.scaler)
            .collect();
        Ok(Json(serde_json::json!({
            "policy": info,
            "scalers": followers,
            "events": events,
        })))
    })
    .await
}

#[utoipa::path(
    get,
    path = "/v1/policies/{name}/versions/{version}",
    tag = "policies",
    summary = "One version",
    params(("name" = String, Path, description = "the policy's name"), ("version" = String, Path, description = "a version number, or a sha256: digest")),
    responses((status = 200, description = "the version", body = Version), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn show_version(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Version>, ApiError> {
    let name = owned(&caller, &name)?;
    blocking(move || Ok(Json(app.registry()?.0.version(&name, &version)?))).await
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UploadQuery {
    /// Activate the version once uploaded (the whole pipeline).
    #[serde(default)]
    activate: bool,
}

/// `POST /v1/policies/NAME/versions`, the component's bytes as the body.
#[utoipa::path(
    post,
    path = "/v1/policies/{name}/versions",
    tag = "policies",
    summary = "Upload a .wasm component as a new version (validated and compiled first)",
    params(("name" = String, Path, description = "the policy's name"), ("activate" = Option<bool>, Query, description = "activate it once uploaded"), ("X-Wasmscale-User" = Option<String>, Header, description = "who makes the change, for the history"), ("X-Wasmscale-Signer" = Option<String>, Header, description = "the hex Ed25519 public key that signed it"), ("X-Wasmscale-Signature" = Option<String>, Header, description = "the hex signature over its digest")),
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "the component"),
    responses((status = 201, description = "a new version", body = serde_json::Value), (status = 200, description = "these bytes were already a version", body = serde_json::Value), (status = 413, description = "over the module size limit", body = super::errors::ErrorBody), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn upload(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    super::scalers::must_write(&caller)?;
    let name = owned(&caller, &name)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    crate::registry::check_name(&name)?;
    let namespace = name.split_once('/').map(|(t, _)| t.to_owned());
    let (_, host) = app.registry()?;
    let max = host.limits().max_module_bytes;
    let bytes = body.map_err(|e| {
        ApiError::new(e.status(), e.body_text()).hint(format!(
            "a policy is a .wasm component of at most {max} bytes (the host's max_module_bytes)"
        ))
    })?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the body is empty")
            .hint("send the .wasm component's bytes as the body"));
    }
    if let Some(t) = &namespace {
        admit_upload(&app, t, bytes.len())?;
    }
    let by = who(&caller, &headers);
    let header = |h: &str| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
    };
    let signature = match (
        header("x-wasmscale-signer"),
        header("x-wasmscale-signature"),
    ) {
        (Some(signer), Some(sig)) => Some((signer, sig)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "send both X-Wasmscale-Signer and X-Wasmscale-Signature, or neither",
            ));
        }
    };
    let digest = crate::registry::digest_of(&bytes);
    if let Some((signer, sig)) = &signature {
        crate::registry::signatures::verify(signer, &digest, sig)?;
    }
    // A scaler that follows this policy and requires a signature: an
    // unsigned upload, or one signed by another key, is refused here.
    let signers: Vec<String> = signature.iter().map(|(s, _)| s.clone()).collect();
    for desk in followers(&app, &name) {
        crate::controller::check_signed(&desk.require_signed_by, &digest, &signers).map_err(
            |why| {
                ApiError::new(StatusCode::FORBIDDEN, format!("scaler {}: {why}", desk.scaler)).hint(
                    "sign it with `wasmscale policy sign FILE --key KEY` and push it with --signature FILE.sig",
                )
            },
        )?;
    }
    let app2 = app.clone();
    let name2 = name.clone();
    let by2 = by.clone();
    let version = blocking(move || {
        let (registry, host) = app2.registry()?;
        let compiled = host
            .load_bytes(&format!("registry:{name2}"), &bytes)
            .map_err(|e| {
                ApiError::from(SwapError::new(
                    SwapStep::of_load_error(&e),
                    None,
                    e.to_string(),
                ))
                .hint("run `wasmscale check FILE` on it for details")
            })?;
        // What it reads, as far as its manifest says without params.
        let signals = compiled
            .instantiate("{}")
            .map(|i| i.contract().1)
            .unwrap_or_default();
        let upload = Upload {
            uploader: by2,
            contract: compiled.contract().as_str().to_owned(),
            signals,
        };
        let mut version = registry.put(&name2, &bytes, upload)?;
        if let Some((signer, sig)) = &signature {
            registry.add_signature(&version.digest, signer, sig)?;
            version.signed_by = registry.signers(&version.digest)?;
        }
        Ok(version)
    })
    .await?;
    let mut body = serde_json::json!({ "version": version });
    if query.activate {
        let outcome = switch(&app, &name, Target::Version(version.version), &by, "").await?;
        body["activated"] = serde_json::to_value(outcome).unwrap_or_default();
    }
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(
    delete,
    path = "/v1/policies/{name}/versions/{version}",
    tag = "policies",
    summary = "Delete a version that is neither active nor shadowing",
    params(("name" = String, Path, description = "the policy's name"), ("version" = String, Path, description = "a version number, or a sha256: digest"), ("X-Wasmscale-User" = Option<String>, Header, description = "who makes the change, for the history")),
    responses((status = 204, description = "deleted"), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn delete_version(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    super::scalers::must_write(&caller)?;
    let name = owned(&caller, &name)?;
    let by = who(&caller, &headers);
    blocking(move || {
        let registry = app.registry()?.0;
        let v = registry.version(&name, &version)?;
        if let Some(d) = app
            .handle
            .controls
            .desks()
            .into_iter()
            .find(|d| d.policy == v.digest)
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("scaler {} pins this version ({})", d.scaler, v.digest),
            )
            .hint("change that scaler's policy first"));
        }
        registry.delete(&name, v.version, &by)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActivateBody {
    /// A version number or a `sha256:` digest.
    version: serde_json::Value,
}

#[utoipa::path(
    post,
    path = "/v1/policies/{name}/activate",
    tag = "policies",
    summary = "Activate a version: configure, smoke-evaluate and swap it into every scaler that follows the policy",
    params(("name" = String, Path, description = "the policy's name"), ("X-Wasmscale-User" = Option<String>, Header, description = "who makes the change, for the history")),
    request_body(content = serde_json::Value, description = "{\"version\": 3} or {\"version\": \"sha256:...\"}"),
    responses((status = 200, description = "active everywhere", body = serde_json::Value), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn activate(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Json<ActivateBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Activated>, ApiError> {
    super::scalers::must_write(&caller)?;
    let name = owned(&caller, &name)?;
    let Json(body) = body.map_err(|e| {
        ApiError::bad_request(e.body_text())
            .hint(r#"send {"version": 3} or {"version": "sha256:..."}"#)
    })?;
    let selector = match &body.version {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => {
            return Err(ApiError::bad_request(
                "version is a number or a sha256: digest",
            ));
        }
    };
    let app2 = app.clone();
    let name2 = name.clone();
    let version =
        blocking(move || Ok(app2.registry()?.0.version(&name2, &selector)?.version)).await?;
    switch(
        &app,
        &name,
        Target::Version(version),
        &who(&caller, &headers),
        "",
    )
    .await
    .map(Json)
}

#[utoipa::path(
    post,
    path = "/v1/policies/{name}/rollback",
    tag = "policies",
    summary = "Bring the previously active version back",
    params(("name" = String, Path, description = "the policy's name"), ("X-Wasmscale-User" = Option<String>, Header, description = "who makes the change, for the history")),
    responses((status = 200, description = "the previous version is active", body = serde_json::Value), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn rollback(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Activated>, ApiError> {
    super::scalers::must_write(&caller)?;
    let name = owned(&caller, &name)?;
    switch(
        &app,
        &name,
        Target::Previous,
        &who(&caller, &headers),
        "asked for",
    )
    .await
    .map(Json)
}

/// Which version a switch makes active.
#[derive(Debug, Clone, Copy)]
enum Target {
    Version(u32),
    /// The one active before (a rollback).
    Previous,
}

/// What an activation or rollback did.
#[derive(Debug, serde::Serialize)]
pub(super) struct Activated {
    policy: String,
    active: u32,
    digest: String,
    /// Scalers now running it.
    swapped: Vec<Swapped>,
    /// Scalers that stopped before they could swap (they run it after a restart).
    not_swapped: Vec<String>,
}

/// The pipeline: everything that can fail, for every follower, before the
/// registry's pointer moves and the scalers swap.
async fn switch(
    app: &App,
    name: &str,
    target: Target,
    by: &str,
    why: &str,
) -> Result<Activated, ApiError> {
    let _one_at_a_time = app.swaps.lock().await;
    let followers = followers(app, name);
    let (app2, name2, followers2) = (app.clone(), name.to_owned(), followers.clone());
    let (by, why) = (by.to_owned(), why.to_owned());
    let (version, prepared) = blocking(move || {
        let (registry, _) = app2.registry()?;
        let number = match target {
            Target::Version(v) => v,
            Target::Previous => registry.previous(&name2)?,
        };
        let (version, prepared) = prepare_all(&app2, &name2, number, &followers2)?;
        // Only now does the pointer move: a restart from here on runs it.
        match target {
            Target::Version(v) => registry.activate(&name2, v, &by)?,
            Target::Previous => {
                registry.rollback(&name2, &by, &why)?;
            }
        }
        Ok((version, prepared))
    })
    .await?;
    let mut swapped = Vec::new();
    let mut not_swapped = Vec::new();
    for (desk, p) in followers.iter().zip(prepared) {
        match crate::controller::commit(desk, p).await {
            Ok(s) => swapped.push(s),
            Err(e) => {
                tracing::warn!(error = %e, "a scaler did not swap");
                not_swapped.push(desk.scaler.clone());
            }
        }
    }
    Ok(Activated {
        policy: name.to_owned(),
        active: version.version,
        digest: version.digest,
        swapped,
        not_swapped,
    })
}

/// The scalers that follow `registry:NAME`.
fn followers(app: &App, name: &str) -> Vec<crate::controller::Desk> {
    let spec = format!("registry:{name}");
    app.handle
        .controls
        .desks()
        .into_iter()
        .filter(|d| d.policy == spec)
        .collect()
}

/// Steps 1 to 5 for version `number` of `name` and every follower: read
/// the blob back and check it, validate and compile, then configure and
/// smoke-evaluate for each scaler. Nothing has changed when this returns.
fn prepare_all(
    app: &App,
    name: &str,
    number: u32,
    followers: &[crate::controller::Desk],
) -> Result<(Version, Vec<crate::controller::Prepared>), ApiError> {
    let (registry, host) = app.registry()?;
    let version = registry.version(name, &number.to_string())?;
    let bytes = registry
        .blob(&version.digest)
        .map_err(|e| SwapError::new(SwapStep::Upload, None, e.to_string()))?;
    let label = version.label();
    let compiled = host
        .load_bytes(&label, &bytes)
        .map_err(|e| SwapError::new(SwapStep::of_load_error(&e), None, e.to_string()))?;
    let names: Vec<&str> = followers.iter().map(|d| d.scaler.as_str()).collect();
    let mut recent = app
        .handle
        .audit
        .as_deref()
        .and_then(|p| crate::audit::recent_of(p, &names, 0, SMOKE_SNAPSHOTS).ok())
        .unwrap_or_default();
    let mut prepared = Vec::new();
    for desk in followers {
        let snapshots: Vec<_> = recent
            .remove(&desk.scaler)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.snapshot)
            .collect();
        prepared.push(crate::controller::prepare(
            desk,
            &compiled,
            &label,
            &snapshots,
            &version.signed_by,
        )?);
    }
    Ok((version, prepared))
}

/// What setting or clearing a shadow did.
#[derive(Debug, serde::Serialize)]
pub(super) struct Shadowed {
    policy: String,
    shadow: Option<u32>,
    digest: Option<String>,
    /// Scalers now evaluating it beside their active version.
    scalers: Vec<String>,
}

/// `PUT /v1/policies/NAME/shadow` `{"version": 4}`: every follower evaluates
/// that version beside the active one on the same snapshots; it never acts.
#[utoipa::path(
    put,
    path = "/v1/policies/{name}/shadow",
    tag = "policies",
    summary = "Evaluate a version beside the active one on the same snapshots; it never acts",
    params(("name" = String, Path, description = "the policy's name"), ("X-Wasmscale-User" = Option<String>, Header, description = "who makes the change, for the history")),
    request_body(content = serde_json::Value, description = "{\"version\": 4}"),
    responses((status = 200, description = "shadowing", body = serde_json::Value), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn set_shadow(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Json<ActivateBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Shadowed>, ApiError> {
    super::scalers::must_write(&caller)?;
    let name = owned(&caller, &name)?;
    let Json(body) = body.map_err(|e| {
        ApiError::bad_request(e.body_text())
            .hint(r#"send {"version": 3} or {"version": "sha256:..."}"#)
    })?;
    let selector = selector(&body.version)?;
    let _one_at_a_time = app.swaps.lock().await;
    let desks = followers(&app, &name);
    let (app2, name2, desks2, by) = (
        app.clone(),
        name.clone(),
        desks.clone(),
        who(&caller, &headers),
    );
    let (version, prepared) = blocking(move || {
        let registry = app2.registry()?.0;
        let number = registry.version(&name2, &selector)?.version;
        let active = registry.policy(&name2)?.active;
        if active == Some(number) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("version {number} is the active one"),
            )
            .hint("shadow another version"));
        }
        let ready = prepare_all(&app2, &name2, number, &desks2)?;
        registry.set_shadow(&name2, Some(number), &by)?;
        Ok(ready)
    })
    .await?;
    let mut scalers = Vec::new();
    for (desk, p) in desks.iter().zip(prepared) {
        match crate::controller::shadow(desk, Some(p)).await {
            Ok(()) => scalers.push(desk.scaler.clone()),
            Err(e) => tracing::warn!(error = %e, "a scaler did not take the shadow"),
        }
    }
    Ok(Json(Shadowed {
        policy: name,
        shadow: Some(version.version),
        digest: Some(version.digest),
        scalers,
    }))
}

/// `DELETE /v1/policies/NAME/shadow`.
#[utoipa::path(
    delete,
    path = "/v1/policies/{name}/shadow",
    tag = "policies",
    summary = "Stop shadowing",
    params(("name" = String, Path, description = "the policy's name"), ("X-Wasmscale-User" = Option<String>, Header, description = "who makes the change, for the history")),
    responses((status = 200, description = "no shadow", body = serde_json::Value), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn clear_shadow(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Shadowed>, ApiError> {
    super::scalers::must_write(&caller)?;
    let name = owned(&caller, &name)?;
    let _one_at_a_time = app.swaps.lock().await;
    let (app2, name2, by) = (app.clone(), name.clone(), who(&caller, &headers));
    blocking(move || Ok(app2.registry()?.0.set_shadow(&name2, None, &by)?)).await?;
    let mut scalers = Vec::new();
    for desk in followers(&app, &name) {
        if crate::controller::shadow(&desk, None).await.is_ok() {
            scalers.push(desk.scaler);
        }
    }
    Ok(Json(Shadowed {
        policy: name,
        shadow: None,
        digest: None,
        scalers,
    }))
}

/// `POST /v1/policies/NAME/promote`: the shadow becomes the active version
/// (the activation pipeline), and stops shadowing.
#[utoipa::path(
    post,
    path = "/v1/policies/{name}/promote",
    tag = "policies",
    summary = "Activate the shadow version",
    params(("name" = String, Path, description = "the policy's name"), ("X-Wasmscale-User" = Option<String>, Header, description = "who makes the change, for the history")),
    responses((status = 200, description = "the shadow is active", body = serde_json::Value), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn promote(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Activated>, ApiError> {
    super::scalers::must_write(&caller)?;
    let name = owned(&caller, &name)?;
    let (app2, name2) = (app.clone(), name.clone());
    let shadow = blocking(move || Ok(app2.registry()?.0.shadow(&name2)?)).await?;
    let Some(shadow) = shadow else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("policy `{name}` has no shadow version"),
        )
        .hint("set one with PUT /v1/policies/NAME/shadow"));
    };
    switch(
        &app,
        &name,
        Target::Version(shadow.version),
        &who(&caller, &headers),
        "",
    )
    .await
    .map(Json)
}

fn selector(v: &serde_json::Value) -> Result<String, ApiError> {
    match v {
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::String(s) => Ok(s.clone()),
        _ => Err(ApiError::bad_request(
            "version is a number or a sha256: digest",
        )),
    }
}

/// Apply scalers' own rollbacks to the registry: when a swapped-in version
/// fails its probation on a scaler, the policy's active version goes back
/// for every scaler that follows it (if it is still the one that failed).
pub(super) async fn follow_rollbacks(app: App) {
    let mut every = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        every.tick().await;
        for notice in app.handle.controls.take_notices() {
            let crate::controller::Notice::RolledBack {
                scaler,
                policy,
                from_digest,
                why,
                ..
            } = notice;
            let Some(name) = policy.strip_prefix("registry:") else {
                continue;
            };
            let Ok((registry, _)) = app.registry() else {
                continue;
            };
            let still_active = registry
                .active(name)
                .is_ok_and(|v| v.digest == format!("sha256:{from_digest}"));
            if !still_active {
                continue;
            }
            let why = format!("scaler {scaler}: {why}");
            match switch(&app, name, Target::Previous, "wasmscale (probation)", &why).await {
                Ok(a) => {
                    tracing::warn!(policy = name, version = a.active, %why, "rolled back after a failed probation")
                }
                Err(e) => {
                    tracing::error!(policy = name, error = %e, "cannot roll back after a failed probation")
                }
            }
        }
    }
}
