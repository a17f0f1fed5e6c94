//! The `tracing` version of the observability API (see `mod.rs`).
//!
//! Spans are at DEBUG: a service logging at INFO pays nothing for them (the callsite's
//! interest cache rejects them before any field is evaluated), and one that exports traces
//! opts in with `toolkit=debug` on that layer. Events are WARN when something went wrong
//! (connect failures and retries, pool timeouts, lost or doubtful connections, slow
//! statements), INFO for a transaction rerun, DEBUG for routine discards.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::field::{Empty, Field, Value};
use tracing::Span;

use super::{error_type, Endpoint, Op, Operation, SpanName, Table, TARGET};
use crate::retry::Next;
use crate::Error;

/// The span of one operation (or transaction), and what it recorded once already.
#[derive(Debug)]
pub(crate) struct OpSpan {
    span: Span,
    /// Only the first statement's text is recorded: an operation of several statements is
    /// known by what it started with, and a subscriber that appends records would repeat it.
    text_done: AtomicBool,
    /// Only the first failure: nested steps of one operation report the same error.
    error_done: AtomicBool,
}

/// One span per operation kind: a span's name is static in `tracing`, so each name is a
/// callsite of its own. `otel.name` carries the OpenTelemetry name with the table.
macro_rules! op_span {
    ($name:literal, $parent:expr, $op:expr) => {
        tracing::debug_span!(
            target: TARGET,
            parent: $parent,
            $name,
            otel.name = $op.operation_name().map(|operation| display(SpanName {
                operation,
                table: $op.table,
            })),
            otel.kind = "client",
            db.system.name = "postgresql",
            db.operation.name = $op.operation_name(),
            db.collection.name = $op.table.map(|table| display(Table(table))),
            db.namespace = Empty,
            server.address = Empty,
            server.port = Empty,
            db.query.text = Empty,
            error.type = Empty,
            db.response.status_code = Empty,
        )
    };
}

impl Op<'_> {
    /// The operation's span: a child of `parent` (a transaction's span) when given, else of
    /// the current span.
    pub(crate) fn span(&self, parent: Option<&OpSpan>) -> OpSpan {
        // Evaluated only when the span is enabled.
        let parent = || {
            parent
                .and_then(|p| p.span.id())
                .or_else(|| Span::current().id())
        };
        OpSpan::new(match self.operation {
            Some(Operation::Select) => op_span!("SELECT", parent(), self),
            Some(Operation::Insert) => op_span!("INSERT", parent(), self),
            Some(Operation::Update) => op_span!("UPDATE", parent(), self),
            Some(Operation::Delete) => op_span!("DELETE", parent(), self),
            Some(Operation::Copy) => op_span!("COPY", parent(), self),
            None => op_span!("postgresql", parent(), self),
        })
    }
}

impl OpSpan {
    fn new(span: Span) -> Self {
        OpSpan {
            span,
            text_done: AtomicBool::new(false),
            error_done: AtomicBool::new(false),
        }
    }

    /// No span: statements the toolkit sends for itself outside any operation.
    pub(crate) fn none() -> Self {
        OpSpan::new(Span::none())
    }

    /// A transaction, from `BEGIN` to its end; the statements run in it are its children.
    pub(crate) fn transaction() -> Self {
        let span = tracing::debug_span!(
            target: TARGET,
            "transaction",
            otel.kind = "client",
            db.system.name = "postgresql",
            db.namespace = Empty,
            server.address = Empty,
            server.port = Empty,
            error.type = Empty,
            db.response.status_code = Empty,
        );
        let span = OpSpan::new(span);
        // `BEGIN`, `COMMIT` and savepoints say nothing a transaction's name does not.
        span.text_done.store(true, Ordering::Relaxed);
        span
    }

