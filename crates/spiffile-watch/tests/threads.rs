//! One worker thread for every watched value of the process, none in
//! manual mode, and none left (not even `notify`'s) once the last value is
//! dropped. (Its own test binary: it counts the process's threads.)
#![cfg(target_os = "linux")]

#[path = "support/writers.rs"]
mod writers;

use std::time::{Duration, Instant};

use spiffile_watch::{DirEntry, DirSource, FileRef, WatchOptions, Watched};
use writers::{Malformed, parse_payload, payload};

/// Threads of this process whose name starts with `prefix`.
fn threads(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end().starts_with(prefix))
        .count()
}

fn worker_threads() -> usize {
    threads("spiffile-watch")
}

fn notify_threads() -> usize {
    // "notify-rs inotify loop", cut to 15 bytes by the kernel.
    threads("notify-rs")
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn combine(files: &[DirEntry<String>]) -> Result<usize, Malformed> {
    Ok(files.len())
}

#[test]
fn one_worker_for_the_process_and_none_after_the_last_value() {
    let tmp = tempfile::tempdir().unwrap();
    let a = payload('A', 8);
    let mut paths = Vec::new();
    for i in 0..30 {
        let path = tmp.path().join(format!("f{i}"));
        std::fs::write(&path, &a).unwrap();
        paths.push(path);
    }
    assert_eq!(worker_threads(), 0);

    // Manual mode: no thread at all.
    let manual: Vec<_> = paths
        .iter()
        .map(|p| Watched::new(p, parse_payload, WatchOptions::manual()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!((worker_threads(), notify_threads()), (0, 0));

    // Thirty files, a file set and a directory: one worker.
    let mut files: Vec<_> = paths
        .iter()
        .map(|p| Watched::new(p, parse_payload, WatchOptions::default()).unwrap())
        .collect();
    let set = Watched::files(
        &paths[..2],
        |f: &[FileRef<'_>]| parse_payload(f[0].bytes()),
        WatchOptions::default(),
    )
    .unwrap();
    let dir = Watched::dir(
        DirSource::new(tmp.path()),
        |f: &FileRef<'_>| parse_payload(f.bytes()),
        combine,
        WatchOptions::default(),
    )
    .unwrap();
    assert_eq!(**dir.load(), 30);
    wait_for("all watching", || {
        files.iter().all(|f| f.status().notify_active)
            && set.status().notify_active
            && dir.status().notify_active
    });
    assert_eq!(worker_threads(), 1, "one worker for every value");
    assert_eq!(notify_threads(), 1, "one notify watcher for every value");
    eprintln!(
        "32 followed values: {} worker thread, {} notify thread",
        worker_threads(),
        notify_threads()
    );

    // Still one while some are dropped; clones keep a value followed.
    let kept = files[0].clone();
    files.truncate(1);
    drop(files);
    drop(set);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(worker_threads(), 1);
    std::fs::write(tmp.path().join("f29"), payload('B', 8)).unwrap();
    wait_for("the directory still followed", || {
        dir.status().files.iter().any(|f| f.generation == 2)
    });

    // The last value goes: every thread ends.
    drop(dir);
    drop(kept);
    wait_for("the worker exits", || worker_threads() == 0);
    wait_for("the notify thread exits", || notify_threads() == 0);

    // And a new value starts them again.
    let again = Watched::new(&paths[0], parse_payload, WatchOptions::default()).unwrap();
    wait_for("watching again", || again.status().notify_active);
    assert_eq!((worker_threads(), notify_threads()), (1, 1));
    std::fs::write(&paths[0], payload('C', 8)).unwrap();
    wait_for("followed again", || again.load().starts_with("v=C"));
    drop(again);
    wait_for("the worker exits again", || worker_threads() == 0);
    drop(manual);
}
