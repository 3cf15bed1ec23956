//! Python reference peer plumbing: a private virtualenv holding the
//! `spiffile` reference implementation, and a runner for `xtask/peer/peer.py`.
//!
//! Standard library only. The venv lives in `<root>/target/conformance-venv`
//! and is rebuilt when `xtask/peer/requirements.txt` changes (a hash of it is
//! kept in a marker file inside the venv).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Where the venv is created, relative to the workspace root.
const VENV_DIR: &str = "target/conformance-venv";
/// Requirements file, relative to the workspace root.
const REQUIREMENTS: &str = "xtask/peer/requirements.txt";
/// Marker file inside the venv recording what was installed.
const MARKER: &str = ".spiffile-requirements";
/// Wall-clock cap for `python -m venv` (env `SPIFFILE_VENV_TIMEOUT_SECS`).
const VENV_TIMEOUT: Duration = Duration::from_secs(120);
/// Wall-clock cap for `pip install` (env `SPIFFILE_PIP_TIMEOUT_SECS`).
const PIP_TIMEOUT: Duration = Duration::from_secs(600);
/// Wall-clock cap for one peer.py call (env `SPIFFILE_PEER_TIMEOUT_SECS`).
const PEER_TIMEOUT: Duration = Duration::from_secs(60);

/// Makes sure `<workspace_root>/target/conformance-venv` exists with the
/// pinned requirements installed, and returns the path of its Python.
///
/// The base interpreter is `$SPIFFILE_PYTHON` if set, else `python3`
/// (`python` on Windows). It needs the `venv` module and `ensurepip`
/// (Debian/Ubuntu: `apt install python3-venv`). Nothing is done when the
/// marker already matches the requirements' hash.
pub fn ensure_venv(workspace_root: &Path) -> Result<PathBuf, String> {
    let requirements = workspace_root.join(REQUIREMENTS);
    let req_bytes = fs::read(&requirements)
        .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    let wanted_marker = format!("requirements-fnv1a64={:016x}\n", fnv1a64(&req_bytes));

    let venv = workspace_root.join(VENV_DIR);
    let python = venv_python(&venv);
    let marker = venv.join(MARKER);
    if python.exists() && fs::read_to_string(&marker).ok().as_deref() == Some(&wanted_marker) {
        return Ok(python);
    }

    eprintln!(
        "xtask: preparing Python reference peer in {VENV_DIR} (pip install -r {REQUIREMENTS}) ..."
    );

    // Start from scratch: a half-built or stale venv is not worth repairing.
    if venv.exists() {
        fs::remove_dir_all(&venv)
            .map_err(|e| format!("cannot remove stale venv {}: {e}", venv.display()))?;
    }
    if let Some(parent) = venv.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }

    let base = std::env::var_os("SPIFFILE_PYTHON")
        .unwrap_or_else(|| if cfg!(windows) { "python" } else { "python3" }.into());
    let mut venv_cmd = Command::new(&base);
    venv_cmd.arg("-m").arg("venv").arg(&venv);
    let out = run_captured(
        venv_cmd,
        None,
        timeout_from_env("SPIFFILE_VENV_TIMEOUT_SECS", VENV_TIMEOUT),
    )
    .map_err(|e| format!("`{} -m venv` failed to run: {e}", base.to_string_lossy()))?;
    if !out.status.success() {
        return Err(format!(
            "`{} -m venv {}` failed ({}); the venv and ensurepip modules are required \
             (Debian/Ubuntu: apt install python3-venv)\n{}",
            base.to_string_lossy(),
            venv.display(),
            out.status,
            out.stderr_tail()
        ));
    }
    if !python.exists() {
        return Err(format!("venv created but {} is missing", python.display()));
    }

    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
    ])
    // Per-request network timeout and retries; the overall cap is below.
    .args(["--timeout", "30", "--retries", "3"])
    .arg("-r")
    .arg(&requirements)
    .env("PIP_NO_INPUT", "1")
    .env("PYTHONNOUSERSITE", "1");
    let out = run_captured(
        pip,
        None,
        timeout_from_env("SPIFFILE_PIP_TIMEOUT_SECS", PIP_TIMEOUT),
    )
    .map_err(|e| format!("pip install failed to run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pip install -r {} failed ({})\n{}",
            requirements.display(),
            out.status,
            out.stderr_tail()
        ));
    }

    // Marker last, written atomically: its presence means "fully installed".
    let tmp = venv.join(format!("{MARKER}.tmp"));
    fs::write(&tmp, &wanted_marker)
        .and_then(|()| fs::rename(&tmp, &marker))
        .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    Ok(python)
}

