//! `cargo xtask fuzz <replay|run>`: the fuzz targets in `fuzz/` with
//! whatever toolchain the machine has. See docs/testing.md.
//!
//! * `replay [TARGET…]` needs only stable Rust and a C++ compiler: it builds
//!   the targets as ordinary binaries (libfuzzer-sys links libFuzzer's
//!   driver without coverage instrumentation) and runs every committed seed
//!   and every local corpus input through each target once — a regression
//!   check of the properties the targets assert.
//! * `run TARGET [SECONDS]` fuzzes with cargo-fuzz: on nightly when rustup
//!   has it, else on stable with `RUSTC_BOOTSTRAP=1` (cargo-fuzz passes
//!   `-Z` flags for the sanitizer and coverage instrumentation).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const TARGETS: [&str; 7] = [
    "spiffe_id",
    "bundle_parse",
    "bundle_model",
    "bundle_formats",
    "jwt_svid_file",
    "verify",
    "mint_verify",
];
const USAGE: &str = "usage: cargo xtask fuzz replay [TARGET…] | cargo xtask fuzz run TARGET [SECONDS]\n  targets: spiffe_id bundle_parse bundle_model bundle_formats jwt_svid_file verify mint_verify";

pub fn run(root: &Path, args: &[String]) -> Result<ExitCode, String> {
    match args.first().map(String::as_str) {
        Some("replay") => replay(root, &args[1..]),
        Some("run") => fuzz(root, &args[1..]),
        _ => Err(USAGE.to_owned()),
    }
}

fn targets(names: &[String]) -> Result<Vec<&'static str>, String> {
    if names.is_empty() {
        return Ok(TARGETS.to_vec());
    }
    names
        .iter()
        .map(|n| {
            TARGETS
                .iter()
                .find(|t| **t == n.as_str())
                .copied()
                .ok_or_else(|| format!("unknown fuzz target `{n}`\n{USAGE}"))
        })
        .collect()
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn replay(root: &Path, names: &[String]) -> Result<ExitCode, String> {
    let fuzz = root.join("fuzz");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let targets = targets(names)?;
    let mut build = Command::new(&cargo);
    build
        .args(["build", "--release", "--manifest-path"])
        .arg(fuzz.join("Cargo.toml"));
    for t in &targets {
        build.args(["--bin", t]);
    }
    eprintln!(
        "fuzz replay: building {} on the default toolchain",
        targets.join(", ")
    );
    let status = build
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the fuzz targets failed ({status}); libfuzzer-sys needs a C++ compiler (Debian: apt-get install g++)"
        ));
    }
    let mut total = 0;
    for t in &targets {
        let mut files = inputs(&fuzz.join("seeds").join(t));
        files.extend(inputs(&fuzz.join("corpus").join(t)));
        files.extend(inputs(&fuzz.join("artifacts").join(t)));
        if files.is_empty() {
            return Err(format!("no inputs for {t} in fuzz/seeds/{t}"));
        }
        let bin = fuzz.join("target/release").join(t);
        // libFuzzer given files (not directories) runs each once and exits.
        for chunk in files.chunks(500) {
            let out = Command::new(&bin)
                .args(chunk)
                .output()
                .map_err(|e| format!("{}: {e}", bin.display()))?;
            if !out.status.success() {
                return Err(format!(
                    "fuzz target {t} failed on one of its inputs ({}):\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .rev()
                        .take(30)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n")
                ));
            }
        }
        eprintln!("fuzz replay: {t}: {} inputs, no failure", files.len());
        total += files.len();
    }
    println!("fuzz replay: {total} passed, 0 failed");
    Ok(ExitCode::SUCCESS)
}

fn has_nightly() -> bool {
    Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("nightly"))
        })
        .unwrap_or(false)
}

fn fuzz(root: &Path, args: &[String]) -> Result<ExitCode, String> {
    let target = targets(args.get(..1).unwrap_or(&[]))?
        .first()
        .copied()
        .filter(|_| !args.is_empty())
        .ok_or_else(|| USAGE.to_owned())?;
    let secs: u64 = match args.get(1) {
        Some(s) => s
            .parse()
            .map_err(|_| format!("SECONDS must be a number, not `{s}`"))?,
        None => 60,
    };
    let have_fuzz = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have_fuzz {
        return Err("cargo-fuzz is not installed: `cargo install cargo-fuzz --locked` (a few minutes), or use `cargo xtask fuzz replay` (stable, no install)".to_owned());
    }
    let fuzz = root.join("fuzz");
    let mut cmd = Command::new("cargo");
    if has_nightly() {
        eprintln!("fuzz run: {target} for {secs}s on nightly");
        cmd.arg("+nightly");
    } else {
        eprintln!(
            "fuzz run: {target} for {secs}s on stable with RUSTC_BOOTSTRAP=1 (no nightly toolchain)"
        );
        cmd.env("RUSTC_BOOTSTRAP", "1");
    }
    let corpus = format!("corpus/{target}");
    std::fs::create_dir_all(fuzz.join(&corpus)).map_err(|e| format!("{corpus}: {e}"))?;
    let status = cmd
        .current_dir(&fuzz)
        .args([
            "fuzz",
            "run",
            target,
            &corpus,
            &format!("seeds/{target}"),
            "--",
        ])
        .arg(format!("-max_total_time={secs}"))
        .arg("-timeout=10")
        .status()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    if status.success() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(format!(
            "cargo fuzz run {target} failed ({status}); see fuzz/artifacts/{target}"
        ))
    }
}
