//! One process-wide `notify` watcher shared by every [`Watched`](crate::Watched).
//!
//! inotify instances are a scarce per-user resource (`max_user_instances` is
//! often 128), so the crate never creates more than one watcher per process.
//! The registry multiplexes it: a map from watched directory to the list of
//! subscribers to wake, with reference-counted watch/unwatch per directory.
//! The watcher (and its event thread) is created on first use and dropped
//! when the last directory is unwatched, so no thread outlives the last
//! watched value.
//!
//! Locking: `notify`'s `watch()`/`unwatch()` wait for its event-loop thread,
//! and that same thread runs our event handler. The handler therefore only
//! ever takes the `subs` lock, which is never held while calling into
//! `notify`; the `watcher` lock (held around `watch()`/`unwatch()`) is never
//! taken by the handler.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::lock;
use crate::wake::Wake;

/// Identity of a directory inode: a recreated directory (same path, new
/// inode) needs a fresh kernel watch.
pub(crate) type DirId = (u64, u64);

static REGISTRY: OnceLock<Registry> = OnceLock::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn registry() -> &'static Registry {
    REGISTRY.get_or_init(|| Registry {
        watcher: Mutex::new(Slot::Uninit),
        subs: Mutex::new(HashMap::new()),
        failure_logged: AtomicBool::new(false),
    })
}

/// Directory -> (subscription id, subscriber) list.
type Subscribers = HashMap<PathBuf, Vec<(u64, Weak<Wake>)>>;

pub(crate) struct Registry {
    watcher: Mutex<Slot>,
    subs: Mutex<Subscribers>,
    failure_logged: AtomicBool,
}

enum Slot {
    Uninit,
    Ready {
        watcher: RecommendedWatcher,
        dirs: HashMap<PathBuf, DirState>,
    },
    Failed,
}

struct DirState {
    count: usize,
    id: Option<DirId>,
}

/// A subscriber's interest in one directory; dropping it unsubscribes (and
/// removes the kernel watch when it was the last subscriber).
pub(crate) struct Subscription {
    dir: PathBuf,
    id: u64,
    dir_id: Option<DirId>,
}

impl Subscription {
    pub(crate) fn dir_id(&self) -> Option<DirId> {
        self.dir_id
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        registry().unsubscribe(&self.dir, self.id);
    }
}

/// Why a subscription could not be made.
pub(crate) enum SubscribeError {
    /// No watcher could be created in this process: poll only.
    Unavailable,
    /// The directory could not be watched (gone, permission, limits...).
    Watch(notify::Error),
}

impl Registry {
    /// Watches `dir` (non-recursively) and wakes `wake` on any event in it.
    pub(crate) fn subscribe(
        &'static self,
        dir: &Path,
        dir_id: Option<DirId>,
        wake: &Arc<Wake>,
    ) -> Result<Subscription, SubscribeError> {
        let mut slot = lock(&self.watcher);
        if matches!(*slot, Slot::Uninit) {
            *slot = match notify::recommended_watcher(move |res| self.dispatch(res)) {
                Ok(watcher) => Slot::Ready {
                    watcher,
                    dirs: HashMap::new(),
                },
                Err(err) => {
                    if !self.failure_logged.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            error = %err,
                            "cannot create a file-system watcher; falling back to polling only"
                        );
                    }
                    Slot::Failed
                }
            };
        }
        let Slot::Ready { watcher, dirs } = &mut *slot else {
            return Err(SubscribeError::Unavailable);
        };
        let needs_watch = match dirs.get(dir) {
            None => true,
            // Same path, different directory inode: the old kernel watch
            // died with the old directory; add one on the new inode.
            Some(state) => state.id != dir_id,
        };
        if needs_watch {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(SubscribeError::Watch)?;
        }
        let state = dirs.entry(dir.to_path_buf()).or_insert(DirState {
            count: 0,
            id: dir_id,
        });
        state.count += 1;
        state.id = dir_id;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        lock(&self.subs)
            .entry(dir.to_path_buf())
            .or_default()
            .push((id, Arc::downgrade(wake)));
        Ok(Subscription {
            dir: dir.to_path_buf(),
            id,
            dir_id,
        })
    }

    fn unsubscribe(&self, dir: &Path, id: u64) {
        let mut slot = lock(&self.watcher);
        {
            let mut subs = lock(&self.subs);
            if let Some(list) = subs.get_mut(dir) {
                list.retain(|(i, _)| *i != id);
                if list.is_empty() {
                    subs.remove(dir);
                }
            }
        }
        let mut unused = false;
        if let Slot::Ready { watcher, dirs } = &mut *slot {
            let last = match dirs.get_mut(dir) {
                Some(state) => {
                    state.count = state.count.saturating_sub(1);
                    state.count == 0
                }
                None => false,
            };
            if last {
                dirs.remove(dir);
                // Fails harmlessly when the directory (and its watch) is gone.
                if let Err(err) = watcher.unwatch(dir) {
                    tracing::debug!(dir = %dir.display(), error = %err, "unwatch failed");
                }
            }
            unused = dirs.is_empty();
        }
        if unused {
            // Nothing is watched: close the inotify instance and let its
            // event thread end (dropping only signals it; nothing waits).
            *slot = Slot::Uninit;
        }
    }

    /// Runs on notify's event thread: wake the subscribers of the
    /// directories the event touches. Never calls into notify.
    fn dispatch(&self, res: notify::Result<Event>) {
        let wakes: Vec<Arc<Wake>> = {
            let subs = lock(&self.subs);
            match res {
                Ok(event) if is_read_only(&event.kind) => return,
                Ok(event) if !event.paths.is_empty() && !event.need_rescan() => {
                    let mut out = Vec::new();
                    for path in &event.paths {
                        // `dir/name` for an entry, or `dir` itself (deleted, moved).
                        for key in [Some(path.as_path()), path.parent()].into_iter().flatten() {
                            if let Some(list) = subs.get(key) {
                                out.extend(list.iter().filter_map(|(_, w)| w.upgrade()));
                            }
                        }
                    }
                    out
                }
                // Errors, overflow or rescan requests: wake everyone.
                _ => subs
                    .values()
                    .flatten()
                    .filter_map(|(_, w)| w.upgrade())
                    .collect(),
            }
        };
        for wake in wakes {
            wake.signal();
        }
    }

    /// The subscriber map (for tests).
    #[cfg(test)]
    pub(crate) fn subs_for_tests(&self) -> &Mutex<Subscribers> {
        &self.subs
    }
}

/// Opening or reading a file (including our own reads) changes nothing.
fn is_read_only(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Access(
            AccessKind::Open(_) | AccessKind::Read | AccessKind::Close(AccessMode::Read)
        )
    )
}
