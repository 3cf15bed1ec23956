//! `spiffile bundle check` and `spiffile bundle fmt`: a bundle file
//! validated and summarized, or rewritten in the canonical form.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use spiffile::bundle::{Bundle, MAX_BUNDLE_BYTES, WarningKind};
use spiffile::provision;

use crate::output::{Failure, out};

/// The `spiffile bundle` commands.
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Validate a bundle and summarize it (identities, keys, kids, warnings);
    /// exit 1 on problems.
    #[command(after_help = "Example:\n  spiffile bundle check ./idroot/bundle.json")]
    Check {
        /// The bundle file.
        file: PathBuf,
    },
    /// Rewrite a bundle in the canonical form (sorted, 2-space indent),
    /// atomically.
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
            BundleCommand::Check { file } => check(&file),
            BundleCommand::Fmt { file } => fmt(&file),
        }
    }
}

fn read_bundle_file(file: &Path) -> Result<Vec<u8>, Failure> {
    let meta = std::fs::metadata(file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
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

fn check(file: &Path) -> Result<(), Failure> {
    let bytes = read_bundle_file(file)?;
    let bundle = Bundle::from_json_quiet(&bytes)
        .map_err(|e| Failure::failed(format!("{}: {e}", file.display())))?;
    let keys: usize = bundle.identities().map(|(_, k)| k.len()).sum();
    out(&format!(
        "{}: trust domain {}, {} identit{}, {keys} key{}",
        file.display(),
        bundle.trust_domain(),
        bundle.len(),
        if bundle.len() == 1 { "y" } else { "ies" },
        if keys == 1 { "" } else { "s" },
    ));
    for (id, keys) in bundle.identities() {
        out(&format!("  {id}"));
        for k in keys {
            out(&format!("    kid {}", k.kid()));
        }
    }
    let (mut problems, mut skipped) = (0, 0);
    for w in bundle.warnings().iter().chain(&bundle.lint()) {
        let serious = w.kind != WarningKind::Advice;
        problems += usize::from(serious);
        skipped += usize::from(w.kind.is_skip());
        out(&format!(
            "  {}: {w}",
            if serious { "problem" } else { "advice" }
        ));
    }
    // Compared as it is written: the canonical text of a large bundle is
    // never built just to be compared.
    if problems == 0 && !bundle.is_canonical(&bytes) {
        out(&format!(
            "  note: not in the canonical form (`spiffile bundle fmt {}` rewrites it)",
            file.display()
        ));
    }
    if problems > 0 {
        let shared = problems - skipped;
        let mut what = Vec::new();
        if skipped > 0 {
            what.push(format!(
                "{skipped} entr{} skipped (verifiers refuse the tokens they concern)",
                if skipped == 1 { "y" } else { "ies" }
            ));
        }
        if shared > 0 {
            what.push(format!(
                "{shared} public key{} bound to more than one identity (verifiers accept {} for each)",
                if shared == 1 { "" } else { "s" },
                if shared == 1 { "it" } else { "them" }
            ));
        }
        return Err(Failure::failed(format!(
            "{}: {}",
            file.display(),
            what.join("; ")
        )));
    }
    Ok(())
}

fn fmt(file: &Path) -> Result<(), Failure> {
    let bytes = read_bundle_file(file)?;
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
