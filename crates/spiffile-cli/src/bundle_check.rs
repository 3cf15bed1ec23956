//! `spiffile bundle check FILE|DIR`: every bundle format, per trust domain
//! the kind of authority, its keys and sequence, every problem; `--json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use spiffile::bundle::{BundleDocument, DomainKeys, TrustDomain, WarningKind};

use crate::bundle::{read_bundle_file, warning_code};
use crate::output::{Failure, out, out_json};

/// One finding, for people (`message`) and scripts (`code`, stable).
struct Finding {
    code: &'static str,
    /// The identity it concerns, when it concerns one.
    identity: Option<String>,
    message: String,
}

impl Finding {
    fn json(&self, file: &Path) -> Value {
        json!({
            "code": self.code,
            "identity": self.identity,
            "message": self.message,
            "file": file.display().to_string(),
        })
    }
}

/// What was found in one file.
struct FileReport {
    path: PathBuf,
    /// The document, or why it cannot be used.
    doc: Result<BundleDocument, String>,
    /// Problems (something skipped or refused, a key shared by several
    /// identities) and advice.
    problems: Vec<Finding>,
    /// Of the problems, how many are a key bound to several identities
    /// (trusted for each, unlike the others, which are skipped).
    shared: usize,
    advice: Vec<Finding>,
    /// For a spiffile bundle not in the canonical form.
    not_canonical: bool,
}

fn analyse(path: &Path, name: &str, td: Option<&TrustDomain>) -> Result<FileReport, Failure> {
    let bytes = read_bundle_file(path)?;
    let doc = BundleDocument::from_named_json(name, &bytes, td).map_err(|e| e.to_string());
    let mut report = FileReport {
        path: path.to_owned(),
        doc,
        problems: Vec::new(),
        shared: 0,
        advice: Vec::new(),
        not_canonical: false,
    };
    match &report.doc {
        Ok(BundleDocument::Spiffile(b)) => {
            for w in b.warnings().iter().chain(&b.lint()) {
                let finding = Finding {
                    code: warning_code(w.kind),
                    identity: Some(w.identity.clone()),
                    message: w.to_string(),
                };
                match w.kind {
                    WarningKind::Advice => report.advice.push(finding),
                    WarningKind::SharedKey => {
                        report.shared += 1;
                        report.problems.push(finding);
                    }
                    _ => report.problems.push(finding),
                }
            }
            // Compared as it is written: the canonical text of a large
            // bundle is never built just to be compared.
            report.not_canonical = !b.is_canonical(&bytes);
        }
        Ok(doc) => {
            for (serious, message) in doc.warnings() {
                if serious {
                    report.problems.push(Finding {
                        code: "key_skipped",
                        identity: None,
                        message,
                    });
                } else {
                    report.advice.push(Finding {
                        code: "advice",
                        identity: None,
                        message,
                    });
                }
            }
        }
        Err(_) => {}
    }
    Ok(report)
}

/// The files of a bundle directory: every `*.json`, not hidden, that is a
/// regular file or a link to one (a Kubernetes volume's visible names).
fn dir_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, Failure> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", dir.display())))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| Failure::usage(format!("cannot read {}: {e}", dir.display())))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = entry.path();
        if name.starts_with('.') || !name.ends_with(".json") || !path.is_file() {
            continue;
        }
        files.push((name, path));
    }
    files.sort();
    Ok(files)
}

