//! A subscriber that records every span (name, parent, fields as first recorded and as
//! recorded later) and every event, for tests that assert what the toolkit traces.
//!
//! One global subscriber routes to the recorder the current thread installed: with a
//! subscriber per thread (`set_default`), tests running in parallel lost events, since the
//! interest each callsite caches is shared by all threads.
#![allow(dead_code)] // each test binary uses part of it

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// One span as the subscriber saw it.
#[derive(Debug, Clone)]
pub struct SpanRec {
    pub name: &'static str,
    pub target: String,
    pub parent: Option<&'static str>,
    /// Every field given a value, at creation or later; a field recorded twice keeps both
    /// values, in order.
    pub fields: BTreeMap<String, Vec<String>>,
}

impl SpanRec {
    /// The field's one value; panics when it was never recorded or recorded twice.
    pub fn field(&self, name: &str) -> &str {
        match self.fields.get(name).map(Vec::as_slice) {
            Some([value]) => value,
            other => panic!("span {} field {name}: {other:?} in {:#?}", self.name, self),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }
}

/// One event.
#[derive(Debug, Clone)]
pub struct EventRec {
    pub level: Level,
    pub target: String,
    /// The span it happened in, if any.
    pub span: Option<&'static str>,
    pub fields: BTreeMap<String, String>,
}

impl EventRec {
    pub fn message(&self) -> &str {
        self.fields.get("message").map_or("", String::as_str)
    }
}

#[derive(Debug, Default)]
struct Log {
    spans: Vec<SpanRec>,
    events: Vec<EventRec>,
}

/// The recording layer; clones share what was recorded.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Log>>);

/// Whose log a span is in and where, kept in the span's extensions.
struct Index(Recorder, usize);

thread_local! {
    static CURRENT: std::cell::RefCell<Option<Recorder>> = const { std::cell::RefCell::new(None) };
}

fn current() -> Option<Recorder> {
    CURRENT.with(|current| current.borrow().clone())
}

/// Stops the thread's recording when dropped.
pub struct Installed(());

impl Drop for Installed {
    fn drop(&mut self) {
        CURRENT.with(|current| current.borrow_mut().take());
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, Vec<String>>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .entry(field.name().to_owned())
            .or_default()
            .push(format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .entry(field.name().to_owned())
            .or_default()
            .push(value.to_owned());
    }
}

struct EventFields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for EventFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// The global layer: records into the current thread's recorder, if any.
struct Router;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Router {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let Some(recorder) = current() else { return };
        let Some(span) = ctx.span(id) else { return };
        let parent = span.parent().map(|p| p.name());
        let mut log = recorder.0.lock().unwrap();
        span.extensions_mut()
            .insert(Index(recorder.clone(), log.spans.len()));
        log.spans.push(SpanRec {
            name: attrs.metadata().name(),
            target: attrs.metadata().target().to_owned(),
            parent,
            fields,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let extensions = span.extensions();
        let Some(Index(recorder, index)) = extensions.get::<Index>() else {
            return;
        };
        let index = *index;
        let mut log = recorder.0.lock().unwrap();
        values.record(&mut Fields(&mut log.spans[index].fields));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(recorder) = current() else { return };
        let mut fields = BTreeMap::new();
        event.record(&mut EventFields(&mut fields));
        let span = ctx.event_span(event).map(|s| s.name());
        recorder.0.lock().unwrap().events.push(EventRec {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            span,
            fields,
        });
    }
}

impl Recorder {
    /// Records what this thread traces until the guard is dropped.
    pub fn install(&self) -> Installed {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            let subscriber = tracing_subscriber::registry().with(Router);
            tracing::subscriber::set_global_default(subscriber).unwrap();
        });
        CURRENT.with(|current| *current.borrow_mut() = Some(self.clone()));
        Installed(())
    }

    pub fn spans(&self) -> Vec<SpanRec> {
        self.0.lock().unwrap().spans.clone()
    }

    pub fn events(&self) -> Vec<EventRec> {
        self.0.lock().unwrap().events.clone()
    }

    /// Spans of the toolkit named `name`.
    pub fn spans_named(&self, name: &str) -> Vec<SpanRec> {
        self.spans()
            .into_iter()
            .filter(|s| s.name == name && s.target == "toolkit")
            .collect()
    }

    /// Panics if `needle` appears anywhere: a span's field, an event's field or message.
    pub fn assert_never_shows(&self, needle: &str) {
        let log = self.0.lock().unwrap();
        for span in &log.spans {
            for (name, values) in &span.fields {
                for value in values {
                    assert!(
                        !value.contains(needle),
                        "span {} field {name} shows {needle:?}: {value}",
                        span.name
                    );
                }
            }
        }
        for event in &log.events {
            for (name, value) in &event.fields {
                assert!(
                    !value.contains(needle),
                    "event field {name} shows {needle:?}: {value}"
                );
            }
        }
    }
}
