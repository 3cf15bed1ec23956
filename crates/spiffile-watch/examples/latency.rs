//! Measures how long a [`Watched`] value takes to follow a file change, for
//! every way producers write files, with file-system events and with
//! polling alone.
//!
//! ```text
//! cargo run --release -p spiffile-watch --example latency [-- ROUNDS [notify|poll]]
//! ```
//!
//! Latency is measured from the moment the writer returns to the moment
//! `load()` returns the new value (checked every 50 µs).

#[path = "../tests/support/writers.rs"]
mod writers;

use std::time::{Duration, Instant};

use spiffile_watch::{WatchOptions, Watched};
use writers::{Style, human, parse_payload, payload, setup, update};

const DEADLINE: Duration = Duration::from_secs(10);

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let only = std::env::args().nth(2);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("{rounds} change rounds per style (A -> B -> A ...), {cpus} CPUs");
    let modes = [
        ("notify on, poll 1 s", WatchOptions::new()),
        (
            "notify off, poll 1 s",
            WatchOptions::new().use_notify(false),
        ),
    ];
    for (label, options) in modes {
        match only.as_deref() {
            Some("notify") if !options.notify_enabled() => continue,
            Some("poll") if options.notify_enabled() => continue,
            _ => {}
        }
        println!();
        println!("## {label}");
        println!();
        println!("| writer | median | worst |");
        println!("|---|---:|---:|");
        for style in Style::ALL {
            let mut latencies = measure(style, &options, rounds);
            latencies.sort();
            let median = latencies[latencies.len() / 2];
            let worst = latencies[latencies.len() - 1];
            println!(
                "| {} | {} | {} |",
                style.name(),
                human(median),
                human(worst)
            );
        }
    }
}

fn measure(style: Style, options: &WatchOptions, rounds: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("temp dir");
    let contents = [payload('A', 64), payload('B', 64)];
    let path = setup(style, dir.path(), "bundle.json", &contents[0]);
    let watched = Watched::new(&path, parse_payload, options.clone()).expect("start");
    std::thread::sleep(Duration::from_millis(20));
    let polling = !options.notify_enabled();
    let mut out = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        // With polling alone, vary the phase against the poll timer.
        let pause = if polling {
            Duration::from_millis((round as u64 * 397) % 1000)
        } else {
            Duration::from_millis(10)
        };
        std::thread::sleep(pause);
        let want = &contents[round % 2];
        update(style, &path, want);
        let start = Instant::now();
        while watched.load().as_bytes() != want.as_slice() {
            assert!(start.elapsed() < DEADLINE, "{}: not followed", style.name());
            std::thread::sleep(Duration::from_micros(50));
        }
        out.push(start.elapsed());
    }
    out
}
