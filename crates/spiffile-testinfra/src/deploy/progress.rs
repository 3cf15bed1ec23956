//! A line per step with the elapsed time, and the tail of a log on failure.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Instant;

/// Prints `[  12.3s] <scope>: <message>` lines on stderr.
#[derive(Debug, Clone)]
pub struct Progress {
    start: Instant,
    scope: String,
}

impl Progress {
    /// A progress printer whose clock starts now.
    pub fn new(scope: impl Into<String>) -> Self {
        Self {
            start: Instant::now(),
            scope: scope.into(),
        }
    }

    /// The same clock under another scope name.
    pub fn scoped(&self, scope: impl Into<String>) -> Self {
        Self {
            start: self.start,
            scope: scope.into(),
        }
    }

    /// Prints one step line.
    pub fn step(&self, message: impl std::fmt::Display) {
        eprintln!(
            "[{:>7.1}s] {}: {message}",
            self.start.elapsed().as_secs_f64(),
            self.scope
        );
    }

    /// Seconds since the clock started.
    pub fn elapsed_secs(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

/// The last `lines` lines of a log file (at most 64 KiB are read), framed for
/// an error message; empty when the file cannot be read.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(64 * 1024);
    if file.seek(SeekFrom::Start(from)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    if tail.is_empty() {
        return format!("\n--- {} is empty", path.display());
    }
    format!(
        "\n--- last {} lines of {}:\n{}\n---",
        tail.len(),
        path.display(),
        tail.join("\n")
    )
}
