//! The store: what several gateway instances must share and what must survive a restart —
//! gateway keys, rate-limit windows, spend, stored Responses. Two backends behind one type:
//! an embedded SQLite file under `DATA_DIR` (the default, nothing to install) and Redis when
//! `REDIS_URL` is set (several instances behind a load balancer).
//!
//! This file owns opening the backend and the document API every feature can use: opaque
//! bytes under `(space, id)` with an optional time to live. Features that need more (atomic
//! counters, windows, Lua scripts) reach the backend through [`Store::embedded`] and
//! [`Store::redis`] from files of their own in this folder.

mod embedded;
mod redis;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use self::embedded::Embedded;
pub use self::redis::Redis;

/// The store, cheap to clone: every clone shares one backend.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
}

enum Backend {
    Embedded(Embedded),
    Redis(Redis),
}

/// A store operation that failed: the backend is unreachable or answered an error. The text
/// says what failed and never holds a secret (Redis URLs are not repeated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

impl Store {
    /// The embedded store at `<data_dir>/llmcallgateway.db`, or Redis when `redis_url` is set.
    /// A Redis that is down now does not fail this: each operation connects when it needs to,
    /// so the gateway starts and recovers when Redis returns. A data directory that cannot be
    /// created or a database that cannot be opened does fail it, with the path in the text.
    pub fn open(data_dir: &Path, redis_url: Option<&str>) -> Result<Store, String> {
        let backend = match redis_url {
            Some(url) => Backend::Redis(Redis::new(url)?),
            None => Backend::Embedded(Embedded::open(data_dir)?),
        };
        Ok(Store {
            backend: Arc::new(backend),
        })
    }

    /// `"embedded"` or `"redis"`.
    pub fn backend(&self) -> &'static str {
        match *self.backend {
            Backend::Embedded(_) => "embedded",
            Backend::Redis(_) => "redis",
        }
    }

    /// Stores `value` under `(space, id)`, replacing what was there; with a `ttl` it is gone
    /// after that long. `space` names a feature's documents and holds no `:`.
    pub fn put(
        &self,
        space: &str,
        id: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        debug_assert!(!space.contains(':'), "a space name holds no ':'");
        match &*self.backend {
            Backend::Embedded(db) => db.put(space, id, value, ttl),
            Backend::Redis(redis) => redis.put(space, id, value, ttl),
        }
    }

    /// The document under `(space, id)`, unless it is missing or expired.
    pub fn get(&self, space: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match &*self.backend {
            Backend::Embedded(db) => db.get(space, id),
            Backend::Redis(redis) => redis.get(space, id),
        }
    }

    /// Removes the document; `true` when there was one.
    pub fn delete(&self, space: &str, id: &str) -> Result<bool, StoreError> {
        match &*self.backend {
            Backend::Embedded(db) => db.delete(space, id),
            Backend::Redis(redis) => redis.delete(space, id),
        }
    }

    /// Every live document of a space, as `(id, value)`, in no set order.
    pub fn list(&self, space: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        match &*self.backend {
            Backend::Embedded(db) => db.list(space),
            Backend::Redis(redis) => redis.list(space),
        }
    }

    /// The embedded backend, for features with tables of their own.
    pub fn embedded(&self) -> Option<&Embedded> {
        match &*self.backend {
            Backend::Embedded(db) => Some(db),
            Backend::Redis(_) => None,
        }
    }

    /// The Redis backend, for features with scripts of their own.
    pub fn redis(&self) -> Option<&Redis> {
        match &*self.backend {
            Backend::Redis(redis) => Some(redis),
            Backend::Embedded(_) => None,
        }
    }
}

/// Milliseconds since the Unix epoch: expiry times in both backends.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(label: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("llmcg-store-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn embedded_documents_round_trip_and_survive_reopening() {
        let dir = temp_dir("reopen");
        let store = Store::open(&dir, None).unwrap();
        assert_eq!(store.backend(), "embedded");
        store.put("notes", "a", b"one", None).unwrap();
        store.put("notes", "b", b"two", None).unwrap();
        store.put("notes", "a", b"uno", None).unwrap();
        store.put("other", "a", b"elsewhere", None).unwrap();
        drop(store);

        let store = Store::open(&dir, None).unwrap();
        assert_eq!(
            store.get("notes", "a").unwrap().as_deref(),
            Some(&b"uno"[..])
        );
        let mut listed = store.list("notes").unwrap();
        listed.sort();
        assert_eq!(
            listed,
            vec![("a".into(), b"uno".to_vec()), ("b".into(), b"two".to_vec())]
        );
        assert!(store.delete("notes", "a").unwrap());
        assert!(!store.delete("notes", "a").unwrap());
        assert_eq!(store.get("notes", "a").unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_expired_document_is_gone() {
        let dir = temp_dir("ttl");
        let store = Store::open(&dir, None).unwrap();
        store
            .put("notes", "short", b"x", Some(Duration::from_millis(1)))
            .unwrap();
        store
            .put("notes", "long", b"y", Some(Duration::from_secs(3600)))
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(store.get("notes", "short").unwrap(), None);
        assert_eq!(store.list("notes").unwrap().len(), 1);
        assert!(store.get("notes", "long").unwrap().is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_data_dir_that_cannot_be_made_is_named_in_the_error() {
        let file = temp_dir("file");
        std::fs::write(&file, b"not a directory").unwrap();
        let err = Store::open(&file.join("data"), None).err().unwrap();
        assert!(err.contains(&file.display().to_string()), "{err}");
        let _ = std::fs::remove_file(&file);
    }
}
