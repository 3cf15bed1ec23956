//! The doorbell of one source: an event happened in one of its directories.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::worker;

/// Set by the `notify` event thread (or a failed [`reload`]), consumed by the
/// process-wide worker, which it wakes.
///
/// [`reload`]: crate::Watched::reload
#[derive(Default)]
pub(crate) struct Wake {
    pending: AtomicBool,
}

impl Wake {
    /// Records an event and wakes the worker.
    pub(crate) fn signal(&self) {
        self.pending.store(true, Ordering::Release);
        worker::ring();
    }

    /// Whether an event is waiting (without consuming it).
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Consumes the event, if any.
    pub(crate) fn take(&self) -> bool {
        self.pending.swap(false, Ordering::AcqRel)
    }
}
