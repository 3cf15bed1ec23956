//! A file that cannot be read or parsed never replaces a good value.
#![cfg(unix)]

#[path = "support/writers.rs"]
mod writers;

use std::path::Path;
use std::time::{Duration, Instant};

use spiffile_watch::{WatchError, WatchOptions, Watched};
use writers::{Style, parse_payload, payload, setup, update};

const DEADLINE: Duration = Duration::from_secs(5);
const SECRET: &str = "SECRET-MARKER";

fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// Events on, slow poll: the retry backoff and events must do the work.
fn options() -> WatchOptions {
    WatchOptions::new().poll_interval(Duration::from_secs(2))
}

/// Starts on A, applies `break_it`, checks that A keeps being served with an
/// error recorded, applies `fix_it` (which writes B), checks B is served and
/// the error cleared. Returns the recorded error.
fn survive(break_it: impl FnOnce(&Path), fix_it: impl FnOnce(&Path)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let a = String::from_utf8(payload('A', 16)).unwrap();
    let b = payload('B', 16);
    let path = setup(Style::RenameOver, dir.path(), "key.pem", a.as_bytes());
    let watched = Watched::new(&path, parse_payload, options()).unwrap();

    break_it(&path);
    assert!(
        wait_until(|| watched.status().last_error.is_some()),
        "the failure was not noticed"
    );
    // Keep serving the last good value, for a while (several retries).
    for _ in 0..50 {
        assert_eq!(watched.load().as_str(), a);
        std::thread::sleep(Duration::from_millis(2));
    }
    let status = watched.status();
    assert_eq!(status.generation, 1);
    let error = status.last_error.unwrap();
    assert!(
        error.contains(&path.display().to_string()),
        "error does not name the file: {error}"
    );
    assert!(!error.contains(SECRET), "error leaks content: {error}");
    assert!(watched.reload().is_err());
    assert_eq!(watched.load().as_str(), a);

    fix_it(&path);
    let b = String::from_utf8(b).unwrap();
    assert!(wait_until(|| watched.load().as_str() == b), "did not heal");
    assert!(wait_until(|| watched.status().last_error.is_none()));
    assert_eq!(watched.generation(), 2);
    error
}

fn write_b(path: &Path) {
    update(Style::RenameOver, path, &payload('B', 16));
}

#[test]
fn garbage_content() {
    let error = survive(
        |p| update(Style::RenameOver, p, format!("{SECRET} garbage").as_bytes()),
        write_b,
    );
    assert!(error.contains("cannot parse"), "{error}");
    assert!(error.contains("malformed payload"), "{error}");
}

#[test]
fn empty_file() {
    let error = survive(|p| std::fs::write(p, b"").unwrap(), write_b);
    assert!(error.contains("cannot parse"), "{error}");
}

#[test]
fn file_removed() {
    let error = survive(|p| std::fs::remove_file(p).unwrap(), write_b);
    assert!(error.contains("cannot read"), "{error}");
}

#[test]
fn replaced_by_a_directory() {
    let error = survive(
        |p| {
            std::fs::remove_file(p).unwrap();
            std::fs::create_dir(p).unwrap();
        },
        |p| {
            std::fs::remove_dir(p).unwrap();
            write_b(p);
        },
    );
    assert!(
        error.contains("is a directory; expected a regular file"),
        "{error}"
    );
}

/// Permission denied, for real. As root, mode 000 does not deny reads: the
/// test then re-runs itself as `nobody` through `setpriv`; only if that is
/// impossible does it print why and fall back to an unreadable path of
/// another kind (a directory with mode 000 in place of the file).
#[test]
fn permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    let probe_dir = tempfile::tempdir().unwrap();
    let probe = probe_dir.path().join("probe");
    std::fs::write(&probe, b"x").unwrap();
    mode(&probe, 0o000);
    if std::fs::read(&probe).is_err() {
        let error = survive(
            |p| mode(p, 0o000),
            |p| {
                mode(p, 0o600);
                write_b(p);
            },
        );
        assert!(error.contains("Permission denied"), "{error}");
        return;
    }
    assert!(
        std::env::var_os("SPIFFILE_WATCH_UNPRIVILEGED").is_none(),
        "mode 000 is not enforced even without privileges"
    );
    let exe = std::env::current_exe().unwrap();
    let child = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args([
            "--exact",
            "permission_denied",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SPIFFILE_WATCH_UNPRIVILEGED", "1")
        .env("TMPDIR", std::env::temp_dir())
        .output();
    match child {
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && stdout.contains("1 passed"),
                "unprivileged run failed:\n{stdout}\n{stderr}"
            );
            eprintln!("permission_denied: checked as uid 65534 (running as root)");
        }
        Err(err) => {
            eprintln!(
                "permission_denied: running as root and cannot drop privileges \
                 (setpriv: {err}); testing a mode-000 directory in place of the file instead"
            );
            let error = survive(
                |p| {
                    std::fs::remove_file(p).unwrap();
                    std::fs::create_dir(p).unwrap();
                    mode(p, 0o000);
                },
                |p| {
                    std::fs::remove_dir(p).unwrap();
                    write_b(p);
                },
            );
            assert!(error.contains("cannot read"), "{error}");
        }
    }
}

