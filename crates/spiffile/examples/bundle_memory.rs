//! Peak memory of loading a bundle, for the worst bundles that fit under the
//! 48 MiB cap (issue 15, item 6): in a verifier (`Identity` loading the
//! bundle) and in `spiffile bundle check`. Each measurement runs in a fresh
//! process; the figure is that process's peak resident set (`VmHWM`), next
//! to the bundle's size. Linux only (it reads `/proc`).
//!
//! ```text
//! cargo build --release -p spiffile-cli
//! cargo run --release -p spiffile --example bundle_memory [-- --cli target/release/spiffile]
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use spiffile::bundle::{Bundle, MAX_BUNDLE_BYTES, PublicKey};
use spiffile::svid::{generate_pkcs8_pem, public_key_of_pem};

/// A little under the cap, so every file is parsed rather than refused.
const TARGET: usize = MAX_BUNDLE_BYTES - 4096;
const TD: &str = "example.org";

fn head() -> String {
    format!("{{\"trust_domain\":\"{TD}\",\"spiffile_version\":1,")
}

/// `body` repeated (with `sep`) until the document is about `TARGET` bytes.
fn fill(out: &mut String, unit: impl Fn(usize) -> String, sep: &str, tail: &str) {
    let mut i = 0;
    while out.len() + tail.len() + 64 < TARGET {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(&unit(i));
        i += 1;
    }
    out.push_str(tail);
}

fn key_json(key: &PublicKey, kid: &str, extra: &str) -> String {
    let jwk = key.to_jwk();
    format!(
        "{{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":{},\"y\":{},\"kid\":\"{kid}\"{extra}}}",
        jwk["x"], jwk["y"]
    )
}

fn fresh_key() -> PublicKey {
    let pem = generate_pkcs8_pem().expect("key generation");
    public_key_of_pem(pem.as_bytes()).expect("own key")
}

/// The hostile (and one legitimate) bundles, by name.
fn bundles() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();

    // The issue's case: an unknown member holding [0,0,0,…].
    let mut s = head() + "\"identities\":{},\"x\":[";
    fill(&mut s, |_| "0".into(), ",", "]}");
    out.push(("unknown member [0,0,…]", s));

    // Unknown member, nested arrays [[],[],…] (more structure per byte).
    let mut s = head() + "\"identities\":{},\"x\":[";
    fill(&mut s, |_| "[]".into(), ",", "]}");
    out.push(("unknown member [[],[],…]", s));

    // Unknown member, one long string.
    let mut s = head() + "\"identities\":{},\"x\":\"";
    fill(&mut s, |_| "a".repeat(4096), "", "\"}");
    out.push(("unknown member one long string", s));

    // Entries that are skipped: names outside any grammar, short as can be.
    let mut s = head() + "\"identities\":{";
    fill(&mut s, |i| format!("\"{i:x}\":0"), ",", "}}");
    out.push(("identities \"N\":0 (invalid names)", s));

    // Valid names whose entries are skipped (each must be remembered, to
    // find a repeat).
    let mut s = head() + "\"identities\":{";
    fill(&mut s, |i| format!("\"spiffe://{TD}/{i:x}\":0"), ",", "}}");
    out.push(("identities valid names, entries 0", s));

    // Every name twice (each a repeated identity).
    let mut s = head() + "\"identities\":{";
    fill(
        &mut s,
        |i| format!("\"spiffe://{TD}/{:x}\":0", i / 2),
        ",",
        "}}",
    );
    out.push(("every valid name twice", s));

    // One name repeated (fail closed: none trusted).
    let mut s = head() + "\"identities\":{";
    fill(&mut s, |_| format!("\"spiffe://{TD}/x\":0"), ",", "}}");
    out.push(("one identity repeated", s));

    // One identity with a huge list of invalid keys.
    let mut s = head() + &format!("\"identities\":{{\"spiffe://{TD}/x\":{{\"keys\":[");
    fill(&mut s, |_| "{}".into(), ",", "]}}}");
    out.push(("one identity, keys [{},{},…]", s));

    // One valid key carrying millions of unknown members.
    let key = fresh_key();
    let mut s = head() + &format!("\"identities\":{{\"spiffe://{TD}/x\":{{\"keys\":[");
    let prefix = key_json(&key, "k", "");
    s.push_str(&prefix[..prefix.len() - 1]);
    s.push(',');
    // (Named m0, m1, …: a member named `d` would make it a private key.)
    fill(&mut s, |i| format!("\"m{i:x}\":0"), ",", "}]}}}");
    out.push(("one key with unknown members \"N\":0", s));

    // Many valid keys with short kids, one identity each (2 000 distinct
    // points, so most are shared keys as well): the largest bundle whose
    // entries are all kept, by the bundle and by the verifier.
    let keys: Vec<PublicKey> = (0..2000).map(|_| fresh_key()).collect();
    let mut s = head() + "\"identities\":{";
    fill(
        &mut s,
        |i| {
            format!(
                "\"spiffe://{TD}/{i:x}\":{{\"keys\":[{}]}}",
                key_json(&keys[i % keys.len()], &format!("{i:x}"), "")
            )
        },
        ",",
        "}}",
    );
    out.push(("valid identities, one key each", s));

    // The same shape as `spiffile` writes it, for 100 000 services.
    let mut b = Bundle::new(TD.parse().expect("trust domain"));
    for i in 0..100_000 {
        let id = format!("spiffe://{TD}/service-{i:06}").parse().expect("id");
        b.add_key(&id, fresh_key()).expect("add");
    }
    out.push(("canonical, 100 000 services", b.to_json()));
    out
}

