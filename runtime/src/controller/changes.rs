//! Scalers added, replaced and removed while `run` runs, at a service's
//! request (the admin API's create, update and delete). The daemon applies
//! each between ticks and answers; what persists them is the service's
//! business, not the controller's.

use super::scaler::SetupError;
use crate::config::ScalerConfig;
use tokio::sync::{mpsc, oneshot};

/// One requested change, with where to send the outcome.
#[derive(Debug)]
pub(crate) enum ScalerChange {
    Put {
        config: Box<ScalerConfig>,
        reply: oneshot::Sender<Result<Applied, ChangeError>>,
    },
    Remove {
        name: String,
        reply: oneshot::Sender<Result<(), ChangeError>>,
    },
}

/// What a put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new scaler started.
    Created,
    /// A running one was replaced; the new one took over its state.
    Replaced,
}

/// Why a change was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChangeError {
    #[error("scaler `{0}` comes from the config file")]
    FromFile(String),
    #[error("no scaler `{0}` was created through the API")]
    NotManaged(String),
    #[error("cannot start scaler `{}`: {}", .0.scaler, .0.cause)]
    Setup(Box<SetupError>),
    #[error("the scalers are not running (the server is stopping)")]
    Stopping,
}

/// A service's line to the daemon for [`ScalerChange`]s.
#[derive(Debug, Clone)]
pub struct ScalerChanges(pub(crate) mpsc::Sender<ScalerChange>);

impl ScalerChanges {
    /// Start `config` as a scaler managed by the caller, or replace the one
    /// of that name it manages (the new one adopts its state).
    pub async fn put(&self, config: ScalerConfig) -> Result<Applied, ChangeError> {
        let (reply, answer) = oneshot::channel();
        let change = ScalerChange::Put {
            config: Box::new(config),
            reply,
        };
        self.0
            .send(change)
            .await
            .map_err(|_| ChangeError::Stopping)?;
        answer.await.map_err(|_| ChangeError::Stopping)?
    }

    /// Stop and forget a scaler the caller manages.
    pub async fn remove(&self, name: &str) -> Result<(), ChangeError> {
        let (reply, answer) = oneshot::channel();
        let change = ScalerChange::Remove {
            name: name.to_owned(),
            reply,
        };
        self.0
            .send(change)
            .await
            .map_err(|_| ChangeError::Stopping)?;
        answer.await.map_err(|_| ChangeError::Stopping)?
    }
}
