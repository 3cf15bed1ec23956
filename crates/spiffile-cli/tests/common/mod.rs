//! Running the built `spiffile` binary.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_spiffile");

/// A finished run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    pub fn ok(self) -> String {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self.stdout
    }

    /// Asserts the exit code and that nothing panicked.
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }
}

/// A command with a clean environment (no SPIFFILE_* inherited).
pub fn cmd() -> Command {
    let mut c = Command::new(BIN);
    for var in [
        "SPIFFILE_DIR",
        "SPIFFILE_ID_FILE",
        "SPIFFILE_KEY_FILE",
        "SPIFFILE_BUNDLE_FILE",
        "SPIFFILE_BUNDLE_DIR",
        "SPIFFILE_BUNDLE_TRUST_DOMAIN",
        "SPIFFILE_JWT_SVID_DIR",
        "SPIFFILE_ROOT",
    ] {
        c.env_remove(var);
    }
    c.stdin(Stdio::null());
    c
}

/// Runs `spiffile ARGS`.
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Run::from(cmd().args(args).output().unwrap())
}

/// Runs `spiffile ARGS` with the environment of a service (from
/// `spiffile env`).
pub fn run_as<I, S>(root: &Path, service: &str, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = cmd();
    c.args(args);
    set_env(&mut c, root, service);
    Run::from(c.output().unwrap())
}

/// Sets a service's SPIFFILE_* variables on a command.
pub fn set_env(c: &mut Command, root: &Path, service: &str) {
    let json = run([
        OsStr::new("env"),
        root.as_os_str(),
        OsStr::new(service),
        OsStr::new("--format"),
        OsStr::new("json"),
    ])
    .ok();
    let vars: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json).unwrap();
    for (k, v) in vars {
        c.env(k, v.as_str().unwrap());
    }
}

/// Runs with bytes on stdin (written from a thread; the process may stop
/// reading early).
pub fn run_with_stdin<I, S>(root: &Path, service: &str, args: I, stdin: Vec<u8>) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = cmd();
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    set_env(&mut c, root, service);
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run::from(out)
}

/// A root with the given services, in a temporary directory.
pub fn root_with(services: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    run([
        OsStr::new("init"),
        root.as_os_str(),
        OsStr::new("--trust-domain"),
        OsStr::new("example.org"),
    ])
    .ok();
    if !services.is_empty() {
        let mut args = vec![OsStr::new("add"), root.as_os_str()];
        args.extend(services.iter().map(OsStr::new));
        run(args).ok();
    }
    (dir, root)
}
