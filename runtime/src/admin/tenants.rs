//! Tenants and their tokens, for the operator: create, list, delete a
//! tenant; issue (shown once), list and revoke its tokens.

use super::{ApiError, App};
use crate::tenants::{
    Caller, Issued, Plan, Quotas, Refusal, Role, Tenant, TenantError, Tenants, TokenInfo, Usage,
};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> Self {
        let status = match &e {
            TenantError::BadName(_) => StatusCode::BAD_REQUEST,
            TenantError::Exists(_) => StatusCode::CONFLICT,
            TenantError::Unknown(_) | TenantError::UnknownToken(_) => StatusCode::NOT_FOUND,
            TenantError::InvalidToken => StatusCode::UNAUTHORIZED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

fn store(app: &App) -> Result<&Tenants, ApiError> {
    app.tenants.as_deref().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "this server keeps no tenants")
            .hint("set `[admin] auth = \"tokens\"` (with a state_dir) to serve tenants and tokens")
    })
}

/// `POST /v1/tenants`: `{"name": "acme", "tier": "pro"}`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewTenant {
    name: String,
    tier: Option<String>,
}

fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
    example: &str,
) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::bad_request(e.body_text()).hint(format!("send e.g. {example}")))
}

#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", summary = "Create a tenant",
    request_body = NewTenant,
    responses((status = 201, description = "created", body = Tenant),
              (status = 409, description = "it exists", body = super::errors::ErrorBody),
              (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody)))]
pub(super) async fn create(
    State(app): State<App>,
    body: Result<Json<NewTenant>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    let b = json_body(body, r#"{"name": "acme", "tier": "pro"}"#)?;
    let store = store(&app)?;
    if let Some(t) = &b.tier {
        known_tier(store, t)?;
    }
    Ok((
        StatusCode::CREATED,
        Json(store.create(&b.name, b.tier.as_deref())?),
    ))
}

fn known_tier(store: &Tenants, tier: &str) -> Result<(), ApiError> {
    if store.has_tier(tier) {
        return Ok(());
    }
    let names = store.tier_names();
    Err(
        ApiError::bad_request(format!("no tier named {tier:?}")).hint(if names.is_empty() {
            "the config defines no tiers: add [tiers.NAME] tables, or leave the tier out".to_owned()
        } else {
            format!("the config's tiers: {}", names.join(", "))
        }),
    )
}

/// `PATCH /v1/tenants/{tenant}`: `{"tier": "pro", "quotas": {"scalers": 50}}`.
/// A `tier` of null takes it off its tier; `quotas` replaces its overrides.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantChange {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    tier: Option<Option<String>>,
    quotas: Option<Quotas>,
}

/// A field given (even as null), as Some.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    <Option<String> as serde::Deserialize>::deserialize(d).map(Some)
}

#[utoipa::path(patch, path = "/v1/tenants/{tenant}", tag = "tenants",
    summary = "Move a tenant to another tier, or set its own quotas over its tier's",
    params(("tenant" = String, Path, description = "the tenant")),
    request_body = TenantChange,
    responses((status = 200, description = "the tenant as changed", body = Tenant),
              (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody)))]
pub(super) async fn change(
    State(app): State<App>,
    Path(tenant): Path<String>,
    body: Result<Json<TenantChange>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Tenant>, ApiError> {
    let b = json_body(body, r#"{"tier": "pro", "quotas": {"scalers": 50}}"#)?;
    let store = store(&app)?;
    if let Some(Some(t)) = &b.tier {
        known_tier(store, t)?;
    }
    if let Some(problem) = b.quotas.as_ref().and_then(Quotas::problem) {
        return Err(ApiError::bad_request(problem));
    }
    let tier = b.tier.as_ref().map(|t| t.as_deref());
    Ok(Json(store.set_plan(&tenant, tier, b.quotas.as_ref())?))
}

/// What a tenant may use, uses, and was refused.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct UsageView {
    tenant: String,
    plan: Plan,
    /// The sums over its running scalers.
    usage: Usage,
    /// Its latest quota refusals, newest first.
    refusals: Vec<Refusal>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UsageQuery {
    /// The operator's: whose usage.
    tenant: Option<String>,
}

#[utoipa::path(get, path = "/v1/usage", tag = "tenants",
    summary = "A tenant's quotas, what it uses of them and what it was refused (a tenant's token: its own)",
    params(("tenant" = Option<String>, Query, description = "an operator's: the tenant")),
    responses((status = 200, description = "the plan, usage and refusals", body = UsageView),
              (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody)))]
