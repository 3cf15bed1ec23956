//! Writing to stdout and stderr without panicking on a closed pipe, the
//! failure type with its exit code, and provisioning notices as warnings.

use std::io::Write as _;

/// A failed command: the message for stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong (empty when it was already printed).
    pub message: String,
    /// The exit code (see [`crate::exit::TABLE`]).
    pub code: u8,
}

impl Failure {
    /// The operation failed (exit 1).
    pub fn failed(message: impl std::fmt::Display) -> Self {
        Failure {
            message: message.to_string(),
            code: 1,
        }
    }

    /// A usage error: the command line is wrong (exit 2).
    pub fn usage(message: impl std::fmt::Display) -> Self {
        Failure {
            message: message.to_string(),
            code: 2,
        }
    }

    /// A configuration error: the identity to use is not configured or
    /// cannot be used (exit 3).
    pub fn config(message: impl std::fmt::Display) -> Self {
        Failure {
            message: message.to_string(),
            code: 3,
        }
    }

    /// A failure already reported (on stdout as JSON, or line by line).
    pub fn reported(code: u8) -> Self {
        Failure {
            message: String::new(),
            code,
        }
    }
}

/// Whether this process has written a JSON document on stdout.
static JSON_WRITTEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints a JSON document on one line of stdout.
pub fn out_json(doc: &serde_json::Value) {
    JSON_WRITTEN.store(true, std::sync::atomic::Ordering::Relaxed);
    out(&doc.to_string());
}

/// Whether a JSON document is already on stdout (so a failure after it is
/// not reported with a second one).
pub fn json_written() -> bool {
    JSON_WRITTEN.load(std::sync::atomic::Ordering::Relaxed)
}

/// Provisioning notices as JSON strings.
pub fn notices_json(notices: &[spiffile::provision::Notice]) -> serde_json::Value {
    notices.iter().map(|n| n.to_string()).collect()
}

/// Prints a line on stdout; a closed stdout (`| head`) is not an error worth
/// a panic.
pub fn out(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(line.as_bytes());
    let _ = stdout.write_all(b"\n");
}

/// Prints a line on stderr.
pub fn err(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(line.as_bytes());
    let _ = stderr.write_all(b"\n");
}

/// Prints a warning on stderr.
pub fn warn(message: impl std::fmt::Display) {
    err(&format!("warning: {message}"));
}

/// Library warnings (a skipped bundle entry, a key file readable by others)
/// go to stderr. Provisioning notices are printed by the commands
/// themselves, so their log target is muted.
pub fn init_logging() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let filter = Targets::new()
        .with_target("spiffile::provision", LevelFilter::OFF)
        .with_default(LevelFilter::WARN);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}

/// Prints the notices of a provisioning operation as warnings.
pub fn print_notices(notices: &[spiffile::provision::Notice]) {
    for n in notices {
        warn(n);
    }
}
