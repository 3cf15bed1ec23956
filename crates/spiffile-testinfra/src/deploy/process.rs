//! Processes a deployment starts: spawning them into a process group,
//! recording who they are, checking that a recorded PID is still the same
//! process before signalling it, and stopping them.
//!
//! A PID alone is not an identity (PIDs are reused), so a record keeps the
//! process's start time (field 22 of `/proc/PID/stat`, in clock ticks since
//! boot) and the executable it runs; [`ProcessRecord::is_running`] checks
//! both before anything is signalled.
//!
//! ## Lifetime: persistent or guarded
//!
//! `cargo xtask infra up` starts a **persistent** deployment: its processes
//! are in a process group of their own and outlive the command; `infra down`
//! stops them. Everything started on behalf of a running program (a test
//! process starting a deployment on demand, `cargo xtask test`) is
//! **guarded** instead: a [`Guardian`] is a tiny `sh` process that holds the
//! read end of a pipe whose write end only the owner holds. When the owner
//! exits for any reason — returns, panics, is killed by a signal, even
//! `SIGKILL` — the kernel closes the pipe, the guardian's `cat` sees end of
//! file, and the guardian sends `SIGTERM` (then, 5 s later, `SIGKILL`) to
//! its process group, which every guarded process joined when it was
//! spawned. No `unsafe`, no `prctl`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Result, io, step};