pub(super) async fn usage(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UsageView>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request(e.body_text()).hint("use ?tenant=NAME"))?;
    let store = store(&app)?;
    let unknown = |t: &str| ApiError::from(TenantError::Unknown(t.to_owned()));
    let tenant = match (&caller.tenant, q.tenant) {
        (Some(mine), None) => mine.clone(),
        (Some(mine), Some(t)) if &t == mine => t,
        (Some(_), Some(t)) => return Err(unknown(&t)),
        (None, Some(t)) => t,
        (None, None) => {
            return Err(ApiError::bad_request("whose usage?")
                .hint("an operator names the tenant: ?tenant=NAME"));
        }
    };
    let plan = store.plan(&tenant).ok_or_else(|| unknown(&tenant))?;
    Ok(Json(UsageView {
        usage: usage_of(&app, &tenant, None),
        refusals: store.refusals(&tenant, 50)?,
        plan,
        tenant,
    }))
}

/// The sums of `tenant`'s running scalers' footprints, but `except`'s.
fn usage_of(app: &App, tenant: &str, except: Option<&str>) -> Usage {
    let mut usage = Usage::default();
    for d in app.handle.controls.desks() {
        if d.tenant == tenant && Some(d.scaler.as_str()) != except {
            usage.add(&d.footprint);
        }
    }
    usage
}

/// Whether `tenant`'s tier runs `policy` (checked before the policy is
/// loaded: a tier without custom `.wasm` never compiles one).
pub(super) fn admit_policy(app: &App, tenant: &str, policy: &str) -> Result<(), ApiError> {
    let Some((store, plan)) = plan_of(app, tenant) else {
        return Ok(());
    };
    plan.admit_policy(policy.strip_prefix("builtin:"))
        .map_err(|e| refused(store, tenant, e))
}

/// Whether a tenant's scaler stays within what its tier lets it reach:
/// no file or credentials of the server, only the tier's Prometheus
/// servers and namespaces. Checked for a tenant's own token only (an
/// operator's entry is trusted as the config file is), and before the
/// entry is validated, which would read a trace's header.
pub(super) fn admit_reach(
    app: &App,
    tenant: &str,
    source: Option<&crate::config::SourceConfig>,
    target: Option<&crate::config::TargetConfig>,
) -> Result<(), ApiError> {
    use crate::config::SourceConfig;
    use crate::config::TargetConfig;
    use crate::tenants::Reach;
    let plan = match plan_of(app, tenant) {
        Some((_, plan)) => plan,
        None => Plan::unlimited(),
    };
    let mut reaches = Vec::new();
    match source {
        None | Some(SourceConfig::Static) => {}
        Some(SourceConfig::Prometheus(p)) => reaches.push(Reach::Prometheus(&p.url)),
        Some(SourceConfig::Replay(_)) => reaches.push(Reach::ServerFile("source.path")),
    }
    match target {
        None | Some(TargetConfig::Log) => {}
        Some(TargetConfig::Kubernetes(k)) => {
            if k.kubeconfig.is_some() {
                reaches.push(Reach::ServerFile("target.kubeconfig"));
            }
            if k.api_server.is_some() {
                reaches.push(Reach::ServerCredentials("target.api_server"));
            }
            reaches.push(Reach::Namespace(&k.namespace));
        }
    }
    for reach in &reaches {
        if let Err(e) = plan.admit_reach(tenant, reach) {
            return Err(match app.tenants.as_deref() {
                Some(store) => refused(store, tenant, e),
                None => ApiError::quota(e),
            });
        }
    }
    Ok(())
}

/// `tenant`'s store and plan; None when it has no quotas (no store, or a
/// name that is no tenant).
pub(super) fn plan_of<'a>(app: &'a App, tenant: &str) -> Option<(&'a Tenants, Plan)> {
    let store = app.tenants.as_deref()?;
    store.plan(tenant).map(|plan| (store, plan))
}

