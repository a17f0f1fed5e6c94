//! A repository call's span: made before the checkout (so a wait for the pool, or its timeout,
//! is part of the call's time), a child of the transaction's span when the call runs in one,
//! and handed to the session, which records on it what its statements do.

use super::executor::ExecutorRef;
use crate::observe::{Op, OpSpan};
use crate::pool::Session;
use crate::Result;

impl<'a> ExecutorRef<'a> {
    /// [`acquire`](ExecutorRef::acquire), its session reporting to `op`'s span.
    pub(crate) async fn session(self, op: Op<'_>) -> Result<Session<'a>> {
        let span = op.span(self.parent());
        let acquired = self.acquire(op.intent()).await;
        traced(acquired, span)
    }

    /// [`acquire_exclusive`](ExecutorRef::acquire_exclusive), its session reporting to `op`'s
    /// span.
    pub(crate) async fn session_exclusive(self, op: Op<'_>) -> Result<Session<'a>> {
        let span = op.span(self.parent());
        let acquired = self.acquire_exclusive().await;
        traced(acquired, span)
    }

    fn parent(&self) -> Option<&'a OpSpan> {
        match *self {
            ExecutorRef::Transaction(tx) => Some(tx.span()),
            _ => None,
        }
    }
}

fn traced<'a>(acquired: Result<Session<'a>>, span: OpSpan) -> Result<Session<'a>> {
    match acquired {
        Ok(session) => Ok(session.traced(span)),
        Err(err) => {
            span.record_error(&err);
            Err(err)
        }
    }
}
