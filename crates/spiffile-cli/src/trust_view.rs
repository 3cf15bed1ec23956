//! What `inspect` says about a token against the configured bundles,
//! without checking its signature: which trust domain its `sub` selects,
//! which authority (and file) that is, whether its `kid` and `aud` would
//! pass that authority's rules.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use spiffile::bundle::{BundleDocument, DomainKeys, TrustDomain};
use spiffile::{
    BundleSource, ENV_BUNDLE_DIR, ENV_BUNDLE_FILE, ENV_BUNDLE_TRUST_DOMAIN, ENV_DIR, SpiffeId,
};

use crate::bundle::read_bundle_file;

/// The bundles to annotate with: from the flags, else from the environment
/// (`SPIFFILE_BUNDLE_FILE`, `SPIFFILE_BUNDLE_DIR`, `SPIFFILE_DIR`); `None`
/// when neither names any.
pub fn configured_source(
    file: Option<&Path>,
    dir: Option<&Path>,
    trust_domain: Option<&str>,
) -> Option<BundleSource> {
    let td = trust_domain.and_then(|t| TrustDomain::new(t).ok());
    if let Some(d) = dir {
        return Some(BundleSource::dir(d));
    }
    if let Some(f) = file {
        return Some(BundleSource::File {
            path: f.to_owned(),
            trust_domain: td,
        });
    }
    // The bundle part of the environment, as `IdentitySources` reads it.
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = env(ENV_BUNDLE_DIR) {
        return Some(BundleSource::dir(d));
    }
    let path = env(ENV_BUNDLE_FILE).or_else(|| env(ENV_DIR).map(|d| d.join("bundle.json")))?;
    let trust_domain =
        env(ENV_BUNDLE_TRUST_DOMAIN).and_then(|t| TrustDomain::new(&t.to_string_lossy()).ok());
    Some(BundleSource::File { path, trust_domain })
}

/// Reads every document of the source; a file that cannot be used is
/// reported, not fatal (inspect only informs).
pub fn load(source: &BundleSource) -> (Vec<(PathBuf, BundleDocument)>, Vec<String>) {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    let mut read = |path: &Path, name: &str, td: Option<&TrustDomain>| {
        let bytes = match read_bundle_file(path) {
            Ok(b) => b,
            Err(f) => return errors.push(f.message),
        };
        match BundleDocument::from_named_json(name, &bytes, td) {
            Ok(doc) => docs.push((path.to_owned(), doc)),
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    };
    match source {
        BundleSource::File { path, trust_domain } => {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            read(path, name, trust_domain.as_ref());
        }
        BundleSource::Dir(dir) => match std::fs::read_dir(dir) {
            Ok(entries) => {
                let mut files: Vec<(String, PathBuf)> = entries
                    .filter_map(Result::ok)
                    .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
                    .filter(|(n, p)| !n.starts_with('.') && n.ends_with(".json") && p.is_file())
                    .collect();
                files.sort();
                for (name, path) in files {
                    read(&path, &name, None);
                }
            }
            Err(e) => errors.push(format!("cannot read {}: {e}", dir.display())),
        },
        other => errors.push(format!("{}: not read", other.path().display())),
    }
    (docs, errors)
}

/// The annotation: lines for the terminal, and the same as JSON.
pub fn describe(
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
    docs: &[(PathBuf, BundleDocument)],
) -> (Vec<String>, Value) {
    let mut lines = Vec::new();
    let sub = claims.get("sub").and_then(Value::as_str);
    let Some(id) = sub.and_then(|s| SpiffeId::new(s).ok()) else {
        lines.push("sub is not a SPIFFE ID: every verifier refuses the token".into());
        return (
            lines,
            json!({"verdict": "refused", "why": "sub is not a SPIFFE ID"}),
        );
    };
    let td = id.trust_domain();
    let found = docs.iter().find_map(|(path, doc)| {
        doc.domains()
            .into_iter()
            .find(|d| d.trust_domain() == td)
            .map(|d| (path, d))
    });
    let Some((path, keys)) = found else {
        let trusted: Vec<String> = docs
            .iter()
            .flat_map(|(_, d)| {
                d.domains()
                    .into_iter()
                    .map(|k| k.trust_domain().to_string())
            })
            .collect();
        lines.push(format!(
            "trust domain {td}: not in the bundles (they hold: {}): refused as an unknown identity",
            if trusted.is_empty() {
                "none".into()
            } else {
                trusted.join(", ")
            }
        ));
        return (
            lines,
            json!({"trust_domain": td.as_str(), "trusted": false, "verdict": "refused", "why": "trust domain not in the bundles"}),
        );
    };
    let kid = header.get("kid").and_then(Value::as_str).unwrap_or("");
    let aud = claims.get("aud");
    let (kind, identity_known, kid_known, aud_ok, aud_note) = match keys {
        DomainKeys::PerIdentity(b) => {
            let bound = b.keys(&id);
            let kid_known = bound.is_some_and(|k| k.iter().any(|k| k.kid() == kid));
            let aud_ok = matches!(aud, Some(Value::String(_)));
            (
                "per_identity",
                Some(bound.is_some()),
                kid_known,
                aud_ok,
                if aud_ok {
                    "one audience string"
                } else {
                    "not one string: refused (spiffile tokens carry one audience string)"
                },
            )
        }
        DomainKeys::PerDomain(b) => {
            let kid_known = b.key(kid).is_some();
            let (aud_ok, note) = match aud {
                Some(Value::String(_)) => (true, "one audience string"),
                Some(Value::Array(a)) if a.len() == 1 => (
                    true,
                    "an array of one (accepted from a per-domain authority)",
                ),
                Some(Value::Array(a)) if a.len() > 1 => (
                    false,
                    "several audiences: refused unless the verifier accepts multiple audiences",
                ),
                _ => (false, "missing or not a string or an array of one: refused"),
            };
            ("per_domain", None, kid_known, aud_ok, note)
        }
    };
    lines.push(format!(
        "trust domain {td}: {} (from {})",
        match kind {
            "per_identity" => "per identity, a spiffile bundle",
            _ => "per trust domain, a SPIFFE bundle",
        },
        path.display()
    ));
    if let Some(known) = identity_known {
        lines.push(format!(
            "identity {id}: {}",
            if known {
                "has keys"
            } else {
                "has no keys: refused as an unknown identity"
            }
        ));
    }
    lines.push(format!(
        "kid {kid:?}: {}",
        if kid_known {
            "names one of its keys"
        } else if identity_known == Some(true) {
            "names none of its keys (the others bound to the identity would be tried)"
        } else {
            "names none of its keys: refused"
        }
    ));
    lines.push(format!("aud: {aud_note}"));
    let passes =
        identity_known != Some(false) && aud_ok && (kid_known || identity_known == Some(true));
    lines.push(if passes {
        "would pass these checks; only `spiffile verify` checks the signature and times".into()
    } else {
        "would be refused".into()
    });
    (
        lines,
        json!({
            "trust_domain": td.as_str(),
            "trusted": true,
            "kind": kind,
            "source": path.display().to_string(),
            "identity_known": identity_known,
            "kid_known": kid_known,
            "audience_acceptable": aud_ok,
            "verdict": if passes { "unchecked_signature" } else { "refused" },
        }),
    )
}
