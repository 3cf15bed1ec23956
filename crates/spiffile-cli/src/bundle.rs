//! `spiffile bundle check` and `spiffile bundle fmt`: bundles in any format
//! validated and summarized (see `bundle_check.rs`), or a spiffile bundle
//! rewritten in the canonical form.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use spiffile::bundle::{Bundle, BundleFormat, MAX_BUNDLE_BYTES, WarningKind, detect_format};
use spiffile::provision;

use crate::output::{Failure, out};

/// The `spiffile bundle` commands.
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Validate bundles in any format (spiffile bundle, SPIFFE bundle/JWKS,
    /// spiffe-helper's JWT bundle set) and summarize them: per trust domain
    /// the kind of authority, its keys, its sequence; every problem. Exit 1
    /// on problems.
    #[command(
        after_help = "FILE|DIR: a bundle file, or a directory whose every *.json is one (a trust domain two\nfiles offer is a problem).\n\nExamples:\n  spiffile bundle check ./idroot/bundle.json\n  spiffile bundle check /run/spire/jwt_bundle.json --json\n  spiffile bundle check /etc/spiffe/bundles\n  spiffile bundle check spire-bundle.jwks --trust-domain spire.test"
    )]
    Check {
        /// The bundle file, or a directory of bundles.
        #[arg(value_name = "FILE|DIR")]
        path: PathBuf,
        /// The trust domain of a SPIFFE bundle (JWKS) file not named
        /// <trust-domain>.json.
        #[arg(long, value_name = "TRUST_DOMAIN")]
        trust_domain: Option<String>,
        /// Print the report (every trust domain, problem and advice) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite a spiffile bundle in the canonical form (sorted, 2-space
    /// indent), atomically.
    #[command(after_help = "Example:\n  spiffile bundle fmt ./idroot/bundle.json")]
    Fmt {
        /// The bundle file.
        file: PathBuf,
    },
}

impl BundleCommand {
    /// Runs `spiffile bundle check` or `spiffile bundle fmt`.
    pub fn run(self) -> Result<(), Failure> {
        match self {
            BundleCommand::Check {
                path,
                trust_domain,
                json,
            } => crate::bundle_check::check(&path, trust_domain.as_deref(), json),
            BundleCommand::Fmt { file } => fmt(&file),
        }
    }
}

impl BundleCommand {
    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        matches!(self, BundleCommand::Check { json: true, .. })
    }
}

pub(crate) fn read_bundle_file(file: &Path) -> Result<Vec<u8>, Failure> {
    let meta = std::fs::metadata(file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    if meta.is_dir() {
        let inside = file.join(provision::BUNDLE_FILE);
        let hint = if inside.is_file() {
            format!("; did you mean {}?", inside.display())
        } else {
            String::new()
        };
        return Err(Failure::usage(format!(
            "{} is a directory, not a bundle file{hint}",
            file.display()
        )));
    }
    if !meta.is_file() {
        return Err(Failure::usage(format!(
            "{} is not a regular file",
            file.display()
        )));
    }
    let f = std::fs::File::open(file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    let mut buf = Vec::new();
    f.take(MAX_BUNDLE_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    Ok(buf)
}

/// A stable code for a finding in a bundle, for scripts (`bundle check
/// --json`, `status --json`).
pub(crate) fn warning_code(kind: WarningKind) -> &'static str {
    match kind {
        WarningKind::SkippedIdentity => "identity_skipped",
        WarningKind::SkippedKey => "key_skipped",
        WarningKind::SharedKey => "shared_key",
        _ => "advice",
    }
}

fn fmt(file: &Path) -> Result<(), Failure> {
    let bytes = read_bundle_file(file)?;
    if let Ok(format) = detect_format(&bytes)
        && format != BundleFormat::Spiffile
    {
        return Err(Failure::failed(format!(
            "{}: not rewritten: it is a {format}; only spiffile bundles have a canonical form here",
            file.display()
        )));
    }
    let bundle = Bundle::from_json_quiet(&bytes)
        .map_err(|e| Failure::failed(format!("{}: {e}", file.display())))?;
    let skipped: Vec<String> = bundle
        .warnings()
        .iter()
        .filter(|w| w.kind.is_skip())
        .map(|w| w.to_string())
        .collect();
    if !skipped.is_empty() {
        return Err(Failure::failed(format!(
            "{}: not rewritten: these entries cannot be read and would be lost:\n  {}",
            file.display(),
            skipped.join("\n  ")
        )));
    }
    if bundle.is_canonical(&bytes) {
        out(&format!("{}: already canonical", file.display()));
        return Ok(());
    }
    let json = bundle.to_json();
    if json.len() > MAX_BUNDLE_BYTES {
        return Err(Failure::failed(format!(
            "{}: not rewritten: its canonical form would be {} bytes, above the {MAX_BUNDLE_BYTES}-byte limit every reader applies",
            file.display(),
            json.len()
        )));
    }
    provision::replace_file_atomically(file, json.as_bytes())
        .map_err(|e| Failure::failed(format!("{}: {e}", file.display())))?;
    out(&format!(
        "{}: rewritten in the canonical form",
        file.display()
    ));
    Ok(())
}
