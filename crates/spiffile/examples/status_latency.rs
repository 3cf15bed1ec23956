//! Measures how long `Identity::status()` takes while the watcher reloads a
//! large, legitimate bundle: what a health endpoint pays while a reload is
//! in progress.
//!
//! ```text
//! cargo run --release -p spiffile --example status_latency [-- IDENTITIES [ROUNDS]]
//! ```
//!
//! The bundle holds IDENTITIES identities (default 100 000, about 38 MB),
//! each with its own P-256 key. Every round rewrites it (temp file + rename)
//! with one identity renamed, then calls `status()` every 50 µs (a busy
//! health endpoint; a tight loop would only compete with the reload for the
//! CPU) until the new generation is served, timing each call. The same
//! probe then runs for as long again with no reload in progress, as the
//! baseline: on a loaded machine a call is sometimes descheduled, and that
//! noise shows in both. Reported: how long the reload took (writer done ->
//! new generation served) and the `status()` latency during the reloads and
//! idle (median, 99.9th percentile, worst).

use std::path::Path;
use std::time::{Duration, Instant};

use spiffile::Identity;
use spiffile::bundle::Bundle;
use spiffile::svid::{generate_pkcs8_pem, public_key_of_pem};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let identities: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);

    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let mut bundle = Bundle::new("example.org".parse()?);
    let me = bundle.trust_domain().join("orders")?;
    let pem = generate_pkcs8_pem()?;
    std::fs::write(dir.join("id"), format!("{me}\n"))?;
    std::fs::write(dir.join("key.pem"), pem.as_bytes())?;
    bundle.add_key(&me, public_key_of_pem(pem.as_bytes())?)?;
    eprintln!("generating {identities} keys ...");
    for n in 0..identities {
        let id = bundle.trust_domain().join(&format!("svc/{n:07}"))?;
        let pem = generate_pkcs8_pem()?;
        bundle.add_key(&id, public_key_of_pem(pem.as_bytes())?)?;
    }
    let texts = [
        bundle.to_json(),
        // Same size: one identity renamed.
        bundle
            .to_json()
            .replace("example.org/svc/0000000", "example.org/svc/x000000"),
    ];
    let path = dir.join("bundle.json");
    write_atomically(dir, &path, texts[0].as_bytes())?;

    let started = Instant::now();
    let identity = Identity::from_files(dir.join("id"), dir.join("key.pem"), &path)?;
    let first_load = started.elapsed();
    std::thread::sleep(Duration::from_millis(100));

    let mut reloads = Vec::new();
    let (mut during, mut idle) = (Vec::new(), Vec::new());
    let probe = |out: &mut Vec<Duration>| {
        let t = Instant::now();
        let status = identity.status();
        out.push(t.elapsed());
        std::thread::sleep(Duration::from_micros(50));
        status.bundle.generation
    };
    for round in 1..=rounds {
        let generation = identity.bundle_generation();
        write_atomically(dir, &path, texts[round % 2].as_bytes())?;
        let start = Instant::now();
        while probe(&mut during) <= generation {
            if start.elapsed() > Duration::from_secs(120) {
                return Err("the bundle change was not picked up within 120 s".into());
            }
        }
        let reload = start.elapsed();
        reloads.push(reload);
        let start = Instant::now();
        while start.elapsed() < reload {
            probe(&mut idle);
        }
    }
    reloads.sort();
    during.sort();
    idle.sort();
    let pct = |v: &[Duration], p: f64| v[((v.len() - 1) as f64 * p) as usize];
    println!(
        "bundle: {identities} identities, {} bytes; first load {first_load:.2?}",
        texts[0].len()
    );
    println!(
        "reload (writer done -> new generation served), {rounds} rounds: median {:.2?}, worst {:.2?}",
        pct(&reloads, 0.5),
        pct(&reloads, 1.0)
    );
    for (label, calls) in [("during the reloads", &during), ("idle (baseline)", &idle)] {
        println!(
            "status() {label}, {} calls: median {:.2?}, p99.9 {:.2?}, worst {:.2?}",
            calls.len(),
            pct(calls, 0.5),
            pct(calls, 0.999),
            pct(calls, 1.0)
        );
    }
    Ok(())
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(".bundle.json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
