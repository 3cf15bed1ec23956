//! Measures revocation latency end to end: from the moment a producer
//! finishes writing `bundle.json` to the moment a running `Identity::verify`
//! refuses the revoked caller (and, for the restore, accepts it again), for
//! every way producers write files, with file-system events and with polling
//! alone.
//!
//! ```text
//! cargo run --release -p spiffile --example revocation_latency [-- ROUNDS]
//! ```

#[path = "../../spiffile-watch/tests/support/writers.rs"]
mod writers;

use std::time::{Duration, Instant};

use spiffile::bundle::Bundle;
use spiffile::svid::{generate_pkcs8_pem, public_key_of_pem};
use spiffile::{Error, Identity, IdentityBuilder};
use writers::{Style, human, setup, update};

const DEADLINE: Duration = Duration::from_secs(10);

/// A labelled way of configuring the identities under test.
type Mode = (&'static str, fn() -> IdentityBuilder);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "{rounds} revoke/restore rounds per writer, {cpus} CPUs; latency = writer done -> verify() flips"
    );
    let modes: [Mode; 2] = [
        ("file events on (poll 1 s as safety net)", || {
            Identity::builder()
        }),
        ("file events off, poll 1 s", || {
            Identity::builder().file_events(false)
        }),
    ];
    for (label, builder) in modes {
        println!("\n## {label}\n");
        println!("| writer | revoke median | revoke worst | restore median | restore worst |");
        println!("|---|---:|---:|---:|---:|");
        for style in Style::ALL {
            let (mut revoke, mut restore) = measure(style, builder, rounds)?;
            revoke.sort();
            restore.sort();
            println!(
                "| {} | {} | {} | {} | {} |",
                style.name(),
                human(revoke[revoke.len() / 2]),
                human(revoke[revoke.len() - 1]),
                human(restore[restore.len() / 2]),
                human(restore[restore.len() - 1]),
            );
        }
    }
    Ok(())
}

type Rounds = (Vec<Duration>, Vec<Duration>);

fn measure(
    style: Style,
    builder: fn() -> IdentityBuilder,
    rounds: usize,
) -> Result<Rounds, Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let mut bundle = Bundle::new("example.org".parse()?);
    let mut dirs = Vec::new();
    for name in ["orders", "billing"] {
        let id = bundle.trust_domain().join(name)?;
        let pem = generate_pkcs8_pem()?;
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("id"), format!("{id}\n"))?;
        std::fs::write(dir.join("key.pem"), pem.as_bytes())?;
        bundle.add_key(&id, public_key_of_pem(pem.as_bytes())?)?;
        dirs.push(dir);
    }
    let good = bundle.to_json();
    // Same size, so every writer style (including same-size/same-mtime) applies.
    let revoked = good.replace("spiffe://example.org/orders", "spiffe://example.org/ordert");
    let bundle_dir = tmp.path().join("shared");
    std::fs::create_dir_all(&bundle_dir)?;
    let path = setup(style, &bundle_dir, "bundle.json", good.as_bytes());
    let load =
        |dir: &std::path::Path| builder().from_files(dir.join("id"), dir.join("key.pem"), &path);
    let orders = load(&dirs[0])?;
    let billing = load(&dirs[1])?;
    let token = orders.token_with_ttl(billing.id(), Duration::from_secs(3600))?;
    std::thread::sleep(Duration::from_millis(20));
    let polling = !billing.status().bundle.events;
    let (mut rev, mut res) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for (content, want_accept, out) in [(&revoked, false, &mut rev), (&good, true, &mut res)] {
            // With polling alone, vary the phase against the poll timer.
            let pause = if polling {
                (round as u64 * 397) % 1000
            } else {
                10
            };
            std::thread::sleep(Duration::from_millis(pause));
            update(style, &path, content.as_bytes());
            let start = Instant::now();
            loop {
                let accepted = match billing.verify(&token) {
                    Ok(_) => true,
                    Err(Error::UnknownIdentity(_)) => false,
                    Err(e) => return Err(e.into()),
                };
                if accepted == want_accept {
                    break;
                }
                if start.elapsed() > DEADLINE {
                    return Err(
                        format!("{}: change not seen within {DEADLINE:?}", style.name()).into(),
                    );
                }
                std::thread::sleep(Duration::from_micros(50));
            }
            out.push(start.elapsed());
        }
    }
    Ok((rev, res))
}
