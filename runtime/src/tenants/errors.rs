//! What the tenant store refuses, and why.

/// A tenant or token operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenantError {
    #[error(
        "`{0}` is not a tenant name: use 1 to 63 of a-z, 0-9 and `-`, starting with a letter or digit"
    )]
    BadName(String),
    #[error("tenant `{0}` exists")]
    Exists(String),
    #[error("no tenant named `{0}`")]
    Unknown(String),
    #[error("no token with id `{0}`")]
    UnknownToken(String),
    /// Unknown, malformed, wrong, revoked or expired: one answer for all, so
    /// a caller learns nothing about which.
    #[error("this token is not valid (unknown, revoked or expired)")]
    InvalidToken,
    #[error("cannot read the system's random source: {0}")]
    Random(std::io::Error),
    #[error("tenant storage at {path}: {error}")]
    Io {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    #[error("tenant database holds something unreadable: {0}")]
    Corrupt(String),
    #[error("tenant database: {0}")]
    Database(#[from] rusqlite::Error),
}