#[test]
fn half_written_file_heals_within_milliseconds() {
    let dir = tempfile::tempdir().unwrap();
    let a = String::from_utf8(payload('A', 16)).unwrap();
    let path = setup(Style::RenameOver, dir.path(), "v", a.as_bytes());
    // No events and a slow poll: only the retry backoff can heal quickly.
    let watched = Watched::new(
        &path,
        parse_payload,
        WatchOptions::new()
            .use_notify(false)
            .poll_interval(Duration::from_secs(2)),
    )
    .unwrap();
    std::fs::write(&path, b"v=BB").unwrap();
    assert!(watched.reload().is_err());
    // The writer finishes; nobody tells the watcher.
    std::fs::write(&path, payload('B', 16)).unwrap();
    let start = Instant::now();
    assert!(wait_until(|| watched.load().as_str() != a));
    let healed = start.elapsed();
    assert_eq!(watched.load().as_str(), "v=BBBBBBBBBBBBBBBB;");
    assert!(watched.status().last_error.is_none());
    assert!(healed < Duration::from_secs(1), "{healed:?}");
}

#[test]
fn startup_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = Watched::new(&missing, parse_payload, WatchOptions::default()).unwrap_err();
    assert!(matches!(err, WatchError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("missing"), "{err}");

    let bad = dir.path().join("bad");
    std::fs::write(&bad, SECRET).unwrap();
    let err = Watched::new(&bad, parse_payload, WatchOptions::default()).unwrap_err();
    assert!(matches!(err, WatchError::Parse { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&bad.display().to_string()), "{message}");
    assert!(!message.contains(SECRET), "{message}");
    assert!(!format!("{err:?}").contains(SECRET));
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        "malformed payload"
    );

    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    assert!(Watched::new(&empty, parse_payload, WatchOptions::default()).is_err());

    let err = Watched::new(dir.path(), parse_payload, WatchOptions::default()).unwrap_err();
    assert!(matches!(err, WatchError::Io { .. }), "{err:?}");
}

#[test]
fn a_panicking_parser_is_a_parse_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    std::fs::write(&path, b"ok").unwrap();
    let watched = Watched::new(
        &path,
        |bytes: &[u8]| -> Result<usize, std::fmt::Error> {
            assert_ne!(bytes, b"boom", "parser bug");
            Ok(bytes.len())
        },
        WatchOptions::default(),
    )
    .unwrap();
    update(Style::RenameOver, &path, b"boom");
    assert!(wait_until(|| watched.status().last_error.is_some()));
    assert_eq!(**watched.load(), 2);
    update(Style::RenameOver, &path, b"fine");
    assert!(wait_until(|| watched.status().last_error.is_none()));
    assert_eq!(**watched.load(), 4);
}

#[test]
fn a_file_over_the_size_limit_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let e = spiffile_watch::read_regular_file(&path, 1000).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::FileTooLarge);
    assert_eq!(
        e.to_string(),
        "is 1048576 bytes, larger than the limit of 1000 bytes"
    );
    let options = spiffile_watch::WatchOptions::new().max_size(1000);
    let err = spiffile_watch::Watched::new(
        &path,
        |b: &[u8]| Ok::<usize, std::io::Error>(b.len()),
        options,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("larger than the limit of 1000 bytes"),
        "{err}"
    );
    assert_eq!(
        spiffile_watch::read_regular_file(&path, 1 << 20)
            .unwrap()
            .len(),
        1 << 20
    );
}
