//! Tenants and their API tokens, in an embedded SQLite database under the
//! state directory (`STATE_DIR/tenants.sqlite3`). A token is
//! `wst_ID_SECRET`: 64 random bits of id, to find it, and 256 random bits of
//! secret, of which only the SHA-256 is stored. It is shown once, when it
//! is issued, and can be revoked or expire.
//!
//! Roles: an operator token acts on everything; a tenant-admin token on its
//! own tenant's scalers; a viewer token only reads them.

mod errors;
mod quotas;

pub use errors::TenantError;
pub use quotas::{Exceeded, Footprint, PerMinute, Plan, Quotas, Reach, Tier, Usage};

use rusqlite::{OptionalExtension as _, params};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything, every tenant.
    Operator,
    /// Read and change its own tenant's scalers.
    TenantAdmin,
    /// Read its own tenant's scalers.
    Viewer,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::TenantAdmin => "tenant-admin",
            Role::Viewer => "viewer",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "operator" => Some(Role::Operator),
            "tenant-admin" => Some(Role::TenantAdmin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// Who is calling: what a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant it acts in; None for an operator (every tenant).
    pub tenant: Option<String>,
    pub role: Role,
    /// The token's id (`-` when authentication is off).
    pub token_id: String,
}

impl Caller {
    /// The caller when authentication is off: the operator.
    pub fn unauthenticated_operator() -> Self {
        Caller {
            tenant: None,
            role: Role::Operator,
            token_id: "-".into(),
        }
    }

    /// Whether the caller may see what belongs to `tenant`.
    pub fn sees(&self, tenant: &str) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == tenant)
    }

    /// Whether the caller may change what it sees.
    pub fn writes(&self) -> bool {
        self.role != Role::Viewer
    }
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    pub name: String,
    /// The tier it is on (quotas and tiers are defined in the config).
    pub tier: Option<String>,
    /// Its own quotas, over its tier's.
    pub overrides: Quotas,
    pub created_ms: u64,
}

/// A quota refused: the tenant's audit record of it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Refusal {
    pub at_ms: u64,
    #[serde(flatten)]
    pub exceeded: Exceeded,
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub tenant: Option<String>,
    pub role: Role,
    pub label: String,
    pub created_ms: u64,
    pub expires_ms: Option<u64>,
    pub revoked_ms: Option<u64>,
}

/// A token just issued: the only time its text is seen.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Issued {
    pub token: String,
    pub info: TokenInfo,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tenants (
    name TEXT PRIMARY KEY, tier TEXT, created_ms INTEGER NOT NULL,
    overrides TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS refusals (
    tenant TEXT NOT NULL, at_ms INTEGER NOT NULL, quota TEXT NOT NULL,
    used REAL NOT NULL, quota_limit REAL NOT NULL, rate INTEGER NOT NULL,
    detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS refusals_by_tenant ON refusals (tenant, at_ms);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, tenant TEXT, role TEXT NOT NULL, label TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL, created_ms INTEGER NOT NULL,
    expires_ms INTEGER, revoked_ms INTEGER);
";

/// Refusals kept per tenant (the oldest go first).
const KEPT_REFUSALS: i64 = 1000;

/// The tenants and tokens under one state directory, and each tenant's
/// plan (its tier with its overrides), kept in memory: the scheduler reads
/// it every tick.
#[derive(Debug)]
pub struct Tenants {
    db: Mutex<rusqlite::Connection>,
    plans: RwLock<Plans>,
    /// Bumped at every change of a plan: readers re-resolve what they cached.
    generation: AtomicU64,
    uploads: Mutex<HashMap<String, PerMinute>>,
}

#[derive(Debug, Default)]
struct Plans {
    tiers: BTreeMap<String, Tier>,
    /// Each tenant's tier and overrides.
    tenants: HashMap<String, (Option<String>, Quotas)>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random<const N: usize>() -> Result<[u8; N], TenantError> {
    use std::io::Read as _;
    let mut out = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut out))
        .map_err(TenantError::Random)?;
    Ok(out)
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(text.as_bytes()))
}

