//! Tenants and their tokens, for the operator: create, list, delete a
//! tenant; issue (shown once), list and revoke its tokens.

use super::{ApiError, App};
use crate::tenants::{Issued, Role, Tenant, TenantError, Tenants, TokenInfo};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

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
    Ok((
        StatusCode::CREATED,
        Json(store(&app)?.create(&b.name, b.tier.as_deref())?),
    ))
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
