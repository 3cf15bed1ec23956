//! The state file of a running deployment: what `up` started and where it
//! listens. Written atomically (temp file + rename) in the run directory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::process::ProcessRecord;
use crate::error::{Result, io, step};

/// The state file's name inside a run directory.
pub const STATE_FILE: &str = "state.json";

/// Who stops a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Owner {
    /// `cargo xtask infra up`: it runs until `cargo xtask infra down`.
    Persistent,
    /// A program's guardian: it stops when that program exits.
    Guarded {
        /// The owning program's PID.
        owner_pid: u32,
        /// The guardian's record.
        guardian: ProcessRecord,
    },
}

/// What `up` recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// `k8s` or `spire`.
    pub deployment: String,
    /// Component versions (`kubernetes`, `etcd`, `spire`, `spiffe-helper`).
    pub versions: BTreeMap<String, String>,
    /// Who stops it.
    pub owner: Owner,
    /// Seconds since the epoch when it became ready.
    pub ready_at_unix: u64,
    /// Seconds from the first start step to ready.
    pub startup_seconds: f64,
    /// The processes, in start order.
    pub processes: Vec<ProcessRecord>,
    /// Ports on 127.0.0.1 by role (`apiserver`, `etcd-client`, …).
    pub ports: BTreeMap<String, u16>,
    /// Files and sockets by role (`kubeconfig`, `agent-socket`, …).
    pub paths: BTreeMap<String, PathBuf>,
    /// Other facts by name (`server-url`, `trust-domain`, …).
    pub values: BTreeMap<String, String>,
}

impl State {
    /// Reads `<run_dir>/state.json`; `Ok(None)` if there is none.
    pub fn read(run_dir: &Path) -> Result<Option<State>> {
        let path = run_dir.join(STATE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| step(format!("read {}", path.display()), e.to_string()))
    }

    /// Writes `<run_dir>/state.json` atomically.
    pub fn write(&self, run_dir: &Path) -> Result<()> {
        let path = run_dir.join(STATE_FILE);
        let tmp = run_dir.join(format!(".{STATE_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| step("serialize the state", e.to_string()))?;
        fs::write(&tmp, text + "\n").map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Removes `<run_dir>/state.json` if present.
    pub fn remove(run_dir: &Path) -> Result<()> {
        let path = run_dir.join(STATE_FILE);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The recorded processes that are no longer running.
    pub fn dead_processes(&self) -> Vec<&ProcessRecord> {
        self.processes.iter().filter(|p| !p.is_running()).collect()
    }

    /// A recorded path by role.
    pub fn path(&self, role: &str) -> Result<&Path> {
        self.paths.get(role).map(PathBuf::as_path).ok_or_else(|| {
            step(
                format!("read the {} state", self.deployment),
                format!("no `{role}` path recorded"),
            )
        })
    }

    /// A recorded port by role.
    pub fn port(&self, role: &str) -> Result<u16> {
        self.ports.get(role).copied().ok_or_else(|| {
            step(
                format!("read the {} state", self.deployment),
                format!("no `{role}` port recorded"),
            )
        })
    }

    /// A recorded value by name.
    pub fn value(&self, name: &str) -> Result<&str> {
        self.values.get(name).map(String::as_str).ok_or_else(|| {
            step(
                format!("read the {} state", self.deployment),
                format!("no `{name}` value recorded"),
            )
        })
    }
}