/// A process a deployment started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// What it is (`etcd`, `kube-apiserver`, `spire-agent`, …).
    pub name: String,
    /// Its PID.
    pub pid: u32,
    /// Its start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_ticks: u64,
    /// The executable it runs (canonical path).
    pub exe: PathBuf,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl ProcessRecord {
    /// Whether the PID is still this very process (same start time, same
    /// executable) and has not exited (a zombie counts as exited).
    pub fn is_running(&self) -> bool {
        match proc_stat(self.pid) {
            Some((state, ticks)) => {
                state != 'Z' && state != 'X' && ticks == self.start_ticks && self.exe_matches()
            }
            None => false,
        }
    }

    fn exe_matches(&self) -> bool {
        let Ok(link) = fs::read_link(format!("/proc/{}/exe", self.pid)) else {
            return false;
        };
        let link = link.to_string_lossy();
        let link = link.strip_suffix(" (deleted)").unwrap_or(&link);
        Path::new(link) == self.exe
    }

    /// Stops the process if it is still ours: `SIGTERM`, then `SIGKILL` after
    /// `grace`. Returns whether it was running.
    pub fn stop(&self, grace: Duration) -> Result<bool> {
        if !self.is_running() {
            return Ok(false);
        }
        signal(self.pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_running() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.is_running() {
            signal(self.pid, rustix::process::Signal::KILL);
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.is_running() {
                if Instant::now() > deadline {
                    return Err(step(
                        format!("stop {} (pid {})", self.name, self.pid),
                        "still running 5 s after SIGKILL",
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(true)
    }
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        // ESRCH (already gone) is fine.
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// `(state, start_ticks)` from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse
    // after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields after the name start at field 3 (state); start time is 22.
    let ticks = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, ticks))
}

/// The process group a spawned process joins.
#[derive(Debug, Clone, Copy)]
pub enum Group {
    /// A new group of its own (persistent deployments: a Ctrl-C in the
    /// terminal that ran `infra up` later does not reach it).
    Own,
    /// The group of a [`Guardian`].
    Guarded(u32),
}

/// Spawns `program args…` with stdin closed and stdout/stderr appended to
/// `log`, and records it.
pub fn spawn(
    name: &str,
    program: &Path,
    args: &[String],
    log: &Path,
    group: Group,
    env: &[(&str, &str)],
) -> Result<(Child, ProcessRecord)> {
    use std::os::unix::process::CommandExt;
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io(log))?;
    let err = out.try_clone().map_err(io(log))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(match group {
            Group::Own => 0,
            Group::Guarded(pgid) => i32::try_from(pgid).unwrap_or(0),
        });
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().map_err(|e| {
        step(
            format!("start {name}"),
            format!("cannot run {}: {e}", program.display()),
        )
    })?;
    let pid = child.id();
    let exe = fs::canonicalize(program).map_err(io(program))?;
    let start_ticks = proc_stat(pid).map(|(_, t)| t).ok_or_else(|| {
        step(
            format!("start {name}"),
            format!(
                "pid {pid} vanished right after start{}",
                super::progress::log_tail(log, 20)
            ),
        )
    })?;
    Ok((
        child,
        ProcessRecord {
            name: name.to_owned(),
            pid,
            start_ticks,
            exe,
            log: log.to_path_buf(),
        },
    ))
}

/// Stops recorded processes in reverse start order; returns the names of
/// those that were still running.
pub fn stop_all(records: &[ProcessRecord], grace: Duration) -> Result<Vec<String>> {
    let mut stopped = Vec::new();
    let mut first_error = None;
    for r in records.iter().rev() {
        match r.stop(grace) {
            Ok(true) => stopped.push(format!("{} (pid {})", r.name, r.pid)),
            Ok(false) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(stopped),
    }
}

/// The watchdog of guarded processes (see the module docs). Dropping it, or
/// the owner process exiting, makes it stop its whole process group.
#[derive(Debug)]
pub struct Guardian {
    child: Child,
    pipe: Option<ChildStdin>,
    record: ProcessRecord,
}

/// The guardian's script: wait for end of file on stdin, then stop the group.
/// `trap '' TERM` keeps the shell alive through its own `SIGTERM` so that it
/// can follow up with `SIGKILL`.
const GUARDIAN_SCRIPT: &str = "trap '' TERM INT HUP; cat >/dev/null; \
    kill -TERM -$$ 2>/dev/null; sleep 5; kill -KILL -$$ 2>/dev/null";

impl Guardian {
    /// Starts a guardian tied to this process.
    pub fn start(log: &Path) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        let sh = Path::new("/bin/sh");
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io(log))?;
        let mut child = Command::new(sh)
            .arg("-c")
            .arg(GUARDIAN_SCRIPT)
            .arg("spiffile-testinfra-guardian")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(out)
            .process_group(0)
            .spawn()
            .map_err(|e| step("start the guardian", format!("cannot run /bin/sh: {e}")))?;
        let pid = child.id();
        let pipe = child.stdin.take();
        let start_ticks = proc_stat(pid).map(|(_, t)| t).unwrap_or(0);
        let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_else(|_| sh.to_path_buf());
        Ok(Self {
            child,
            pipe,
            record: ProcessRecord {
                name: "guardian".to_owned(),
                pid,
                start_ticks,
                exe,
                log: log.to_path_buf(),
            },
        })
    }

    /// The process group guarded processes join.
    pub fn group(&self) -> Group {
        Group::Guarded(self.record.pid)
    }

    /// Its own record.
    pub fn record(&self) -> &ProcessRecord {
        &self.record
    }

    /// Closes the pipe (the guardian stops the group) and reaps it.
    pub fn release(mut self) {
        self.close();
    }

    fn close(&mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.flush();
            drop(pipe);
            // Reap it so it does not linger as a zombie; it exits at most
            // ~5 s later.
            let deadline = Instant::now() + Duration::from_secs(7);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Guardian {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_recognised_and_a_reused_identity_is_not() {
        let pid = std::process::id();
        let (state, ticks) = proc_stat(pid).expect("own stat");
        assert!(state != 'Z');
        let exe = fs::read_link("/proc/self/exe").expect("own exe");
        let me = ProcessRecord {
            name: "me".into(),
            pid,
            start_ticks: ticks,
            exe: exe.clone(),
            log: PathBuf::new(),
        };
        assert!(me.is_running());
        let other_start = ProcessRecord {
            start_ticks: ticks + 1,
            ..me.clone()
        };
        assert!(
            !other_start.is_running(),
            "a different start time is another process"
        );
        let other_exe = ProcessRecord {
            exe: PathBuf::from("/bin/true"),
            ..me
        };
        assert!(
            !other_exe.is_running(),
            "a different executable is another process"
        );
    }

    #[test]
    fn stop_ends_a_spawned_process_and_guardian_stops_its_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        let sleep = Path::new("/bin/sleep");
        let (mut child, rec) =
            spawn("sleep", sleep, &["30".into()], &log, Group::Own, &[]).expect("spawn");
        assert!(rec.is_running());
        // Reap in the background so the zombie does not linger.
        let reaper = std::thread::spawn(move || child.wait());
        assert!(rec.stop(Duration::from_secs(5)).expect("stop"));
        let _ = reaper.join();
        assert!(!rec.is_running());

        let guardian = Guardian::start(&log).expect("guardian");
        let (mut child, rec) =
            spawn("sleep", sleep, &["30".into()], &log, guardian.group(), &[]).expect("spawn");
        assert!(rec.is_running());
        guardian.release();
        let status = child.wait().expect("wait");
        assert!(!status.success(), "killed by the guardian's SIGTERM");
    }
}
