//! `spiffile`: provision spiffile roots, mint and verify JWT-SVIDs from a
//! shell, inspect tokens and bundles, and run a self-checking demo.
//!
//! Exit codes: see [`exit::TABLE`] (0 success; 1 refused or unhealthy;
//! 2 usage; 3 configuration; `exec` passes on the program's).
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod add;
mod bundle;
mod bundle_check;
mod cli;
mod completions;
mod confirm;
mod demo;
mod env;
mod exec;
mod exit;
mod identity_source;
mod init;
mod inspect;
mod jwt_svid_list;
#[cfg(feature = "k8s")]
mod k8s;
mod list;
mod man;
mod output;
mod remove;
mod root_arg;
mod rotate;
mod status;
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
    let json = cli.json();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // A script reading JSON gets a document on stdout for any
            // failure the command did not already report there.
            if json && !failure.message.is_empty() && !output::json_written() {
                output::out_json(&serde_json::json!({
                    "error": {"exit_code": failure.code, "message": failure.message},
                }));
            }
            if failure.message.starts_with("spiffile ") {
                output::err(&failure.message);
            } else if !failure.message.is_empty() {
                output::err(&format!("spiffile: {}", failure.message));
            }
            ExitCode::from(failure.code)
        }
    }
}
