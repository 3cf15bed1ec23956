//! `cargo xtask bench`: runs the criterion benchmarks of `spiffile-bench`,
//! counts instructions with callgrind, times the Python reference in the same
//! session, and prints one table of ratios (also written to
//! `target/spiffile-bench/table.md`).
//!
//! Every figure is set against its baseline from the same run. Times are
//! per operation: the *minimum* over criterion's samples (the one least
//! disturbed by whatever else runs on the machine) and the median.
//! Instruction counts come from `valgrind --tool=callgrind` running the same
//! benchmark binary in its `SPIFFILE_ICOUNT=<op>:<n>` mode; they do not vary
//! with load, which makes them the steadiest measure of the overhead added
//! around the same `ring` calls.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::python;

const USAGE: &str = "usage: cargo xtask bench [--skip-criterion] [--skip-callgrind] [--skip-python] [-- <criterion filter>]";

/// The criterion bench targets of `spiffile-bench`: JWT-SVIDs, then mTLS
/// handshakes.
const BENCHES: [&str; 2] = ["spiffile", "mtls"];

/// Operations per callgrind run.
const ICOUNT_OPS: u32 = 200;
/// Rounds of the paired, interleaved timing (about 20 s on 2 cores).
const PAIRED_ROUNDS: u32 = 2000;

struct Options {
    criterion: bool,
    callgrind: bool,
    python: bool,
    filter: Vec<String>,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        criterion: true,
        callgrind: true,
        python: true,
        filter: Vec::new(),
    };
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--skip-criterion" => o.criterion = false,
            "--skip-callgrind" => o.callgrind = false,
            "--skip-python" => o.python = false,
            "--" => o.filter.extend(rest.by_ref().cloned()),
            _ => return Err(USAGE.to_owned()),
        }
    }
    Ok(o)
}

/// One benchmark's per-operation time, nanoseconds.
#[derive(Clone, Copy)]
struct Timing {
    min: f64,
    median: f64,
}

pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let opts = parse_args(args)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    if opts.criterion {
        for bench in BENCHES {
            let mut cmd = Command::new(&cargo);
            cmd.current_dir(root)
                .args(["bench", "-p", "spiffile-bench", "--bench", bench, "--"])
                .args(&opts.filter);
            eprintln!(
                "xtask: cargo bench -p spiffile-bench --bench {bench} -- {}",
                opts.filter.join(" ")
            );
            let status = cmd
                .status()
                .map_err(|e| format!("cannot run cargo bench: {e}"))?;
            if !status.success() {
                return Err(format!("cargo bench failed ({status})"));
            }
        }
    }

    let paired = match paired_ratios(root, &cargo) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("xtask: paired timing skipped: {e}");
            None
        }
    };

    let icounts = if opts.callgrind {
        match instruction_counts(root, &cargo) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("xtask: instruction counts skipped: {e}");
                None
            }
        }
    } else {
        None
    };

    let python = if opts.python {
        match python_timings(root) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("xtask: Python reference skipped: {e}");
                None
            }
        }
    } else {
        None
    };

    let table = render(root, paired.as_deref(), icounts.as_deref(), python)?;
    print!("{table}");
    let out = root.join("target/spiffile-bench/table.md");
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&out, &table).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("xtask: table written to {}", out.display());
    Ok(())
}

/// Reads `target/criterion/<id>/new/sample.json`.
fn criterion_timing(root: &Path, id: &str) -> Option<Timing> {
    let path = root
        .join("target/criterion")
        .join(id)
        .join("new/sample.json");
    let text = std::fs::read_to_string(path).ok()?;
    let iters = number_array(&text, "iters")?;
    let times = number_array(&text, "times")?;
    if iters.len() != times.len() || iters.is_empty() {
        return None;
    }
    let mut per: Vec<f64> = iters
        .iter()
        .zip(&times)
        .filter(|(i, _)| **i > 0.0)
        .map(|(i, t)| t / i)
        .collect();
    per.sort_by(f64::total_cmp);
    Some(Timing {
        min: *per.first()?,
        median: per[per.len() / 2],
    })
}

