//! Files parsed together (a certificate and its key) change as a matching
//! pair only, whichever way producers write them, with events and with
//! polling alone.
#![cfg(unix)]

#[path = "support/writers.rs"]
mod writers;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use spiffile_watch::{FileRef, WatchError, WatchOptions, Watched};
use writers::{Malformed, Style, parse_payload, payload, setup_files, update_files};

const DEADLINE: Duration = Duration::from_secs(5);

/// Why a pair is refused.
#[derive(Debug, thiserror::Error)]
enum PairError {
    #[error("{0}: malformed")]
    Malformed(String),
    #[error("the key does not match the certificate")]
    Mismatch,
}

/// `cert.pem` and `key.pem` hold payloads; they match when equal. The value
/// is the pair's payload.
fn parse_pair(files: &[FileRef<'_>]) -> Result<String, PairError> {
    let parse = |f: &FileRef<'_>| {
        parse_payload(f.bytes()).map_err(|Malformed| PairError::Malformed(f.name().to_owned()))
    };
    let cert = parse(&files[0])?;
    let key = parse(&files[1])?;
    if cert != key {
        return Err(PairError::Mismatch);
    }
    Ok(cert)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < DEADLINE,
            "not within {DEADLINE:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until `want` is served; only `old` may be served on the way (a
/// mismatched or half-written pair never is). Returns the latency.
fn observe(pair: &Watched<String, PairError>, old: &str, want: &str) -> Duration {
    let start = Instant::now();
    loop {
        let current = pair.load();
        if current.as_str() == want {
            return start.elapsed();
        }
        assert_eq!(
            current.as_str(),
            old,
            "served a pair that was never written"
        );
        assert!(
            start.elapsed() < DEADLINE,
            "not followed within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A → B (certificate first, then key) → A (key first, then certificate).
fn follow(style: Style, options: WatchOptions) -> Duration {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (payload('A', 40), payload('B', 40));
    let paths: Vec<PathBuf> = setup_files(
        style,
        tmp.path(),
        &[("cert.pem", a.as_slice()), ("key.pem", a.as_slice())],
    );
    let pair = Watched::files(&paths, parse_pair, options).unwrap();
    assert_eq!(pair.load().as_str(), text(&a));
    let mut worst = Duration::ZERO;
    for (old, new, order) in [
        (&a, &b, ["cert.pem", "key.pem"]),
        (&b, &a, ["key.pem", "cert.pem"]),
    ] {
        if style == Style::Kubernetes {
            // One swap changes both at once: no mismatch to see.
            update_files(
                style,
                tmp.path(),
                &[("cert.pem", new.as_slice()), ("key.pem", new.as_slice())],
                false,
            );
        } else {
            update_files(style, tmp.path(), &[(order[0], new.as_slice())], false);
            // The first half of the pair alone is refused, and says why.
            wait_until("the mismatch is reported", || {
                pair.status()
                    .last_error
                    .is_some_and(|e| e.contains("the key does not match the certificate"))
            });
            assert_eq!(
                pair.load().as_str(),
                text(old),
                "a mismatched pair was served"
            );
            update_files(style, tmp.path(), &[(order[1], new.as_slice())], false);
        }
        worst = worst.max(observe(&pair, &text(old), &text(new)));
    }
    // The status is published right after the value it describes.
    wait_until("settled", || {
        let status = pair.status();
        status.is_current() && status.generation == 3
    });
    let status = pair.status();
    assert_eq!(status.files.len(), 2);
    for file in &status.files {
        assert_eq!(file.generation, 3, "{file:?}");
        assert!(file.last_error.is_none());
        assert!(file.loaded_at.is_some());
    }
    eprintln!("{:<28} worst {worst:?}", style.name());
    worst
}

fn with_events() -> WatchOptions {
    // The poll is at its 2 s maximum: only events can meet the 1 s bound.
    WatchOptions::new().poll_interval(Duration::from_secs(2))
}

fn follow_with_events(style: Style) {
    let worst = follow(style, with_events());
    assert!(
        worst < Duration::from_secs(1),
        "{}: {worst:?}",
        style.name()
    );
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
        follow(
            style,
            WatchOptions::new()
                .use_notify(false)
                .poll_interval(Duration::from_millis(50)),
        );
    }
}

/// Files in different directories are each watched where they live.
#[test]
fn files_in_different_directories() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (cert, key) = (one.path().join("cert.pem"), two.path().join("key.pem"));
    let (a, b) = (payload('A', 8), payload('B', 8));
    std::fs::write(&cert, &a).unwrap();
    std::fs::write(&key, &a).unwrap();
    let pair = Watched::files([&cert, &key], parse_pair, with_events()).unwrap();
    writers::update(Style::RenameOver, &key, &b);
    writers::update(Style::RenameOver, &cert, &b);
    observe(&pair, &text(&a), &text(&b));
    let paths: Vec<_> = pair.status().files.into_iter().map(|f| f.path).collect();
    assert_eq!(paths, [cert, key]);
}

#[test]
fn errors_name_the_files_and_come_back_typed() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert, payload('A', 8)).unwrap();
    std::fs::write(&key, payload('B', 8)).unwrap();
    // At startup a mismatch is an error, typed, naming both files.
    let err = Watched::files([&cert, &key], parse_pair, WatchOptions::manual()).unwrap_err();
    assert!(
        matches!(
            err,
            WatchError::Parse {
                source: PairError::Mismatch,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!("{} + {}", cert.display(), key.display())),
        "{message}"
    );

    std::fs::write(&key, payload('A', 8)).unwrap();
    let pair = Watched::files([&cert, &key], parse_pair, WatchOptions::manual()).unwrap();
    // A missing key: a read error on that file, in its own status.
    std::fs::remove_file(&key).unwrap();
    let err = pair.reload().unwrap_err();
    assert!(
        matches!(err, WatchError::Io { ref path, .. } if *path == key),
        "{err:?}"
    );
    let status = pair.status();
    assert!(status.files[0].last_error.is_none());
    assert!(
        status.files[1]
            .last_error
            .as_deref()
            .unwrap()
            .contains("key.pem")
    );
    assert_eq!(pair.load().as_str(), text(&payload('A', 8)));
    // A half-written certificate: the parser's error names it.
    std::fs::write(&key, payload('A', 8)).unwrap();
    std::fs::write(&cert, b"v=AA").unwrap();
    let err = pair.reload().unwrap_err();
    assert!(
        matches!(err, WatchError::Parse { source: PairError::Malformed(ref n), .. } if n == "cert.pem"),
        "{err:?}"
    );
    assert!(pair.status().files.iter().all(|f| f.last_error.is_none()));
    std::fs::write(&cert, payload('A', 8)).unwrap();
    assert!(
        !pair.reload().unwrap(),
        "back to the served pair: unchanged"
    );
    assert!(pair.status().is_current());
    assert_eq!(pair.generation(), 1);
    // No files at all is refused.
    let none: [PathBuf; 0] = [];
    assert!(Watched::files(none, parse_pair, WatchOptions::manual()).is_err());
}
