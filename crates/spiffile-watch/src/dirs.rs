//! Which directories a source's files live in, and the subscriptions that
//! keep them watched while symlinks move.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::dir::DirSource;
use crate::registry::{DirId, SubscribeError, Subscription, registry};
use crate::wake::Wake;

/// Symlink hops followed when collecting directories to watch.
const MAX_SYMLINK_HOPS: usize = 40;

/// What a source reads, as far as watching is concerned.
pub(crate) enum WatchSpec {
    /// Fixed files (a single file, or a file set).
    Files(Vec<PathBuf>),
    /// A directory's matching files.
    Dir(DirSource),
}

impl WatchSpec {
    /// Every directory an event must be seen in for a change to be noticed,
    /// as the files resolve right now.
    pub(crate) fn dirs(&self) -> Vec<(PathBuf, Option<DirId>)> {
        let mut out = Dirs::default();
        match self {
            WatchSpec::Files(paths) => {
                for path in paths {
                    out.add_resolving(path);
                }
            }
            WatchSpec::Dir(source) => {
                // The directory path itself (its parent sees it replaced or
                // its symlink swapped), the directory, and every entry that
                // is a symlink (a Kubernetes `bundle.json -> ..data/…`, or a
                // link to a file elsewhere whose in-place writes are only
                // seen in the target's directory).
                out.add_resolving(source.dir());
                out.add(source.dir());
                if let Ok(entries) = std::fs::read_dir(source.dir()) {
                    for entry in entries.flatten() {
                        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
                        let name = entry.file_name();
                        if is_link && name.to_str().is_some_and(|n| source.matches(n)) {
                            out.add_resolving(&entry.path());
                        }
                    }
                }
            }
        }
        out.0
            .into_iter()
            .map(|dir| {
                let id = dir_id(&dir);
                (dir, id)
            })
            .collect()
    }
}

#[derive(Default)]
struct Dirs(Vec<PathBuf>);

impl Dirs {
    /// Adds `dir`, canonicalized (so a watch never follows a symlink that
    /// could later be swapped).
    fn add(&mut self, dir: &Path) {
        if let Ok(dir) = std::fs::canonicalize(dir)
            && !self.0.contains(&dir)
        {
            self.0.push(dir);
        }
    }

    /// The parent directory of `path`, of every symlink hop from it, and of
    /// its final target.
    fn add_resolving(&mut self, path: &Path) {
        let mut current = path.to_path_buf();
        for _ in 0..MAX_SYMLINK_HOPS {
            let Some(parent) = current.parent().map(Path::to_path_buf) else {
                break;
            };
            self.add(&parent);
            match std::fs::symlink_metadata(&current) {
                Ok(meta) if meta.file_type().is_symlink() => match std::fs::read_link(&current) {
                    Ok(target) => current = parent.join(target),
                    Err(_) => break,
                },
                _ => break,
            }
        }
        if let Ok(target) = std::fs::canonicalize(path)
            && let Some(parent) = target.parent()
        {
            self.add(parent);
        }
    }
}

/// The directories one source is subscribed to (owned by the worker).
#[derive(Default)]
pub(crate) struct DirWatches {
    subs: HashMap<PathBuf, Subscription>,
}

impl DirWatches {
    /// Subscribes to `wanted` and drops the other subscriptions. Returns
    /// whether events are being received.
    pub(crate) fn update(
        &mut self,
        wanted: Vec<(PathBuf, Option<DirId>)>,
        wake: &Arc<Wake>,
    ) -> bool {
        self.subs
            .retain(|dir, sub| wanted.iter().any(|(d, id)| d == dir && *id == sub.dir_id()));
        for (dir, id) in wanted {
            if self.subs.contains_key(&dir) {
                continue;
            }
            match registry().subscribe(&dir, id, wake) {
                Ok(sub) => {
                    self.subs.insert(dir, sub);
                }
                Err(SubscribeError::Unavailable) => return false,
                Err(SubscribeError::Watch(err)) => {
                    tracing::debug!(dir = %dir.display(), error = %err, "cannot watch directory");
                }
            }
        }
        !self.subs.is_empty()
    }
}

#[cfg(unix)]
fn dir_id(dir: &Path) -> Option<DirId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn dir_id(_dir: &Path) -> Option<DirId> {
    None
}