/// The numbers of the JSON array member `key` (flat arrays of numbers only).
fn number_array(json: &str, key: &str) -> Option<Vec<f64>> {
    let start = json.find(&format!("\"{key}\":["))? + key.len() + 4;
    let end = start + json[start..].find(']')?;
    json[start..end]
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().ok())
        .collect()
}

/// The number of the JSON member `key` (first occurrence).
fn number_field(json: &str, key: &str) -> Option<f64> {
    let start = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = json[start..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Instructions per operation, by callgrind op name.
fn instruction_counts(root: &Path, cargo: &std::ffi::OsStr) -> Result<Vec<(String, f64)>, String> {
    let probe = Command::new("valgrind").arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return Err("valgrind is not installed (apt install valgrind)".into());
    }
    let exe = bench_executable(root, cargo)?;

    let count = |op: &str| -> Result<f64, String> {
        let out = Command::new("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(&exe)
            .env("SPIFFILE_ICOUNT", format!("{op}:{ICOUNT_OPS}"))
            .output()
            .map_err(|e| format!("valgrind: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!("callgrind run of {op} failed: {stderr}"));
        }
        stderr
            .lines()
            .find_map(|l| {
                let at = l.find("Collected : ")? + 12;
                l[at..].trim().parse::<f64>().ok()
            })
            .ok_or_else(|| format!("no instruction count for {op}"))
    };
    eprintln!("xtask: counting instructions with callgrind ({ICOUNT_OPS} operations each) ...");
    let none = count("none")?;
    let mut counts = Vec::new();
    for op in [
        "ring_verify",
        "verifier",
        "verifier_federated",
        "verifier_per_domain",
        "identity_fresh",
        "identity_cached",
        "ring_sign",
        "signer_mint_at",
        "identity_token_cached",
        "identity_token_distinct",
    ] {
        let n = count(op)?;
        counts.push((op.to_owned(), (n - none) / f64::from(ICOUNT_OPS)));
    }
    Ok(counts)
}

/// The path of the compiled benchmark binary (built if needed).
fn bench_executable(root: &Path, cargo: &std::ffi::OsStr) -> Result<PathBuf, String> {
    bench_executable_named(root, cargo, "spiffile")
}

/// The path of the compiled bench target `name` (built if needed).
fn bench_executable_named(
    root: &Path,
    cargo: &std::ffi::OsStr,
    name: &str,
) -> Result<PathBuf, String> {
    let out = Command::new(cargo)
        .current_dir(root)
        .args([
            "bench",
            "-p",
            "spiffile-bench",
            "--bench",
            name,
            "--no-run",
            "--message-format=json",
        ])
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err("cargo bench --no-run failed".into());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter(|l| l.contains(&format!("\"name\":\"{name}\"")) && l.contains("\"bench\""))
        .find_map(|l| {
            let start = l.find("\"executable\":\"")? + 14;
            let end = start + l[start..].find('"')?;
            Some(PathBuf::from(&l[start..end]))
        })
        .ok_or_else(|| "no bench executable in cargo's output".to_owned())
}

/// Paired, interleaved ratios (`SPIFFILE_PAIRED` mode of the benchmark
/// binary): id, median, first and third quartile.
fn paired_ratios(root: &Path, cargo: &std::ffi::OsStr) -> Result<Vec<(String, [f64; 3])>, String> {
    let mut rows = Vec::new();
    for bench in BENCHES {
        let exe = bench_executable_named(root, cargo, bench)?;
        rows.extend(paired_ratios_of(&exe)?);
    }
    Ok(rows)
}

fn paired_ratios_of(exe: &Path) -> Result<Vec<(String, [f64; 3])>, String> {
    eprintln!(
        "xtask: paired, interleaved timing of {} ({PAIRED_ROUNDS} rounds) ...",
        exe.display()
    );
    let out = Command::new(exe)
        .env("SPIFFILE_PAIRED", PAIRED_ROUNDS.to_string())
        .output()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "paired run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<(String, [f64; 3])> = stdout
        .lines()
        .filter_map(|l| {
            let mut f = l.strip_prefix("paired ")?.split_whitespace();
            let id = f.next()?.to_owned();
            let mut q = [0.0; 3];
            for v in &mut q {
                *v = f.next()?.parse().ok()?;
            }
            Some((id, q))
        })
        .collect();
    if rows.is_empty() {
        return Err("the paired run printed no ratios".into());
    }
    Ok(rows)
}

/// Python reference verify and mint, microseconds per call.
struct PythonTimings {
    verify: Timing,
    mint: Timing,
    version: String,
}

fn python_timings(root: &Path) -> Result<PythonTimings, String> {
    let fixture = root.join("target/spiffile-bench/peer");
    let orders = root.join("target/spiffile-bench/peer-orders");
    if !fixture.join("token").exists() {
        return Err(format!(
            "{} is missing: run the `verify` benchmarks first",
            fixture.display()
        ));
    }
    let python = python::ensure_venv(root)?;
    let script = root.join("xtask/peer/peer.py");
    let path = |p: PathBuf| p.display().to_string();
    let files = |dir: &Path| {
        [
            "--id-file".to_owned(),
            path(dir.join("id")),
            "--key-file".to_owned(),
            path(dir.join("key.pem")),
            "--bundle-file".to_owned(),
            path(dir.join("bundle.json")),
        ]
    };
    let timing = |reply: &str| -> Result<Timing, String> {
        if !python::json_ok(reply) {
            return Err(format!("peer failed: {reply}"));
        }
        Ok(Timing {
            min: number_field(reply, "min_us").ok_or("no min_us")? * 1e3,
            median: number_field(reply, "median_us").ok_or("no median_us")? * 1e3,
        })
    };
    eprintln!("xtask: timing the Python reference ...");
    let version = python::run_peer(&python, &script, &["version"])?;
    let mut args: Vec<String> = vec!["bench-verify".into()];
    args.extend(files(&fixture));
    args.extend([
        "--token-file".into(),
        path(fixture.join("token")),
        "--n".into(),
        "1000".into(),
    ]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let verify = timing(&python::run_peer(&python, &script, &argv)?)?;
    let mut args: Vec<String> = vec!["bench-mint".into()];
    args.extend(files(&orders));
    args.extend([
        "--audience".into(),
        "spiffe://example.org/billing".into(),
        "--n".into(),
        "2000".into(),
    ]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mint = timing(&python::run_peer(&python, &script, &argv)?)?;
    let version = python::json_string_field(&version, "version").unwrap_or_default();
    Ok(PythonTimings {
        verify,
        mint,
        version,
    })
}

fn fmt_time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn render(
    root: &Path,
    paired: Option<&[(String, [f64; 3])]>,
    icounts: Option<&[(String, f64)]>,
    python: Option<PythonTimings>,
) -> Result<String, String> {
    let t = |id: &str| criterion_timing(root, id);
    let mut s = String::new();
    let w = &mut s;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(w, "spiffile benchmarks: {cpu}, {cores} cores\n");
    let _ = writeln!(
        w,
        "Times per operation: minimum over criterion's samples (median in brackets).\n\
         Ratios are to the baseline of each block, measured in the same run.\n"
    );

    if let Some(rows) = paired {
        let _ = writeln!(
            w,
            "| paired, interleaved (same fresh tokens, same round) | median ratio | quartiles |"
        );
        let _ = writeln!(w, "|---|---:|---:|");
        for (id, [median, q1, q3]) in rows {
            let _ = writeln!(w, "| {id} | {median:.3} | {q1:.3} – {q3:.3} |");
        }
        let _ = writeln!(w);
    }

    let block =
        |w: &mut String, title: &str, base: (&str, &str), rows: &[(&str, Option<Timing>)]| {
            let Some(b) = t(base.0) else {
                let _ = writeln!(
                    w,
                    "{title}: no result for {} (run its benchmarks)\n",
                    base.0
                );
                return;
            };
            let _ = writeln!(w, "| {title} | time | × {} |", base.1);
            let _ = writeln!(w, "|---|---:|---:|");
            let _ = writeln!(
                w,
                "| {} | {} ({}) | 1.00 |",
                base.1,
                fmt_time(b.min),
                fmt_time(b.median)
            );
            for (label, timing) in rows {
                match timing {
                    Some(x) => {
                        let _ = writeln!(
                            w,
                            "| {label} | {} ({}) | {:.3} ({:.3}) |",
                            fmt_time(x.min),
                            fmt_time(x.median),
                            x.min / b.min,
                            x.median / b.median
                        );
                    }
                    None => {
                        let _ = writeln!(w, "| {label} | – | – |");
                    }
                }
            }
            let _ = writeln!(w);
        };

    let py_verify = python.as_ref().map(|p| p.verify);
    let py_mint = python.as_ref().map(|p| p.mint);
    let py_label = python.as_ref().map_or("Python reference".to_owned(), |p| {
        format!("Python reference {} (same token and key)", p.version)
    });
    block(
        w,
        "verify, fresh tokens",
        ("verify/raw_ring_verify", "raw ring verify"),
        &[
            ("spiffile-svid `Verifier::verify`", t("verify/verifier")),
            (
                "`Verifier::verify`, trust set of two domains (spiffile token)",
                t("verify/verifier_federated"),
            ),
            (
                "`Verifier::verify`, per-domain authority (SPIRE-shaped token)",
                t("verify/verifier_per_domain"),
            ),
            (
                "`Identity::verify` (cache on, every token new)",
                t("verify/identity_fresh"),
            ),
            (
                "`Identity::verify` (cache off)",
                t("verify/identity_uncached_fresh"),
            ),
            (
                "jsonwebtoken 11 `decode` (prepared key)",
                t("verify/jsonwebtoken"),
            ),
            (
                "spiffe 0.19 `JwtSvid::parse_and_validate`",
                t("verify/spiffe"),
            ),
            (&py_label, py_verify),
            (
                "`Identity::verify`, repeated token (cache hit)",
                t("verify/identity_cached"),
            ),
        ],
    );
    block(
        w,
        "mint",
        ("mint/raw_ring_sign", "raw ring sign"),
        &[
            ("spiffile-svid `danger::mint_at`", t("mint/signer_mint_at")),
            (
                "`Identity::token` (reuse off)",
                t("mint/identity_token_fresh"),
            ),
            (
                "`Identity::token` (reused token)",
                t("mint/identity_token_cached"),
            ),
            (&py_label, py_mint),
        ],
    );
    block(
        w,
        "mTLS handshake (full, in memory, same certificates)",
        (
            "mtls/handshake_stock_webpki",
            "rustls with stock WebPkiClientVerifier / WebPkiServerVerifier",
        ),
        &[(
            "spiffile-tls `server_config` / `client_config`",
            t("mtls/handshake_spiffile"),
        )],
    );
    let _ = writeln!(w, "| per-handshake parts of spiffile-tls | time |");
    let _ = writeln!(w, "|---|---:|");
    for (id, label) in [
        (
            "mtls_parts/snapshot_loads",
            "snapshot loads (certificate + bundles)",
        ),
        (
            "mtls_parts/spiffe_id_extraction",
            "SPIFFE ID read from the leaf",
        ),
    ] {
        let cell = t(id).map_or("–".to_owned(), |x| {
            format!("{} ({})", fmt_time(x.min), fmt_time(x.median))
        });
        let _ = writeln!(w, "| {label} | {cell} |");
    }
    let _ = writeln!(w);
    block(
        w,
        "read path: `verify` of a repeated token",
        ("read_path/verify_static", "static snapshot"),
        &[("hot-reload watcher running", t("read_path/verify_watched"))],
    );
    block(
        w,
        "read path: `token` (reused)",
        ("read_path/token_static", "static snapshot"),
        &[("hot-reload watcher running", t("read_path/token_watched"))],
    );
    block(
        w,
        "verify, bundle size",
        ("verify_bundle_size/10", "10 identities"),
        &[
            ("1 000 identities", t("verify_bundle_size/1000")),
            ("10 000 identities", t("verify_bundle_size/10000")),
            ("100 000 identities", t("verify_bundle_size/100000")),
        ],
    );

    let _ = writeln!(
        w,
        "| bundle size | load (parse + validate + index) | reload (read files + swap) |"
    );
    let _ = writeln!(w, "|---:|---:|---:|");
    for size in ["10", "1000", "10000", "100000"] {
        let cell = |x: Option<Timing>| {
            x.map_or("–".to_owned(), |x| {
                format!("{} ({})", fmt_time(x.min), fmt_time(x.median))
            })
        };
        let _ = writeln!(
            w,
            "| {size} | {} | {} |",
            cell(t(&format!("bundle_load/{size}"))),
            cell(t(&format!("reload/{size}")))
        );
    }
    let _ = writeln!(w);

    let _ = writeln!(
        w,
        "| threads on one `Identity` | time per verify per thread | throughput × 1 thread |"
    );
    let _ = writeln!(w, "|---|---:|---:|");
    for (group, label) in [
        ("threads_fresh", "fresh tokens"),
        ("threads_cached", "repeated token"),
    ] {
        if let (Some(one), Some(two)) = (t(&format!("{group}/1")), t(&format!("{group}/2"))) {
            let _ = writeln!(w, "| {label}, 1 thread | {} | 1.00 |", fmt_time(one.median));
            let _ = writeln!(
                w,
                "| {label}, 2 threads | {} | {:.2} |",
                fmt_time(two.median),
                2.0 * one.median / two.median
            );
        }
    }
    let _ = writeln!(w);

    if let Some(counts) = icounts {
        let get = |op: &str| counts.iter().find(|(o, _)| o == op).map(|(_, n)| *n);
        let _ = writeln!(
            w,
            "| instructions per operation (callgrind) | instructions | × baseline |"
        );
        let _ = writeln!(w, "|---|---:|---:|");
        for (base, ops) in [
            (
                "ring_verify",
                &[
                    "verifier",
                    "verifier_federated",
                    "verifier_per_domain",
                    "identity_fresh",
                    "identity_cached",
                ][..],
            ),
            (
                "ring_sign",
                &[
                    "signer_mint_at",
                    "identity_token_distinct",
                    "identity_token_cached",
                ][..],
            ),
        ] {
            let Some(b) = get(base) else { continue };
            let _ = writeln!(w, "| {base} (baseline) | {b:.0} | 1.000 |");
            for op in ops {
                if let Some(n) = get(op) {
                    let _ = writeln!(w, "| {op} | {n:.0} | {:.4} |", n / b);
                }
            }
        }
        let _ = writeln!(w);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_criterion_json() {
        let sample = r#"{"sampling_mode":"Linear","iters":[10.0,20.0],"times":[1000.0,1800.0]}"#;
        assert_eq!(number_array(sample, "iters"), Some(vec![10.0, 20.0]));
        assert_eq!(number_array(sample, "times"), Some(vec![1000.0, 1800.0]));
        assert_eq!(number_array(sample, "nope"), None);
        let reply = r#"{"ok": true, "n": 5, "min_us": 401.5, "median_us": 4.2e2}"#;
        assert_eq!(number_field(reply, "min_us"), Some(401.5));
        assert_eq!(number_field(reply, "median_us"), Some(420.0));
    }

    #[test]
    fn arguments() {
        let o = parse_args(&["--skip-python".into(), "--".into(), "verify".into()]).unwrap();
        assert!(o.criterion && o.callgrind && !o.python);
        assert_eq!(o.filter, ["verify"]);
        assert!(parse_args(&["--bogus".into()]).is_err());
    }
}