/// Equal without an early exit: how long it takes says nothing of where
/// two hashes differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Check a tenant name: it appears in URLs and metric labels.
pub fn check_name(name: &str) -> Result<(), TenantError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(TenantError::BadName(name.chars().take(80).collect()))
    }
}

fn row_token(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenInfo> {
    let role: String = r.get(2)?;
    Ok(TokenInfo {
        id: r.get(0)?,
        tenant: r.get(1)?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        label: r.get(3)?,
        created_ms: r.get::<_, i64>(4)? as u64,
        expires_ms: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
        revoked_ms: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
    })
}

const TENANT_COLUMNS: &str = "name, tier, created_ms, overrides";

fn row_tenant(r: &rusqlite::Row<'_>) -> rusqlite::Result<Tenant> {
    let overrides: String = r.get(3)?;
    Ok(Tenant {
        name: r.get(0)?,
        tier: r.get(1)?,
        created_ms: r.get::<_, i64>(2)? as u64,
        // Written by this module from a Quotas; unreadable means edited by hand.
        overrides: serde_json::from_str(&overrides).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
        })?,
    })
}

const TOKEN_COLUMNS: &str = "id, tenant, role, label, created_ms, expires_ms, revoked_ms";

impl Tenants {
    /// Open (or create) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, TenantError> {
        std::fs::create_dir_all(dir).map_err(|error| TenantError::Io {
            path: dir.to_owned(),
            error,
        })?;
        let db = rusqlite::Connection::open(dir.join("tenants.sqlite3"))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        let has_overrides = db
            .prepare("SELECT 1 FROM pragma_table_info('tenants') WHERE name = 'overrides'")?
            .exists([])?;
        let has_tenants = db
            .prepare("SELECT 1 FROM sqlite_master WHERE name = 'tenants'")?
            .exists([])?;
        if has_tenants && !has_overrides {
            // A store written before quotas: the column comes with its default.
            db.execute_batch(
                "ALTER TABLE tenants ADD COLUMN overrides TEXT NOT NULL DEFAULT '{}'",
            )?;
        }
        db.execute_batch(SCHEMA)?;
        let store = Tenants {
            db: Mutex::new(db),
            plans: RwLock::default(),
            generation: AtomicU64::new(0),
            uploads: Mutex::default(),
        };
        let all = store.list()?;
        store.write_plans().tenants = all
            .into_iter()
            .map(|t| (t.name, (t.tier, t.overrides)))
            .collect();
        Ok(store)
    }

    fn write_plans(&self) -> std::sync::RwLockWriteGuard<'_, Plans> {
        self.generation.fetch_add(1, Ordering::Release);
        self.plans
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read_plans(&self) -> std::sync::RwLockReadGuard<'_, Plans> {
        self.plans
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The tiers of the config (at start and at every reload).
    pub fn set_tiers(&self, tiers: BTreeMap<String, Tier>) {
        self.write_plans().tiers = tiers;
    }

    /// Whether the config defines `tier`.
    pub fn has_tier(&self, tier: &str) -> bool {
        self.read_plans().tiers.contains_key(tier)
    }

    /// The tiers' names.
    pub fn tier_names(&self) -> Vec<String> {
        self.read_plans().tiers.keys().cloned().collect()
    }

    /// What `tenant` may do; None for a name that is no tenant (a config
    /// file's label): no quotas. A tenant on a tier the config no longer
    /// defines keeps its overrides only, and the log says so.
    pub fn plan(&self, tenant: &str) -> Option<Plan> {
        let plans = self.read_plans();
        let (tier, overrides) = plans.tenants.get(tenant)?;
        let found = tier.as_deref().and_then(|t| plans.tiers.get(t));
        if let (Some(t), None) = (tier, found) {
            tracing::warn!(tenant, tier = %t, "this tenant's tier is not in the config; only its own quotas apply");
        }
        Some(Plan::new(tier.as_deref(), found, overrides))
    }

    /// Changes with every change of a plan.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Move a tenant to `tier` (Some(None): no tier) and/or set its
    /// overrides.
    pub fn set_plan(
        &self,
        name: &str,
        tier: Option<Option<&str>>,
        overrides: Option<&Quotas>,
    ) -> Result<Tenant, TenantError> {
        let db = self.db();
        if let Some(tier) = tier {
            db.execute(
                "UPDATE tenants SET tier = ?2 WHERE name = ?1",
                params![name, tier],
            )?;
        }
        if let Some(o) = overrides {
            let text = serde_json::to_string(o).map_err(|e| TenantError::Corrupt(e.to_string()))?;
            db.execute(
                "UPDATE tenants SET overrides = ?2 WHERE name = ?1",
                params![name, text],
            )?;
        }
        drop(db);
        let t = self
            .get(name)?
            .ok_or_else(|| TenantError::Unknown(name.to_owned()))?;
        self.write_plans()
            .tenants
            .insert(t.name.clone(), (t.tier.clone(), t.overrides.clone()));
        Ok(t)
    }

    pub fn get(&self, name: &str) -> Result<Option<Tenant>, TenantError> {
        let db = self.db();
        let mut q = db.prepare(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE name = ?1"
        ))?;
        Ok(q.query_row([name], row_tenant).optional()?)
    }

    /// Keep a refused quota as the tenant's record of it.
    pub fn record_refusal(&self, tenant: &str, e: &Exceeded) {
        let db = self.db();
        let kept = db
            .execute(
                "INSERT INTO refusals VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    tenant,
                    now_ms() as i64,
                    e.quota,
                    e.used,
                    e.limit,
                    e.rate,
                    e.detail
                ],
            )
            .and_then(|_| {
                db.execute(
                    "DELETE FROM refusals WHERE tenant = ?1 AND rowid NOT IN
                     (SELECT rowid FROM refusals WHERE tenant = ?1 ORDER BY at_ms DESC LIMIT ?2)",
                    params![tenant, KEPT_REFUSALS],
                )
            });
        if let Err(error) = kept {
            tracing::error!(tenant, %error, quota = %e.quota, "cannot record a quota refusal");
        }
        tracing::info!(tenant, quota = %e.quota, used = e.used, limit = e.limit, "quota refused");
    }

    /// A tenant's latest refusals, newest first.
    pub fn refusals(&self, tenant: &str, limit: usize) -> Result<Vec<Refusal>, TenantError> {
        let db = self.db();
        let mut q = db.prepare(
            "SELECT at_ms, quota, used, quota_limit, rate, detail FROM refusals
             WHERE tenant = ?1 ORDER BY at_ms DESC, rowid DESC LIMIT ?2",
        )?;
        let rows = q.query_map(params![tenant, limit as i64], |r| {
            Ok(Refusal {
                at_ms: r.get::<_, i64>(0)? as u64,
                exceeded: Exceeded {
                    quota: r.get(1)?,
                    used: r.get(2)?,
                    limit: r.get(3)?,
                    rate: r.get(4)?,
                    detail: r.get(5)?,
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Count one policy upload of `tenant` against its per-minute quota.
    pub fn take_upload(&self, tenant: &str, limit: Option<u32>) -> Result<(), Exceeded> {
        let Some(limit) = limit else { return Ok(()) };
        self.uploads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(tenant.to_owned())
            .or_default()
            .try_take(limit)
    }

    fn db(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        // SQLite rolls back what a panicking holder left half done.
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn create(&self, name: &str, tier: Option<&str>) -> Result<Tenant, TenantError> {
        check_name(name)?;
        let created_ms = now_ms();
        let db = self.db();
        let inserted = db.execute(
            "INSERT OR IGNORE INTO tenants (name, tier, created_ms) VALUES (?1, ?2, ?3)",
            params![name, tier, created_ms as i64],
        )?;
        drop(db);
        if inserted == 0 {
            return Err(TenantError::Exists(name.to_owned()));
        }
        self.write_plans().tenants.insert(
            name.to_owned(),
            (tier.map(str::to_owned), Quotas::default()),
        );
        Ok(Tenant {
            name: name.to_owned(),
            tier: tier.map(str::to_owned),
            overrides: Quotas::default(),
            created_ms,
        })
    }

    pub fn list(&self) -> Result<Vec<Tenant>, TenantError> {
        let db = self.db();
        let mut q = db.prepare(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants ORDER BY name"
        ))?;
        let rows = q.query_map([], row_tenant)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn exists(&self, name: &str) -> Result<bool, TenantError> {
        Ok(self
            .db()
            .query_row("SELECT 1 FROM tenants WHERE name = ?1", [name], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Delete a tenant and revoke its tokens.
    pub fn delete(&self, name: &str) -> Result<(), TenantError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        if tx.execute("DELETE FROM tenants WHERE name = ?1", [name])? == 0 {
            return Err(TenantError::Unknown(name.to_owned()));
        }
        tx.execute(
            "UPDATE tokens SET revoked_ms = ?2 WHERE tenant = ?1 AND revoked_ms IS NULL",
            params![name, now_ms() as i64],
        )?;
        tx.execute("DELETE FROM refusals WHERE tenant = ?1", [name])?;
        tx.commit()?;
        self.write_plans().tenants.remove(name);
        Ok(())
    }

    /// Issue a token: for `tenant` (tenant-admin or viewer), or with no
    /// tenant, an operator's. `ttl` makes it expire.
    pub fn issue(
        &self,
        tenant: Option<&str>,
        role: Role,
        label: &str,
        ttl: Option<std::time::Duration>,
    ) -> Result<Issued, TenantError> {
        // An operator token has no tenant; a tenant's token is not an operator's.
        let role = match (tenant, role) {
            (None, _) => Role::Operator,
            (Some(_), Role::Operator) => Role::TenantAdmin,
            (Some(_), r) => r,
        };
        if let Some(t) = tenant
            && !self.exists(t)?
        {
            return Err(TenantError::Unknown(t.to_owned()));
        }
        let id = hex(&random::<8>()?);
        let secret = hex(&random::<32>()?);
        let created_ms = now_ms();
        let expires_ms = ttl.map(|d| created_ms.saturating_add(d.as_millis() as u64));
        self.db().execute(
            "INSERT INTO tokens VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)",
            params![
                id,
                tenant,
                role.as_str(),
                label,
                sha256_hex(&secret),
                created_ms as i64,
                expires_ms.map(|v| v as i64)
            ],
        )?;
        Ok(Issued {
            token: format!("wst_{id}_{secret}"),
            info: TokenInfo {
                id,
                tenant: tenant.map(str::to_owned),
                role,
                label: label.to_owned(),
                created_ms,
                expires_ms,
                revoked_ms: None,
            },
        })
    }

    /// The tokens of `tenant` (None: the operator's).
    pub fn tokens(&self, tenant: Option<&str>) -> Result<Vec<TokenInfo>, TenantError> {
        let db = self.db();
        let mut q = db.prepare(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE tenant IS ?1 ORDER BY created_ms"
        ))?;
        let rows = q.query_map([tenant], row_token)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn token(&self, id: &str) -> Result<Option<TokenInfo>, TenantError> {
        let db = self.db();
        let mut q = db.prepare(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"))?;
        Ok(q.query_row([id], row_token).optional()?)
    }

    /// Revoke a token (again is a no-op).
    pub fn revoke(&self, id: &str) -> Result<(), TenantError> {
        let changed = self.db().execute(
            "UPDATE tokens SET revoked_ms = COALESCE(revoked_ms, ?2) WHERE id = ?1",
            params![id, now_ms() as i64],
        )?;
        if changed == 0 {
            return Err(TenantError::UnknownToken(id.to_owned()));
        }
        Ok(())
    }

    /// Who a token's text is, if it is valid now.
    pub fn authenticate(&self, token: &str) -> Result<Caller, TenantError> {
        let Some((id, secret)) = token
            .strip_prefix("wst_")
            .and_then(|rest| rest.split_once('_'))
        else {
            return Err(TenantError::InvalidToken);
        };
        if id.len() != 16 || secret.len() != 64 {
            return Err(TenantError::InvalidToken);
        }
        /// tenant, role, secret hash, expiry, revocation.
        type Row = (Option<String>, String, String, Option<i64>, Option<i64>);
        let found: Option<Row> = self
            .db()
            .query_row(
                "SELECT tenant, role, secret_sha256, expires_ms, revoked_ms FROM tokens WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((tenant, role, hash, expires, revoked)) = found else {
            return Err(TenantError::InvalidToken);
        };
        let live = revoked.is_none() && expires.is_none_or(|e| now_ms() < e as u64);
        match Role::parse(&role) {
            Some(role) if live && same(&hash, &sha256_hex(secret)) => Ok(Caller {
                tenant,
                role,
                token_id: id.to_owned(),
            }),
            _ => Err(TenantError::InvalidToken),
        }
    }

    /// With no live operator token, issue one and write it to `path` (only
    /// its owner may read it): how the first operator gets in. Returns
    /// whether it wrote one.
    pub fn bootstrap_operator(&self, path: &Path) -> Result<bool, TenantError> {
        let live = self
            .tokens(None)?
            .iter()
            .any(|t| t.revoked_ms.is_none() && t.expires_ms.is_none());
        if live && path.exists() {
            return Ok(false);
        }
        let issued = self.issue(None, Role::Operator, "bootstrap", None)?;
        let io = |error| TenantError::Io {
            path: path.to_owned(),
            error,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        use std::io::Write as _;
        let mut f = options.open(path).map_err(io)?;
        f.write_all(format!("{}\n", issued.token).as_bytes())
            .map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_until_revoked_or_expired_and_only_their_hash_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tenants::open(dir.path()).unwrap();
        t.create("acme", Some("pro")).unwrap();
        assert!(matches!(
            t.create("acme", None),
            Err(TenantError::Exists(_))
        ));
        assert!(matches!(
            t.create("Bad Name", None),
            Err(TenantError::BadName(_))
        ));
        let viewer = t.issue(Some("acme"), Role::Viewer, "ci", None).unwrap();
        assert_eq!(viewer.token.len(), 4 + 16 + 1 + 64);
        let caller = t.authenticate(&viewer.token).unwrap();
        assert_eq!(
            (caller.tenant.as_deref(), caller.role),
            (Some("acme"), Role::Viewer)
        );
        // Only the hash is on disk.
        let secret = viewer.token.rsplit('_').next().unwrap();
        let db = std::fs::read(dir.path().join("tenants.sqlite3")).unwrap();
        assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()));
        // A wrong secret, garbage, and a revoked token: one answer.
        let mut wrong = viewer.token.clone();
        wrong.pop();
        wrong.push('0');
        for bad in [wrong.as_str(), "", "wst_", "Bearer x", "wst_zz_zz"] {
            assert!(
                matches!(t.authenticate(bad), Err(TenantError::InvalidToken)),
                "{bad}"
            );
        }
        t.revoke(&viewer.info.id).unwrap();
        assert!(matches!(
            t.authenticate(&viewer.token),
            Err(TenantError::InvalidToken)
        ));
        let short = t
            .issue(
                Some("acme"),
                Role::TenantAdmin,
                "",
                Some(std::time::Duration::from_millis(1)),
            )
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(matches!(
            t.authenticate(&short.token),
            Err(TenantError::InvalidToken)
        ));
        // A tenant's token is never an operator's; deleting a tenant revokes its tokens.
        let admin = t.issue(Some("acme"), Role::Operator, "", None).unwrap();
        assert_eq!(admin.info.role, Role::TenantAdmin);
        t.delete("acme").unwrap();
        assert!(t.authenticate(&admin.token).is_err());
        assert!(matches!(
            t.issue(Some("acme"), Role::Viewer, "", None),
            Err(TenantError::Unknown(_))
        ));
        // The first operator token is written once, readable by its owner only.
        let path = dir.path().join("operator.token");
        assert!(t.bootstrap_operator(&path).unwrap());
        assert!(!t.bootstrap_operator(&path).unwrap());
        let token = std::fs::read_to_string(&path).unwrap();
        assert_eq!(t.authenticate(token.trim()).unwrap().role, Role::Operator);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
