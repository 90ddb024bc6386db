//! A scaler's circuit breaker: read it, set it for a human duration, clear it.
//! A change applies at the scaler's next tick and is persisted with its state.

use super::{ApiError, App};
use crate::guard::{BreakerMode, BreakerSetting};
use crate::tenants::Caller;
use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

/// `PUT /v1/scalers/NAME/breaker`: `{"mode": "freeze", "for": "1h"}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BreakerBody {
    mode: String,
    /// How long it holds (`90s`, `1h`); without it, until cleared.
    #[serde(rename = "for")]
    duration: Option<String>,
}

fn mode(text: Option<&str>) -> Result<BreakerMode, ApiError> {
    match text {
        Some("pause") => Ok(BreakerMode::Pause),
        Some("freeze") => Ok(BreakerMode::Freeze),
        Some("scale-in-only") => Ok(BreakerMode::ScaleInOnly),
        Some("scale-out-only") => Ok(BreakerMode::ScaleOutOnly),
        other => Err(ApiError::bad_request(format!(
            "mode must be pause, freeze, scale-in-only or scale-out-only (got {other:?})"
        ))),
    }
}

/// An operator's setting in `mode` for `seconds` (until cleared without).
fn setting(mode: BreakerMode, seconds: Option<u64>) -> Result<BreakerSetting, ApiError> {
    let until_ms = match seconds {
        Some(s) if s <= crate::config::MAX_GUARD_SECONDS => {
            Some(crate::controller::wall_clock_ms() + s * 1000)
        }
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "a breaker holds at most {} seconds (a week)",
                crate::config::MAX_GUARD_SECONDS
            ))
            .hint("leave the duration out for no expiry"));
        }
        None => None,
    };
    Ok(BreakerSetting {
        mode,
        until_ms,
        automatic: false,
    })
}

/// Queue `setting` for the scaler `caller` names (a viewer may not).
fn request(
    app: &App,
    caller: &Caller,
    name: &str,
    setting: Option<BreakerSetting>,
) -> Result<(), ApiError> {
    let desk = super::scalers::desk(app, caller, name)?;
    super::scalers::must_write(caller)?;
    if app.handle.controls.request(&desk.scaler, setting) {
        Ok(())
    } else {
        Err(super::scalers::no_such_scaler(name))
    }
}

#[utoipa::path(
    get,
    path = "/v1/scalers/{name}/breaker",
    tag = "breaker",
    summary = "The scaler's circuit breaker",
    params(("name" = String, Path, description = "the scaler's name")),
    responses((status = 200, description = "the breaker (null: closed)", body = serde_json::Value), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn show(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let seen = super::scalers::inspect(&app, &caller, &name).await?;
    Ok(Json(
        serde_json::json!({ "scaler": name, "breaker": seen.breaker }),
    ))
}

#[utoipa::path(
    put,
    path = "/v1/scalers/{name}/breaker",
    tag = "breaker",
    summary = "Hold the scaler's count (pause) or forbid scale-in (freeze), until cleared or for a while",
    params(("name" = String, Path, description = "the scaler's name")),
    request_body(content = serde_json::Value, description = "{\"mode\": \"pause\", \"for\": \"1h\"}"),
    responses((status = 202, description = "applies at its next tick", body = serde_json::Value), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn set(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Result<Json<BreakerBody>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    // The scaler first: a body is judged only for a scaler the caller sees.
    super::scalers::desk(&app, &caller, &name)?;
    let Json(body) = body.map_err(|e| {
        ApiError::bad_request(e.body_text())
            .hint(r#"send {"mode": "freeze", "for": "1h"}; modes: pause, freeze, scale-in-only, scale-out-only"#)
    })?;
    let mode = mode(Some(&body.mode))?;
    let seconds = body
        .duration
        .as_deref()
        .map(super::parse_duration)
        .transpose()
        .map_err(ApiError::bad_request)?
        .map(|d| d.as_secs());
    let setting = setting(mode, seconds)?;
    request(&app, &caller, &name, Some(setting))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(
            serde_json::json!({ "scaler": name, "breaker": setting, "applies": "at its next tick" }),
        ),
    ))
}

#[utoipa::path(
    delete,
    path = "/v1/scalers/{name}/breaker",
    tag = "breaker",
    summary = "Clear the breaker",
    params(("name" = String, Path, description = "the scaler's name")),
    responses((status = 202, description = "applies at its next tick", body = serde_json::Value), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn clear(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    request(&app, &caller, &name, None)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "scaler": name, "breaker": null, "applies": "at its next tick" })),
    ))
}

/// `POST /scalers/NAME/breaker?mode=freeze&seconds=600`, as earlier releases took it.
#[derive(Debug, serde::Deserialize)]
pub(super) struct LegacyQuery {
    mode: Option<String>,
    seconds: Option<String>,
}

#[utoipa::path(
    post,
    path = "/scalers/{name}/breaker",
    tag = "breaker",
    summary = "Set the breaker, the query-string form of earlier releases",
    params(("name" = String, Path, description = "the scaler's name"), ("mode" = Option<String>, Query, description = "pause or freeze"), ("seconds" = Option<String>, Query, description = "how long")),
    responses((status = 202, description = "applies at its next tick", body = serde_json::Value), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn legacy_set(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<LegacyQuery>,
) -> Result<impl IntoResponse, ApiError> {
    super::scalers::desk(&app, &caller, &name)?;
    let mode = mode(q.mode.as_deref())?;
    let seconds = q
        .seconds
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request("seconds must be a whole number"))
        })
        .transpose()?;
    let setting = setting(mode, seconds)?;
    request(&app, &caller, &name, Some(setting))?;
    Ok((
        StatusCode::ACCEPTED,
        format!("breaker set for {name}: applies at its next tick\n"),
    ))
}

#[utoipa::path(
    delete,
    path = "/scalers/{name}/breaker",
    tag = "breaker",
    summary = "Clear the breaker, the form of earlier releases",
    params(("name" = String, Path, description = "the scaler's name")),
    responses((status = 202, description = "applies at its next tick", body = serde_json::Value), (status = "4XX", description = "refused: `error` says why, `hint` what to do", body = super::errors::ErrorBody))
)]
pub(super) async fn clear_legacy(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    request(&app, &caller, &name, None)?;
    Ok((
        StatusCode::ACCEPTED,
        format!("breaker cleared for {name}: applies at its next tick\n"),
    ))
}
