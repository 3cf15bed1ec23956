//! Where the facade keeps its current key and bundle: a file-following
//! [`Watched`] value, or a fixed one replaced only by an explicit reload.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::{ArcSwap, Guard};
use spiffile_watch::Watched;

use crate::Error;

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

/// The state of an identity's bundle and key, from
/// [`crate::Identity::status`].
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

pub(crate) struct FixedMeta {
    generation: u64,
    loaded_at: SystemTime,
    last_error: Option<String>,
}

pub(crate) enum Snapshot<T> {
    Watched(Watched<T>),
    Fixed {
        path: PathBuf,
        value: ArcSwap<T>,
        meta: Mutex<FixedMeta>,
    },
}

impl<T: Send + Sync + 'static> Snapshot<T> {
    pub(crate) fn fixed(path: &Path, value: T) -> Self {
        Snapshot::Fixed {
            path: path.to_owned(),
            value: ArcSwap::from_pointee(value),
            meta: Mutex::new(FixedMeta {
                generation: 1,
                loaded_at: SystemTime::now(),
                last_error: None,
            }),
        }
    }

    /// One atomic load; no system call, no lock.
    pub(crate) fn load(&self) -> Guard<Arc<T>> {
        match self {
            Snapshot::Watched(w) => w.load(),
            Snapshot::Fixed { value, .. } => value.load(),
        }
    }

    /// Increases every time the served value changes.
    pub(crate) fn generation(&self) -> u64 {
        match self {
            Snapshot::Watched(w) => w.generation(),
            Snapshot::Fixed { meta, .. } => meta.lock().map(|m| m.generation).unwrap_or(0),
        }
    }

    /// Re-reads the file now. `read` is used for fixed snapshots (watched ones
    /// use their own parser).
    pub(crate) fn reload(&self, read: impl FnOnce() -> Result<T, Error>) -> Result<(), Error> {
        match self {
            Snapshot::Watched(w) => w.reload_now().map(|_| ()).map_err(Error::from_watch),
            Snapshot::Fixed { value, meta, .. } => {
                let result = read();
                if let Ok(mut m) = meta.lock() {
                    match &result {
                        Ok(_) => {
                            m.generation += 1;
                            m.loaded_at = SystemTime::now();
                            m.last_error = None;
                        }
                        Err(e) => m.last_error = Some(e.to_string()),
                    }
                }
                value.store(Arc::new(result?));
                Ok(())
            }
        }
    }

    pub(crate) fn status(&self) -> FileStatus {
        match self {
            Snapshot::Watched(w) => {
                let s = w.status();
                FileStatus {
                    path: s.path,
                    generation: s.generation,
                    loaded_at: s.loaded_at,
                    last_error: s.last_error,
                    watching: true,
                    events: s.notify_active,
                }
            }
            Snapshot::Fixed { path, meta, .. } => {
                let (generation, loaded_at, last_error) = match meta.lock() {
                    Ok(m) => (m.generation, m.loaded_at, m.last_error.clone()),
                    Err(_) => (0, SystemTime::UNIX_EPOCH, Some("status unavailable".into())),
                };
                FileStatus {
                    path: path.clone(),
                    generation,
                    loaded_at,
                    last_error,
                    watching: false,
                    events: false,
                }
            }
        }
    }
}
