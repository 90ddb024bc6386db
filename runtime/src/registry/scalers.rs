//! Scalers created through the admin API, kept beside the policies so a
//! restart brings them back. The registry stores each as the JSON of a
//! `[[scaler]]` entry and checks nothing in it: the admin server checks an
//! entry before it is stored, and again when a restart reads it back.

use super::{Registry, RegistryError, now_ms};
use rusqlite::{OptionalExtension as _, params};
use serde::Serialize;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS scalers (
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL, updated_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scaler_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, scaler TEXT NOT NULL,
    kind TEXT NOT NULL, by TEXT NOT NULL);
";

/// A scaler the API created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredScaler {
    pub name: String,
    /// The `[[scaler]]` entry, as JSON.
    pub spec: String,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub updated_by: String,
}

/// The stored entry of `name`, read in `db` (a transaction or not).
fn find(db: &rusqlite::Connection, name: &str) -> rusqlite::Result<Option<StoredScaler>> {
    db.query_row(
        "SELECT name, spec, created_ms, updated_ms, updated_by FROM scalers WHERE name = ?1",
        [name],
        row,
    )
    .optional()
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredScaler> {
    Ok(StoredScaler {
        name: r.get(0)?,
        spec: r.get(1)?,
        created_ms: r.get::<_, i64>(2)? as u64,
        updated_ms: r.get::<_, i64>(3)? as u64,
        updated_by: r.get(4)?,
    })
}

impl Registry {
    /// Every stored scaler, by name.
    pub fn scalers(&self) -> Result<Vec<StoredScaler>, RegistryError> {
        let db = self.db();
        let mut q = db.prepare(
            "SELECT name, spec, created_ms, updated_ms, updated_by FROM scalers ORDER BY name",
        )?;
        let rows = q.query_map([], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One stored scaler.
    pub fn scaler(&self, name: &str) -> Result<Option<StoredScaler>, RegistryError> {
        Ok(find(&self.db(), name)?)
    }

    /// Store (create or replace) a scaler's entry; returns what it replaced.
    pub fn put_scaler(
        &self,
        name: &str,
        spec: &str,
        by: &str,
    ) -> Result<Option<StoredScaler>, RegistryError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let old = find(&tx, name)?;
        let now = now_ms() as i64;
        let created = old.as_ref().map_or(now, |o| o.created_ms as i64);
        tx.execute(
            "INSERT OR REPLACE INTO scalers VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, spec, created, now, by],
        )?;
        let kind = if old.is_some() { "update" } else { "create" };
        tx.execute(
            "INSERT INTO scaler_events (at_ms, scaler, kind, by) VALUES (?1, ?2, ?3, ?4)",
            params![now, name, kind, by],
        )?;
        tx.commit()?;
        Ok(old)
    }

    /// Put back what [`put_scaler`](Self::put_scaler) replaced (None: remove
    /// it), when applying the new entry failed.
    pub fn restore_scaler(
        &self,
        name: &str,
        old: Option<&StoredScaler>,
    ) -> Result<(), RegistryError> {
        let db = self.db();
        match old {
            Some(o) => db.execute(
                "INSERT OR REPLACE INTO scalers VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    o.name,
                    o.spec,
                    o.created_ms as i64,
                    o.updated_ms as i64,
                    o.updated_by
                ],
            )?,
            None => db.execute("DELETE FROM scalers WHERE name = ?1", [name])?,
        };
        Ok(())
    }

    /// Remove a stored scaler; returns it, or None if there was none.
    pub fn delete_scaler(
        &self,
        name: &str,
        by: &str,
    ) -> Result<Option<StoredScaler>, RegistryError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let old = find(&tx, name)?;
        if old.is_some() {
            tx.execute("DELETE FROM scalers WHERE name = ?1", [name])?;
            tx.execute(
                "INSERT INTO scaler_events (at_ms, scaler, kind, by) VALUES (?1, ?2, 'delete', ?3)",
                params![now_ms() as i64, name, by],
            )?;
        }
        tx.commit()?;
        Ok(old)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stored_scalers_are_created_replaced_restored_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let r = super::Registry::open(dir.path()).unwrap();
        assert!(r.put_scaler("a", "{\"v\":1}", "ann").unwrap().is_none());
        let old = r.put_scaler("a", "{\"v\":2}", "bob").unwrap().unwrap();
        assert_eq!(old.spec, "{\"v\":1}");
        assert_eq!(r.scaler("a").unwrap().unwrap().updated_by, "bob");
        r.restore_scaler("a", Some(&old)).unwrap();
        assert_eq!(r.scaler("a").unwrap().unwrap().spec, "{\"v\":1}");
        r.put_scaler("b", "{}", "ann").unwrap();
        r.restore_scaler("b", None).unwrap();
        assert_eq!(r.scalers().unwrap().len(), 1);
        drop(r);
        let r = super::Registry::open(dir.path()).unwrap();
        assert_eq!(r.scalers().unwrap()[0].name, "a");
        assert!(r.delete_scaler("a", "ann").unwrap().is_some());
        assert!(r.delete_scaler("a", "ann").unwrap().is_none());
        assert!(r.scalers().unwrap().is_empty());
    }
}
