//! A bounded, per-connection cache of prepared statements.
//!
//! Bounded because an unbounded cache (a known leak in a peer crate) grows with every distinct
//! SQL text a long-lived connection sees; least recently used statements are evicted, and the
//! server-side statement is closed when the driver drops its `Statement`.

use std::sync::Mutex;

use lru::LruCache;
use tokio_postgres::{Client, Statement};

use crate::Result;

/// Prepared statements of one connection, keyed by SQL text.
pub(crate) struct StatementCache {
    /// `None` when caching is disabled (`statement_cache_size = 0`).
    entries: Option<Mutex<LruCache<Box<str>, Statement>>>,
    capacity: usize,
}

impl StatementCache {
    pub(crate) fn new(capacity: usize) -> Self {
        StatementCache {
            // Unbounded to the LRU (which would allocate a bounded cache's capacity up front,
            // per connection); the bound is enforced on insert instead.
            entries: (capacity > 0).then(|| Mutex::new(LruCache::unbounded())),
            capacity,
        }
    }

    /// The statement for `sql`, prepared on `client` on first use.
    pub(crate) async fn prepare(&self, client: &Client, sql: &str) -> Result<Statement> {
        let Some(entries) = &self.entries else {
            return Ok(client.prepare(sql).await?);
        };
        if let Some(statement) = entries
            .lock()
            .ok()
            .and_then(|mut cache| cache.get(sql).cloned())
        {
            return Ok(statement);
        }
        let statement = client.prepare(sql).await?;
        if let Ok(mut cache) = entries.lock() {
            put_bounded(&mut cache, sql, statement.clone(), self.capacity);
        }
        Ok(statement)
    }

    /// Forgets `sql`, e.g. after the server said its plan is stale.
    pub(crate) fn evict(&self, sql: &str) {
        if let Some(mut cache) = self.entries.as_ref().and_then(|e| e.lock().ok()) {
            cache.pop(sql);
        }
    }

    /// Number of cached statements.
    pub(crate) fn len(&self) -> usize {
        self.entries
            .as_ref()
            .and_then(|e| e.lock().ok())
            .map_or(0, |cache| cache.len())
    }
}

/// Inserts into an LRU kept unbounded (so that its capacity is never allocated up front),
/// evicting the least recently used entries beyond `capacity`.
pub(crate) fn put_bounded<V>(
    cache: &mut LruCache<Box<str>, V>,
    key: &str,
    value: V,
    capacity: usize,
) {
    cache.put(key.into(), value);
    while cache.len() > capacity {
        cache.pop_lru();
    }
}
