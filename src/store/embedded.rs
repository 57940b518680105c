//! The embedded backend: one SQLite file, `<DATA_DIR>/llmcallgateway.db`, through rusqlite
//! with SQLite compiled in (nothing to install). WAL journal with `synchronous=NORMAL`: a
//! committed write survives a crash of the gateway; a power loss can lose the last
//! transactions, never corrupt the file. One connection behind a mutex: the store is off the
//! per-token path, and features that write often batch in memory first.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::{now_ms, StoreError};

/// The database file's name under `DATA_DIR`.
pub const FILE_NAME: &str = "llmcallgateway.db";

/// Expired documents are swept once every this many writes.
const SWEEP_EVERY: u32 = 256;

pub struct Embedded {
    path: PathBuf,
    connection: Mutex<Connection>,
    writes: AtomicU32,
}

impl Embedded {
    pub(super) fn open(data_dir: &Path) -> Result<Embedded, String> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| format!("cannot create DATA_DIR {}: {e}", data_dir.display()))?;
        let path = data_dir.join(FILE_NAME);
        let fail = |e: rusqlite::Error| format!("cannot open the store {}: {e}", path.display());
        let connection = Connection::open(&path).map_err(fail)?;
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(fail)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 CREATE TABLE IF NOT EXISTS documents (
                     space TEXT NOT NULL,
                     id TEXT NOT NULL,
                     value BLOB NOT NULL,
                     expires_at INTEGER,
                     PRIMARY KEY (space, id)
                 ) WITHOUT ROWID;",
            )
            .map_err(fail)?;
        restrict_to_owner(&path);
        let db = Embedded {
            path,
            connection: Mutex::new(connection),
            writes: AtomicU32::new(0),
        };
        db.sweep().map_err(|e| e.0)?;
        Ok(db)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the connection, holding it for the duration: a feature's own tables and
    /// transactions. An error comes back as a [`StoreError`] naming the file.
    pub fn with<T>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        // A panic while the lock was held leaves the connection usable: SQLite rolled back.
        let connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        work(&connection)
            .map_err(|e| StoreError(format!("the store {} failed: {e}", self.path.display())))
    }

    pub(super) fn put(
        &self,
        space: &str,
        id: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let expires_at = ttl.map(|ttl| now_ms().saturating_add(ttl.as_millis() as i64));
        self.with(|c| {
            c.prepare_cached(
                "INSERT OR REPLACE INTO documents (space, id, value, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![space, id, value, expires_at])
        })?;
        if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep()?;
        }
        Ok(())
    }

    pub(super) fn get(&self, space: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT value FROM documents
                 WHERE space = ?1 AND id = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
            )?
            .query_row(params![space, id, now_ms()], |row| row.get(0))
            .optional()
        })
    }

    pub(super) fn delete(&self, space: &str, id: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM documents WHERE space = ?1 AND id = ?2")?
                .execute(params![space, id])
                .map(|n| n > 0)
        })
    }

    pub(super) fn list(&self, space: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT id, value FROM documents
                 WHERE space = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
            )?
            .query_map(params![space, now_ms()], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect()
        })
    }

    /// Deletes expired documents, so that a retention setting also bounds the file.
    fn sweep(&self) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM documents WHERE expires_at <= ?1")?
                .execute(params![now_ms()])
        })
        .map(drop)
    }
}

/// The store holds key hashes and stored conversations: readable by the gateway's user only.
#[cfg(unix)]
fn restrict_to_owner(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        log::warn!("could not make {} private: {e}", path.display());
    }
}

#[cfg(not(unix))]
fn restrict_to_owner(_path: &Path) {}
