//! The admin API, served with axum beside the scalers: health and
//! `/metrics`, the policy registry (upload, list, activate, roll back,
//! delete), the running scalers (status, recent decisions, breaker), and the
//! hot swap that activation drives. Errors are JSON: `{"error", "hint"}`.
//!
//! It serves the controller's [`Handle`] as a [`Service`]; the controller
//! never imports it.

mod auth;
mod breaker;
mod errors;
mod policies;
mod scalers;
mod tenants;

pub use errors::ApiError;
pub use scalers::stored_scalers;

use crate::controller::{Handle, Service};
use crate::host::Host;
use crate::registry::Registry;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use futures_core::future::BoxFuture;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The admin server on `listen` (`IP:PORT`), started with the scalers.
#[derive(Debug, Clone)]
pub struct AdminServer {
    listen: String,
    registry: Option<(Arc<Registry>, Arc<Host>)>,
    tenants: Option<Arc<crate::tenants::Tenants>>,
}

impl AdminServer {
    pub fn new(listen: &str) -> Self {
        AdminServer {
            listen: listen.to_owned(),
            registry: None,
            tenants: None,
        }
    }

    /// Require a token of every caller, and serve the tenants and tokens
    /// kept in `tenants`.
    pub fn with_tenants(mut self, tenants: Arc<crate::tenants::Tenants>) -> Self {
        self.tenants = Some(tenants);
        self
    }

    /// Serve the policy registry too; `host` validates and compiles uploads.
    pub fn with_registry(mut self, registry: Arc<Registry>, host: Arc<Host>) -> Self {
        self.registry = Some((registry, host));
        self
    }
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct App {
    handle: Handle,
    registry: Option<(Arc<Registry>, Arc<Host>)>,
    /// One activation or rollback at a time: two racing swaps of one policy
    /// would leave scalers on different versions.
    swaps: Arc<tokio::sync::Mutex<()>>,
    /// One create, update or delete of a stored scaler at a time.
    scaler_changes: Arc<tokio::sync::Mutex<()>>,
    /// Tenants and tokens; None: no authentication (loopback trust).
    tenants: Option<Arc<crate::tenants::Tenants>>,
}

impl App {
    fn registry(&self) -> Result<(&Registry, &Host), ApiError> {
        self.registry
            .as_ref()
            .map(|(r, h)| (&**r, &**h))
            .ok_or_else(ApiError::no_registry)
    }
}

impl Service for AdminServer {
    fn start(self: Box<Self>, handle: Handle) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let app = App {
                handle,
                registry: self.registry,
                swaps: Arc::default(),
                scaler_changes: Arc::default(),
                tenants: self.tenants,
            };
            match tokio::net::TcpListener::bind(&self.listen).await {
                Ok(listener) => {
                    tracing::info!(address = %self.listen, "serving the admin API");
                    tokio::spawn(policies::follow_rollbacks(app.clone()));
                    if let Err(e) = axum::serve(listener, router(app)).await {
                        tracing::error!(error = %e, "the admin server stopped; scaling continues");
                    }
                }
                Err(e) => {
                    tracing::error!(address = %self.listen, error = %e, "cannot serve the admin endpoint; scaling continues")
                }
            }
        })
    }
}

/// The OpenAPI document's frame; the paths come from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "wasmscale admin API",
        description = "The policy registry (upload, activate, roll back, shadow, promote), the scalers (status, decisions, create, replace, delete) and their circuit breakers. Errors are JSON: `error`, and a `hint` saying what to do."
    ),
    tags(
        (name = "health", description = "Liveness, readiness, metrics"),
        (name = "policies", description = "The policy registry and hot swap"),
        (name = "scalers", description = "The running scalers"),
        (name = "breaker", description = "An operator's hold on a scaler"),
        (name = "tenants", description = "Tenants and their tokens (the operator's)"),
    )
)]
struct ApiDoc;

/// Every route of the admin API, each registered with its OpenAPI entry
/// (so the document cannot miss a route), and `/openapi.json` serving it.
pub(crate) fn router(app: App) -> Router {
    let (router, doc) = routes().split_for_parts();
    let doc = Arc::new(doc);
    router
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc) }
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(upload_limit(&app)))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::authenticate,
        ))
        .with_state(app)
}

/// The largest body taken: a component of the largest size the host loads.
fn upload_limit(app: &App) -> usize {
    app.registry
        .as_ref()
        .map_or(1 << 20, |(_, h)| h.limits().max_module_bytes)
}

/// The OpenAPI document alone (for `wasmscale openapi` and tests).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(policies::list))
        .routes(routes!(policies::show))
        .routes(routes!(policies::upload))
        .routes(routes!(policies::show_version, policies::delete_version))
        .routes(routes!(policies::activate))
        .routes(routes!(policies::rollback))
        .routes(routes!(policies::set_shadow, policies::clear_shadow))
        .routes(routes!(policies::promote))
        .routes(routes!(scalers::list, scalers::create))
        .routes(routes!(scalers::status, scalers::put, scalers::delete))
        .routes(routes!(scalers::decisions))
        .routes(routes!(breaker::show, breaker::set, breaker::clear))
        // The query-string form of earlier releases.
        .routes(routes!(breaker::legacy_set, breaker::clear_legacy))
        .routes(routes!(tenants::list, tenants::create))
        .routes(routes!(tenants::delete, tenants::change))
        .routes(routes!(tenants::usage))
        .routes(routes!(tenants::tokens, tenants::issue))
        .routes(routes!(tenants::revoke))
}

#[utoipa::path(get, path = "/healthz", tag = "health", summary = "The process is alive",
    responses((status = 200, description = "ok", body = String)))]
async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(get, path = "/readyz", tag = "health", summary = "Every scaler has ticked",
    responses((status = 200, description = "ready", body = String),
              (status = 503, description = "not every scaler has ticked yet", body = String)))]
async fn readyz(axum::extract::State(app): axum::extract::State<App>) -> impl IntoResponse {
    if app.handle.metrics.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not every scaler has ticked yet\n",
        )
    }
}

#[utoipa::path(get, path = "/metrics", tag = "health", summary = "Prometheus metrics (OpenMetrics text)",
    responses((status = 200, description = "the exposition", body = String, content_type = "application/openmetrics-text")))]
async fn metrics(axum::extract::State(app): axum::extract::State<App>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            crate::controller::METRICS_CONTENT_TYPE,
        )],
        app.handle.metrics.render(),
    )
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route {}", uri.path()))
        .hint("try /healthz, /readyz, /metrics, /v1/policies or /v1/scalers")
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not served at {}", uri.path()),
    )
}

/// A human duration: `90s`, `15m`, `1h`, `2d`, or combined (`1h30m`). A
/// bare number is seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("an empty duration: write e.g. 90s, 15m, 1h or 2d".into());
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(n));
    }
    let (mut total, mut digits) = (0u64, String::new());
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("`{text}`: unknown unit `{c}` (use s, m, h or d)")),
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}`: a unit needs a number before it"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("`{text}` is too long"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!(
            "`{text}`: the last number needs a unit (s, m, h or d)"
        ));
    }
    Ok(std::time::Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_as_people_write_them() {
        let d = |s: &str| super::parse_duration(s).map(|d| d.as_secs());
        assert_eq!(d("90s"), Ok(90));
        assert_eq!(d("1h30m"), Ok(5400));
        assert_eq!(d("2d"), Ok(172_800));
        assert_eq!(d("600"), Ok(600));
        for bad in ["", "1x", "h", "10m5", "99999999999999999999d"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }
}
