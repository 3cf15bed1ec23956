//! What a check does for each kind of source: read the files, compare them
//! with what is served, and run the caller's parsers when they changed.
//!
//! An engine runs under its source's check lock (one check at a time per
//! source), never under anything a reader takes.

mod dir;
mod files;

pub(crate) use dir::DirEngine;
pub(crate) use files::FilesEngine;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use crate::error::{Origin, WatchError};
use crate::status::FileStatus;
use crate::worker::Mode;

/// The result of one check.
pub(crate) struct Checked<T, E> {
    /// A new value to serve (the files changed and parsed).
    pub(crate) value: Option<T>,
    /// Why what is on disk is (partly) not served. With a directory source
    /// a value can come with an error: the other files' changes are applied
    /// while a bad file keeps its last good content.
    pub(crate) error: Option<WatchError<E>>,
    /// Whether the check read anything (`false`: metadata proved nothing
    /// changed, the bookkeeping is as it was).
    pub(crate) looked: bool,
    /// Look again at this moment even without an event.
    pub(crate) wake_at: Option<Instant>,
}

impl<T, E> Checked<T, E> {
    pub(crate) fn unchanged_unread() -> Self {
        Checked {
            value: None,
            error: None,
            looked: false,
            wake_at: None,
        }
    }
}

/// The check logic of one kind of source.
pub(crate) trait Engine<T, E>: Send {
    /// Looks at the files; `Checked::value` is set when the value changed.
    fn check(&mut self, mode: Mode) -> Checked<T, E>;
    /// Per-file bookkeeping, as of the last check.
    fn files(&self) -> Vec<FileStatus>;
}

/// Runs a parser; a panic is a rejection like any other (the last good
/// value stays), reported as [`WatchError::Panicked`].
pub(crate) fn run_parser<R, E>(
    origin: impl FnOnce() -> Origin,
    parse: impl FnOnce() -> Result<R, E>,
) -> Result<R, WatchError<E>> {
    match catch_unwind(AssertUnwindSafe(parse)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(WatchError::Parse {
            origin: origin(),
            source,
        }),
        Err(_) => Err(WatchError::Panicked { origin: origin() }),
    }
}
