//! Hundreds of watched files share one notify watcher (one inotify instance).
#![cfg(unix)]

#[path = "support/writers.rs"]
mod writers;

use std::time::{Duration, Instant};

use spiffile_watch::{WatchOptions, Watched};
use writers::{Style, parse_payload, payload, setup, update};

const COUNT: usize = 300;

/// Open file descriptors of this process that are inotify instances.
#[cfg(target_os = "linux")]
fn inotify_instances() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains("inotify"))
        .count()
}

#[test]
fn three_hundred_values_one_watcher() {
    let root = tempfile::tempdir().unwrap();
    #[cfg(target_os = "linux")]
    let before = inotify_instances();

    let a = payload('A', 8);
    let b = payload('B', 8);
    let mut paths = Vec::new();
    let mut values = Vec::new();
    for i in 0..COUNT {
        let dir = root.path().join(format!("d{i}"));
        std::fs::create_dir(&dir).unwrap();
        let path = setup(Style::RenameOver, &dir, "bundle.json", &a);
        // Slow poll: only events can make the deadline below comfortably.
        let options = WatchOptions::new().poll_interval(Duration::from_secs(2));
        values.push(Watched::new(&path, parse_payload, options).unwrap());
        paths.push(path);
    }
    let start = Instant::now();
    while !values.iter().all(|v| v.status().notify_active) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not all watching"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    #[cfg(target_os = "linux")]
    {
        let after = inotify_instances();
        assert!(
            after <= before + 1,
            "{COUNT} values opened {} inotify instances",
            after - before
        );
        eprintln!("inotify instances: before {before}, after {after}");
    }

    let start = Instant::now();
    for path in &paths {
        update(Style::RenameOver, path, &b);
    }
    let written = start.elapsed();
    let want = String::from_utf8(b).unwrap();
    while !values.iter().all(|v| v.load().as_str() == want) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not all followed: {} of {COUNT}",
            values.iter().filter(|v| v.load().as_str() == want).count()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let all = start.elapsed();
    eprintln!("{COUNT} files rewritten in {written:?}, all followed after {all:?}");
    assert!(all < Duration::from_secs(2), "{all:?}");
}
