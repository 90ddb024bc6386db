//! What the registry refuses, and why.

/// A registry operation failed. Each variant says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("no policy named `{0}` in the registry")]
    UnknownPolicy(String),
    #[error(
        "policy `{policy}` has no version `{version}` (versions are numbers, or sha256:HEX digests)"
    )]
    UnknownVersion { policy: String, version: String },
    #[error("no blob with digest {0} in the registry")]
    UnknownDigest(String),
    #[error(
        "`{0}` is not a policy name: use 1 to 63 of a-z, 0-9, `-`, `_` and `.`, starting with a letter or digit (a tenant's: TENANT/NAME)"
    )]
    BadName(String),
    #[error("`{0}` is not a digest: write sha256: and 64 lowercase hex digits")]
    BadDigest(String),
    #[error("policy `{policy}` version {version} is {role}: activate or clear another first")]
    InUse {
        policy: String,
        version: u32,
        role: &'static str,
    },
    #[error("policy `{0}` has no earlier active version to roll back to")]
    NothingToRollBack(String),
    #[error("policy `{0}` has no active version: activate one first")]
    NoActiveVersion(String),
    /// A blob read back does not hash to its name: the disk changed under us.
    #[error("blob {digest} is corrupt on disk (it hashes to {actual}); upload it again")]
    Corrupt { digest: String, actual: String },
    #[error("registry storage at {path}: {error}")]
    Io {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    #[error("registry database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("{0}")]
    Oci(#[from] super::oci::OciError),
}

impl RegistryError {
    pub(super) fn io(path: &std::path::Path, error: std::io::Error) -> Self {
        RegistryError::Io {
            path: path.to_owned(),
            error,
        }
    }
}
