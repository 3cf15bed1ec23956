//! Tests that need the crate's internals.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use crate::read::{RACY_WINDOW, stamp_of};
use crate::registry::registry;
use crate::{WatchOptions, Watched, lock};

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
fn directory_watches_are_released_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("value");
    std::fs::write(&path, "a").unwrap();
    let canonical_dir = std::fs::canonicalize(dir.path()).unwrap();
    let is_watched = || lock(registry().subs_for_tests()).contains_key(&canonical_dir);
    let watched = Watched::new(&path, parse_text, WatchOptions::default()).unwrap();
    let clone = watched.clone();
    assert!(wait_until(Duration::from_secs(5), || watched
        .status()
        .notify_active));
    assert!(is_watched());
    drop(watched);
    std::thread::sleep(Duration::from_millis(50));
    assert!(is_watched(), "a clone is left: still followed");
    assert_eq!(clone.load().as_str(), "a");
    let weak = std::sync::Arc::downgrade(clone.shared());
    drop(clone);
    assert!(weak.upgrade().is_none(), "the shared state was not freed");
    assert!(
        wait_until(Duration::from_secs(5), || !is_watched()),
        "the directory subscription leaked"
    );
}

#[test]
fn manual_mode_subscribes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("value");
    std::fs::write(&path, "a").unwrap();
    let canonical_dir = std::fs::canonicalize(dir.path()).unwrap();
    let watched = Watched::new(&path, parse_text, WatchOptions::manual()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(!lock(registry().subs_for_tests()).contains_key(&canonical_dir));
    let status = watched.status();
    assert!(!status.following && !status.notify_active);
    std::fs::write(&path, "b").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        watched.load().as_str(),
        "a",
        "manual mode changed on its own"
    );
    assert!(watched.reload().unwrap());
    assert_eq!(watched.load().as_str(), "b");
    assert_eq!(watched.status().generation, 2);
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
/// the worker again (a busy loop), and an idle file is not re-read on every
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
    // ctime is recent (we just wrote the file): the racy window allows
    // re-reads for 2 s after the change; wait it out.
    std::thread::sleep(RACY_WINDOW + Duration::from_millis(100));
    let reads = || watched.shared().reads.load(Ordering::Relaxed);
    let before = reads();
    std::thread::sleep(Duration::from_millis(300));
    let after = reads();
    assert!(
        after - before <= 1,
        "{} reads in 300 ms with a 20 ms poll on an idle file",
        after - before
    );
}

#[test]
fn watched_is_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Watched<String, std::io::Error>>();
    check::<WatchOptions>();
    check::<crate::DirSource>();
    // Whatever the error type: it never crosses threads inside a Watched.
    check::<Watched<String, std::rc::Rc<String>>>();
}
