//! `Session`: the one path every statement of the toolkit takes to the server.
//!
//! Whoever sends a statement (a repository call, a transaction's query methods, a savepoint, a
//! bulk insert, a COPY, `commit`) does it through a session over the connection it holds. The
//! session applies the rules of running a statement, in one place:
//!
//! - the connection's statement cache (prepared once per connection, re-prepared once when the
//!   server says a cached plan is stale, outside transactions);
//! - the `query_timeout` deadline: when it expires the connection is abandoned for good (never
//!   handed out again, whatever the caller does next) and, when no other statement shares it,
//!   the server is asked to cancel the statement;
//! - the lost-connection mark: a statement that failed because the connection is gone abandons
//!   it, so it is not handed to the next caller in the window before the socket is seen closed;
//! - the in-doubt mark ([`InDoubt`]) for work that opens a transaction or session state;
//! - pipelining: a lent connection counts the statements running on it;
//! - tracing: the operation's span records the first failure (`error.type`) and, when the
//!   settings allow, the SQL text; a statement slower than `slow_statement_threshold` emits
//!   an event in it.

use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures_util::TryStreamExt;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, RowStream, SimpleQueryMessage, Statement};

use super::lending::Lent;
use super::manager::Marks;
use super::Connection;
use crate::observe::{self, OpSpan};
use crate::{Error, Result, SqlState};

/// The connection a session runs on.
// Lives on the stack for one call; boxing the owned connection would cost an allocation per call.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Lease<'a> {
    /// Checked out for this session alone.
    Owned(Connection),
    /// Lent to one single statement; others may be pipelined beside it (`lending.rs`).
    Lent(Lent),
    /// Someone else's checkout: a `Connection` the user holds, or a transaction's.
    Borrowed(&'a Connection),
    /// A plain driver client: no cache, no deadline, no marks.
    Client(&'a Client),
}

/// See the module documentation.
pub(crate) struct Session<'a> {
    lease: Lease<'a>,
    /// Inside a transaction block the caller controls: a failed statement has aborted it, so
    /// nothing is retried.
    in_transaction: bool,
    /// A write through a `Database` with replicas: when the session ends, that handle's next
    /// read waits for it on the replica (read-your-writes).
    write_mark: Option<crate::replicas::WriteMark>,
    /// A read on a replica chosen by routing: when the replica goes under it, the primary of
    /// this `Database` runs it again (see `on_primary`).
    fallback: Option<&'a crate::Database>,
    /// The span of the operation this session serves.
    trace: Trace<'a>,
}

/// A session's span: the operation's own, or its transaction's.
enum Trace<'a> {
    Own(OpSpan),
    Of(&'a OpSpan),
}

impl<'a> Session<'a> {
    pub(crate) fn owned(conn: Connection) -> Self {
        Session {
            lease: Lease::Owned(conn),
            in_transaction: false,
            write_mark: None,
            fallback: None,
            trace: Trace::Own(OpSpan::none()),
        }
    }

    pub(crate) fn lent(lent: Lent) -> Self {
        Session {
            lease: Lease::Lent(lent),
            in_transaction: false,
            write_mark: None,
            fallback: None,
            trace: Trace::Own(OpSpan::none()),
        }
    }

    pub(crate) fn borrowed(conn: &'a Connection) -> Self {
        Session {
            lease: Lease::Borrowed(conn),
            in_transaction: false,
            write_mark: None,
            fallback: None,
            trace: Trace::Own(OpSpan::none()),
        }
    }

    /// On a transaction's connection.
    pub(crate) fn in_transaction(conn: &'a Connection) -> Self {
        Session {
            lease: Lease::Borrowed(conn),
            in_transaction: true,
            write_mark: None,
            fallback: None,
            trace: Trace::Own(OpSpan::none()),
        }
    }

    pub(crate) fn client_only(client: &'a Client) -> Self {
        Session {
            lease: Lease::Client(client),
            in_transaction: false,
            write_mark: None,
            fallback: None,
            trace: Trace::Own(OpSpan::none()),
        }
    }

