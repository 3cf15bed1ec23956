//! `cargo xtask test`: the project's whole test command, real
//! infrastructure included. See docs/testing.md.
//!
//! 1. builds the Go components if they are not cached (Kubernetes, etcd,
//!    SPIRE, spiffe-helper), then brings up the control plane and SPIRE in
//!    their default run directories — reusing any already up;
//! 2. runs `cargo test --workspace --all-features`, then the conformance
//!    suite, then the runnable examples and the CLI's demo (each checks its
//!    own expectations and exits non-zero when one fails), with `SPIFFILE_INFRA_REQUIRE=1` so that a test that cannot get
//!    its deployment fails instead of skipping;
//! 3. stops what it started — always: on success, on failure, and (through
//!    a guardian holding a pipe from this process) when it is interrupted or
//!    killed. Deployments that were already up are left running.

use std::process::{Command, ExitCode};
use std::time::Instant;

use spiffile_testinfra::deploy::process::Guardian;
use spiffile_testinfra::deploy::progress::Progress;
use spiffile_testinfra::deploy::{self, Deployment, UpOptions, paths};

pub fn run(root: &std::path::Path, args: &[String]) -> Result<ExitCode, String> {
    if let Some(a) = args.first() {
        return Err(format!(
            "unexpected argument `{a}`\nusage: cargo xtask test   (infra up, cargo test --workspace --all-features, conformance, infra down)"
        ));
    }
    let started = Instant::now();
    let progress = Progress::new("xtask test");
    let infra = paths::infra_dir();
    std::fs::create_dir_all(&infra).map_err(|e| format!("{}: {e}", infra.display()))?;
    let guardian =
        Guardian::start(&infra.join("xtask-test-guardian.log")).map_err(|e| e.to_string())?;

    let mut ours = Vec::new();
    let infra_result = (|| -> Result<(), String> {
        for d in Deployment::ALL {
            let mut options = UpOptions::new(d);
            options.guardian = Some(&guardian);
            options.progress = progress.scoped(d.name());
            let running = deploy::up(d, &options).map_err(|e| e.to_string())?;
            if !running.reused {
                ours.push(d);
            }
        }
        Ok(())
    })();
    let infra_secs = started.elapsed().as_secs_f64();

    let outcome = infra_result.and_then(|()| {
        progress.step("cargo test --workspace --all-features");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let tests_started = Instant::now();
        let status = Command::new(cargo)
            .args(["test", "--workspace", "--all-features"])
            .current_dir(root)
            .env("SPIFFILE_INFRA_REQUIRE", "1")
            .env("SPIFFILE_INFRA_DIR", &infra)
            .status()
            .map_err(|e| format!("cannot run cargo test: {e}"))?;
        progress.step(format!(
            "cargo test finished ({status}) in {:.0}s",
            tests_started.elapsed().as_secs_f64()
        ));
        if !status.success() {
            return Err(format!(
                "cargo test --workspace --all-features failed ({status})"
            ));
        }
        progress.step("cargo xtask conformance");
        crate::conformance::run(root)?;
        run_examples(root, &progress)
    });

    for d in ours.iter().rev() {
        let p = progress.scoped(d.name());
        match deploy::down(&d.default_run_dir(), &p) {
            Ok(r) => p.step(format!("down ({} stopped)", r.stopped.len())),
            Err(e) => eprintln!("xtask test: stopping {}: {e}", d.name()),
        }
    }
    guardian.release();
    progress.step(format!(
        "total {:.0}s (infrastructure build + start {:.0}s)",
        started.elapsed().as_secs_f64(),
        infra_secs
    ));
    outcome.map(|()| ExitCode::SUCCESS)
}

/// The programs a newcomer runs first, run as they would run them: each
/// checks its expectations and exits non-zero if one is not met.
const EXAMPLES: [&[&str]; 3] = [
    &["run", "--quiet", "-p", "two-services"],
    &["run", "--quiet", "-p", "two-services-mtls"],
    &["run", "--quiet", "-p", "spiffile-cli", "--", "demo"],
];

fn run_examples(root: &std::path::Path, progress: &Progress) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for args in EXAMPLES {
        let shown = format!("cargo {}", args.join(" "));
        progress.step(&shown);
        let status = Command::new(&cargo)
            .args(args)
            .current_dir(root)
            .status()
            .map_err(|e| format!("cannot run {shown}: {e}"))?;
        if !status.success() {
            return Err(format!("{shown} failed ({status})"));
        }
    }
    Ok(())
}
