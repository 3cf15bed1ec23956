//! `spiffile`: provision spiffile roots, mint and verify JWT-SVIDs from a
//! shell, inspect tokens and bundles, and run a self-checking demo.
//!
//! Exit codes: 0 success; 1 the operation failed (a token was rejected, a
//! bundle has problems, a provisioning step failed); 2 usage or
//! configuration error (bad arguments, identity files not found).
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod add;
mod bundle;
mod bundle_check;
mod cli;
mod completions;
mod demo;
mod env;
mod identity_source;
mod init;
mod inspect;
mod jwt_svid_list;
#[cfg(feature = "k8s")]
mod k8s;
mod list;
mod output;
mod remove;
mod rotate;
mod token;
mod token_input;
mod trust_view;
mod verify;
mod x509;
mod x509_inspect;

use std::process::ExitCode;

fn main() -> ExitCode {
    output::init_logging();
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version go to stdout and are a success.
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if failure.message.starts_with("spiffile ") {
                output::err(&failure.message);
            } else if !failure.message.is_empty() {
                output::err(&format!("spiffile: {}", failure.message));
            }
            ExitCode::from(failure.code)
        }
    }
}
