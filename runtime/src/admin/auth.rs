//! Who is calling: every request but health and the API's description
//! carries `Authorization: Bearer TOKEN` when the server keeps tenants
//! (`[admin] auth = "tokens"`), and the verified caller rides on the
//! request for the handlers. The operator's routes (the registry, tenants,
//! `/metrics`) are closed to tenants' tokens here, in one place.

use super::{ApiError, App};
use crate::tenants::{Caller, Role};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

/// Paths anyone may read: probes and the API's description.
const OPEN: &[&str] = &["/healthz", "/readyz", "/openapi.json"];

/// Path prefixes only an operator's token reaches. (A tenant's token
/// reaches the registry, where its policies are its own namespace.)
const OPERATOR_ONLY: &[&str] = &["/metrics", "/v1/tenants"];

pub(super) async fn authenticate(
    State(app): State<App>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if OPEN.contains(&path) {
        return next.run(request).await;
    }
    let caller = match &app.tenants {
        None => Caller::unauthenticated_operator(),
        Some(tenants) => {
            let token = request
                .headers()
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            let Some(token) = token else {
                return ApiError::new(StatusCode::UNAUTHORIZED, "this API needs a token")
                    .hint("send `Authorization: Bearer TOKEN` (the CLI: --token or WASMSCALE_TOKEN); the first operator token is in STATE_DIR/operator.token")
                    .into_response();
            };
            match tenants.authenticate(token) {
                Ok(caller) => caller,
                Err(crate::tenants::TenantError::InvalidToken) => {
                    return ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        crate::tenants::TenantError::InvalidToken.to_string(),
                    )
                    .hint("ask an operator for a new token (wasmscale tenant token)")
                    .into_response();
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot check a token");
                    return ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "cannot check tokens now",
                    )
                    .hint("see the server's log")
                    .into_response();
                }
            }
        }
    };
    let operator_only = OPERATOR_ONLY
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")));
    if operator_only && caller.role != Role::Operator {
        return ApiError::new(StatusCode::FORBIDDEN, "this needs an operator's token")
            .hint("a tenant's token reaches /v1/scalers; its own figures are in GET /v1/scalers")
            .into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}
