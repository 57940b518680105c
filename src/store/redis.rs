//! The Redis backend (`REDIS_URL`): documents as plain Redis strings under
//! `llmcallgateway:<space>:<id>` with `PX` for a time to live. Blocking connections from the
//! `redis` crate (no async runtime), kept in a small idle pool; a connection that failed is
//! dropped and the next operation connects again, so the gateway recovers by itself when
//! Redis returns. Every operation is bounded by [`TIMEOUT`]: a Redis that hangs costs a
//! request that long, never a worker forever.

use std::sync::Mutex;
use std::time::Duration;

use redis::{Client, Connection, RedisResult};

use super::StoreError;
use crate::config::masked_url;

/// The prefix of every key the gateway writes.
pub const PREFIX: &str = "llmcallgateway";

/// Connect, read and write timeout of each Redis operation.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Idle connections kept for reuse; more are opened under load and closed after use.
const IDLE: usize = 32;

pub struct Redis {
    client: Client,
    /// For error texts: the URL with its password masked.
    shown: String,
    idle: Mutex<Vec<Connection>>,
}

impl Redis {
    pub(super) fn new(url: &str) -> Result<Redis, String> {
        let shown = masked_url(url);
        let client = Client::open(url).map_err(|e| format!("REDIS_URL {shown}: {e}"))?;
        Ok(Redis {
            client,
            shown,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The key of a document.
    pub fn key(space: &str, id: &str) -> String {
        format!("{PREFIX}:{space}:{id}")
    }

    /// Runs `work` on a connection (an idle one, or a new one). A connection that saw an I/O
    /// error or a timeout is dropped; an error Redis answered (a script's, say) keeps it.
    pub fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut connection = match idle {
            Some(connection) => connection,
            None => self.connect()?,
        };
        match work(&mut connection) {
            Ok(value) => {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                if idle.len() < IDLE {
                    idle.push(connection);
                }
                Ok(value)
            }
            Err(e) => {
                let broken = e.is_io_error() || e.is_timeout() || e.is_connection_dropped();
                if !broken {
                    let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                    if idle.len() < IDLE {
                        idle.push(connection);
                    }
                }
                Err(StoreError(format!("Redis at {} failed: {e}", self.shown)))
            }
        }
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let unreachable = |e: redis::RedisError| {
            StoreError(format!("Redis at {} is unreachable: {e}", self.shown))
        };
        let connection = self
            .client
            .get_connection_with_timeout(TIMEOUT)
            .map_err(unreachable)?;
        connection
            .set_read_timeout(Some(TIMEOUT))
            .map_err(unreachable)?;
        connection
            .set_write_timeout(Some(TIMEOUT))
            .map_err(unreachable)?;
        Ok(connection)
    }

    pub(super) fn put(
        &self,
        space: &str,
        id: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let mut command = redis::cmd("SET");
        command.arg(Redis::key(space, id)).arg(value);
        if let Some(ttl) = ttl {
            command.arg("PX").arg(ttl.as_millis().max(1) as u64);
        }
        self.with(|c| command.query::<()>(c))
    }

    pub(super) fn get(&self, space: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| redis::cmd("GET").arg(Redis::key(space, id)).query(c))
    }

    pub(super) fn delete(&self, space: &str, id: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            redis::cmd("DEL")
                .arg(Redis::key(space, id))
                .query::<u64>(c)
                .map(|n| n > 0)
        })
    }

    /// SCAN over the space's keys, then their values; a key that expired in between is
    /// skipped.
    pub(super) fn list(&self, space: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let prefix = Redis::key(space, "");
        let pattern = format!("{}*", glob_escape(&prefix));
        self.with(|c| {
            let mut keys: Vec<String> = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(500)
                    .query(c)?;
                keys.extend(batch);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            let mut documents = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(500) {
                let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(chunk).query(c)?;
                for (key, value) in chunk.iter().zip(values) {
                    if let Some(value) = value {
                        documents.push((key[prefix.len()..].to_string(), value));
                    }
                }
            }
            Ok(documents)
        })
    }
}

/// `text` as a literal in a Redis glob pattern.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
