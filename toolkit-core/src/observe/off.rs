//! Without the `tracing` feature: the same API as `on.rs`, doing nothing, so every call
//! compiles away.

use std::fmt::Display;
use std::time::Duration;

use super::{Endpoint, Op};
use crate::retry::Next;
use crate::Error;

#[derive(Debug)]
pub(crate) struct OpSpan;

impl Op<'_> {
    #[inline(always)]
    pub(crate) fn span(&self, _parent: Option<&OpSpan>) -> OpSpan {
        OpSpan
    }
}

impl OpSpan {
    #[inline(always)]
    pub(crate) fn none() -> Self {
        OpSpan
    }

    #[inline(always)]
    pub(crate) fn transaction() -> Self {
        OpSpan
    }

    #[inline(always)]
    pub(crate) fn record_endpoint(&self, _endpoint: &Endpoint) {}

    #[inline(always)]
    pub(crate) fn record_error(&self, _err: &Error) {}

    #[inline(always)]
    pub(crate) fn record_text(&self, _text: &str) {}

    #[inline(always)]
    pub(crate) fn slow_statement(&self, _: Duration, _: Duration, _: Option<&str>) {}
}

#[inline(always)]
pub(crate) fn connect_retry(_next: &Next, _target: &dyn Display, _error: &dyn Display) {}

#[inline(always)]
pub(crate) fn transaction_retry(_next: &Next, _error: &Error) {}

#[inline(always)]
pub(crate) fn pool_timeout(_target: &str, _waited: Duration, _cause: Option<&dyn Display>) {}

#[inline(always)]
pub(crate) fn connect_failed(_target: &str, _error: &dyn Display) {}

#[inline(always)]
pub(crate) fn discarded(_target: &str, _reason: &'static str, _trouble: bool) {}

/// Spans and events are compiled out: nothing is timed for them.
#[inline(always)]
pub(crate) fn slow_statements_wanted() -> bool {
    false
}