/// The peak resident set of this process, in bytes.
fn own_peak() -> u64 {
    peak_of(Path::new("/proc/self/status")).unwrap_or(0)
}

fn peak_of(status: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(status).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs `cmd` and samples its peak resident set until it exits.
fn peak_of_child(cmd: &mut Command) -> (u64, bool) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let status = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak = 0;
    loop {
        if let Some(p) = peak_of(&status) {
            peak = peak.max(p);
        }
        if let Some(exit) = child.try_wait().expect("wait") {
            return (peak, exit.success());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The child: load an identity with `bundle` and report the peak.
fn verifier(dir: &Path, bundle: &Path) {
    let before = own_peak();
    let identity = spiffile::Identity::builder().hot_reload(false).from_files(
        dir.join("id"),
        dir.join("key.pem"),
        bundle,
    );
    let after = own_peak();
    let loaded = identity.is_ok();
    drop(identity);
    println!("{before} {after} {loaded}");
}

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / (1024.0 * 1024.0))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--verifier") {
        verifier(Path::new(&args[2]), Path::new(&args[3]));
        return;
    }
    let cli = match args.iter().position(|a| a == "--cli") {
        Some(i) => args.get(i + 1).map(PathBuf::from),
        None => {
            let guess = PathBuf::from("target/release/spiffile");
            guess.exists().then_some(guess)
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let pem = generate_pkcs8_pem().expect("key");
    std::fs::write(dir.path().join("key.pem"), pem.as_bytes()).expect("write key");
    std::fs::write(dir.path().join("id"), format!("spiffe://{TD}/verifier\n")).expect("write id");
    let exe = std::env::current_exe().expect("own path");

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| bundle | size MiB | verifier peak MiB (× size) | `bundle check` peak MiB (× size) |"
    );
    let _ = writeln!(table, "|---|---|---|---|");
    let baseline = {
        let out = Command::new(&exe)
            .args([
                "--verifier",
                &dir.path().display().to_string(),
                "/nonexistent",
            ])
            .output()
            .expect("baseline");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    for (name, text) in bundles() {
        let path = dir.path().join("bundle.json");
        std::fs::write(&path, &text).expect("write bundle");
        let size = text.len() as u64;
        drop(text);
        let out = Command::new(&exe)
            .args([
                "--verifier",
                &dir.path().display().to_string(),
                &path.display().to_string(),
            ])
            .output()
            .expect("verifier child");
        let reply = String::from_utf8_lossy(&out.stdout).to_string();
        let mut parts = reply.split_whitespace();
        let _before: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let after: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let loaded = parts.next() == Some("true");
        let check = match &cli {
            Some(cli) => {
                let (peak, ok) = peak_of_child(Command::new(cli).args([
                    "bundle",
                    "check",
                    &path.display().to_string(),
                ]));
                format!(
                    "{} ({:.2}×){}",
                    mib(peak),
                    peak as f64 / size as f64,
                    if ok { "" } else { ", exit 1" }
                )
            }
            None => "(no --cli given)".into(),
        };
        let _ = writeln!(
            table,
            "| {name} | {} | {} ({:.2}×){} | {check} |",
            mib(size),
            mib(after),
            after as f64 / size as f64,
            if loaded { "" } else { ", refused" },
        );
        eprintln!("done: {name}");
    }
    println!(
        "peak resident set of a fresh process per load (a verifier that loads no bundle peaks at {} MiB)\n",
        mib(baseline)
    );
    print!("{table}");
}
