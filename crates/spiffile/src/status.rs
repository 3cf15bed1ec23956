//! What an identity reports about its files and directories, for health
//! checks.

use std::path::PathBuf;
use std::time::SystemTime;

/// How one of an identity's files (or directories) is being followed, for
/// health checks.
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
    /// The file, or the directory.
    pub path: PathBuf,
    /// 1 for the content loaded at startup, +1 for each reload that changed
    /// it; 0 for a file of a directory that was never served (it never
    /// parsed).
    pub generation: u64,
    /// When the content being served was loaded (the epoch for a file never
    /// served).
    pub loaded_at: SystemTime,
    /// Why what is on disk is not being served (it cannot be read or is
    /// invalid, or, for a directory, its files do not combine); `None` when
    /// what is served matches the disk.
    pub last_error: Option<String>,
    /// Whether it is followed automatically (file-system events and
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

    /// A directory source: the directory as a whole, then each of its files.
    fn of_dir(status: spiffile_watch::Status) -> (FileStatus, Vec<FileStatus>) {
        let (watching, events) = (status.following, status.notify_active);
        let files = status
            .files
            .into_iter()
            .map(|f| FileStatus {
                path: f.path,
                generation: f.generation,
                loaded_at: f.loaded_at.unwrap_or(SystemTime::UNIX_EPOCH),
                last_error: f.last_error,
                watching,
                events,
            })
            .collect();
        let dir = FileStatus {
            path: status.dir.unwrap_or_default(),
            generation: status.generation,
            loaded_at: status.loaded_at,
            last_error: status.last_error,
            watching,
            events,
        };
        (dir, files)
    }
}

/// The state of everything an identity follows, from
/// [`crate::Identity::status`]. Taking it never waits for a reload in
/// progress.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The trust bundle file, or the bundle directory as a whole.
    pub bundle: FileStatus,
    /// Each file of a bundle directory, sorted by name (empty for a single
    /// bundle file).
    pub bundle_files: Vec<FileStatus>,
    /// The private key (`None` without one).
    pub key: Option<FileStatus>,
    /// The JWT-SVID directory as a whole (`None` unless the identity
    /// presents SPIRE's tokens).
    pub jwt_svids: Option<FileStatus>,
    /// Each file of the JWT-SVID directory, sorted by name.
    pub jwt_svid_files: Vec<FileStatus>,
    /// The identity file (`None` without one, or without hot reload); it is
    /// read once, and followed only to warn when it changes.
    pub id_file: Option<FileStatus>,
}

impl Status {
    pub(crate) fn new(
        bundle: spiffile_watch::Status,
        key: Option<FileStatus>,
        jwt_svids: Option<spiffile_watch::Status>,
        id_file: Option<FileStatus>,
    ) -> Status {
        let (bundle, bundle_files) = if bundle.dir.is_some() {
            FileStatus::of_dir(bundle)
        } else {
            (FileStatus::of(bundle), Vec::new())
        };
        let (jwt_svids, jwt_svid_files) = match jwt_svids.map(FileStatus::of_dir) {
            Some((dir, files)) => (Some(dir), files),
            None => (None, Vec::new()),
        };
        Status {
            bundle,
            bundle_files,
            key,
            jwt_svids,
            jwt_svid_files,
            id_file,
        }
    }

    /// Every file and directory in play.
    pub fn all(&self) -> impl Iterator<Item = &FileStatus> {
        std::iter::once(&self.bundle)
            .chain(&self.bundle_files)
            .chain(&self.key)
            .chain(&self.jwt_svids)
            .chain(&self.jwt_svid_files)
            .chain(&self.id_file)
    }

    /// Whether everything is being served as it is on disk.
    pub fn is_current(&self) -> bool {
        self.all().all(|f| f.last_error.is_none())
    }
}
