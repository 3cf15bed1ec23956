//! The doorbell between event sources (notify, `Drop`) and a worker thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::lock;

#[derive(Default)]
struct State {
    pending: bool,
    closed: bool,
}

/// Wakes one worker thread: an event happened, or its owner is gone.
#[derive(Default)]
pub(crate) struct Wake {
    state: Mutex<State>,
    cv: Condvar,
    /// True while the worker thread runs (lets tests observe its exit).
    pub(crate) running: AtomicBool,
}

/// Why [`Wake::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// Something happened in a watched directory.
    Event,
    /// The timeout elapsed.
    Timeout,
    /// The watched value was dropped: the worker must exit.
    Closed,
}

impl Wake {
    /// Records an event and wakes the worker.
    pub(crate) fn signal(&self) {
        lock(&self.state).pending = true;
        self.cv.notify_one();
    }

    /// Tells the worker to exit.
    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
        self.cv.notify_one();
    }

    /// Waits for an event, the close signal, or the timeout; consumes the event.
    pub(crate) fn wait(&self, timeout: Duration) -> Woken {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.state);
        loop {
            if state.closed {
                return Woken::Closed;
            }
            if state.pending {
                state.pending = false;
                return Woken::Event;
            }
            let now = Instant::now();
            if now >= deadline {
                return Woken::Timeout;
            }
            state = match self.cv.wait_timeout(state, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    pub(crate) fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Release);
    }
}
