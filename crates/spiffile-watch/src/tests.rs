//! Lifecycle tests that need the crate's internals.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::*;

fn parse_text(bytes: &[u8]) -> Result<String, std::str::Utf8Error> {
    std::str::from_utf8(bytes).map(str::to_owned)
}

fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    cond()
}

#[test]
fn thread_exits_and_state_is_freed_when_last_clone_drops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("value");
    std::fs::write(&path, "a").unwrap();
    let watched = Watched::new(&path, parse_text, WatchOptions::default()).unwrap();
    let clone = watched.clone();
    let weak: Weak<Shared<String>> = Arc::downgrade(&watched.shared);
    let wake = Arc::clone(&watched.shared.wake);
    assert!(wake.running.load(Ordering::Acquire));
    // Wait until the thread has subscribed (its first pass is done).
    assert!(wait_until(Duration::from_secs(5), || watched
        .status()
        .notify_active));

    drop(watched);
    // One clone left: the thread keeps running and following the file.
    std::thread::sleep(Duration::from_millis(50));
    assert!(wake.running.load(Ordering::Acquire));
    assert_eq!(clone.load().as_str(), "a");

    drop(clone);
    assert!(
        wait_until(Duration::from_secs(5), || !wake
            .running
            .load(Ordering::Acquire)),
        "the watcher thread did not exit"
    );
    assert!(weak.upgrade().is_none(), "the shared state was not freed");
}

#[test]
fn thread_exits_in_poll_only_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("value");
    std::fs::write(&path, "a").unwrap();
    let watched = Watched::new(
        &path,
        parse_text,
        WatchOptions::new()
            .use_notify(false)
            .poll_interval(Duration::from_secs(2)),
    )
    .unwrap();
    let wake = Arc::clone(&watched.shared.wake);
    let weak = Arc::downgrade(&watched.shared);
    drop(watched);
    // The thread is sleeping for the 2 s poll interval; dropping wakes it.
    assert!(wait_until(Duration::from_secs(1), || !wake
        .running
        .load(Ordering::Acquire)));
    assert!(weak.upgrade().is_none());
}

#[test]
fn directory_watches_are_released_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("value");
    std::fs::write(&path, "a").unwrap();
    let canonical_dir = std::fs::canonicalize(dir.path()).unwrap();
    let is_watched = || lock(registry::registry().subs_for_tests()).contains_key(&canonical_dir);
    let watched = Watched::new(&path, parse_text, WatchOptions::default()).unwrap();
    assert!(wait_until(Duration::from_secs(5), || watched
        .status()
        .notify_active));
    assert!(is_watched());
    let wake = Arc::clone(&watched.shared.wake);
    drop(watched);
    assert!(wait_until(Duration::from_secs(5), || !wake
        .running
        .load(Ordering::Acquire)));
    assert!(!is_watched(), "the directory subscription leaked");
}

#[test]
fn stamp_detects_same_size_same_mtime_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("value");
    std::fs::write(&path, "aaaa").unwrap();
    let before = stamp_of(&std::fs::metadata(&path).unwrap());
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&path, "bbbb").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let after = stamp_of(&std::fs::metadata(&path).unwrap());
    assert_eq!(before.size, after.size);
    assert_eq!(before.mtime_ns, after.mtime_ns);
    assert_ne!(before, after, "ctime must differ");
}

/// Our own reads open the file, which inotify reports; they must not wake
/// the thread again (a busy loop), and an idle file is not re-read on every
/// poll once its timestamps are old enough.
#[test]
fn idle_file_is_not_read_in_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("value");
    std::fs::write(&path, "a").unwrap();
    let old = SystemTime::now() - Duration::from_secs(60);
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(old).unwrap();
    drop(file);
    let watched = Watched::new(
        &path,
        parse_text,
        WatchOptions::new().poll_interval(Duration::from_millis(20)),
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(5), || watched
        .status()
        .notify_active));
    std::thread::sleep(Duration::from_millis(100));
    // ctime is recent (we just wrote the file): the racy window allows
    // re-reads for 2 s after the change; wait it out.
    std::thread::sleep(RACY_WINDOW);
    let before = watched.shared.reads.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    let after = watched.shared.reads.load(Ordering::Relaxed);
    assert!(
        after - before <= 1,
        "{} reads in 300 ms with a 20 ms poll on an idle file",
        after - before
    );
}

#[test]
fn watched_is_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Watched<String>>();
    check::<WatchOptions>();
}
