//! Test support shared by the spiffile crates' tests (not published).
//!
//! * [`Root`]: a trust domain's files in a temporary directory, written by
//!   hand in the provisioning layout (`bundle.json`,
//!   `services/<name>/{id,key.pem}`), so that tests of the facade and of the
//!   layers above it need neither the provisioning crate nor the CLI.
//! * [`fixtures`]: the shared cross-implementation fixture set.
//! * [`LogCapture`]: a `tracing` writer into a buffer the test reads back.
//! * [`id`]: a SPIFFE ID from a literal.
//!
//! Everything here panics on failure: it is for tests only.
#![forbid(unsafe_code)]

mod logs;
mod root;

use std::path::Path;

pub use logs::LogCapture;
pub use root::Root;
use spiffile::SpiffeId;

/// Parses a SPIFFE ID literal.
///
/// # Panics
///
/// When `s` is not a SPIFFE ID.
pub fn id(s: &str) -> SpiffeId {
    match s.parse() {
        Ok(id) => id,
        Err(e) => panic!("{s:?} is not a SPIFFE ID: {e}"),
    }
}

/// The shared cross-implementation fixture set, `conformance/fixtures.json`.
///
/// # Panics
///
/// When the file cannot be read or parsed.
pub fn fixtures() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conformance/fixtures.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
