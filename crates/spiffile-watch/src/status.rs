//! The bookkeeping a [`Watched`](crate::Watched) publishes for health checks.

use std::path::PathBuf;
use std::time::SystemTime;

/// A snapshot of a [`Watched`](crate::Watched) value's bookkeeping, from
/// [`Watched::status`](crate::Watched::status).
///
/// Taking it never waits for a reload in progress: it is published after
/// each check and read with one atomic load.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// 1 for the value built at startup, +1 for every reload that changed
    /// the value.
    pub generation: u64,
    /// When the current value was built.
    pub loaded_at: SystemTime,
    /// Why what is on disk is not being served (a file cannot be read or
    /// parsed, a pair does not match, a directory is over its limits), or
    /// `None` when the served value matches the files.
    pub last_error: Option<String>,
    /// Whether the files are followed in the background (`false`: manual
    /// mode, changed only by [`Watched::reload`](crate::Watched::reload)).
    pub following: bool,
    /// Whether file-system events are currently being received (`false`:
    /// polling only, or manual mode).
    pub notify_active: bool,
    /// The directory, for a directory source.
    pub dir: Option<PathBuf>,
    /// Each file in play: the single file, every file of a file set, or
    /// every matching file of a directory (sorted by name), including files
    /// that never parsed.
    pub files: Vec<FileStatus>,
}

impl Status {
    /// Whether every file is being served as it is on disk.
    pub fn is_current(&self) -> bool {
        self.last_error.is_none()
    }
}

/// The bookkeeping of one file of a [`Status`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatus {
    /// The file (made absolute).
    pub path: PathBuf,
    /// How many distinct contents of this file have been part of a served
    /// value: 1 after the first load, 0 for a file never served (a new file
    /// of a directory that does not parse).
    pub generation: u64,
    /// When the served content of this file was loaded (`None`: never).
    pub loaded_at: Option<SystemTime>,
    /// Why this file's content on disk is not being served (it cannot be
    /// read, or its parse failed), or `None`. A failure that concerns
    /// several files at once (a certificate that does not match its key, a
    /// directory's files that do not combine) is in [`Status::last_error`]
    /// only.
    pub last_error: Option<String>,
}
