//! The background thread of one [`Watched`](crate::Watched).
//!
//! It holds only a `Weak` reference to the shared state, upgraded for the
//! duration of each check, and exits when the last `Watched` clone is
//! dropped (the shared state's `Drop` closes the [`Wake`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::registry::{DirId, SubscribeError, Subscription, registry};
use crate::wake::{Wake, Woken};
use crate::{Mode, Shared, WatchOptions};

/// Symlink hops followed when collecting directories to watch.
const MAX_SYMLINK_HOPS: usize = 40;

pub(crate) fn spawn<T: Send + Sync + 'static>(
    shared: Weak<Shared<T>>,
    wake: Arc<Wake>,
    options: WatchOptions,
) -> std::io::Result<()> {
    wake.set_running(true);
    let thread_wake = Arc::clone(&wake);
    let spawned = std::thread::Builder::new()
        .name("spiffile-watch".into())
        .spawn(move || run(&shared, &thread_wake, &options));
    if spawned.is_err() {
        wake.set_running(false);
    }
    spawned.map(drop)
}

/// Marks the thread as stopped however it ends.
struct Running<'a>(&'a Wake);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.set_running(false);
    }
}

fn run<T>(shared: &Weak<Shared<T>>, wake: &Arc<Wake>, options: &WatchOptions) {
    let _running = Running(wake);
    let mut dirs = DirWatches::default();
    let poll_interval = options.current_poll_interval();
    let first_retry = options.current_retry_delay();
    let mut retry: Option<Duration> = None;
    // The first pass re-reads the file: it may have changed between the
    // initial read in `new` and the moment the directories are watched.
    let mut mode = Mode::Read;
    loop {
        {
            let Some(shared) = shared.upgrade() else {
                break;
            };
            if options.notify_enabled() {
                // Re-resolve before looking at the file, so that a change
                // right after the look is seen in the new target directory.
                let active = dirs.update(shared.path(), wake);
                shared.set_notify_active(active);
            }
            retry = match shared.check(mode) {
                Ok(_) => None,
                Err(_) => Some(match retry {
                    None => first_retry,
                    Some(delay) => (delay * 2).min(poll_interval),
                }),
            };
        }
        mode = match wake.wait(retry.unwrap_or(poll_interval)) {
            Woken::Closed => break,
            Woken::Event => Mode::Read,
            // A retry re-reads even if metadata looks unchanged.
            Woken::Timeout if retry.is_some() => Mode::Read,
            Woken::Timeout => Mode::Poll,
        };
    }
    // `dirs` drops here: unsubscribes from the shared watcher.
}

/// The directories this thread is subscribed to.
#[derive(Default)]
struct DirWatches {
    subs: HashMap<PathBuf, Subscription>,
}

impl DirWatches {
    /// Subscribes to the directories `path` currently resolves through and
    /// drops the others. Returns whether events are being received.
    fn update(&mut self, path: &Path, wake: &Arc<Wake>) -> bool {
        let wanted = dirs_to_watch(path);
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

/// The parent directory of `path`, of every symlink hop from it, and of its
/// final target; all canonicalized (so a watch never follows a symlink that
/// could later be swapped), with the identity of each directory.
fn dirs_to_watch(path: &Path) -> Vec<(PathBuf, Option<DirId>)> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut add = |dir: &Path| {
        if let Ok(dir) = std::fs::canonicalize(dir)
            && !dirs.contains(&dir)
        {
            dirs.push(dir);
        }
    };
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINK_HOPS {
        let Some(parent) = current.parent().map(Path::to_path_buf) else {
            break;
        };
        add(&parent);
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
        add(parent);
    }
    dirs.into_iter()
        .map(|dir| {
            let id = dir_id(&dir);
            (dir, id)
        })
        .collect()
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