/// Checks a file or a directory; prints the report (text or JSON); exit 1
/// on any problem.
pub fn check(target: &Path, td: Option<&str>, as_json: bool) -> Result<(), Failure> {
    let td = td
        .map(|t| {
            TrustDomain::new(t).map_err(|e| {
                Failure::usage(format!(
                    "--trust-domain {t:?} is not a trust domain name: it {e}"
                ))
            })
        })
        .transpose()?;
    let meta = std::fs::metadata(target)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", target.display())))?;
    let is_dir = meta.is_dir();
    let reports = if is_dir {
        if td.is_some() {
            return Err(Failure::usage(
                "--trust-domain applies to a file; in a directory a SPIFFE bundle is named <trust-domain>.json",
            ));
        }
        dir_files(target)?
            .into_iter()
            .map(|(name, path)| analyse(&path, &name, None))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("");
        vec![analyse(target, name, td.as_ref())?]
    };
    // A trust domain offered by two files (or twice in one file set).
    let mut seen: BTreeMap<String, &Path> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for r in &reports {
        if let Ok(doc) = &r.doc {
            for d in doc.domains() {
                let name = d.trust_domain().to_string();
                if let Some(first) = seen.insert(name.clone(), &r.path) {
                    conflicts.push(format!(
                        "trust domain `{name}` is offered by both {} and {}: a trust domain must come from exactly one bundle",
                        first.display(),
                        r.path.display()
                    ));
                }
            }
        }
    }
    let failed = reports.iter().filter(|r| r.doc.is_err()).count();
    let shared: usize = reports.iter().map(|r| r.shared).sum();
    let skipped: usize = reports.iter().map(|r| r.problems.len()).sum::<usize>() - shared;
    if as_json {
        out_json(&report_json(target, is_dir, &reports, &conflicts));
    } else {
        print_text(target, is_dir, &reports, &conflicts, seen.len());
    }
    if is_dir && reports.is_empty() {
        return Err(Failure::failed(format!(
            "{}: no *.json bundle in the directory",
            target.display()
        )));
    }
    if failed > 0 || skipped > 0 || shared > 0 || !conflicts.is_empty() {
        let mut what = Vec::new();
        if failed > 0 {
            what.push(format!("{} unusable", plural(failed, "file", "files")));
        }
        if skipped > 0 {
            what.push(format!(
                "{} skipped (verifiers refuse the tokens concerned)",
                plural(skipped, "entry", "entries")
            ));
        }
        if shared > 0 {
            what.push(format!(
                "{} bound to more than one identity (verifiers accept {} for each)",
                plural(shared, "public key", "public keys"),
                if shared == 1 { "it" } else { "them" }
            ));
        }
        if !conflicts.is_empty() {
            what.push(format!(
                "{} offered twice (a verifier refuses this directory and keeps its last good trust set)",
                plural(conflicts.len(), "trust domain", "trust domains")
            ));
        }
        let message = match (&reports[..], is_dir) {
            ([single], false) => match &single.doc {
                Err(e) => format!("{}: {e}", target.display()),
                Ok(_) => format!("{}: {}", target.display(), what.join("; ")),
            },
            _ => format!("{}: {}", target.display(), what.join("; ")),
        };
        return Err(Failure::failed(message));
    }
    Ok(())
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn print_domain(indent: &str, d: &DomainKeys<'_>) {
    match d {
        DomainKeys::PerIdentity(b) => {
            let keys: usize = b.identities().map(|(_, k)| k.len()).sum();
            out(&format!(
                "{indent}trust domain {}, {}, {} (per identity: each key signs for its own SPIFFE ID only)",
                b.trust_domain(),
                plural(b.len(), "identity", "identities"),
                plural(keys, "key", "keys"),
            ));
            for (id, keys) in b.identities() {
                out(&format!("{indent}  {id}"));
                for k in keys {
                    out(&format!("{indent}    kid {}", k.kid()));
                }
            }
        }
        DomainKeys::PerDomain(b) => {
            let mut line = format!(
                "{indent}trust domain {}, {}",
                b.trust_domain(),
                plural(b.keys().len(), "key", "keys")
            );
            if let Some(s) = b.sequence() {
                line.push_str(&format!(", sequence {s}"));
            }
            if let Some(h) = b.refresh_hint() {
                line.push_str(&format!(", refresh hint {h} s"));
            }
            line.push_str(
                " (per trust domain: any key signs for any SPIFFE ID of the trust domain)",
            );
            out(&line);
            for k in b.keys() {
                out(&format!("{indent}    kid {}", k.kid()));
            }
        }
    }
}

fn print_text(
    target: &Path,
    is_dir: bool,
    reports: &[FileReport],
    conflicts: &[String],
    domains: usize,
) {
    for r in reports {
        match &r.doc {
            Err(e) => out(&format!("{}: unusable: {e}", r.path.display())),
            Ok(doc) => {
                let domains = doc.domains();
                match doc {
                    BundleDocument::JwtBundleSet(_) => {
                        out(&format!(
                            "{}: {}, {}",
                            r.path.display(),
                            doc.format(),
                            plural(domains.len(), "trust domain", "trust domains")
                        ));
                        for d in &domains {
                            print_domain("  ", d);
                        }
                    }
                    _ => {
                        // One trust domain: on the file's own line.
                        out(&format!("{}: {}", r.path.display(), doc.format()));
                        for d in &domains {
                            print_domain("  ", d);
                        }
                    }
                }
            }
        }
        for p in &r.problems {
            out(&format!("  problem: {}", p.message));
        }
        for a in &r.advice {
            out(&format!("  advice: {}", a.message));
        }
        if r.not_canonical && r.problems.is_empty() {
            out(&format!(
                "  note: not in the canonical form (`spiffile bundle fmt {}` rewrites it)",
                r.path.display()
            ));
        }
    }
    for c in conflicts {
        out(&format!("problem: {c}"));
    }
    if is_dir {
        out(&format!(
            "{}: {}, {}",
            target.display(),
            plural(reports.len(), "bundle file", "bundle files"),
            plural(domains, "trust domain", "trust domains")
        ));
    }
}

fn domain_json(d: &DomainKeys<'_>) -> Value {
    match d {
        DomainKeys::PerIdentity(b) => json!({
            "trust_domain": b.trust_domain().as_str(),
            "kind": "per_identity",
            "keys": d.key_count(),
            "identities": b.identities().map(|(id, keys)| json!({
                "id": id.as_str(),
                "kids": keys.iter().map(|k| k.kid()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
        DomainKeys::PerDomain(b) => json!({
            "trust_domain": b.trust_domain().as_str(),
            "kind": "per_domain",
            "keys": d.key_count(),
            "kids": b.keys().iter().map(|k| k.kid()).collect::<Vec<_>>(),
            "sequence": b.sequence(),
            "refresh_hint": b.refresh_hint(),
        }),
    }
}

fn report_json(target: &Path, is_dir: bool, reports: &[FileReport], conflicts: &[String]) -> Value {
    let files: Vec<Value> = reports
        .iter()
        .map(|r| match &r.doc {
            Err(e) => json!({
                "path": r.path.display().to_string(),
                "error": e,
            }),
            Ok(doc) => json!({
                "path": r.path.display().to_string(),
                "format": doc.format().as_str(),
                "trust_domains": doc.domains().iter().map(domain_json).collect::<Vec<_>>(),
                "problems": r.problems.iter().map(|f| f.json(&r.path)).collect::<Vec<_>>(),
                "advice": r.advice.iter().map(|f| f.json(&r.path)).collect::<Vec<_>>(),
                "canonical": !r.not_canonical,
            }),
        })
        .collect();
    // Every finding of every file, and the conflicts between files, in one
    // list a script can read without walking the files.
    let mut problems: Vec<Value> = reports
        .iter()
        .flat_map(|r| r.problems.iter().map(|f| f.json(&r.path)))
        .collect();
    problems.extend(conflicts.iter().map(|c| {
        json!({"code": "trust_domain_conflict", "identity": null, "message": c, "file": target.display().to_string()})
    }));
    let advice: Vec<Value> = reports
        .iter()
        .flat_map(|r| r.advice.iter().map(|f| f.json(&r.path)))
        .collect();
    let ok = conflicts.is_empty()
        && !(is_dir && reports.is_empty())
        && reports
            .iter()
            .all(|r| r.doc.is_ok() && r.problems.is_empty());
    let mut doc = json!({
        "path": target.display().to_string(),
        "directory": is_dir,
        "files": files,
        "problems": problems,
        "advice": advice,
        "ok": ok,
    });
    // One spiffile bundle: its summary at the top, as for a single file.
    if let ([single], false) = (reports, is_dir)
        && let Ok(BundleDocument::Spiffile(b)) = &single.doc
    {
        doc["trust_domain"] = b.trust_domain().as_str().into();
        doc["identities"] = b
            .identities()
            .map(|(id, keys)| {
                json!({
                    "id": id.as_str(),
                    "kids": keys.iter().map(|k| k.kid()).collect::<Vec<_>>(),
                })
            })
            .collect::<Vec<_>>()
            .into();
        doc["keys"] = b.identities().map(|(_, k)| k.len()).sum::<usize>().into();
        doc["canonical"] = (!single.not_canonical).into();
    }
    doc
}
