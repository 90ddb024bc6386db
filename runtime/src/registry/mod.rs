//! The policy registry: `.wasm` blobs stored by their SHA-256, and their
//! versions, active pointers, shadows and history in an embedded SQLite
//! database (WAL mode) beside them. It knows no WebAssembly: what a blob is
//! (its contract, the signals it reads) is told to it by whoever uploads.
//!
//! Crash safety: a blob is written to a temporary file, synced and renamed
//! into place before any row names it, and rows change in one transaction.
//! A kill at any point leaves either no version or a whole one; stray
//! temporary files and unreferenced blobs are removed at open.

mod errors;
pub mod oci;
mod scalers;
pub mod signatures;

pub use errors::RegistryError;
pub use scalers::StoredScaler;

use rusqlite::{OptionalExtension as _, params};
use serde::Serialize;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One uploaded version of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Version {
    pub policy: String,
    /// 1, 2, ... in upload order, per policy.
    pub version: u32,
    /// `sha256:HEX`.
    pub digest: String,
    pub size: u64,
    pub uploaded_ms: u64,
    pub uploader: String,
    /// The contract the component implements (`0.1` or `0.2`).
    pub contract: String,
    /// The signals it declares it reads (empty for 0.1, which reads all).
    pub signals: Vec<String>,
    /// Public keys whose signature over the digest was verified at upload.
    pub signed_by: Vec<String>,
}

impl Version {
    /// How a scaler running it names it: `registry:NAME@3`.
    pub fn label(&self) -> String {
        format!("registry:{}@{}", self.policy, self.version)
    }
}

/// What an uploader tells the registry about a blob it has checked.
#[derive(Debug, Clone, Default)]
pub struct Upload {
    pub uploader: String,
    pub contract: String,
    pub signals: Vec<String>,
}

/// A policy: its versions and which are active and shadowing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PolicyInfo {
    pub name: String,
    pub active: Option<u32>,
    pub shadow: Option<u32>,
    pub versions: Vec<Version>,
}

/// One entry of the registry's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub at_ms: u64,
    pub policy: String,
    /// `upload`, `activate`, `rollback`, `shadow`, `unshadow`, `delete`.
    pub kind: String,
    pub version: Option<u32>,
    pub by: String,
    pub detail: String,
}

/// The registry under one directory: `registry.sqlite3` and `blobs/`.
#[derive(Debug)]
pub struct Registry {
    blobs: PathBuf,
    db: Mutex<rusqlite::Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS versions (
    policy TEXT NOT NULL, version INTEGER NOT NULL, digest TEXT NOT NULL,
    size INTEGER NOT NULL, uploaded_ms INTEGER NOT NULL, uploader TEXT NOT NULL,
    contract TEXT NOT NULL, signals TEXT NOT NULL,
    PRIMARY KEY (policy, version), UNIQUE (policy, digest));
CREATE TABLE IF NOT EXISTS activations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, policy TEXT NOT NULL,
    version INTEGER NOT NULL, undone INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS signatures (
    digest TEXT NOT NULL, signer TEXT NOT NULL, signature TEXT NOT NULL,
    PRIMARY KEY (digest, signer));
CREATE TABLE IF NOT EXISTS shadows (policy TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, policy TEXT NOT NULL,
    kind TEXT NOT NULL, version INTEGER, by TEXT NOT NULL, detail TEXT NOT NULL);
";

/// What each `oci://` reference last pulled (its blob is kept as long as
/// the row names it): the fallback when the registry cannot be reached.
const OCI_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS oci_pulls (
    reference TEXT PRIMARY KEY, digest TEXT NOT NULL, manifest_digest TEXT NOT NULL,
    pulled_ms INTEGER NOT NULL);
";

/// `sha256:HEX` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::host::digest(bytes))
}

/// Check a policy name: it becomes part of `registry:NAME` and of URLs.
pub fn check_name(name: &str) -> Result<(), RegistryError> {
    // A tenant's policies are `TENANT/NAME`: one namespace, then a name.
    let ok = match name.split_once('/') {
        Some((tenant, rest)) => plain_name(tenant) && plain_name(rest),
        None => plain_name(name),
    };
    if ok {
        Ok(())
    } else {
        Err(RegistryError::BadName(name.chars().take(80).collect()))
    }
}

fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Check a `sha256:HEX` digest and return its hex part.
pub fn check_digest(digest: &str) -> Result<&str, RegistryError> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(hex)
        }
        _ => Err(RegistryError::BadDigest(digest.chars().take(80).collect())),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Registry {
    /// Open (or create) the registry under `dir`, and tidy what a crash left.
    pub fn open(dir: &Path) -> Result<Self, RegistryError> {
        let blobs = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| RegistryError::io(&blobs, e))?;
        let db = rusqlite::Connection::open(dir.join("registry.sqlite3"))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(SCHEMA)?;
        db.execute_batch(scalers::SCHEMA)?;
        db.execute_batch(OCI_SCHEMA)?;
        let registry = Registry {
            blobs,
            db: Mutex::new(db),
        };
        registry.tidy()?;
        Ok(registry)
    }

    fn db(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        // A panic while holding the lock cannot leave a half transaction
        // (SQLite rolls it back), so a poisoned lock is still usable.
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remove temporary files and blobs no version names.
    fn tidy(&self) -> Result<(), RegistryError> {
        let referenced: std::collections::HashSet<String> = {
            let db = self.db();
            let mut q =
                db.prepare("SELECT digest FROM versions UNION SELECT digest FROM oci_pulls")?;
            q.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()?
        };
        let entries =
            std::fs::read_dir(&self.blobs).map_err(|e| RegistryError::io(&self.blobs, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let keep = !name.starts_with("tmp-") && referenced.contains(&format!("sha256:{name}"));
            if !keep {
                tracing::info!(blob = %name, "removing a blob no version names (left by an interrupted upload or delete)");
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    fn blob_path(&self, hex: &str) -> PathBuf {
        self.blobs.join(hex)
    }

    /// Store `bytes` as a new version of `policy` (or return the version
    /// that already holds the same bytes).
    pub fn put(
        &self,
        policy: &str,
        bytes: &[u8],
        upload: Upload,
    ) -> Result<Version, RegistryError> {
        check_name(policy)?;
        let digest = digest_of(bytes);
        if let Some(v) = self.find(policy, &digest)? {
            return Ok(v);
        }
        self.write_blob(&digest, bytes)?;
        let mut db = self.db();
        let tx = db.transaction()?;
        let existing = tx
            .query_row(
                "SELECT version FROM versions WHERE policy = ?1 AND digest = ?2",
                params![policy, digest],
                |r| r.get::<_, u32>(0),
            )
            .optional()?;
        let version = match existing {
            Some(v) => v,
            None => {
                let next: u32 = tx.query_row(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE policy = ?1",
                    [policy],
                    |r| r.get(0),
                )?;
                let signals =
                    serde_json::to_string(&upload.signals).unwrap_or_else(|_| "[]".into());
                tx.execute(
                    "INSERT INTO versions VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        policy,
                        next,
                        digest,
                        bytes.len() as i64,
                        now_ms() as i64,
                        upload.uploader,
                        upload.contract,
                        signals
                    ],
                )?;
                event(&tx, policy, "upload", Some(next), &upload.uploader, &digest)?;
                next
            }
        };
        tx.commit()?;
        drop(db);
        self.version(policy, &version.to_string())
    }

    fn write_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let hex = check_digest(digest)?;
        let path = self.blob_path(hex);
        if path.exists() {
            return Ok(());
        }
        let tmp = self.blobs.join(format!(
            "tmp-{hex}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let io = |e| RegistryError::io(&tmp, e);
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io)?;
        if let Ok(dir) = std::fs::File::open(&self.blobs) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// The bytes of a blob, checked against their digest.
    pub fn blob(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let hex = check_digest(digest)?;
        let path = self.blob_path(hex);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RegistryError::UnknownDigest(digest.to_owned()));
            }
            Err(e) => return Err(RegistryError::io(&path, e)),
        };
        let actual = digest_of(&bytes);
        if actual != digest {
            return Err(RegistryError::Corrupt {
                digest: digest.to_owned(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Whether any version holds this digest.
    pub fn has_digest(&self, digest: &str) -> Result<bool, RegistryError> {
        check_digest(digest)?;
        Ok(self
            .db()
            .query_row(
                "SELECT 1 FROM versions WHERE digest = ?1 LIMIT 1",
                [digest],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Whether a version of a policy named `PREFIX…` holds this digest (a
    /// tenant's pin must be one of its own versions).
    pub fn has_digest_under(&self, prefix: &str, digest: &str) -> Result<bool, RegistryError> {
        check_digest(digest)?;
        Ok(self
            .db()
            .query_row(
                "SELECT 1 FROM versions WHERE digest = ?1 AND substr(policy, 1, ?3) = ?2 LIMIT 1",
                params![digest, prefix, prefix.chars().count() as i64],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    fn find(&self, policy: &str, digest: &str) -> Result<Option<Version>, RegistryError> {
        let db = self.db();
        let mut q = db.prepare("SELECT * FROM versions WHERE policy = ?1 AND digest = ?2")?;
        Ok(q.query_row(params![policy, digest], row_version)
            .optional()?)
    }

    /// One version, by number (`3`) or digest (`sha256:…`).
    pub fn version(&self, policy: &str, selector: &str) -> Result<Version, RegistryError> {
        check_name(policy)?;
        let found = if selector.starts_with("sha256:") {
            check_digest(selector)?;
            self.find(policy, selector)?
        } else {
            match selector.parse::<u32>() {
                Ok(n) => {
                    let db = self.db();
                    let mut q =
                        db.prepare("SELECT * FROM versions WHERE policy = ?1 AND version = ?2")?;
                    q.query_row(params![policy, n], row_version).optional()?
                }
                Err(_) => None,
            }
        };
        match found {
            Some(mut v) => {
                v.signed_by = self.signers(&v.digest)?;
                Ok(v)
            }
            None if self.versions(policy)?.is_empty() => {
                Err(RegistryError::UnknownPolicy(policy.to_owned()))
            }
            None => Err(RegistryError::UnknownVersion {
                policy: policy.to_owned(),
                version: selector.chars().take(80).collect(),
            }),
        }
    }

    /// Every version of `policy`, oldest first.
    pub fn versions(&self, policy: &str) -> Result<Vec<Version>, RegistryError> {
        let mut versions: Vec<Version> = {
            let db = self.db();
            let mut q = db.prepare("SELECT * FROM versions WHERE policy = ?1 ORDER BY version")?;
            q.query_map([policy], row_version)?
                .collect::<Result<_, _>>()?
        };
        for v in &mut versions {
            v.signed_by = self.signers(&v.digest)?;
        }
        Ok(versions)
    }

    /// Record `signer`'s `signature` over `digest`, after checking it.
    pub fn add_signature(
        &self,
        digest: &str,
        signer: &str,
        signature: &str,
    ) -> Result<(), RegistryError> {
        signatures::verify(signer, digest, signature)?;
        self.db().execute(
            "INSERT INTO signatures VALUES (?1, ?2, ?3) ON CONFLICT DO UPDATE SET signature = ?3",
            params![digest, signer.trim(), signature.trim()],
        )?;
        Ok(())
    }

    /// The public keys that signed `digest` (each checked when it was added).
    pub fn signers(&self, digest: &str) -> Result<Vec<String>, RegistryError> {
        let db = self.db();
        let mut q =
            db.prepare("SELECT signer FROM signatures WHERE digest = ?1 ORDER BY signer")?;
        Ok(q.query_map([digest], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    /// Every policy, by name.
    pub fn policies(&self) -> Result<Vec<PolicyInfo>, RegistryError> {
        let names: Vec<String> = {
            let db = self.db();
            let mut q = db.prepare("SELECT DISTINCT policy FROM versions ORDER BY policy")?;
            q.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        names.iter().map(|n| self.policy(n)).collect()
    }

    /// A policy with its versions and pointers.
    pub fn policy(&self, name: &str) -> Result<PolicyInfo, RegistryError> {
        check_name(name)?;
        let versions = self.versions(name)?;
        if versions.is_empty() {
            return Err(RegistryError::UnknownPolicy(name.to_owned()));
        }
        let db = self.db();
        Ok(PolicyInfo {
            name: name.to_owned(),
            active: active_version(&db, name)?,
            shadow: db
                .query_row(
                    "SELECT version FROM shadows WHERE policy = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()?,
            versions,
        })
    }

    /// The active version of `policy`.
    pub fn active(&self, policy: &str) -> Result<Version, RegistryError> {
        let info = self.policy(policy)?;
        let n = info
            .active
            .ok_or_else(|| RegistryError::NoActiveVersion(policy.to_owned()))?;
        self.version(policy, &n.to_string())
    }

    /// The shadow version of `policy`, if one is set.
    pub fn shadow(&self, policy: &str) -> Result<Option<Version>, RegistryError> {
        match self.policy(policy)?.shadow {
            Some(n) => self.version(policy, &n.to_string()).map(Some),
            None => Ok(None),
        }
    }

    /// Make `version` the active one (the previous stays below it, for
    /// [`Self::rollback`]).
    pub fn activate(&self, policy: &str, version: u32, by: &str) -> Result<(), RegistryError> {
        self.version(policy, &version.to_string())?;
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute(
            "INSERT INTO activations (policy, version) VALUES (?1, ?2)",
            params![policy, version],
        )?;
        if tx
            .query_row(
                "SELECT version FROM shadows WHERE policy = ?1",
                [policy],
                |r| r.get::<_, u32>(0),
            )
            .optional()?
            == Some(version)
        {
            tx.execute("DELETE FROM shadows WHERE policy = ?1", [policy])?;
        }
        event(&tx, policy, "activate", Some(version), by, "")?;
        tx.commit()?;
        Ok(())
    }

    /// The version [`Self::rollback`] would make active.
    pub fn previous(&self, policy: &str) -> Result<u32, RegistryError> {
        let db = self.db();
        previous_activation(&db, policy)?
            .map(|(_, v)| v)
            .ok_or_else(|| RegistryError::NothingToRollBack(policy.to_owned()))
    }

    /// Undo the last activation: the version active before it comes back.
    pub fn rollback(&self, policy: &str, by: &str, why: &str) -> Result<u32, RegistryError> {
        check_name(policy)?;
        let mut db = self.db();
        let tx = db.transaction()?;
        if top_activation(&tx, policy)?.is_none() {
            return Err(RegistryError::NoActiveVersion(policy.to_owned()));
        }
        let Some((below, previous)) = previous_activation(&tx, policy)? else {
            return Err(RegistryError::NothingToRollBack(policy.to_owned()));
        };
        // Everything above it is undone: the top, repeats of it, and
        // activations of versions deleted since.
        tx.execute(
            "UPDATE activations SET undone = 1 WHERE policy = ?1 AND id > ?2",
            params![policy, below],
        )?;
        event(&tx, policy, "rollback", Some(previous), by, why)?;
        tx.commit()?;
        Ok(previous)
    }

    /// Set (or with `None` clear) the version that shadows the active one.
    pub fn set_shadow(
        &self,
        policy: &str,
        version: Option<u32>,
        by: &str,
    ) -> Result<(), RegistryError> {
        if let Some(v) = version {
            self.version(policy, &v.to_string())?;
        } else {
            self.policy(policy)?;
        }
        let mut db = self.db();
        let tx = db.transaction()?;
        match version {
            Some(v) => {
                tx.execute(
                    "INSERT INTO shadows VALUES (?1, ?2) ON CONFLICT(policy) DO UPDATE SET version = ?2",
                    params![policy, v],
                )?;
                event(&tx, policy, "shadow", Some(v), by, "")?;
            }
            None => {
                tx.execute("DELETE FROM shadows WHERE policy = ?1", [policy])?;
                event(&tx, policy, "unshadow", None, by, "")?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Delete a version that is neither active nor shadowing. Its blob goes
    /// when no other version names it.
    pub fn delete(&self, policy: &str, version: u32, by: &str) -> Result<(), RegistryError> {
        let info = self.policy(policy)?;
        let v = self.version(policy, &version.to_string())?;
        for (role, n) in [("active", info.active), ("the shadow", info.shadow)] {
            if n == Some(version) {
                return Err(RegistryError::InUse {
                    policy: policy.to_owned(),
                    version,
                    role,
                });
            }
        }
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute(
            "DELETE FROM versions WHERE policy = ?1 AND version = ?2",
            params![policy, version],
        )?;
        event(&tx, policy, "delete", Some(version), by, &v.digest)?;
        let still_named: bool = tx
            .query_row(
                "SELECT 1 FROM versions WHERE digest = ?1 LIMIT 1",
                [&v.digest],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        tx.commit()?;
        drop(db);
        if !still_named && let Ok(hex) = check_digest(&v.digest) {
            let _ = std::fs::remove_file(self.blob_path(hex));
        }
        Ok(())
    }

    /// The latest `limit` events of `policy` (of every policy with `None`), newest first.
    pub fn events(&self, policy: Option<&str>, limit: u32) -> Result<Vec<Event>, RegistryError> {
        let db = self.db();
        let mut q = db.prepare(
            "SELECT at_ms, policy, kind, version, by, detail FROM events
             WHERE ?1 IS NULL OR policy = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = q.query_map(params![policy, limit], |r| {
            Ok(Event {
                at_ms: r.get::<_, i64>(0)? as u64,
                policy: r.get(1)?,
                kind: r.get(2)?,
                version: r.get(3)?,
                by: r.get(4)?,
                detail: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Record an event that happened outside the registry's own calls (a
    /// scaler's automatic rollback, a state hand-off that failed).
    pub fn record(
        &self,
        policy: &str,
        kind: &str,
        version: Option<u32>,
        by: &str,
        detail: &str,
    ) -> Result<(), RegistryError> {
        let db = self.db();
        event(&db, policy, kind, version, by, detail)?;
        Ok(())
    }
}

fn event(
    db: &rusqlite::Connection,
    policy: &str,
    kind: &str,
    version: Option<u32>,
    by: &str,
    detail: &str,
) -> rusqlite::Result<()> {
    db.execute(
        "INSERT INTO events (at_ms, policy, kind, version, by, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![now_ms() as i64, policy, kind, version, by, detail],
    )?;
    Ok(())
}

fn row_version(r: &rusqlite::Row<'_>) -> rusqlite::Result<Version> {
    let signals: String = r.get(7)?;
    Ok(Version {
        policy: r.get(0)?,
        version: r.get(1)?,
        digest: r.get(2)?,
        size: r.get::<_, i64>(3)? as u64,
        uploaded_ms: r.get::<_, i64>(4)? as u64,
        uploader: r.get(5)?,
        contract: r.get(6)?,
        signals: serde_json::from_str(&signals).unwrap_or_default(),
        signed_by: Vec::new(),
    })
}

/// The live activations of `policy` whose version still exists, newest first.
fn live_activations(db: &rusqlite::Connection, policy: &str) -> rusqlite::Result<Vec<(i64, u32)>> {
    let mut q = db.prepare(
        "SELECT id, version FROM activations WHERE policy = ?1 AND undone = 0
         AND version IN (SELECT version FROM versions WHERE policy = ?1) ORDER BY id DESC LIMIT 64",
    )?;
    q.query_map([policy], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

fn top_activation(db: &rusqlite::Connection, policy: &str) -> rusqlite::Result<Option<(i64, u32)>> {
    Ok(live_activations(db, policy)?.into_iter().next())
}

/// The newest live activation below the top one of another version.
fn previous_activation(
    db: &rusqlite::Connection,
    policy: &str,
) -> rusqlite::Result<Option<(i64, u32)>> {
    let live = live_activations(db, policy)?;
    let Some(&(_, top)) = live.first() else {
        return Ok(None);
    };
    Ok(live.into_iter().find(|(_, v)| *v != top))
}

fn active_version(db: &rusqlite::Connection, policy: &str) -> rusqlite::Result<Option<u32>> {
    Ok(top_activation(db, policy)?.map(|(_, v)| v))
}

impl Registry {
    /// The component behind `oci://REFERENCE` (given without the scheme):
    /// pulled and checked (see [`oci`]), stored as a blob, and remembered
    /// for the reference. When the pull fails, the last copy pulled for the
    /// same reference is used, with a warning; with none, the pull's error.
    /// Returns a label naming what runs (`oci://REF@sha256:HEX`) and the bytes.
    pub fn pull_oci(
        &self,
        reference: &str,
        max_bytes: usize,
    ) -> Result<(String, Vec<u8>), RegistryError> {
        let label = |digest: &str| format!("oci://{reference}@{digest}");
        match oci::pull(reference, max_bytes) {
            Ok(pulled) => {
                self.write_blob(&pulled.digest, &pulled.bytes)?;
                self.db().execute(
                    "INSERT OR REPLACE INTO oci_pulls VALUES (?1, ?2, ?3, ?4)",
                    params![
                        reference,
                        pulled.digest,
                        pulled.manifest_digest,
                        now_ms() as i64
                    ],
                )?;
                Ok((label(&pulled.digest), pulled.bytes))
            }
            Err(error @ oci::OciError::BadReference { .. }) => Err(error.into()),
            Err(error) => {
                let cached: Option<String> = self
                    .db()
                    .query_row(
                        "SELECT digest FROM oci_pulls WHERE reference = ?1",
                        [reference],
                        |r| r.get(0),
                    )
                    .optional()?;
                let Some(digest) = cached else {
                    return Err(error.into());
                };
                let bytes = self.blob(&digest)?;
                tracing::warn!(reference, %error, %digest, "cannot pull this policy; running the copy pulled last");
                Ok((label(&digest), bytes))
            }
        }
    }
}

impl crate::host::PolicyStore for Registry {
    fn pull(&self, reference: &str, max_bytes: usize) -> Result<(String, Vec<u8>), String> {
        self.pull_oci(reference, max_bytes)
            .map_err(|e| e.to_string())
    }

    fn shadow(&self, name: &str) -> Result<Option<(String, Vec<u8>)>, String> {
        match Registry::shadow(self, name) {
            Ok(Some(v)) => {
                let bytes = Registry::blob(self, &v.digest).map_err(|e| e.to_string())?;
                Ok(Some((v.label(), bytes)))
            }
            Ok(None) | Err(RegistryError::UnknownPolicy(_)) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn active(&self, name: &str) -> Result<(String, Vec<u8>), String> {
        let v = Registry::active(self, name).map_err(|e| e.to_string())?;
        let bytes = self.blob(&v.digest).map_err(|e| e.to_string())?;
        Ok((v.label(), bytes))
    }

    fn signers(&self, digest: &str) -> Result<Vec<String>, String> {
        Registry::signers(self, digest).map_err(|e| e.to_string())
    }

    fn blob(&self, digest: &str) -> Result<Vec<u8>, String> {
        // Only what some version names: a blob left by a delete is gone.
        match self.has_digest(digest) {
            Ok(true) => Registry::blob(self, digest).map_err(|e| e.to_string()),
            Ok(false) => Err(RegistryError::UnknownDigest(digest.to_owned()).to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(by: &str) -> Upload {
        Upload {
            uploader: by.into(),
            contract: "0.2".into(),
            signals: vec!["queue_depth".into()],
        }
    }

    #[test]
    fn versions_are_numbered_stored_by_digest_and_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path()).unwrap();
        let v1 = r.put("ttft-guard", b"one", upload("ana")).unwrap();
        let v2 = r.put("ttft-guard", b"two", upload("bo")).unwrap();
        assert_eq!((v1.version, v2.version), (1, 2));
        assert_eq!(v1.digest, digest_of(b"one"));
        assert_eq!(v1.signals, ["queue_depth"]);
        // The same bytes again: the same version, no new one.
        assert_eq!(r.put("ttft-guard", b"one", upload("cy")).unwrap(), v1);
        assert_eq!(r.versions("ttft-guard").unwrap().len(), 2);
        assert_eq!(r.blob(&v2.digest).unwrap(), b"two");
        assert_eq!(r.version("ttft-guard", &v2.digest).unwrap(), v2);
        assert!(matches!(
            r.version("ttft-guard", "9"),
            Err(RegistryError::UnknownVersion { .. })
        ));
        assert!(matches!(
            r.version("ghost", "1"),
            Err(RegistryError::UnknownPolicy(_))
        ));
        // A tenant's namespace is one `TENANT/` and no more.
        assert!(check_name("acme/chat").is_ok());
        for bad in [
            "",
            "Caps",
            "-lead",
            "a/b/c",
            "/b",
            "a/",
            "../x",
            &"x".repeat(64),
        ] {
            assert!(
                matches!(
                    r.put(bad, b"x", upload("a")),
                    Err(RegistryError::BadName(_))
                ),
                "{bad:?}"
            );
        }
        for bad in ["sha256:zz", "md5:00", &format!("sha256:{}", "A".repeat(64))] {
            assert!(
                matches!(r.blob(bad), Err(RegistryError::BadDigest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_blob_changed_on_disk_is_refused_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path()).unwrap();
        let v = r.put("p", b"policy bytes", upload("a")).unwrap();
        let hex = check_digest(&v.digest).unwrap().to_owned();
        std::fs::write(dir.path().join("blobs/sha256").join(&hex), b"tampered").unwrap();
        assert!(matches!(
            r.blob(&v.digest),
            Err(RegistryError::Corrupt { .. })
        ));
    }

    #[test]
    fn activate_and_roll_back_walk_a_stack_of_activations() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path()).unwrap();
        for b in [&b"a"[..], b"b", b"c"] {
            r.put("p", b, upload("a")).unwrap();
        }
        assert!(matches!(
            r.active("p"),
            Err(RegistryError::NoActiveVersion(_))
        ));
        r.activate("p", 1, "ops").unwrap();
        assert!(matches!(
            r.rollback("p", "ops", ""),
            Err(RegistryError::NothingToRollBack(_))
        ));
        r.activate("p", 2, "ops").unwrap();
        r.activate("p", 2, "ops").unwrap();
        r.activate("p", 3, "ops").unwrap();
        assert_eq!(r.active("p").unwrap().version, 3);
        assert_eq!(r.previous("p").unwrap(), 2);
        assert_eq!(r.rollback("p", "ops", "").unwrap(), 2);
        // Past both activations of 2, to 1.
        assert_eq!(r.rollback("p", "ops", "").unwrap(), 1);
        assert_eq!(r.active("p").unwrap().version, 1);
        // Deleting a version the stack names: rollback skips it.
        r.activate("p", 2, "ops").unwrap();
        r.activate("p", 3, "ops").unwrap();
        r.set_shadow("p", Some(1), "ops").unwrap();
        assert!(matches!(
            r.delete("p", 3, "ops"),
            Err(RegistryError::InUse { role: "active", .. })
        ));
        assert!(matches!(
            r.delete("p", 1, "ops"),
            Err(RegistryError::InUse {
                role: "the shadow",
                ..
            })
        ));
        r.set_shadow("p", None, "ops").unwrap();
        r.delete("p", 2, "ops").unwrap();
        assert_eq!(r.rollback("p", "ops", "").unwrap(), 1);
        let kinds: Vec<String> = r
            .events(Some("p"), 3)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["rollback", "delete", "unshadow"]);
    }

    #[test]
    fn a_reopened_registry_keeps_everything_and_drops_what_a_crash_left() {
        let dir = tempfile::tempdir().unwrap();
        let digest = {
            let r = Registry::open(dir.path()).unwrap();
            let v = r.put("p", b"kept", upload("a")).unwrap();
            r.activate("p", 1, "ops").unwrap();
            r.set_shadow("p", Some(1), "ops").unwrap();
            v.digest
        };
        let blobs = dir.path().join("blobs/sha256");
        // A temporary file from an upload killed mid-write, and a blob whose
        // row never committed.
        std::fs::write(blobs.join("tmp-abc-1-x"), b"half").unwrap();
        let orphan = crate::host::digest(b"orphan");
        std::fs::write(blobs.join(&orphan), b"orphan").unwrap();
        let r = Registry::open(dir.path()).unwrap();
        assert_eq!(r.active("p").unwrap().digest, digest);
        assert_eq!(r.shadow("p").unwrap().map(|v| v.version), Some(1));
        assert!(!blobs.join("tmp-abc-1-x").exists());
        assert!(!blobs.join(orphan).exists());
        assert_eq!(r.blob(&digest).unwrap(), b"kept");
    }

    #[test]
    fn the_host_reads_active_versions_and_pinned_digests_through_the_store() {
        use crate::host::PolicyStore;
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path()).unwrap();
        let v = r.put("p", b"bytes", upload("a")).unwrap();
        assert!(
            PolicyStore::active(&r, "p")
                .unwrap_err()
                .contains("no active version")
        );
        r.activate("p", 1, "ops").unwrap();
        assert_eq!(
            PolicyStore::active(&r, "p").unwrap(),
            ("registry:p@1".into(), b"bytes".to_vec())
        );
        assert_eq!(PolicyStore::blob(&r, &v.digest).unwrap(), b"bytes");
        let unknown = digest_of(b"never uploaded");
        assert!(
            PolicyStore::blob(&r, &unknown)
                .unwrap_err()
                .contains("no blob")
        );
    }
}
