//! Errors of the admin API: a status, and a JSON body with a message and a
//! hint, so a client (and the CLI) can say what to do next.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An API error as the client sees it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub hint: Option<String>,
    /// The swap step that failed, for activation errors.
    pub step: Option<&'static str>,
    /// Every problem found in a scaler entry, each with its own hint.
    pub problems: Vec<crate::config::ConfigError>,
    /// The quota exceeded, with its use and limit.
    pub quota: Option<Box<crate::tenants::Exceeded>>,
}

/// An error's JSON body, as the OpenAPI document describes it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct ErrorBody {
    /// What went wrong.
    error: String,
    /// What to do about it.
    hint: Option<String>,
    /// The swap step that failed (upload, validate, compile, configure, smoke-evaluate, swap).
    step: Option<String>,
    /// Every problem of a refused scaler entry.
    problems: Option<Vec<Problem>>,
    /// The quota exceeded (403: a static one; 429: a rate).
    quota: Option<String>,
    /// Its use, with the refused request.
    used: Option<f64>,
    limit: Option<f64>,
}

/// One problem of a scaler entry.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct Problem {
    message: String,
    hint: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            hint: None,
            step: None,
            problems: Vec::new(),
            quota: None,
        }
    }

    /// A quota refused: 429 for a rate, 403 for a static limit.
    pub fn quota(e: crate::tenants::Exceeded) -> Self {
        let (status, hint) = if e.rate {
            (StatusCode::TOO_MANY_REQUESTS, "try again later")
        } else {
            (
                StatusCode::FORBIDDEN,
                "ask for less, free some of it (GET /v1/usage shows what is used), or ask the operator for another tier",
            )
        };
        let mut api = ApiError::new(status, e.to_string()).hint(hint);
        api.quota = Some(Box::new(e));
        api
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// The registry needs a state directory.
    pub fn no_registry() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server has no policy registry",
        )
        .hint("set `state_dir` in the config: the registry lives in STATE_DIR/registry")
    }
}

impl From<crate::registry::RegistryError> for ApiError {
    fn from(e: crate::registry::RegistryError) -> Self {
        use crate::registry::RegistryError as E;
        let (status, hint) = match &e {
            E::UnknownPolicy(_) | E::UnknownVersion { .. } | E::UnknownDigest(_) => (
                StatusCode::NOT_FOUND,
                Some("list what exists with GET /v1/policies"),
            ),
            E::BadName(_) | E::BadDigest(_) => (StatusCode::BAD_REQUEST, None),
            E::BadSignature(_) => (
                StatusCode::FORBIDDEN,
                Some(
                    "sign the file with `wasmscale policy sign FILE --key KEY` and push it with --signature FILE.sig",
                ),
            ),
            E::InUse { .. } | E::NothingToRollBack(_) | E::NoActiveVersion(_) => {
                (StatusCode::CONFLICT, None)
            }
            E::Oci(_) => (StatusCode::BAD_GATEWAY, None),
            E::Corrupt { .. } | E::Io { .. } | E::Database(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Some("see the server's log"),
            ),
        };
        let mut api = ApiError::new(status, e.to_string());
        api.hint = hint.map(str::to_owned);
        api
    }
}

impl From<crate::controller::SwapError> for ApiError {
    fn from(e: crate::controller::SwapError) -> Self {
        use crate::controller::SwapStep as S;
        let status = match e.step {
            S::Upload | S::Validate | S::Compile => StatusCode::UNPROCESSABLE_ENTITY,
            S::Configure | S::SmokeEvaluate => StatusCode::UNPROCESSABLE_ENTITY,
            S::Swap => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut api = ApiError::new(status, e.to_string())
            .hint("nothing changed: the previous version is still active");
        api.step = Some(e.step.as_str());
        api
    }
}

impl From<crate::controller::ChangeError> for ApiError {
    fn from(e: crate::controller::ChangeError) -> Self {
        use crate::controller::ChangeError as E;
        let (status, hint) = match &e {
            E::FromFile(_) => (
                StatusCode::CONFLICT,
                "edit its [[scaler]] entry in the config file and reload (SIGHUP), or pick another name",
            ),
            E::NotManaged(_) => (
                StatusCode::NOT_FOUND,
                "list the scalers with GET /v1/scalers",
            ),
            E::Setup(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "nothing changed: fix the entry and send it again",
            ),
            E::Stopping => (
                StatusCode::SERVICE_UNAVAILABLE,
                "try again once the server is back",
            ),
        };
        ApiError::new(status, e.to_string()).hint(hint)
    }
}

impl From<crate::config::ConfigErrors> for ApiError {
    fn from(e: crate::config::ConfigErrors) -> Self {
        let n = e.errors.len();
        let first = e
            .errors
            .first()
            .map(|p| p.message.clone())
            .unwrap_or_default();
        let mut api = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            if n > 1 {
                format!("the scaler entry has {n} problems; the first: {first}")
            } else {
                format!("the scaler entry is invalid: {first}")
            },
        )
        .hint("nothing changed: see `problems`, fix them and send it again");
        api.problems = e.errors;
        api
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message });
        if let Some(h) = &self.hint {
            body["hint"] = h.clone().into();
        }
        if let Some(s) = self.step {
            body["step"] = s.into();
        }
        if let Some(q) = &self.quota {
            body["quota"] = q.quota.clone().into();
            body["used"] = q.used.into();
            body["limit"] = q.limit.into();
        }
        if !self.problems.is_empty() {
            body["problems"] = self
                .problems
                .iter()
                .map(|p| serde_json::json!({ "message": p.message, "hint": p.hint }))
                .collect();
        }
        (self.status, axum::Json(body)).into_response()
    }
}
