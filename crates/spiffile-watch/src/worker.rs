//! The one background thread that follows every watched source of the
//! process.
//!
//! Sources register when they are created (in following mode); the worker
//! holds only a `Weak` reference to each, upgraded for the duration of a
//! check, and forgets a source once its last [`Watched`](crate::Watched)
//! clone is dropped. The thread starts with the first source and exits when
//! none is left; the next registration starts a new one.
//!
//! Checks run one after another on this thread. Readers never wait for them
//! (values and status are published with atomic swaps); a slow parse only
//! delays the other sources' checks, by its own duration.
//!
//! Locking: the worker's lock guards the registration queue and is never
//! held while checking a source or calling into the `notify` registry (whose
//! event thread takes the worker's lock to ring it).

use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::dirs::{DirWatches, WatchSpec};
use crate::lock;
use crate::options::WatchOptions;
use crate::wake::Wake;

/// The name of the worker thread (visible in `ps -L`, `/proc/*/task/*/comm`).
pub(crate) const THREAD_NAME: &str = "spiffile-watch";

/// What a check tells the worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    /// The files could not all be used: retry on the backoff.
    pub(crate) failed: bool,
    /// Look again at this moment even without an event (a removal grace
    /// ending).
    pub(crate) wake_at: Option<Instant>,
}

/// How a check may save work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Compare metadata first; read only what changed or cannot be trusted.
    Poll,
    /// Read and compare every file's content.
    Read,
}

/// A source as the worker sees it (implemented by the shared state of a
/// `Watched`, whatever its value and error types).
pub(crate) trait Driven: Send + Sync {
    fn check_from_worker(&self, mode: Mode) -> Outcome;
    fn spec(&self) -> &WatchSpec;
    fn set_notify_active(&self, active: bool);
}

struct Registration {
    source: Weak<dyn Driven>,
    wake: Arc<Wake>,
    options: WatchOptions,
}

#[derive(Default)]
struct State {
    incoming: Vec<Registration>,
    running: bool,
}

#[derive(Default)]
struct Worker {
    state: Mutex<State>,
    cv: Condvar,
}

static WORKER: OnceLock<Worker> = OnceLock::new();

fn worker() -> &'static Worker {
    WORKER.get_or_init(Worker::default)
}

/// Wakes the worker (an event is pending, or a source was dropped).
pub(crate) fn ring() {
    let w = worker();
    // Taking the lock orders this with the worker's check of its wait
    // condition: it is either before the check or the worker is waiting.
    drop(lock(&w.state));
    w.cv.notify_one();
}

/// Hands a source to the worker, starting the thread if needed.
pub(crate) fn register(
    source: Weak<dyn Driven>,
    wake: Arc<Wake>,
    options: WatchOptions,
) -> std::io::Result<()> {
    let w = worker();
    let mut state = lock(&w.state);
    state.incoming.push(Registration {
        source,
        wake,
        options,
    });
    if !state.running {
        let spawned = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(run);
        if let Err(err) = spawned {
            state.incoming.pop();
            return Err(err);
        }
        state.running = true;
    }
    drop(state);
    w.cv.notify_one();
    Ok(())
}

/// One source's scheduling, owned by the worker thread.
struct Entry {
    source: Weak<dyn Driven>,
    wake: Arc<Wake>,
    dirs: DirWatches,
    notify: bool,
    poll_interval: Duration,
    first_retry: Duration,
    /// The current backoff while the files are bad.
    retry: Option<Duration>,
    next_at: Instant,
    /// The first pass re-reads: the files may have changed between the
    /// initial read and the moment their directories were watched.
    first: bool,
}

impl Entry {
    fn new(r: Registration) -> Self {
        Entry {
            source: r.source,
            wake: r.wake,
            dirs: DirWatches::default(),
            notify: r.options.notify_enabled(),
            poll_interval: r.options.current_poll_interval(),
            first_retry: r.options.current_retry_delay(),
            retry: None,
            next_at: Instant::now(),
            first: true,
        }
    }

    fn due(&self, now: Instant) -> bool {
        self.wake.is_pending() || self.next_at <= now
    }

    fn run(&mut self) {
        let Some(source) = self.source.upgrade() else {
            return;
        };
        let event = self.wake.take();
        if self.notify {
            // Re-resolve before looking at the files, so that a change right
            // after the look is seen in the new target directories.
            let active = self.dirs.update(source.spec().dirs(), &self.wake);
            source.set_notify_active(active);
        }
        let mode = if event || self.first || self.retry.is_some() {
            Mode::Read
        } else {
            Mode::Poll
        };
        self.first = false;
        let outcome = source.check_from_worker(mode);
        self.retry = outcome.failed.then(|| match self.retry {
            None => self.first_retry,
            Some(delay) => (delay * 2).min(self.poll_interval),
        });
        let next = Instant::now() + self.retry.unwrap_or(self.poll_interval);
        self.next_at = outcome.wake_at.map_or(next, |at| at.min(next));
        // `source` drops here; if it was the last reference, the value is
        // freed on this thread and its drop rings the worker.
    }
}

fn run() {
    let w = worker();
    let mut entries: Vec<Entry> = Vec::new();
    loop {
        let mut dead = Vec::new();
        {
            let mut state = lock(&w.state);
            loop {
                entries.extend(state.incoming.drain(..).map(Entry::new));
                let mut i = 0;
                while i < entries.len() {
                    if entries[i].source.strong_count() == 0 {
                        dead.push(entries.swap_remove(i));
                    } else {
                        i += 1;
                    }
                }
                if entries.is_empty() {
                    state.running = false;
                    drop(state);
                    // Unsubscribes from the shared watcher (outside the lock).
                    drop(dead);
                    return;
                }
                let now = Instant::now();
                if !dead.is_empty() || entries.iter().any(|e| e.due(now)) {
                    break;
                }
                let next = entries.iter().map(|e| e.next_at).min().unwrap_or(now);
                state = match w
                    .cv
                    .wait_timeout(state, next.saturating_duration_since(now))
                {
                    Ok((guard, _)) => guard,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
        }
        drop(dead);
        let now = Instant::now();
        for entry in &mut entries {
            if entry.due(now) {
                entry.run();
            }
        }
    }
}
