//! Failures are logged once per distinct failure, never with file content.
//! (Its own test binary: it installs a global `tracing` subscriber.)

#[path = "support/writers.rs"]
mod writers;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use spiffile_watch::{WatchOptions, Watched};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use writers::{Style, parse_payload, payload, setup, update};

const SECRET: &str = "SECRETMARKER";

/// Records every event as (level, rendered fields).
struct Recorder {
    events: Mutex<Vec<(Level, String)>>,
    next_id: AtomicU64,
}

struct Render(String);

impl Visit for Render {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut render = Render(String::new());
        event.record(&mut render);
        self.events
            .lock()
            .unwrap()
            .push((*event.metadata().level(), render.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

static RECORDER: Recorder = Recorder {
    events: Mutex::new(Vec::new()),
    next_id: AtomicU64::new(1),
};

struct Forward;

impl Subscriber for Forward {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        RECORDER.enabled(m)
    }
    fn new_span(&self, a: &Attributes<'_>) -> Id {
        RECORDER.new_span(a)
    }
    fn record(&self, i: &Id, r: &Record<'_>) {
        RECORDER.record(i, r)
    }
    fn record_follows_from(&self, a: &Id, b: &Id) {
        RECORDER.record_follows_from(a, b)
    }
    fn event(&self, e: &Event<'_>) {
        RECORDER.event(e)
    }
    fn enter(&self, i: &Id) {
        RECORDER.enter(i)
    }
    fn exit(&self, i: &Id) {
        RECORDER.exit(i)
    }
}

fn warnings() -> Vec<String> {
    RECORDER
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|(level, _)| *level == Level::WARN)
        .map(|(_, text)| text.clone())
        .collect()
}

fn wait_until(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(5), "timed out");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn one_warning_per_distinct_failure_and_no_content() {
    tracing::subscriber::set_global_default(Forward).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = setup(Style::RenameOver, dir.path(), "key.pem", &payload('A', 8));
    let watched = Watched::new(
        &path,
        parse_payload,
        WatchOptions::new().poll_interval(Duration::from_millis(50)),
    )
    .unwrap();

    // Failure 1: garbage (retried every 5, 10, 20, 40, 50, 50 ... ms).
    update(Style::RenameOver, &path, format!("{SECRET}-1").as_bytes());
    wait_until(|| watched.status().last_error.is_some());
    std::thread::sleep(Duration::from_millis(400));
    assert!(watched.reload().is_err());
    assert_eq!(warnings().len(), 1, "{:?}", warnings());

    // Failure 2: the file disappears.
    std::fs::remove_file(&path).unwrap();
    wait_until(|| warnings().len() == 2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(warnings().len(), 2, "{:?}", warnings());
    assert!(warnings()[1].contains("cannot read"), "{:?}", warnings());

    // Healed: no further warning.
    update(Style::RenameOver, &path, &payload('B', 8));
    wait_until(|| watched.status().last_error.is_none());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(warnings().len(), 2);
    for w in warnings() {
        assert!(w.contains("key.pem"), "warning does not name the file: {w}");
    }

    let all = RECORDER.events.lock().unwrap().clone();
    assert!(
        all.iter().all(|(_, text)| !text.contains(SECRET)),
        "file content in logs: {all:?}"
    );
    assert!(
        all.iter()
            .any(|(level, text)| *level == Level::INFO && text.contains("reloaded")),
        "{all:?}"
    );
}