    /// Where the operation's connection goes, in one record: a subscriber does its work
    /// (find the span, format) once instead of once per field.
    pub(crate) fn record_endpoint(&self, endpoint: &Endpoint) {
        let Some(metadata) = self.span.metadata() else {
            return;
        };
        if self.span.is_disabled() {
            return;
        }
        let fields = metadata.fields();
        let (Some(namespace), Some(address), Some(port)) = (
            fields.field("db.namespace"),
            fields.field("server.address"),
            fields.field("server.port"),
        ) else {
            return;
        };
        let values: [(&Field, Option<&dyn Value>); 3] = [
            (&namespace, Some(&endpoint.namespace.as_str())),
            (&address, Some(&endpoint.address.as_str())),
            (&port, endpoint.port.as_ref().map(|p| p as &dyn Value)),
        ];
        self.span.record_all(&fields.value_set(&values));
    }

    /// The first failure of the operation, as `error.type` (and the SQLSTATE as
    /// `db.response.status_code` when the server reported one).
    pub(crate) fn record_error(&self, err: &Error) {
        if self.span.is_disabled() || self.error_done.swap(true, Ordering::Relaxed) {
            return;
        }
        self.span.record("error.type", error_type(err));
        if let Some(code) = err.code() {
            self.span.record("db.response.status_code", code.code());
        }
    }

    /// `db.query.text`, once; the caller checked that the settings allow it.
    pub(crate) fn record_text(&self, text: &str) {
        if self.span.is_disabled() || self.text_done.swap(true, Ordering::Relaxed) {
            return;
        }
        self.span.record("db.query.text", text);
    }

    /// A statement ran for `elapsed`, at least the `slow_statement_threshold`.
    pub(crate) fn slow_statement(
        &self,
        elapsed: Duration,
        threshold: Duration,
        text: Option<&str>,
    ) {
        let _entered = self.span.enter();
        tracing::warn!(
            target: TARGET,
            elapsed = ?elapsed,
            threshold = ?threshold,
            db.query.text = text,
            "slow statement: ran for {elapsed:?}, over the slow_statement_threshold of {threshold:?}"
        );
    }
}

/// A connect attempt of `ping_postgres` (and so `init_db`) failed and will be retried.
pub(crate) fn connect_retry(next: &Next, target: &dyn Display, error: &dyn Display) {
    tracing::warn!(
        target: TARGET,
        attempt = next.failed,
        attempts = next.attempts,
        delay = ?next.delay,
        server = %target,
        error = %error,
        "cannot reach {target} (attempt {} of {}): {error}; retrying in {:?}",
        next.failed,
        next.attempts,
        next.delay,
    );
}

/// `run_in_transaction` runs its body again after a serialization failure or deadlock.
pub(crate) fn transaction_retry(next: &Next, error: &Error) {
    tracing::info!(
        target: TARGET,
        attempt = next.failed,
        attempts = next.attempts,
        delay = ?next.delay,
        error.type = error_type(error),
        "transaction attempt {} of {} failed with SQLSTATE {}; running it again in {:?}",
        next.failed,
        next.attempts,
        error_type(error),
        next.delay,
    );
}

/// A checkout gave up after `pool_timeout`.
pub(crate) fn pool_timeout(target: &str, waited: Duration, cause: Option<&dyn Display>) {
    tracing::warn!(
        target: TARGET,
        server = target,
        waited = ?waited,
        error = cause.map(display),
        "timed out after {waited:?} waiting for a pooled connection to {target}",
    );
}

/// A pooled connection could not be opened (the pool retries it by itself).
pub(crate) fn connect_failed(target: &str, error: &dyn Display) {
    tracing::warn!(
        target: TARGET,
        server = target,
        error = %error,
        "cannot open a pooled connection to {target}: {error}",
    );
}

/// The pool threw a connection away instead of reusing it. `trouble`: it was lost, abandoned
/// after a client-side timeout, or left in doubt; otherwise it had merely expired or its pool
/// was closed.
pub(crate) fn discarded(target: &str, reason: &'static str, trouble: bool) {
    if trouble {
        tracing::warn!(
            target: TARGET,
            server = target,
            reason,
            "discarded a pooled connection to {target} ({reason})",
        );
    } else {
        tracing::debug!(
            target: TARGET,
            server = target,
            reason,
            "discarded a pooled connection to {target} ({reason})",
        );
    }
}

/// Whether a slow statement would be reported: asked before timing one, so that a process
/// without a subscriber for the toolkit's warnings does not read the clock for nothing.
pub(crate) fn slow_statements_wanted() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::WARN)
}
