//! Measures how long a [`Watched`] value takes to follow a change, for
//! every way producers write files, with file-system events and with
//! polling alone: one file, a pair of files parsed together, and a
//! directory (a file changed, added, removed).
//!
//! ```text
//! cargo run --release -p spiffile-watch --example latency [-- ROUNDS [notify|poll] [file|set|dir]]
//! ```
//!
//! Latency is measured from the moment the writer returns (for a pair: the
//! second file's writer) to the moment `load()` returns the new value
//! (checked every 50 µs).

#[path = "../tests/support/writers.rs"]
mod writers;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use spiffile_watch::{DirEntry, DirSource, FileRef, WatchOptions, Watched};
use writers::{
    Malformed, Style, human, parse_payload, payload, setup, setup_files, update, update_files,
};

const DEADLINE: Duration = Duration::from_secs(10);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(20);
    let only = |choices: &[&str]| {
        args.iter()
            .skip(1)
            .find(|a| choices.contains(&a.as_str()))
            .cloned()
    };
    let mode = only(&["notify", "poll"]);
    let kind = only(&["file", "set", "dir"]);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("{rounds} change rounds per style, {cpus} CPUs");
    let modes = [
        ("notify on, poll 1 s", WatchOptions::new()),
        (
            "notify off, poll 1 s",
            WatchOptions::new().use_notify(false),
        ),
    ];
    for (label, options) in modes {
        match mode.as_deref() {
            Some("notify") if !options.notify_enabled() => continue,
            Some("poll") if options.notify_enabled() => continue,
            _ => {}
        }
        if kind.as_deref().is_none_or(|k| k == "file") {
            println!("\n## one file: {label}\n");
            println!("| writer | median | worst |");
            println!("|---|---:|---:|");
            for style in Style::ALL {
                let l = file(style, &options, rounds);
                println!("| {} | {} | {} |", style.name(), median(&l), worst(&l));
            }
        }
        if kind.as_deref().is_none_or(|k| k == "set") {
            println!("\n## a pair of files parsed together: {label}\n");
            println!("| writer | median | worst |");
            println!("|---|---:|---:|");
            for style in Style::ALL {
                let l = pair(style, &options, rounds);
                println!("| {} | {} | {} |", style.name(), median(&l), worst(&l));
            }
        }
        if kind.as_deref().is_none_or(|k| k == "dir") {
            println!("\n## a directory (removal grace 25 ms): {label}\n");
            println!(
                "| writer | change median | change worst | add median | add worst | remove median | remove worst |"
            );
            println!("|---|---:|---:|---:|---:|---:|---:|");
            for style in Style::ALL {
                let (c, a, r) = dir(style, &options, rounds);
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    style.name(),
                    median(&c),
                    worst(&c),
                    median(&a),
                    worst(&a),
                    median(&r),
                    worst(&r)
                );
            }
        }
    }
}

fn median(v: &[Duration]) -> String {
    let mut v = v.to_vec();
    v.sort();
    human(v[v.len() / 2])
}

fn worst(v: &[Duration]) -> String {
    human(v.iter().copied().max().unwrap_or_default())
}

/// With polling alone, vary the phase against the poll timer.
fn pause(options: &WatchOptions, round: usize) {
    let ms = if options.notify_enabled() {
        10
    } else {
        (round as u64 * 397) % 1000
    };
    std::thread::sleep(Duration::from_millis(ms));
}

fn wait<T>(watched: &Watched<T, impl Sized>, what: &str, done: impl Fn(&T) -> bool) -> Duration {
    let start = Instant::now();
    while !done(&watched.load()) {
        assert!(start.elapsed() < DEADLINE, "{what}: not followed");
        std::thread::sleep(Duration::from_micros(50));
    }
    start.elapsed()
}

fn file(style: Style, options: &WatchOptions, rounds: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("temp dir");
    let contents = [payload('A', 64), payload('B', 64)];
    let path = setup(style, dir.path(), "bundle.json", &contents[0]);
    let watched = Watched::new(&path, parse_payload, options.clone()).expect("start");
    std::thread::sleep(Duration::from_millis(20));
    (1..=rounds)
        .map(|round| {
            pause(options, round);
            let want = &contents[round % 2];
            update(style, &path, want);
            wait(&watched, style.name(), |v: &String| {
                v.as_bytes() == want.as_slice()
            })
        })
        .collect()
}

fn parse_pair(files: &[FileRef<'_>]) -> Result<String, Malformed> {
    let cert = parse_payload(files[0].bytes())?;
    let key = parse_payload(files[1].bytes())?;
    if cert == key {
        Ok(cert)
    } else {
        Err(Malformed)
    }
}

fn pair(style: Style, options: &WatchOptions, rounds: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("temp dir");
    let contents = [payload('A', 64), payload('B', 64)];
    let paths = setup_files(
        style,
        dir.path(),
        &[("svid.pem", &contents[0]), ("svid_key.pem", &contents[0])],
    );
    let watched = Watched::files(&paths, parse_pair, options.clone()).expect("start");
    std::thread::sleep(Duration::from_millis(20));
    (1..=rounds)
        .map(|round| {
            pause(options, round);
            let want = &contents[round % 2];
            if style == Style::Kubernetes {
                update_files(
                    style,
                    dir.path(),
                    &[("svid.pem", want), ("svid_key.pem", want)],
                    false,
                );
            } else {
                update(style, &paths[0], want);
                update(style, &paths[1], want);
            }
            wait(&watched, style.name(), |v: &String| {
                v.as_bytes() == want.as_slice()
            })
        })
        .collect()
}

type Table = BTreeMap<String, String>;

fn combine(files: &[DirEntry<String>]) -> Result<Table, Malformed> {
    Ok(files
        .iter()
        .map(|f| (f.name().to_owned(), f.value().as_ref().clone()))
        .collect())
}

type Rounds = (Vec<Duration>, Vec<Duration>, Vec<Duration>);

fn dir(style: Style, options: &WatchOptions, rounds: usize) -> Rounds {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir: &Path = tmp.path();
    let contents = [payload('A', 64), payload('B', 64)];
    let extra = payload('C', 64);
    setup_files(
        style,
        dir,
        &[("a.json", &contents[0]), ("b.json", &contents[1])],
    );
    let source = DirSource::new(dir).pattern("*.json");
    let watched = Watched::dir(
        source,
        |f: &FileRef<'_>| parse_payload(f.bytes()),
        combine,
        options.clone(),
    )
    .expect("start");
    std::thread::sleep(Duration::from_millis(20));
    let (mut changed, mut added, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("payload");
    for round in 1..=rounds {
        let want = &contents[round % 2];
        pause(options, round);
        update_files(style, dir, &[("a.json", want)], false);
        changed.push(wait(&watched, "change", |t: &Table| {
            t.get("a.json") == Some(&text(want))
        }));
        pause(options, round);
        update_files(style, dir, &[("c.json", &extra)], false);
        added.push(wait(&watched, "add", |t: &Table| t.contains_key("c.json")));
        pause(options, round);
        if style == Style::Kubernetes {
            let b = text(&contents[1]);
            let a = watched.load().get("a.json").cloned().unwrap_or_default();
            update_files(
                style,
                dir,
                &[("a.json", a.as_bytes()), ("b.json", b.as_bytes())],
                true,
            );
        } else {
            std::fs::remove_file(dir.join("c.json")).expect("remove");
        }
        removed.push(wait(&watched, "remove", |t: &Table| {
            !t.contains_key("c.json")
        }));
    }
    (changed, added, removed)
}