/// A quota refused: recorded for the tenant, answered 403 or 429.
pub(super) fn refused(store: &Tenants, tenant: &str, e: crate::tenants::Exceeded) -> ApiError {
    store.record_refusal(tenant, &e);
    ApiError::quota(e)
}

/// Whether `config` fits its tenant's quotas beside the tenant's other
/// scalers; a refusal is recorded for the tenant.
pub(super) fn admit(
    app: &App,
    config: &crate::config::ScalerConfig,
    host: &crate::host::Host,
) -> Result<(), ApiError> {
    let Some((store, plan)) = plan_of(app, &config.tenant) else {
        return Ok(());
    };
    // Limits it leaves to the host are lowered to the quotas; those it
    // asks for itself must fit them.
    let asked = match &config.limits {
        Some(_) => config.clone(),
        None => crate::controller::capped(config, &plan, host.limits()),
    };
    let footprint = crate::controller::footprint(&asked, host.limits());
    let usage = usage_of(app, &config.tenant, Some(&config.name));
    plan.admit(&usage, &footprint)
        .map_err(|e| refused(store, &config.tenant, e))
}

#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", summary = "Every tenant",
    responses((status = 200, description = "the tenants", body = Vec<Tenant>),
              (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody)))]
pub(super) async fn list(State(app): State<App>) -> Result<Json<Vec<Tenant>>, ApiError> {
    Ok(Json(store(&app)?.list()?))
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}", tag = "tenants", summary = "Delete a tenant and revoke its tokens",
    params(("tenant" = String, Path, description = "the tenant")),
    responses((status = 204, description = "deleted"),
              (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody)))]
pub(super) async fn delete(
    State(app): State<App>,
    Path(tenant): Path<String>,
) -> Result<StatusCode, ApiError> {
    store(&app)?.delete(&tenant)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/tenants/{tenant}/tokens`: `{"role": "viewer", "expires": "30d"}`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewToken {
    role: Role,
    /// A human duration (`30d`, `12h`); without it, it never expires.
    expires: Option<String>,
    #[serde(default)]
    label: String,
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/tokens", tag = "tenants",
    summary = "Issue a token for a tenant (its text is shown once, here)",
    params(("tenant" = String, Path, description = "the tenant")),
    request_body = NewToken,
    responses((status = 201, description = "the token", body = Issued),
              (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody)))]
pub(super) async fn issue(
    State(app): State<App>,
    Path(tenant): Path<String>,
    body: Result<Json<NewToken>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Issued>), ApiError> {
    let b = json_body(body, r#"{"role": "tenant-admin", "expires": "30d"}"#)?;
    if b.role == Role::Operator {
        return Err(
            ApiError::bad_request("a tenant's token is tenant-admin or viewer")
                .hint("operator tokens have no tenant"),
        );
    }
    let ttl = b
        .expires
        .as_deref()
        .map(super::parse_duration)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let issued = store(&app)?.issue(Some(&tenant), b.role, &b.label, ttl)?;
    Ok((StatusCode::CREATED, Json(issued)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/tokens", tag = "tenants",
    summary = "A tenant's tokens (never their text)",
    params(("tenant" = String, Path, description = "the tenant")),
    responses((status = 200, description = "the tokens", body = Vec<TokenInfo>),
              (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody)))]
pub(super) async fn tokens(
    State(app): State<App>,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let store = store(&app)?;
    if !store.exists(&tenant)? {
        return Err(TenantError::Unknown(tenant).into());
    }
    Ok(Json(store.tokens(Some(&tenant))?))
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/tokens/{id}", tag = "tenants",
    summary = "Revoke a token",
    params(("tenant" = String, Path, description = "the tenant"), ("id" = String, Path, description = "the token's id")),
    responses((status = 204, description = "revoked"),
              (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody)))]
pub(super) async fn revoke(
    State(app): State<App>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let store = store(&app)?;
    match store.token(&id)? {
        Some(t) if t.tenant.as_deref() == Some(tenant.as_str()) => {
            store.revoke(&id)?;
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(TenantError::UnknownToken(id).into()),
    }
}
