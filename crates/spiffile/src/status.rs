//! What an identity reports about its files, for health checks.

use std::path::PathBuf;
use std::time::SystemTime;

/// How one of an identity's files is being followed, for health checks.
///
/// ```no_run
/// let identity = spiffile::Identity::from_env()?;
/// let status = identity.status();
/// if let Some(problem) = &status.bundle.last_error {
///     eprintln!("serving bundle generation {} (stale): {problem}", status.bundle.generation);
/// }
/// # Ok::<(), spiffile::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileStatus {
    /// The file.
    pub path: PathBuf,
    /// 1 for the content loaded at startup, +1 for each reload that changed it.
    pub generation: u64,
    /// When the content being served was loaded.
    pub loaded_at: SystemTime,
    /// Why the file currently on disk is not being served (it cannot be read
    /// or is invalid); `None` when what is served matches the file.
    pub last_error: Option<String>,
    /// Whether the file is followed automatically (file-system events and
    /// polling), as opposed to reloaded only on [`crate::Identity::reload`].
    pub watching: bool,
    /// Whether file-system events are being received (`false`: polling only
    /// or not watching).
    pub events: bool,
}

impl FileStatus {
    /// The facade's view of a single-file source's status.
    pub(crate) fn of(status: spiffile_watch::Status) -> FileStatus {
        let path = status
            .files
            .into_iter()
            .next()
            .map(|f| f.path)
            .unwrap_or_default();
        FileStatus {
            path,
            generation: status.generation,
            loaded_at: status.loaded_at,
            last_error: status.last_error,
            watching: status.following,
            events: status.notify_active,
        }
    }
}

/// The state of an identity's bundle and key, from
/// [`crate::Identity::status`]. Taking it never waits for a reload in
/// progress.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The trust bundle.
    pub bundle: FileStatus,
    /// The private key.
    pub key: FileStatus,
}

impl Status {
    /// Whether both files are being served as they are on disk.
    pub fn is_current(&self) -> bool {
        self.bundle.last_error.is_none() && self.key.last_error.is_none()
    }
}
