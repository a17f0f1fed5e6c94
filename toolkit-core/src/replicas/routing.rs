//! Which node serves a statement sent through a `Database`: the routing half of read replicas.

use std::sync::Arc;

use super::{ConsistencyToken, NodeStatus, Replicas, Tracker, WriteMark};
use crate::database::Route;
use crate::pool::Lent;
use crate::{Database, Error, Result};

impl Database {
    /// This database with every statement sent to the primary, reads included (for a read that
    /// must see the latest data whatever was written through which handle). Shares the pool
    /// and the read-your-writes record of `self`.
    pub fn primary(&self) -> Database {
        Database {
            route: Route::Primary,
            ..self.clone()
        }
    }

    /// This database with every statement sent to a replica (a healthy one when there is one),
    /// writes included: they fail with [`Error::is_read_only`]. Without replicas configured,
    /// its calls fail with `InvalidSettings` naming `replicas`.
    pub fn replica(&self) -> Database {
        Database {
            route: Route::Replica,
            ..self.clone()
        }
    }

    /// A handle of its own for read-your-writes, sharing the pools: its reads wait only for
    /// the writes made through it (and its clones). Use one per request or user session;
    /// carry it across requests with [`consistency_token`](Database::consistency_token) and
    /// [`with_consistency`](Database::with_consistency).
    pub fn session(&self) -> Database {
        Database {
            route: Route::Auto,
            tracker: Arc::default(),
            ..self.clone()
        }
    }

    /// The primary's WAL position after every write made through this handle, for
    /// [`with_consistency`](Database::with_consistency) in a later request (e.g. from a
    /// cookie); `None` when nothing was written through it. May ask the primary (one round
    /// trip) when a write ended since it last did.
    pub async fn consistency_token(&self) -> Result<Option<ConsistencyToken>> {
        let position = self.read_position().await?;
        Ok((position > 0).then_some(ConsistencyToken(position)))
    }

    /// A handle of its own (like [`session`](Database::session)) whose reads wait for
    /// `token`'s writes to reach the replica that serves them.
    pub fn with_consistency(&self, token: ConsistencyToken) -> Database {
        Database {
            route: Route::Auto,
            tracker: Arc::new(Tracker::starting_at(token.0)),
            ..self.clone()
        }
    }

    /// The primary and each replica: health, lag, reads served and pool state.
    pub fn node_status(&self) -> Vec<NodeStatus> {
        let replicas = self.inner.replicas.as_deref();
        let mut nodes = vec![NodeStatus {
            address: self.settings().host.clone(),
            primary: true,
            healthy: true,
            lag: None,
            reads: replicas.map_or(0, |r| {
                r.fallbacks.load(std::sync::atomic::Ordering::Relaxed)
            }),
            pool: self.current_pool().map(|pool| pool.status()),
        }];
        nodes.extend(replicas.map(Replicas::status).unwrap_or_default());
        nodes
    }

    /// A connection for one read statement: on a replica when this handle reads there, else
    /// on the primary; and whether the primary may serve the read again should the replica
    /// go under it (a replica chosen by routing, not by `replica()`).
    pub(crate) async fn read_lent(&self) -> Result<(Lent, bool)> {
        match (self.route, self.inner.replicas.as_ref()) {
            (Route::Primary, _) | (Route::Auto, None) => Ok((self.primary_lent().await?, false)),
            (Route::Replica, None) => Err(self.no_replicas()),
            (Route::Replica, Some(replicas)) => {
                replicas.start_probing();
                let lent = match replicas.lease(0, true).await {
                    Some(lent) => lent,
                    None => replicas.any_pool().await?.get_for_statement().await?,
                };
                Ok((lent, false))
            }
            (Route::Auto, Some(replicas)) => {
                replicas.start_probing();
                let position = self.read_position().await?;
                match replicas.lease(position, false).await {
                    Some(lent) => Ok((lent, true)),
                    None => Ok((self.fallback_lent().await?, false)),
                }
            }
        }
    }

    /// The primary's connection for a read no replica could serve, counted as such.
    pub(crate) async fn fallback_lent(&self) -> Result<Lent> {
        if let Some(replicas) = &self.inner.replicas {
            replicas
                .fallbacks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.primary_lent().await
    }

    /// A connection for one write statement, and the mark that makes this handle's later
    /// reads wait for it.
    pub(crate) async fn write_lent(&self) -> Result<(Lent, Option<WriteMark>)> {
        if self.route == Route::Replica {
            return Ok((self.read_lent().await?.0, None));
        }
        let mark = self.write_mark();
        Ok((self.primary_lent().await?, mark))
    }

    /// A mark for a write about to run on the primary, when there are replicas to wait on.
    pub(crate) fn write_mark(&self) -> Option<WriteMark> {
        self.inner
            .replicas
            .as_ref()
            .map(|_| WriteMark::new(&self.tracker))
    }

    pub(crate) fn replicas(&self) -> Result<&Replicas> {
        self.inner
            .replicas
            .as_deref()
            .ok_or_else(|| self.no_replicas())
    }

    fn no_replicas(&self) -> Error {
        Error::settings("replicas", "no replica is configured for this database")
    }

    async fn primary_lent(&self) -> Result<Lent> {
        self.get_pool().await?.get_for_statement().await
    }

    /// The position this handle's reads wait for: asked of the primary when a write ended
    /// since it last was (writes pay nothing; only the first read after them does).
    async fn read_position(&self) -> Result<u64> {
        let (needed, epoch, known) = self.tracker.needs_position();
        if !needed {
            return Ok(known);
        }
        let lent = self.primary_lent().await?;
        let rows = lent
            .connection()
            .simple_query("SELECT pg_current_wal_flush_lsn()::text")
            .await?;
        let position = super::lsn_of(&rows).unwrap_or(0);
        Ok(self.tracker.covered(position, epoch))
    }
}