    /// Records what the session's statements do on `span`, which learns where they go.
    pub(crate) fn traced(mut self, span: OpSpan) -> Self {
        self.record_endpoint(&span);
        self.trace = Trace::Own(span);
        self
    }

    /// Records what the session's statements do on a span someone else owns (a
    /// transaction's).
    pub(crate) fn traced_in(mut self, span: &'a OpSpan) -> Self {
        self.trace = Trace::Of(span);
        self
    }

    /// Records on `span` where this session's connection goes.
    pub(crate) fn record_endpoint(&self, span: &OpSpan) {
        if let Some(conn) = self.connection() {
            span.record_endpoint(&conn.pg().pool.observe.endpoint);
        }
    }

    fn span(&self) -> &OpSpan {
        match &self.trace {
            Trace::Own(span) => span,
            Trace::Of(span) => span,
        }
    }

    pub(crate) fn with_write_mark(mut self, mark: Option<crate::replicas::WriteMark>) -> Self {
        self.write_mark = mark;
        self
    }

    pub(crate) fn with_fallback(mut self, database: Option<&'a crate::Database>) -> Self {
        self.fallback = database;
        self
    }

    /// For a read that failed on a replica because the replica went (the connection lost, a
    /// server shutting down): a session on the primary to run it again, in the same span.
    /// Reads change nothing, so running one twice is safe; without this, each connection
    /// open to a replica that stops would fail the read running on it.
    async fn on_primary(&self, err: &Error) -> Option<Session<'_>> {
        let database = self.fallback.filter(|_| err.is_connection_lost())?;
        let lent = database.fallback_lent().await.ok()?;
        Some(Session::lent(lent).traced_in(self.span()))
    }

    /// `outcome` of a read on this session; when it failed as `on_primary` says, what
    /// `again` gives on the primary.
    pub(crate) async fn or_on_primary<'s, T, F>(
        &'s self,
        outcome: Result<T>,
        again: impl FnOnce(Session<'s>) -> F,
    ) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        match outcome {
            // Boxed: the second run's future would otherwise sit beside the first's in every
            // read's future, and those are deep already (a debug build overflowed its stack).
            Err(err) => match self.on_primary(&err).await {
                Some(primary) => Box::pin(again(primary)).await,
                None => Err(err),
            },
            done => done,
        }
    }

    pub(crate) fn lease(&self) -> &Lease<'a> {
        &self.lease
    }

    pub(crate) fn is_in_transaction(&self) -> bool {
        self.in_transaction
    }

    pub(crate) fn connection(&self) -> Option<&Connection> {
        match &self.lease {
            Lease::Owned(conn) => Some(conn),
            Lease::Lent(lent) => Some(lent.connection()),
            Lease::Borrowed(conn) => Some(conn),
            Lease::Client(_) => None,
        }
    }

    /// The driver client, for what the session does not wrap (COPY streams).
    pub(crate) fn client(&self) -> &Client {
        match &self.lease {
            Lease::Owned(conn) => conn,
            Lease::Lent(lent) => lent.connection(),
            Lease::Borrowed(conn) => conn,
            Lease::Client(client) => client,
        }
    }

    /// Marks the connection in doubt until [`InDoubt::settle`]; `None` for a plain client.
    pub(crate) fn in_doubt(&self) -> Option<InDoubt> {
        self.connection().map(InDoubt::set)
    }

    /// Prepares `sql` through the connection's statement cache.
    pub(crate) async fn prepare(&self, sql: &str) -> Result<Statement> {
        if self.unnamed() {
            return Err(Error::settings(
                "statement_mode",
                "prepare creates a named statement, which StatementMode::Unnamed never does",
            ));
        }
        self.guard(Some(sql), true, async {
            match self.connection() {
                Some(conn) => conn.statements().prepare(&conn.pg().client, sql).await,
                None => Ok(self.client().prepare(sql).await?),
            }
        })
        .await
    }

    /// Runs `sql` and maps each row as it arrives, so decoding overlaps the server still sending
    /// (and no `Vec<Row>` is held beside the result).
    pub(crate) async fn query_map<T>(
        &self,
        sql: &(impl AsStatement + ?Sized),
        params: &[&(dyn ToSql + Sync)],
        mut map: impl FnMut(Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let outcome = self.query_map_here(sql, params, &mut map).await;
        self.or_on_primary(outcome, |primary| async move {
            primary.query_map_here(sql, params, map).await
        })
        .await
    }

    async fn query_map_here<T>(
        &self,
        sql: &(impl AsStatement + ?Sized),
        params: &[&(dyn ToSql + Sync)],
        mut map: impl FnMut(Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.guard(text_of(sql), true, async {
            let mut stream = pin!(self.start(sql, params).await?);
            let mut out = Vec::new();
            while let Some(row) = stream.try_next().await? {
                out.push(map(row)?);
            }
            Ok(out)
        })
        .await
    }

    /// The rows of `sql`.
    pub(crate) async fn query(
        &self,
        sql: &(impl AsStatement + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        self.query_map(sql, params, Ok).await
    }

    /// Zero or one row; more is the driver's error, as with `Client::query_opt`.
    pub(crate) async fn query_opt(
        &self,
        sql: &(impl AsStatement + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        let outcome = self.query_opt_here(sql, params).await;
        self.or_on_primary(outcome, |primary| async move {
            primary.query_opt_here(sql, params).await
        })
        .await
    }

    async fn query_opt_here(
        &self,
        sql: &(impl AsStatement + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        self.guard(text_of(sql), true, async {
            if let Some(text) = self.unnamed_text(sql) {
                let typed = self.typed(text, params).await?;
                return Ok(self.client().query_typed_opt(text, &typed).await?);
            }
            let statement = self.statement(sql).await?;
            match self.client().query_opt(&statement, params).await {
                Err(err) if self.may_reprepare(&err, sql) => {
                    let statement = self.statement(sql).await?;
                    Ok(self.client().query_opt(&statement, params).await?)
                }
                other => Ok(other?),
            }
        })
        .await
    }

    /// Exactly one row; anything else is the driver's error, as with `Client::query_one`.
    pub(crate) async fn query_one(
        &self,
        sql: &(impl AsStatement + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row> {
        let outcome = self.query_one_here(sql, params).await;
        self.or_on_primary(outcome, |primary| async move {
            primary.query_one_here(sql, params).await
        })
        .await
    }

    async fn query_one_here(
        &self,
        sql: &(impl AsStatement + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row> {
        self.guard(text_of(sql), true, async {
            if let Some(text) = self.unnamed_text(sql) {
                let typed = self.typed(text, params).await?;
                return Ok(self.client().query_typed_one(text, &typed).await?);
            }
            let statement = self.statement(sql).await?;
            match self.client().query_one(&statement, params).await {
                Err(err) if self.may_reprepare(&err, sql) => {
                    let statement = self.statement(sql).await?;
                    Ok(self.client().query_one(&statement, params).await?)
                }
                other => Ok(other?),
            }
        })
        .await
    }

    /// Runs `sql` and returns the number of rows it affected.
    pub(crate) async fn execute(
        &self,
        sql: &(impl AsStatement + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64> {
        self.guard(text_of(sql), true, async {
            let mut stream = pin!(self.start(sql, params).await?);
            while stream.try_next().await?.is_some() {}
            Ok(stream.rows_affected().unwrap_or(0))
        })
        .await
    }

    /// Starts `sql` and returns its rows as they arrive; the deadline covers the start only.
    pub(crate) async fn stream(
        &self,
        sql: &(impl AsStatement + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<RowStream> {
        self.guard(text_of(sql), true, self.start(sql, params))
            .await
    }

    /// Several statements without parameters, in one simple-protocol message.
    pub(crate) async fn batch_execute(&self, sql: &str) -> Result<()> {
        self.guard(Some(sql), true, async {
            Ok(self.client().batch_execute(sql).await?)
        })
        .await
    }

    /// Like `Client::simple_query`.
    pub(crate) async fn simple_query(&self, sql: &str) -> Result<Vec<SimpleQueryMessage>> {
        self.guard(Some(sql), true, async {
            Ok(self.client().simple_query(sql).await?)
        })
        .await
    }

    /// Runs `operation` (statements sent through [`Session::client`]) under the same rules as
    /// the session's own statements; it is timed as a whole only by `query_timeout`, since it
    /// is not one statement.
    pub(crate) async fn run<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        self.guard(None, false, operation).await
    }

    /// The SQL text of `sql` when it must be sent unnamed (`StatementMode::Unnamed`); a
    /// statement the caller prepared is theirs to run.
    fn unnamed_text<'s>(&self, sql: &'s (impl AsStatement + ?Sized)) -> Option<&'s str> {
        match sql.source() {
            Source::Text(text) if self.unnamed() => Some(text),
            _ => None,
        }
    }

    /// The prepared statement for `sql`, from the cache when it is text.
    async fn statement(&self, sql: &(impl AsStatement + ?Sized)) -> Result<Statement> {
        match sql.source() {
            Source::Text(text) => match self.connection() {
                Some(conn) => conn.statements().prepare(&conn.pg().client, text).await,
                None => Ok(self.client().prepare(text).await?),
            },
            Source::Prepared(statement) => Ok(statement.clone()),
        }
    }

    /// Starts `sql`; a cached statement the server rejects as stale is prepared again and
    /// started once more (see `may_reprepare`).
    async fn start(
        &self,
        sql: &(impl AsStatement + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<RowStream> {
        if let Some(text) = self.unnamed_text(sql) {
            let typed = self.typed(text, params).await?;
            return Ok(self.client().query_typed_raw(text, typed).await?);
        }
        let statement = self.statement(sql).await?;
        match self
            .client()
            .query_raw(&statement, params.iter().copied())
            .await
        {
            Ok(stream) => Ok(stream),
            Err(err) if self.may_reprepare(&err, sql) => {
                let statement = self.statement(sql).await?;
                Ok(self
                    .client()
                    .query_raw(&statement, params.iter().copied())
                    .await?)
            }
            Err(err) => Err(Error::from(err)),
        }
    }

    /// A cached statement the server no longer accepts (its table was altered) is evicted, and
    /// prepared again and run once more unless we are inside a transaction, which the failure
    /// has already aborted.
    fn may_reprepare(
        &self,
        err: &tokio_postgres::Error,
        sql: &(impl AsStatement + ?Sized),
    ) -> bool {
        let Source::Text(text) = sql.source() else {
            return false;
        };
        if !is_stale_statement(err) {
            return false;
        }
        // Evicted either way, so the next use prepares it afresh.
        if let Some(conn) = self.connection() {
            conn.statements().evict(text);
        }
        !self.in_transaction
    }

    /// The deadline and the marks around one operation on the connection, and its tracing:
    /// the failure recorded on the session's span; for a statement (`timed`), its `text`
    /// recorded when the settings allow and its time checked against
    /// `slow_statement_threshold`. The span is not entered around the operation: wrapping
    /// every statement's future cost more (moving it once more) than anything it would show.
    async fn guard<T>(
        &self,
        text: Option<&str>,
        timed: bool,
        operation: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(conn) = self.connection() else {
            return self.traced_outcome(operation.await);
        };
        if conn.is_abandoned() {
            return self.traced_outcome(Err(abandoned_error()));
        }
        let observe = &conn.pg().pool.observe;
        let shown = text.filter(|_| observe.query_text);
        if let Some(text) = shown {
            self.span().record_text(text);
        }
        // No clock read when nothing would report it.
        let slow = observe
            .slow_statement
            .filter(|_| timed && observe::slow_statements_wanted());
        let started = slow.map(|_| Instant::now());
        let outcome = match conn.pg().limits.query {
            None => operation.await,
            Some(limit) => match tokio::time::timeout(limit, operation).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    // Marked before counting who else is on it (see `join_lent`): a cancel
                    // would hit whichever pipelined statement the backend is running.
                    let first = conn.abandon();
                    let alone = match &self.lease {
                        Lease::Lent(lent) => lent.alone(),
                        _ => true,
                    };
                    if first && alone {
                        conn.cancel_on_server();
                    }
                    Err(Error::Timeout {
                        operation: "query",
                        after: limit,
                    })
                }
            },
        };
        if let Lease::Lent(lent) = &self.lease {
            lent.touch();
        }
        // The server's FATAL message reaches the caller before the socket is seen closed; a
        // connection returned in that window would otherwise fail a second caller.
        if matches!(&outcome, Err(err) if err.is_connection_lost()) {
            conn.abandon();
        }
        if let (Some(started), Some(threshold)) = (started, slow) {
            let elapsed = started.elapsed();
            if elapsed >= threshold {
                self.span().slow_statement(elapsed, threshold, shown);
            }
        }
        self.traced_outcome(outcome)
    }

    /// Records a failure on the session's span.
    fn traced_outcome<T>(&self, outcome: Result<T>) -> Result<T> {
        if let Err(err) = &outcome {
            self.span().record_error(err);
        }
        outcome
    }
}

/// The SQL text of `sql`, when it is text.
pub(crate) fn text_of(sql: &(impl AsStatement + ?Sized)) -> Option<&str> {
    match sql.source() {
        Source::Text(text) => Some(text),
        Source::Prepared(_) => None,
    }
}

fn abandoned_error() -> Error {
    Error::Connection {
        message: "the connection was given up after a client-side timeout or a lost connection; \
                  nothing more is sent on it (a transaction on it is rolled back by the server)"
            .into(),
        source: None,
    }
}

/// "cached plan must not change result type" (0A000) or a statement the server lost (26000).
fn is_stale_statement(err: &tokio_postgres::Error) -> bool {
    match err.code() {
        Some(code) if *code == SqlState::INVALID_SQL_STATEMENT_NAME => true,
        Some(code) if *code == SqlState::FEATURE_NOT_SUPPORTED => err
            .as_db_error()
            .is_some_and(|db| db.message().contains("cached plan")),
        _ => false,
    }
}

/// A connection marked in doubt: it is discarded instead of reused if it comes back before
/// [`InDoubt::settle`] (a cancelled `BEGIN`/`COMMIT`, a bulk insert cut short). Shared by
/// transactions, savepoints and bulk inserts.
#[derive(Debug)]
#[must_use = "dropping the guard leaves the connection in doubt; call `settle` once the server confirmed"]
pub(crate) struct InDoubt(Arc<Marks>);

impl InDoubt {
    pub(crate) fn set(conn: &Connection) -> Self {
        let marks = conn.marks().clone();
        marks.in_doubt.store(true, Ordering::Release);
        InDoubt(marks)
    }

    /// The server confirmed the end of what was in doubt. An abandoned connection stays
    /// abandoned.
    pub(crate) fn settle(self) {
        self.0.in_doubt.store(false, Ordering::Release);
    }
}

/// SQL text (prepared through the statement cache) or a statement prepared by the caller.
///
/// Implemented for `str`, `String` and [`tokio_postgres::Statement`]: what the query methods
/// of [`Transaction`](crate::Transaction) take.
pub trait AsStatement: Sync + sealed::Sealed {
    #[doc(hidden)]
    fn source(&self) -> Source<'_>;
}

/// What an [`AsStatement`] is; not a public API.
#[doc(hidden)]
#[derive(Debug)]
pub enum Source<'a> {
    Text(&'a str),
    Prepared(&'a Statement),
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for str {}
    impl Sealed for String {}
    impl Sealed for tokio_postgres::Statement {}
}

impl AsStatement for str {
    fn source(&self) -> Source<'_> {
        Source::Text(self)
    }
}

impl AsStatement for String {
    fn source(&self) -> Source<'_> {
        Source::Text(self)
    }
}

impl AsStatement for Statement {
    fn source(&self) -> Source<'_> {
        Source::Prepared(self)
    }
}
