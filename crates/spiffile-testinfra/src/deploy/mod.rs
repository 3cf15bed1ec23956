//! Building, starting, checking and stopping the deployments.
//!
//! This is the engine under `cargo xtask infra …` and under the test
//! handles' on-demand start. A deployment ([`Deployment::K8s`] or
//! [`Deployment::Spire`]) lives in a run directory
//! (`<infra dir>/<name>/`, see [`paths::infra_dir`]) holding its
//! configuration, certificates, data, logs (`logs/*.log`) and
//! [`state::STATE_FILE`], which records every process started (PID, start
//! time, executable), the ports and the paths. Nothing is written outside
//! the run directory and the binary cache.

pub mod build;
pub mod components;
pub mod https;
pub mod paths;
pub mod ports;
pub mod process;
pub mod progress;
pub mod state;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result, io};
use process::{Group, Guardian, ProcessRecord};
use progress::Progress;
use state::{Owner, State};

/// A deployment `up` can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Deployment {
    /// etcd + kube-apiserver + kube-controller-manager.
    K8s,
    /// spire-server + spire-agent (and spiffe-helper for the workloads).
    Spire,
}

impl Deployment {
    /// Both, in start order.
    pub const ALL: [Deployment; 2] = [Deployment::K8s, Deployment::Spire];

    /// `k8s` or `spire`: the run directory's name.
    pub fn name(self) -> &'static str {
        match self {
            Deployment::K8s => "k8s",
            Deployment::Spire => "spire",
        }
    }

    /// Parses `k8s` / `spire`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "k8s" | "kubernetes" => Some(Deployment::K8s),
            "spire" => Some(Deployment::Spire),
            _ => None,
        }
    }

    /// Its default run directory: `<infra dir>/<name>`.
    pub fn default_run_dir(self) -> PathBuf {
        paths::infra_dir().join(self.name())
    }

    /// The cache components it needs.
    pub fn components(self) -> &'static [components::Component] {
        components::components_of(self)
    }

    /// Whether every binary it needs is cached.
    pub fn is_built(self) -> bool {
        self.components().iter().all(|c| c.is_cached())
    }
}

/// How `up` runs.
#[derive(Debug)]
pub struct UpOptions<'a> {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Build missing binaries (else fail with [`Error::NotBuilt`]).
    pub build: bool,
    /// `None`: persistent (outlives this process). `Some`: guarded by it.
    pub guardian: Option<&'a Guardian>,
    /// How long to wait for each readiness check.
    pub timeout: Duration,
    /// Progress printer.
    pub progress: Progress,
}

impl<'a> UpOptions<'a> {
    /// Defaults for `deployment`: its default run directory, build if
    /// needed, persistent, [`ready_timeout`].
    pub fn new(deployment: Deployment) -> Self {
        Self {
            run_dir: deployment.default_run_dir(),
            build: true,
            guardian: None,
            timeout: ready_timeout(),
            progress: Progress::new(deployment.name()),
        }
    }
}

/// The readiness timeout: `$SPIFFILE_INFRA_TIMEOUT_SECS`, default 180 s.
pub fn ready_timeout() -> Duration {
    paths::non_empty_env("SPIFFILE_INFRA_TIMEOUT_SECS")
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(180))
}

/// A deployment `up` returned.
#[derive(Debug, Clone)]
pub struct Running {
    /// Its run directory.
    pub run_dir: PathBuf,
    /// Its state.
    pub state: State,
    /// Whether it was already up and was reused.
    pub reused: bool,
}

/// What a start function gets.
pub(crate) struct StartContext<'a> {
    pub run_dir: &'a Path,
    pub group: Group,
    pub timeout: Duration,
    pub progress: &'a Progress,
    /// Every process started so far (stopped again if start-up fails).
    pub started: Vec<ProcessRecord>,
    /// Child handles, kept so that exited children can be reaped.
    pub children: Vec<std::process::Child>,
}

