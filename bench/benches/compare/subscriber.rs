//! `BENCH_SUBSCRIBER=record`: a global subscriber that records what the toolkit traces, to
//! measure the spans' cost when someone listens. Every span's fields are formatted into a
//! string kept with the span (what a formatting or exporting layer does), events are
//! formatted and counted; nothing is written out.

use std::fmt::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Spans and events seen, printed at the end so the work cannot be optimised away.
pub static SPANS: AtomicU64 = AtomicU64::new(0);
pub static EVENTS: AtomicU64 = AtomicU64::new(0);

struct Formatted(String);

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

struct Recording;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recording {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut text = String::new();
        attrs.record(&mut Fields(&mut text));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Formatted(text));
        }
        SPANS.fetch_add(1, Ordering::Relaxed);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(Formatted(text)) = span.extensions_mut().get_mut::<Formatted>() {
                values.record(&mut Fields(text));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut text = String::new();
        event.record(&mut Fields(&mut text));
        EVENTS.fetch_add(1, Ordering::Relaxed);
    }
}

/// The recording subscriber, for a scope of its own (`BENCH_ONLY=tracing`).
pub fn recording() -> tracing::Dispatch {
    tracing::Dispatch::new(tracing_subscriber::registry().with(Recording))
}

/// Installs the recording subscriber for the whole process when `BENCH_SUBSCRIBER=record`;
/// returns whether it did.
pub fn install_from_env() -> Result<bool, Box<dyn std::error::Error>> {
    match std::env::var("BENCH_SUBSCRIBER").as_deref() {
        Ok("record") => {
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(Recording),
            )?;
            Ok(true)
        }
        Ok("") | Err(_) => Ok(false),
        Ok(other) => {
            Err(format!("BENCH_SUBSCRIBER={other:?}: expected `record` or nothing").into())
        }
    }
}