/// Runs `python -I peer_script args...` and returns its stdout (one JSON line).
///
/// `Ok` whenever the peer answered with JSON: exit 0 (`{"ok":true,...}`) and
/// exit 1 (`{"ok":false,"error_type":...}`, an expected outcome for negative
/// interop cases; check the `ok` member). `Err` for usage errors (exit 2),
/// crashes, timeouts and empty output. Arguments are capped by the OS at
/// 128 KiB each; pass big tokens with [`run_peer_stdin`] and `-`.
pub fn run_peer(python: &Path, peer_script: &Path, args: &[&str]) -> Result<String, String> {
    run_peer_stdin(python, peer_script, args, None)
}

/// Like [`run_peer`], feeding `stdin` to the peer (for `verify ... -`).
pub fn run_peer_stdin(
    python: &Path,
    peer_script: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, String> {
    let mut cmd = Command::new(python);
    // -I: ignore PYTHON* variables and the user site; peer.py is self-contained.
    cmd.arg("-I")
        .arg(peer_script)
        .args(args)
        .env("PYTHONIOENCODING", "utf-8");
    let out = run_captured(
        cmd,
        stdin.map(str::as_bytes),
        timeout_from_env("SPIFFILE_PEER_TIMEOUT_SECS", PEER_TIMEOUT),
    )
    .map_err(|e| format!("peer.py {}: {e}", args.first().unwrap_or(&"")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match out.status.code() {
        Some(0 | 1) if stdout.starts_with('{') => Ok(stdout),
        _ => Err(format!(
            "peer.py {} exited with {}: {}\n{}",
            args.join(" "),
            out.status,
            stdout,
            out.stderr_tail()
        )),
    }
}

/// Extracts a top-level string member from a peer.py JSON line
/// (minimal, for tooling without serde; handles the usual escapes).
pub fn json_string_field(json: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\"");
    let mut rest = &json[json.find(&needle)? + needle.len()..];
    rest = rest
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(
                        char::from_u32(u32::from_str_radix(&hex, 16).ok()?).unwrap_or('\u{fffd}'),
                    );
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// `true` when a peer.py JSON line reports success (`"ok": true`).
pub fn json_ok(json: &str) -> bool {
    json.find("\"ok\"")
        .map(|i| {
            json[i + 4..]
                .trim_start()
                .trim_start_matches(':')
                .trim_start()
                .starts_with("true")
        })
        .unwrap_or(false)
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

fn timeout_from_env(var: &str, default: Duration) -> Duration {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(default)
}

/// FNV-1a 64-bit: a std-only content fingerprint (not a security boundary).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

struct Captured {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Captured {
    fn stderr_tail(&self) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// Spawns `cmd` with piped stdio, drains stdout/stderr on threads (so a
/// chatty child cannot block on a full pipe), and kills it after `timeout`.
fn run_captured(
    mut cmd: Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Captured, String> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child: Child = cmd.spawn().map_err(|e| e.to_string())?;

    let stdin_thread = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(thread::spawn(move || {
                let _ = pipe.write_all(&data);
            }))
        }
        _ => None,
    };
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_thread = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err_thread = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );

    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {}s", timeout.as_secs()));
        }
        thread::sleep(Duration::from_millis(20));
    };
    if let Some(t) = stdin_thread {
        let _ = t.join();
    }
    let stdout = out_thread.join().unwrap_or_default();
    let stderr = err_thread.join().unwrap_or_default();
    Ok(Captured {
        status,
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_fields() {
        let line = r#"{"ok": true, "token": "a.b.c", "error": "x \"q\" \u00e9"}"#;
        assert!(json_ok(line));
        assert_eq!(json_string_field(line, "token").as_deref(), Some("a.b.c"));
        assert_eq!(
            json_string_field(line, "error").as_deref(),
            Some("x \"q\" é")
        );
        assert!(!json_ok(
            r#"{"ok": false, "error_type": "InvalidTokenError"}"#
        ));
        assert_eq!(json_string_field(line, "missing"), None);
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
