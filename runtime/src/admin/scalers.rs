//! The running scalers: list, status, recent decisions.

use super::{ApiError, App};
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
    /// What runs now, from the scaler's task (absent if it did not answer).
    running: Option<crate::controller::Inspection>,
    counters: Option<crate::controller::ScalerStatus>,
}

/// Ask a scaler's task what it holds; 404 for a scaler that does not run.
pub(super) async fn inspect(
    app: &App,
    name: &str,
) -> Result<crate::controller::Inspection, ApiError> {
    let desk = desk(app, name)?;
    crate::controller::inspect(&desk).await.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("scaler {name} did not answer (it is stopping, or a tick is stuck)"),
        )
    })
}

pub(super) fn desk(app: &App, name: &str) -> Result<crate::controller::Desk, ApiError> {
    app.handle.controls.desk(name).ok_or_else(|| {
        ApiError::not_found(format!("no scaler named {name:?}"))
            .hint("list the running scalers with GET /v1/scalers")
    })
}

async fn view(app: &App, desk: crate::controller::Desk) -> ScalerView {
    let running = crate::controller::inspect(&desk).await;
    ScalerView {
        counters: app.handle.metrics.status(&desk.scaler),
        name: desk.scaler,
        tenant: desk.tenant,
        policy: desk.policy,
        running,
    }
}

pub(super) async fn list(State(app): State<App>) -> Json<Vec<ScalerView>> {
    let mut out = Vec::new();
    for desk in app.handle.controls.desks() {
        out.push(view(&app, desk).await);
    }
    Json(out)
}

pub(super) async fn status(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<ScalerView>, ApiError> {
    let desk = desk(&app, &name)?;
    Ok(Json(view(&app, desk).await))
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

pub(super) async fn decisions(
    State(app): State<App>,
    Path(name): Path<String>,
    query: Result<Query<DecisionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<crate::audit::AuditRecord>>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request(e.body_text()).hint("use ?since=1h&limit=50"))?;
    desk(&app, &name)?;
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