impl StartContext<'_> {
    pub(crate) fn log(&self, name: &str) -> PathBuf {
        self.run_dir.join("logs").join(format!("{name}.log"))
    }

    pub(crate) fn spawn(
        &mut self,
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Result<ProcessRecord> {
        let log = self.log(name);
        let (child, record) = process::spawn(name, program, args, &log, self.group, env)?;
        self.progress.step(format!(
            "started {name} (pid {}, log {})",
            record.pid,
            log.display()
        ));
        self.started.push(record.clone());
        self.children.push(child);
        Ok(record)
    }
}

/// Why waiting for readiness ended without success.
pub(crate) enum WaitError {
    /// The process died and its log says its port was taken: retry.
    AddressInUse,
    /// Anything else.
    Failed(Error),
}

impl From<Error> for WaitError {
    fn from(e: Error) -> Self {
        WaitError::Failed(e)
    }
}

/// Polls `probe` until it succeeds, the process dies or time runs out.
pub(crate) fn wait_ready(
    what: &str,
    process: &ProcessRecord,
    timeout: Duration,
    progress: &Progress,
    mut probe: impl FnMut() -> std::result::Result<(), String>,
) -> std::result::Result<(), WaitError> {
    let started = std::time::Instant::now();
    loop {
        let last = match probe() {
            Ok(()) => {
                progress.step(format!(
                    "{what} ready after {}",
                    build::fmt_duration(started.elapsed())
                ));
                return Ok(());
            }
            Err(e) => e,
        };
        if !process.is_running() {
            if ports::address_in_use(&process.log) {
                return Err(WaitError::AddressInUse);
            }
            return Err(WaitError::Failed(crate::error::step(
                format!("start {}", process.name),
                format!(
                    "{} (pid {}) exited before {what} was ready; last probe: {last}{}",
                    process.name,
                    process.pid,
                    progress::log_tail(&process.log, 40)
                ),
            )));
        }
        if started.elapsed() >= timeout {
            return Err(WaitError::Failed(Error::Timeout {
                what: what.to_owned(),
                after: timeout,
                detail: format!(
                    "; last probe: {last}; raise SPIFFILE_INFRA_TIMEOUT_SECS if the machine is just slow{}",
                    progress::log_tail(&process.log, 40)
                ),
            }));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Builds the binaries `deployment` needs (no-op when cached).
pub fn build(deployment: Deployment, progress: &Progress) -> Result<()> {
    for c in deployment.components() {
        build::ensure_built(*c, progress)?;
    }
    Ok(())
}

/// Starts `deployment` in `options.run_dir`, or reuses it if it is already
/// up there and answers its readiness check.
pub fn up(deployment: Deployment, options: &UpOptions<'_>) -> Result<Running> {
    let run_dir = &options.run_dir;
    let progress = &options.progress;
    fs::create_dir_all(run_dir).map_err(io(run_dir))?;
    let lock = lock_run_dir(run_dir, progress)?;

    if let Some(state) = State::read(run_dir)? {
        match check(deployment, &state) {
            Ok(()) => {
                progress.step(format!("already up in {} (reused)", run_dir.display()));
                drop(lock);
                return Ok(Running {
                    run_dir: run_dir.clone(),
                    state,
                    reused: true,
                });
            }
            Err(why) => {
                progress.step(format!("stale state ({why}); stopping what is left of it"));
                process::stop_all(&state.processes, Duration::from_secs(10))?;
                State::remove(run_dir)?;
            }
        }
    }

    if options.build {
        build(deployment, progress)?;
    }
    for c in deployment.components() {
        for b in c.binaries() {
            c.binary(b)?;
        }
    }

    let group = match options.guardian {
        Some(g) => g.group(),
        None => Group::Own,
    };
    let owner = match options.guardian {
        Some(g) => Owner::Guarded {
            owner_pid: std::process::id(),
            guardian: g.record().clone(),
        },
        None => Owner::Persistent,
    };

    let mut attempt = 0;
    let state = loop {
        attempt += 1;
        clear_run_dir(run_dir)?;
        let logs = run_dir.join("logs");
        fs::create_dir_all(&logs).map_err(io(&logs))?;
        let mut ctx = StartContext {
            run_dir,
            group,
            timeout: options.timeout,
            progress,
            started: Vec::new(),
            children: Vec::new(),
        };
        let result = match deployment {
            Deployment::K8s => crate::k8s::deploy::start(&mut ctx),
            Deployment::Spire => crate::spire::deploy::start(&mut ctx),
        };
        match result {
            Ok(mut state) => {
                state.owner = owner.clone();
                state.startup_seconds = progress.elapsed_secs();
                state.write(run_dir)?;
                break state;
            }
            Err(e) => {
                let _ = process::stop_all(&ctx.started, Duration::from_secs(5));
                for mut c in ctx.children {
                    let _ = c.try_wait();
                }
                match e {
                    WaitError::AddressInUse if attempt < 3 => {
                        progress.step(
                            "a port was taken by someone else meanwhile; retrying with new ports",
                        );
                    }
                    WaitError::AddressInUse => {
                        return Err(crate::error::step(
                            format!("start {}", deployment.name()),
                            "ports kept being taken by other processes (3 attempts)",
                        ));
                    }
                    WaitError::Failed(e) => return Err(e),
                }
            }
        }
    };
    progress.step(format!(
        "up in {} ({})",
        run_dir.display(),
        match options.guardian {
            Some(_) => "stopped when this process exits",
            None => "until `cargo xtask infra down`",
        }
    ));
    drop(lock);
    Ok(Running {
        run_dir: run_dir.clone(),
        state,
        reused: false,
    })
}

/// Is this deployment healthy? `Err` says why not.
pub fn check(deployment: Deployment, state: &State) -> std::result::Result<(), String> {
    if state.deployment != deployment.name() {
        return Err(format!("state is for `{}`", state.deployment));
    }
    let dead = state.dead_processes();
    if !dead.is_empty() {
        let names: Vec<String> = dead
            .iter()
            .map(|p| format!("{} (pid {})", p.name, p.pid))
            .collect();
        return Err(format!("not running: {}", names.join(", ")));
    }
    match deployment {
        Deployment::K8s => crate::k8s::deploy::probe(state),
        Deployment::Spire => crate::spire::deploy::probe(state),
    }
}

/// What `down` did.
#[derive(Debug, Clone, Default)]
pub struct DownReport {
    /// Processes that were running and were stopped.
    pub stopped: Vec<String>,
    /// Whether there was a state file at all.
    pub had_state: bool,
}

/// Stops exactly the processes recorded in `run_dir`'s state (each checked
/// to still be the same process first) and removes the state file. Data and
/// logs stay for inspection; the next `up` clears them.
pub fn down(run_dir: &Path, progress: &Progress) -> Result<DownReport> {
    if !run_dir.exists() {
        return Ok(DownReport::default());
    }
    let lock = lock_run_dir(run_dir, progress)?;
    let Some(state) = State::read(run_dir)? else {
        return Ok(DownReport::default());
    };
    let stopped = process::stop_all(&state.processes, Duration::from_secs(10))?;
    for s in &stopped {
        progress.step(format!("stopped {s}"));
    }
    State::remove(run_dir)?;
    drop(lock);
    Ok(DownReport {
        stopped,
        had_state: true,
    })
}

fn lock_run_dir(run_dir: &Path, progress: &Progress) -> Result<fs::File> {
    let path = run_dir.join(".lock");
    let file = fs::File::create(&path).map_err(io(&path))?;
    if file.try_lock().is_err() {
        progress.step(format!(
            "waiting for another infra command holding {}",
            path.display()
        ));
        file.lock().map_err(io(&path))?;
    }
    Ok(file)
}

/// Empties a run directory, keeping only its lock file. Only entries inside
/// `run_dir` are touched (symlinks are removed, never followed).
fn clear_run_dir(run_dir: &Path) -> Result<()> {
    for entry in fs::read_dir(run_dir).map_err(io(run_dir))? {
        let entry = entry.map_err(io(run_dir))?;
        let path = entry.path();
        if entry.file_name() == ".lock" {
            continue;
        }
        let kind = entry.file_type().map_err(io(&path))?;
        if kind.is_dir() {
            fs::remove_dir_all(&path).map_err(io(&path))?;
        } else {
            fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// Writes a file with a mode from its creation (keys: 0600).
pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    f.write_all(contents).map_err(io(path))
}
