//! Issue 15, item 6: a hostile bundle just under the size cap is parsed in a
//! small multiple of its size (an unknown member holding `[0,0,…]` used to
//! take 16 times its size). Each case runs in a child process (this test
//! binary again) that reports its own peak resident set, so the figure is
//! not disturbed by other tests. Linux only (it reads `/proc/self/status`).
//! Figures for every hostile shape, in a verifier and in `spiffile bundle
//! check`: `cargo run --release -p spiffile --example bundle_memory`.
#![cfg(target_os = "linux")]

use std::process::Command;

use spiffile_bundle::{Bundle, MAX_BUNDLE_BYTES};

const CHILD: &str = "SPIFFILE_BUNDLE_MEMORY_CASE";
const TEST: &str = "hostile_bundles_parse_in_a_small_multiple_of_their_size";

fn peak() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// A document of about `size` bytes: `head`, then `unit(i)` joined by
/// commas, then `tail`.
fn document(size: usize, head: &str, unit: impl Fn(usize) -> String, tail: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 256);
    out.extend_from_slice(head.as_bytes());
    let mut i = 0;
    while out.len() + tail.len() + 64 < size {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(unit(i).as_bytes());
        i += 1;
    }
    out.extend_from_slice(tail.as_bytes());
    out
}

fn case(name: &str, size: usize) -> Vec<u8> {
    let head = r#"{"trust_domain":"example.org","spiffile_version":1,"#;
    match name {
        "unknown member [0,0,…]" => document(
            size,
            &format!(r#"{head}"identities":{{}},"x":["#),
            |_| "0".into(),
            "]}",
        ),
        "invalid identity names" => document(
            size,
            &format!(r#"{head}"identities":{{"#),
            |i| format!(r#""{i:x}":0"#),
            "}}",
        ),
        "skipped entries with valid names" => document(
            size,
            &format!(r#"{head}"identities":{{"#),
            |i| format!(r#""spiffe://example.org/{i:x}":0"#),
            "}}",
        ),
        "every valid name twice" => document(
            size,
            &format!(r#"{head}"identities":{{"#),
            |i| format!(r#""spiffe://example.org/{:x}":0"#, i / 2),
            "}}",
        ),
        "keys [{},{},…]" => document(
            size,
            &format!(r#"{head}"identities":{{"spiffe://example.org/x":{{"keys":["#),
            |_| "{}".into(),
            "]}}}",
        ),
        "unknown members of one key" => document(
            size,
            &format!(
                r#"{head}"identities":{{"spiffe://example.org/x":{{"keys":[{{"kty":"EC","crv":"P-256","x":"PTYXlahmuCwBzgmCLWJYQAWryOo_ufBDDx08bL0Pi-U","y":"pd8h9ji01sqbXO_2vLnDs1sEPOERADYuMbMm8djdxX0","kid":"k","#
            ),
            // m0, m1, …: a member named `d` would make it a private key.
            |i| format!(r#""m{i:x}":0"#),
            "}]}}}",
        ),
        other => panic!("unknown case {other}"),
    }
}

const CASES: [&str; 6] = [
    "unknown member [0,0,…]",
    "invalid identity names",
    "skipped entries with valid names",
    "every valid name twice",
    "keys [{},{},…]",
    "unknown members of one key",
];

#[test]
fn hostile_bundles_parse_in_a_small_multiple_of_their_size() {
    if let Ok(name) = std::env::var(CHILD) {
        let baseline = peak();
        // A third of the cap keeps the debug-build test quick; the ratio
        // does not depend on the size (the example measures at the cap).
        let doc = case(&name, MAX_BUNDLE_BYTES / 3);
        let bundle = Bundle::from_json_quiet(&doc).expect("the document parses");
        let canonical = bundle.is_canonical(&doc);
        let after = peak();
        println!(
            "MEMORY {} {} {} {}",
            after - baseline,
            doc.len(),
            bundle.warnings().len(),
            canonical
        );
        return;
    }
    for name in CASES {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD, name)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("MEMORY ").map(|(_, rest)| rest))
            .unwrap_or_else(|| {
                panic!(
                    "{name}: child failed: {stdout}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        let fields: Vec<&str> = line.split_whitespace().collect();
        let used: u64 = fields[0].parse().unwrap();
        let size: u64 = fields[1].parse().unwrap();
        let warnings: usize = fields[2].parse().unwrap();
        let ratio = used as f64 / size as f64;
        eprintln!(
            "{name}: {size} bytes, peak {used} bytes above the baseline ({ratio:.2}× the file, file included), {warnings} warnings kept"
        );
        assert!(
            ratio <= 4.0,
            "{name}: parsing took {ratio:.2}× the file size (limit 4×)"
        );
        assert!(
            warnings <= 4 * (spiffile_bundle::MAX_WARNINGS + 1),
            "{name}"
        );
    }
}
