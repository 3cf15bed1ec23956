//! Readers and `status()` never wait for a reload in progress: a parser is
//! held inside a parse (deterministically, on a channel) while another
//! thread takes the status, loads the value and reads the generation.
#![cfg(unix)]

#[path = "support/writers.rs"]
mod writers;

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use spiffile_watch::{DirEntry, DirSource, FileRef, WatchOptions, Watched};
use writers::{Malformed, Style, update};

/// Holds the parser inside its parse of `slow` until released.
struct Gate {
    entered: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
}

impl Gate {
    fn new() -> (Gate, Receiver<()>, Sender<()>) {
        let (entered_tx, entered_rx) = channel();
        let (release_tx, release_rx) = channel();
        let gate = Gate {
            entered: Mutex::new(entered_tx),
            release: Mutex::new(release_rx),
        };
        (gate, entered_rx, release_tx)
    }

    fn parse(&self, bytes: &[u8]) -> Result<String, Malformed> {
        if bytes == b"slow" {
            self.entered.lock().unwrap().send(()).unwrap();
            // A parse that takes as long as the test wants.
            let _ = self.release.lock().unwrap().recv();
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| Malformed)
    }
}

/// Calls `probe` 2000 times on another thread while the parse is held;
/// returns the 99th percentile and the worst duration. Fails (instead of
/// hanging) if the calls do not return while the parse is blocked.
fn probe_during_parse(
    entered: &Receiver<()>,
    release: &Sender<()>,
    probe: impl Fn() + Send + 'static,
) -> (Duration, Duration) {
    entered
        .recv_timeout(Duration::from_secs(10))
        .expect("the parser did not start");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut times = Vec::with_capacity(2000);
        for _ in 0..2000 {
            let start = Instant::now();
            probe();
            times.push(start.elapsed());
        }
        let _ = tx.send(times);
    });
    let times = rx.recv_timeout(Duration::from_secs(5));
    // Whatever happened, let the parser finish.
    release.send(()).unwrap();
    let mut times = times.expect("status()/load() blocked while a parse was in progress");
    times.sort();
    (times[times.len() * 99 / 100], times[times.len() - 1])
}

fn assert_fast(kind: &str, (p99, worst): (Duration, Duration)) {
    eprintln!(
        "{kind}: status()+load()+generation() during a held parse: p99 {p99:?}, worst {worst:?}"
    );
    assert!(p99 < Duration::from_millis(1), "{kind}: p99 {p99:?}");
}

#[test]
fn status_and_readers_never_wait_for_a_parse() {
    let tmp = tempfile::tempdir().unwrap();

    // One file.
    let (gate, entered, release) = Gate::new();
    let path = tmp.path().join("value");
    std::fs::write(&path, "fast").unwrap();
    let file = Watched::new(&path, move |b: &[u8]| gate.parse(b), WatchOptions::new()).unwrap();
    update(Style::RenameOver, &path, b"slow");
    let probe = file.clone();
    let timing = probe_during_parse(&entered, &release, move || {
        let status = probe.status();
        assert_eq!((status.generation, probe.load().as_str()), (1, "fast"));
        assert_eq!(probe.generation(), 1);
    });
    assert_fast("one file", timing);
    wait_for(|| file.load().as_str() == "slow");

    // Files parsed together.
    let (gate, entered, release) = Gate::new();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    std::fs::write(&one, "fast").unwrap();
    std::fs::write(&two, "x").unwrap();
    let set = Watched::files(
        [&one, &two],
        move |files: &[FileRef<'_>]| gate.parse(files[0].bytes()),
        WatchOptions::new(),
    )
    .unwrap();
    update(Style::RenameOver, &one, b"slow");
    let probe = set.clone();
    let timing = probe_during_parse(&entered, &release, move || {
        assert_eq!(probe.status().files.len(), 2);
        assert_eq!(probe.load().as_str(), "fast");
    });
    assert_fast("file set", timing);
    wait_for(|| set.load().as_str() == "slow");

    // A directory, held in its per-file parse and then in its combine.
    for held_in_combine in [false, true] {
        let (gate, entered, release) = Gate::new();
        let gate = std::sync::Arc::new(gate);
        let dir = tmp.path().join(format!("dir-{held_in_combine}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a"), "fast").unwrap();
        let (g1, g2) = (gate.clone(), gate.clone());
        let source = Watched::dir(
            DirSource::new(&dir),
            move |f: &FileRef<'_>| {
                if held_in_combine {
                    String::from_utf8(f.bytes().to_vec()).map_err(|_| Malformed)
                } else {
                    g1.parse(f.bytes())
                }
            },
            move |files: &[DirEntry<String>]| {
                if held_in_combine {
                    g2.parse(files[0].value().as_bytes())
                } else {
                    Ok(files[0].value().as_ref().clone())
                }
            },
            WatchOptions::new(),
        )
        .unwrap();
        update(Style::RenameOver, &dir.join("a"), b"slow");
        let probe = source.clone();
        let timing = probe_during_parse(&entered, &release, move || {
            assert_eq!(probe.status().files.len(), 1);
            assert_eq!(probe.load().as_str(), "fast");
        });
        assert_fast(
            if held_in_combine {
                "directory (combine)"
            } else {
                "directory (per file)"
            },
            timing,
        );
        wait_for(|| source.load().as_str() == "slow");
    }
}

/// `reload()` on another thread waits for the check in progress (it reports
/// on the files as they are), and then sees it done.
#[test]
fn reload_waits_for_the_check_in_progress() {
    let tmp = tempfile::tempdir().unwrap();
    let (gate, entered, release) = Gate::new();
    let path = tmp.path().join("value");
    std::fs::write(&path, "fast").unwrap();
    let file = Watched::new(&path, move |b: &[u8]| gate.parse(b), WatchOptions::new()).unwrap();
    update(Style::RenameOver, &path, b"slow");
    entered.recv_timeout(Duration::from_secs(10)).unwrap();
    let reloader = file.clone();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        tx.send(reloader.reload().map_err(|e| e.to_string()))
            .unwrap()
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "reload did not wait"
    );
    release.send(()).unwrap();
    // The worker's check swapped the value in; reload found it unchanged.
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), Ok(false));
    assert_eq!(file.load().as_str(), "slow");
}

fn wait_for(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(5), "timed out");
        std::thread::sleep(Duration::from_millis(1));
    }
}
