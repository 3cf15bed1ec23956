//! Measures revocation latency end to end: from the moment a producer
//! finishes writing `bundle.json` to the moment a running `Identity::verify`
//! refuses the revoked caller (and, for the restore, accepts it again), for
//! every way producers write files, with file-system events and with polling
//! alone.
//!
//! Then the same for a bundle directory (`SPIFFILE_BUNDLE_DIR`) holding a
//! spiffile bundle `example.org.json` and a SPIFFE bundle `spire.test.json`
//! (a per-domain authority): an identity revoked in one file, and a whole
//! trust domain removed (its file deleted) and added back, for every writer
//! style (Kubernetes: one `..data` swap of a volume holding both files).
//!
//! ```text
//! cargo run --release -p spiffile --example revocation_latency [-- ROUNDS]
//! ```

#[path = "../../spiffile-watch/tests/support/writers.rs"]
mod writers;

use std::time::{Duration, Instant};

use spiffile::bundle::Bundle;
use spiffile::svid::{Signer, generate_pkcs8_pem, public_key_of_pem};
use spiffile::{BundleSource, Error, Identity, IdentityBuilder, IdentitySources};
use writers::{Style, human, setup, setup_files, update, update_files};

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
    for (label, builder) in modes {
        println!("\n## bundle directory, {label}\n");
        println!(
            "| writer | identity revoked median / worst | restored | trust domain removed | added back |"
        );
        println!("|---|---:|---:|---:|---:|");
        for style in Style::ALL {
            let mut m = measure_dir(style, builder, rounds)?;
            let cell = |v: &mut Vec<Duration>| {
                v.sort();
                format!("{} / {}", human(v[v.len() / 2]), human(v[v.len() - 1]))
            };
            println!(
                "| {} | {} | {} | {} | {} |",
                style.name(),
                cell(&mut m.revoke),
                cell(&mut m.restore),
                cell(&mut m.remove),
                cell(&mut m.add),
            );
        }
    }
    Ok(())
}

/// Waits until `accepted()` says `want`; returns how long that took.
fn flip(
    what: &str,
    want: bool,
    mut accepted: impl FnMut() -> Result<bool, Error>,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let start = Instant::now();
    loop {
        if accepted()? == want {
            return Ok(start.elapsed());
        }
        if start.elapsed() > DEADLINE {
            return Err(format!("{what}: change not seen within {DEADLINE:?}").into());
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// Whether `billing` accepts `token` (an unknown identity is the refusal
/// expected here; anything else is a fault of the measurement).
fn accepts(billing: &Identity, token: &str) -> Result<bool, Error> {
    match billing.verify(token) {
        Ok(_) => Ok(true),
        Err(Error::UnknownIdentity(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The latencies of one writer style on a bundle directory.
struct DirRounds {
    revoke: Vec<Duration>,
    restore: Vec<Duration>,
    remove: Vec<Duration>,
    add: Vec<Duration>,
}

fn measure_dir(
    style: Style,
    builder: fn() -> IdentityBuilder,
    rounds: usize,
) -> Result<DirRounds, Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let mut bundle = Bundle::new("example.org".parse()?);
    let mut pems = Vec::new();
    for name in ["orders", "billing"] {
        let id = bundle.trust_domain().join(name)?;
        let pem = generate_pkcs8_pem()?;
        bundle.add_key(&id, public_key_of_pem(pem.as_bytes())?)?;
        pems.push((id, pem));
    }
    let good = bundle.to_json();
    let revoked = good.replace("spiffe://example.org/orders", "spiffe://example.org/ordert");
    // spire.test: one issuer key, published as SPIRE does.
    let issuer_pem = generate_pkcs8_pem()?;
    let mut jwk = public_key_of_pem(issuer_pem.as_bytes())?.to_jwk();
    if let Some(m) = jwk.as_object_mut() {
        m.remove("use");
        m.remove("alg");
    }
    let jwks = format!(r#"{{"keys":[{jwk}]}}"#);
    let dir = tmp.path().join("bundles");
    std::fs::create_dir_all(&dir)?;
    setup_files(
        style,
        &dir,
        &[
            ("example.org.json", good.as_bytes()),
            ("spire.test.json", jwks.as_bytes()),
        ],
    );
    let id_file = tmp.path().join("billing.id");
    std::fs::write(&id_file, format!("{}\n", pems[1].0))?;
    let billing =
        builder().load_sources(IdentitySources::new(BundleSource::dir(&dir)).id_file(&id_file))?;
    let ttl = Duration::from_secs(3600);
    let orders = Signer::from_pkcs8_pem(pems[0].0.clone(), pems[0].1.as_bytes())?;
    let spiffile_token = orders.mint(billing.id(), ttl)?;
    let issuer =
        Signer::from_pkcs8_pem("spiffe://spire.test/orders".parse()?, issuer_pem.as_bytes())?;
    let spire_token = issuer.mint(billing.id(), ttl)?;
    std::thread::sleep(Duration::from_millis(20));
    let polling = !billing.status().bundle.events;
    let mut m = DirRounds {
        revoke: Vec::new(),
        restore: Vec::new(),
        remove: Vec::new(),
        add: Vec::new(),
    };
    let pause = |round: usize| {
        let ms = if polling {
            (round as u64 * 397) % 1000
        } else {
            10
        };
        std::thread::sleep(Duration::from_millis(ms));
    };
    for round in 0..rounds {
        // An identity revoked in one file, then restored.
        for (content, want, out) in [
            (&revoked, false, &mut m.revoke),
            (&good, true, &mut m.restore),
        ] {
            pause(round);
            update_files(
                style,
                &dir,
                &[("example.org.json", content.as_bytes())],
                false,
            );
            out.push(flip(style.name(), want, || {
                accepts(&billing, &spiffile_token)
            })?);
        }
        // A trust domain removed (its file gone), then added back.
        pause(round);
        update_files(style, &dir, &[("example.org.json", good.as_bytes())], true);
        m.remove.push(flip(style.name(), false, || {
            accepts(&billing, &spire_token)
        })?);
        pause(round);
        update_files(
            style,
            &dir,
            &[
                ("example.org.json", good.as_bytes()),
                ("spire.test.json", jwks.as_bytes()),
            ],
            false,
        );
        m.add.push(flip(style.name(), true, || {
            accepts(&billing, &spire_token)
        })?);
    }
    Ok(m)
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
