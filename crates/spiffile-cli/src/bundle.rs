//! `spiffile bundle check` and `spiffile bundle fmt`: a bundle file
//! validated and summarized, or rewritten in the canonical form.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use spiffile::bundle::{Bundle, MAX_BUNDLE_BYTES, WarningKind};
use spiffile::provision;

use crate::output::{Failure, out, out_json};

/// The `spiffile bundle` commands.
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Validate a bundle and summarize it (identities, keys, kids, warnings);
    /// exit 1 on problems.
    #[command(after_help = "Example:\n  spiffile bundle check ./idroot/bundle.json")]
    Check {
        /// The bundle file.
        file: PathBuf,
        /// Print the summary and every problem as JSON.
        #[arg(long)]
        json: bool,
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
            BundleCommand::Check { file, json } => check(&file, json),
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

fn read_bundle_file(file: &Path) -> Result<Vec<u8>, Failure> {
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

fn check(file: &Path, json: bool) -> Result<(), Failure> {
    let bytes = read_bundle_file(file)?;
    let bundle = match Bundle::from_json_quiet(&bytes) {
        Ok(b) => b,
        Err(e) => {
            if json {
                out_json(&serde_json::json!({
                    "file": file.display().to_string(),
                    "ok": false,
                    "error": e.to_string(),
                }));
            }
            return Err(Failure::failed(format!("{}: {e}", file.display())));
        }
    };
    let keys: usize = bundle.identities().map(|(_, k)| k.len()).sum();
    let findings: Vec<(bool, &str, String, String)> = bundle
        .warnings()
        .iter()
        .chain(&bundle.lint())
        .map(|w| {
            (
                w.kind != WarningKind::Advice,
                warning_code(w.kind),
                w.identity.clone(),
                w.to_string(),
            )
        })
        .collect();
    let problems = findings.iter().filter(|(serious, ..)| *serious).count();
    let skipped = bundle
        .warnings()
        .iter()
        .chain(&bundle.lint())
        .filter(|w| w.kind.is_skip())
        .count();
    // Compared as it is written: the canonical text of a large bundle is
    // never built just to be compared.
    let canonical = bundle.is_canonical(&bytes);
    if json {
        let identities: Vec<serde_json::Value> = bundle
            .identities()
            .map(|(id, keys)| {
                serde_json::json!({
                    "id": id.as_str(),
                    "kids": keys.iter().map(|k| k.kid()).collect::<Vec<_>>(),
                })
            })
            .collect();
        let list = |serious: bool| -> Vec<serde_json::Value> {
            findings
                .iter()
                .filter(|(s, ..)| *s == serious)
                .map(|(_, code, identity, message)| {
                    serde_json::json!({"code": code, "identity": identity, "message": message})
                })
                .collect()
        };
        out_json(&serde_json::json!({
            "file": file.display().to_string(),
            "ok": problems == 0,
            "trust_domain": bundle.trust_domain().as_str(),
            "identities": identities,
            "keys": keys,
            "problems": list(true),
            "advice": list(false),
            "canonical": canonical,
        }));
    } else {
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
        for (serious, _, _, message) in &findings {
            out(&format!(
                "  {}: {message}",
                if *serious { "problem" } else { "advice" }
            ));
        }
        if !canonical && problems == 0 {
            out(&format!(
                "  note: not in the canonical form (`spiffile bundle fmt {}` rewrites it)",
                file.display()
            ));
        }
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
