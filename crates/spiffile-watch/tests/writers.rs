//! Every way producers change files is followed, with events and with
//! polling alone.
#![cfg(unix)]

#[path = "support/writers.rs"]
mod writers;

use std::path::Path;
use std::time::{Duration, Instant};

use spiffile_watch::{WatchOptions, Watched};
use writers::{Style, parse_payload, payload, setup, update};

/// How long a change may take before a test fails (loaded 2-core machines).
const DEADLINE: Duration = Duration::from_secs(5);

/// Waits until `watched` serves `want`; every value seen on the way must be
/// `old` or `want` (a half-written file must never be served). Returns the
/// latency from the call.
fn observe(watched: &Watched<String, writers::Malformed>, old: &str, want: &str) -> Duration {
    let start = Instant::now();
    loop {
        let current = watched.load();
        if current.as_str() == want {
            return start.elapsed();
        }
        assert_eq!(
            current.as_str(),
            old,
            "served a value that was never written"
        );
        assert!(
            start.elapsed() < DEADLINE,
            "not followed within {DEADLINE:?}: still {old:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A → B → A; returns the worst latency.
fn follow(style: Style, options: WatchOptions) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let a = payload('A', 48);
    let b = payload('B', 48);
    let (sa, sb) = (
        String::from_utf8(a.clone()).unwrap(),
        String::from_utf8(b.clone()).unwrap(),
    );
    let path = setup(style, dir.path(), "bundle.json", &a);
    let watched = Watched::new(&path, parse_payload, options).unwrap();
    assert_eq!(watched.load().as_str(), sa);
    assert_eq!(watched.generation(), 1);

    update(style, &path, &b);
    let first = observe(&watched, &sa, &sb);
    update(style, &path, &a);
    let second = observe(&watched, &sb, &sa);

    // Settles: no error left, two reloads recorded. The status is published
    // just after the value is swapped in (it never blocks a reader), so wait
    // for it to catch up with the value observed above.
    let start = Instant::now();
    while (watched.status().last_error.is_some() || watched.status().generation != 3)
        && start.elapsed() < DEADLINE
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = watched.status();
    assert_eq!(status.last_error, None);
    assert_eq!(status.generation, 3);
    assert_eq!(watched.generation(), 3);
    eprintln!(
        "{:<28} notify={:<5} latencies {first:?}, {second:?}",
        style.name(),
        status.notify_active
    );
    first.max(second)
}

/// Events on; the poll interval is at its 2 s maximum so that only the event
/// path can meet the 1 s bound.
fn follow_with_events(style: Style) {
    let options = WatchOptions::new().poll_interval(Duration::from_secs(2));
    let worst = follow(style, options);
    assert!(
        worst < Duration::from_secs(1),
        "{}: {worst:?}",
        style.name()
    );
}

fn follow_polling(style: Style) {
    let options = WatchOptions::new()
        .use_notify(false)
        .poll_interval(Duration::from_millis(50));
    follow(style, options);
}

#[test]
fn rename_over() {
    follow_with_events(Style::RenameOver);
}

#[test]
fn truncate_and_rewrite_in_place() {
    follow_with_events(Style::TruncateRewrite);
}

#[test]
fn delete_and_recreate() {
    follow_with_events(Style::DeleteRecreate);
}

#[test]
fn kubernetes_atomic_writer() {
    follow_with_events(Style::Kubernetes);
}

#[test]
fn same_size_same_mtime() {
    follow_with_events(Style::SameSizeSameMtime);
}

#[test]
fn missing_for_a_moment() {
    follow_with_events(Style::MissingMoment);
}

#[test]
fn polling_alone_follows_every_style() {
    for style in Style::ALL {
        follow_polling(style);
    }
}

/// A symlink to a file in another directory: in-place writes there are only
/// visible as events in the target directory, and retargeting the symlink
/// must move the watch.
#[test]
fn symlink_target_directory_is_watched_and_rewatched() {
    let root = tempfile::tempdir().unwrap();
    let (one, two) = (root.path().join("one"), root.path().join("two"));
    let link_dir = root.path().join("config");
    for d in [&one, &two, &link_dir] {
        std::fs::create_dir(d).unwrap();
    }
    let a = payload('A', 16);
    let b = payload('B', 16);
    let c = payload('C', 16);
    std::fs::write(one.join("key"), &a).unwrap();
    std::fs::write(two.join("key"), &a).unwrap();
    let path = link_dir.join("key");
    std::os::unix::fs::symlink(one.join("key"), &path).unwrap();

    let options = WatchOptions::new().poll_interval(Duration::from_secs(2));
    let watched = Watched::new(&path, parse_payload, options).unwrap();
    let text = |v: &[u8]| String::from_utf8(v.to_vec()).unwrap();

    write_in_place(&one.join("key"), &b);
    let l1 = observe(&watched, &text(&a), &text(&b));

    // Retarget the symlink (atomically) to `two`, which still holds A.
    let tmp = link_dir.join("key.tmp");
    std::os::unix::fs::symlink(two.join("key"), &tmp).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let l2 = observe(&watched, &text(&b), &text(&a));

    // Now only `two` matters.
    write_in_place(&two.join("key"), &c);
    let l3 = observe(&watched, &text(&a), &text(&c));
    for l in [l1, l2, l3] {
        assert!(l < Duration::from_secs(1), "{l:?}");
    }
}

fn write_in_place(path: &Path, content: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.write_all(content).unwrap();
}

#[test]
fn clones_share_the_value_and_the_thread() {
    let dir = tempfile::tempdir().unwrap();
    let a = payload('A', 8);
    let b = payload('B', 8);
    let path = setup(Style::RenameOver, dir.path(), "v", &a);
    let watched = Watched::new(&path, parse_payload, WatchOptions::default()).unwrap();
    let clone = watched.clone();
    update(Style::RenameOver, &path, &b);
    let sa = String::from_utf8(a).unwrap();
    let sb = String::from_utf8(b).unwrap();
    observe(&watched, &sa, &sb);
    assert_eq!(clone.load().as_str(), sb);
    assert_eq!(clone.generation(), watched.generation());
    // Clones can move to other threads.
    std::thread::spawn(move || assert_eq!(clone.load().as_str(), sb))
        .join()
        .unwrap();
}

#[test]
fn reload_reports_whether_the_value_changed() {
    let dir = tempfile::tempdir().unwrap();
    let a = payload('A', 8);
    let path = setup(Style::RenameOver, dir.path(), "v", &a);
    // Polling only, slowly: nothing reloads behind the test's back.
    let options = WatchOptions::new()
        .use_notify(false)
        .poll_interval(Duration::from_secs(2));
    let watched = Watched::new(&path, parse_payload, options).unwrap();
    // Let the thread's first pass finish.
    std::thread::sleep(Duration::from_millis(50));
    assert!(!watched.reload().unwrap());
    update(Style::RenameOver, &path, &payload('B', 8));
    assert!(watched.reload().unwrap());
    assert!(!watched.reload().unwrap());
    assert_eq!(watched.generation(), 2);
    assert_eq!(watched.load().as_str(), "v=BBBBBBBB;");
}
