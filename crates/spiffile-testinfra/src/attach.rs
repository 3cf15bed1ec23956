//! The policy behind [`crate::k8s()`] and [`crate::spire()`]: attach, start
//! on demand, skip loudly, or fail in CI.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::deploy::process::Guardian;
use crate::deploy::progress::Progress;
use crate::deploy::state::State;
use crate::deploy::{self, Deployment, UpOptions, paths};

/// A usable deployment: its run directory and state.
pub(crate) struct Found {
    pub run_dir: PathBuf,
    pub state: State,
}

#[cfg(feature = "k8s")]
pub(crate) fn k8s() -> Option<&'static crate::K8s> {
    static K8S: OnceLock<Option<crate::K8s>> = OnceLock::new();
    K8S.get_or_init(|| {
        resolve(Deployment::K8s)
            .and_then(|f| crate::K8s::from_state(f.run_dir, f.state).map_err(|e| e.to_string()))
            .map_err(|why| unavailable(Deployment::K8s, &why))
            .ok()
    })
    .as_ref()
}

#[cfg(feature = "spire")]
pub(crate) fn spire() -> Option<&'static crate::Spire> {
    static SPIRE: OnceLock<Option<crate::Spire>> = OnceLock::new();
    SPIRE
        .get_or_init(|| {
            resolve(Deployment::Spire)
                .and_then(|f| {
                    crate::Spire::from_state(f.run_dir, f.state).map_err(|e| e.to_string())
                })
                .map_err(|why| unavailable(Deployment::Spire, &why))
                .ok()
        })
        .as_ref()
}

/// Whether a missing deployment must fail the test rather than skip it.
pub(crate) fn required() -> bool {
    let set = |name: &str| {
        paths::non_empty_env(name).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    };
    set("CI") || set("SPIFFILE_INFRA_REQUIRE")
}

/// Writes straight to the process's stderr, past libtest's output capture,
/// so that a skip is seen even when the test passes.
pub(crate) fn loud(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}

fn unavailable(d: Deployment, why: &str) {
    let name = d.name();
    let message = format!(
        "spiffile-testinfra: no {name} deployment: {why}\n\
         spiffile-testinfra: start one with `cargo xtask infra up {name}` (or run everything with `cargo xtask test`)"
    );
    if required() {
        panic!(
            "{message}\n(CI=true or SPIFFILE_INFRA_REQUIRE=1: a missing deployment is a failure)"
        );
    }
    loud(&format!(
        "\n===== SKIPPED: tests that need {name} return early =====\n{message}\n"
    ));
}

/// The guardian of everything this process starts (on-demand deployments,
/// daemon-mode spiffe-helpers): created on first use, alive until the
/// process exits.
pub(crate) fn guardian() -> Result<&'static Guardian, String> {
    static GUARDIAN: OnceLock<Result<Guardian, String>> = OnceLock::new();
    GUARDIAN
        .get_or_init(|| {
            let dir = ondemand_dir();
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            Guardian::start(&dir.join("guardian.log")).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// `<infra dir>/ondemand/<pid>`.
fn ondemand_dir() -> PathBuf {
    paths::infra_dir()
        .join("ondemand")
        .join(std::process::id().to_string())
}

fn resolve(d: Deployment) -> Result<Found, String> {
    let run_dir = d.default_run_dir();
    let mut why = match State::read(&run_dir) {
        Ok(Some(state)) => match deploy::check(d, &state) {
            Ok(()) => return Ok(Found { run_dir, state }),
            Err(e) => format!("the one in {} is not healthy ({e})", run_dir.display()),
        },
        Ok(None) => format!("none is up in {}", run_dir.display()),
        Err(e) => e.to_string(),
    };
    if paths::non_empty_env("SPIFFILE_INFRA_ONDEMAND").as_deref() == Some("0") {
        why.push_str("; on-demand start disabled by SPIFFILE_INFRA_ONDEMAND=0");
        return Err(why);
    }
    if !d.is_built() {
        why.push_str(&format!(
            "; its binaries are not built (run `cargo xtask infra build {}`, which takes minutes)",
            d.name()
        ));
        return Err(why);
    }
    start_on_demand(d).map_err(|e| format!("{why}; starting one on demand failed: {e}"))
}

fn start_on_demand(d: Deployment) -> Result<Found, String> {
    remove_dead_ondemand_dirs();
    let guardian = guardian()?;
    let run_dir = ondemand_dir().join(d.name());
    loud(&format!(
        "spiffile-testinfra: starting {} on demand in {} (stopped when this test process exits; \
         `cargo xtask infra up {}` keeps one running for every test)",
        d.name(),
        run_dir.display(),
        d.name()
    ));
    let options = UpOptions {
        run_dir,
        build: false,
        guardian: Some(guardian),
        timeout: deploy::ready_timeout(),
        progress: Progress::new(format!("{} (on demand)", d.name())),
    };
    let running = deploy::up(d, &options).map_err(|e| e.to_string())?;
    Ok(Found {
        run_dir: running.run_dir,
        state: running.state,
    })
}

/// On-demand run directories of test processes that no longer exist.
fn remove_dead_ondemand_dirs() {
    let root = paths::infra_dir().join("ondemand");
    let Ok(entries) = std::fs::read_dir(&root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir && pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
