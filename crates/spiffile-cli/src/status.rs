//! `spiffile status`: the health of a root (every service, key modes and
//! owners, the bundle, rotations) or of one configured identity, with exit
//! codes a monitoring check can use.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use spiffile::BundleSource;
use spiffile::bundle::{Bundle, WarningKind};
use spiffile::provision;
use spiffile::svid::{UnixTime, UnverifiedToken};

use crate::exit::{self, provision_failure};
use crate::identity_source::{IdentitySource, load_identity};
use crate::output::{Failure, out, out_json};
use crate::root_arg::env_root;

/// Check a root (every service, key modes and owners, the bundle, pending
/// rotations) or the configured identity (its files, its key in the bundle,
/// a token round trip, presented tokens). Exit 0 healthy, 1 a problem.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "spiffile status [ROOT] [--strict] [--json]\n       spiffile status [--dir DIR | --root ROOT --service NAME] [--token-file FILE]... [--strict] [--json]",
    after_help = "With ROOT (or $SPIFFILE_ROOT, when no SPIFFILE_* identity is set), the root is checked;\notherwise the identity of the SPIFFILE_* environment, --dir, or --root with --service.\n\nExit codes for monitoring: 0 healthy (warnings allowed), 1 a problem (or, with\n--strict, a warning), 2 usage error, 3 the root or identity cannot be read at all.\n\nExamples:\n  spiffile status ./idroot\n  spiffile status --token-file /run/app/token --json"
)]
pub struct StatusArgs {
    /// A root to check.
    root_dir: Option<PathBuf>,
    #[command(flatten)]
    source: IdentitySource,
    /// A file holding a token this identity presents (such as the JWT-SVID
    /// file a helper refreshes): its expiry and whether it still verifies.
    #[arg(long, value_name = "FILE")]
    token_file: Vec<PathBuf>,
    /// Exit 1 on warnings too (a key readable by others, a rotation
    /// overlap, an old key).
    #[arg(long)]
    strict: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// One finding: a stable code and what it means.
struct Finding {
    code: &'static str,
    subject: String,
    message: String,
}

#[derive(Default)]
struct Report {
    problems: Vec<Finding>,
    warnings: Vec<Finding>,
}

impl Report {
    fn problem(
        &mut self,
        code: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.problems.push(Finding {
            code,
            subject: subject.into(),
            message: message.into(),
        });
    }
    fn warning(
        &mut self,
        code: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.warnings.push(Finding {
            code,
            subject: subject.into(),
            message: message.into(),
        });
    }
    fn json(findings: &[Finding]) -> Value {
        findings
            .iter()
            .map(|f| json!({"code": f.code, "subject": f.subject, "message": f.message}))
            .collect()
    }
    /// Prints the findings and returns the exit code.
    fn finish(&self, json: bool, strict: bool, mut doc: Value) -> Result<(), Failure> {
        let healthy = self.problems.is_empty() && (!strict || self.warnings.is_empty());
        if json {
            if let Some(m) = doc.as_object_mut() {
                m.insert("healthy".into(), healthy.into());
                m.insert("problems".into(), Report::json(&self.problems));
                m.insert("warnings".into(), Report::json(&self.warnings));
            }
            out_json(&doc);
        } else {
            for f in &self.problems {
                out(&format!(
                    "problem [{}] {}: {}",
                    f.code, f.subject, f.message
                ));
            }
            for f in &self.warnings {
                out(&format!(
                    "warning [{}] {}: {}",
                    f.code, f.subject, f.message
                ));
            }
            out(&format!(
                "{}: {} problem{}, {} warning{}",
                if healthy { "healthy" } else { "UNHEALTHY" },
                self.problems.len(),
                crate::rotate::plural(self.problems.len()),
                self.warnings.len(),
                crate::rotate::plural(self.warnings.len()),
            ));
        }
        if healthy {
            Ok(())
        } else {
            Err(Failure::reported(exit::FAILED))
        }
    }
}

impl StatusArgs {
    /// Runs `spiffile status`.
    pub fn run(self) -> Result<(), Failure> {
        let identity_in_env = ["SPIFFILE_DIR", "SPIFFILE_ID_FILE"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
        let root = match (&self.root_dir, self.source.is_explicit() || identity_in_env) {
            (Some(r), _) => Some(r.clone()),
            (None, false) => env_root(),
            (None, true) => None,
        };
        if let Some(root) = root {
            if self.source.is_explicit() || !self.token_file.is_empty() {
                return Err(Failure::usage(
                    "spiffile status ROOT checks a root; --dir, --service and --token-file are for one identity",
                ));
            }
            return root_status(&root, self.strict, self.json);
        }
        self.identity_status()
    }

    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        self.json
    }

    fn identity_status(&self) -> Result<(), Failure> {
        let identity = load_identity(&self.source)?;
        let mut report = Report::default();
        let sources = identity.sources().clone();
        let id = identity.id().clone();
        // The key this identity mints with: none when it presents SPIRE's
        // tokens or only verifies.
        let kid = identity.kid();
        // The key in the bundle, as peers see it (for a spiffile bundle
        // file; a bundle directory or a SPIFFE bundle binds no key to one
        // identity).
        let bundle_path = match &sources.bundle {
            BundleSource::File { path, .. } => Some(path.clone()),
            _ => None,
        };
        let bundle_doc = bundle_path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| Bundle::from_json_quiet(&b).ok());
        let kids: Vec<String> = bundle_doc
            .as_ref()
            .and_then(|b| b.keys(&id))
            .map(|k| k.iter().map(|k| k.kid().to_owned()).collect())
            .unwrap_or_default();
        let minted_kid = kid.clone().filter(|_| bundle_doc.is_some());
        match minted_kid.as_ref().map(|kid| (kid, kids.iter().position(|k| k == kid))) {
            None | Some((_, Some(0))) => {}
            Some((kid, Some(_))) => report.warning(
                "old_key",
                id.as_str(),
                format!(
                    "this identity signs with kid {kid}, but {} is bound first: a rotation is under way and this key stops working at `revoke-old`; restart or reload to pick up the new key",
                    kids[0]
                ),
            ),
            Some((_, None)) if kids.is_empty() => report.problem(
                "not_in_bundle",
                id.as_str(),
                "the bundle binds no key to this identity: every peer refuses its tokens",
            ),
            Some((kid, None)) => report.problem(
                "key_not_bound",
                id.as_str(),
                format!("the key (kid {kid}) is not bound to this identity in the bundle: every peer refuses its tokens"),
            ),
        }
        if kids.len() > 1 {
            report.warning(
                "rotation_overlap",
                id.as_str(),
                format!(
                    "{} keys are bound (a rotation overlap); end it with `spiffile revoke-old`",
                    kids.len()
                ),
            );
        }
        // The round trip every peer makes: a token of ours, verified by
        // the bundle we serve.
        // (Only for an identity that mints: SPIRE's tokens are for the
        // audiences spiffe-helper asked for, and are checked with
        // --token-file.)
        let round_trip = if sources.key_file.is_some() {
            identity
                .token_with_ttl(&id, Duration::from_secs(60))
                .map_err(|e| e.to_string())
                .and_then(|t| identity.verify(&t).map(drop).map_err(|e| e.to_string()))
        } else {
            Ok(())
        };
        if let Err(e) = &round_trip {
            report.problem(
                "round_trip",
                id.as_str(),
                format!("a token of this identity does not verify against its bundle: {e}"),
            );
        }
        let key = sources.key_file.as_deref().map(file_facts);
        if let (Some(path), Some(mode)) = (&sources.key_file, key.as_ref().and_then(|k| k.mode))
            && mode & 0o077 != 0
        {
            report.warning(
                "key_exposed",
                path.display().to_string(),
                format!("mode {mode:04o}: readable by group or others; 0600 is recommended"),
            );
        }
        if let Some(b) = &bundle_doc {
            for w in b
                .warnings()
                .iter()
                .filter(|w| w.kind != WarningKind::Advice)
            {
                report.warning(bundle_code(w.kind), w.identity.clone(), w.to_string());
            }
        }
        let status = identity.status();
        for f in std::iter::once(&status.bundle)
            .chain(&status.bundle_files)
            .chain(&status.key)
            .chain(&status.jwt_svids)
            .chain(&status.jwt_svid_files)
        {
            if let Some(e) = &f.last_error {
                report.problem("file_not_current", f.path.display().to_string(), e.clone());
            }
        }
        let tokens: Vec<Value> = self
            .token_file
            .iter()
            .map(|path| presented_token(&identity, path, &mut report))
            .collect();
        if !self.json {
            out(&format!("identity {id}"));
            match &sources.id_file {
                Some(path) => out(&format!("  id file  {}", path.display())),
                None => out("  id file  none (the SPIFFE ID is the `sub` of SPIRE's tokens)"),
            }
            match (&sources.key_file, &key) {
                (Some(path), Some(facts)) => out(&format!(
                    "  key      {}  kid {}{}",
                    path.display(),
                    kid.as_deref().unwrap_or("?"),
                    facts.describe()
                )),
                _ => match &sources.jwt_svid_dir {
                    Some(dir) => out(&format!(
                        "  tokens   {} (SPIRE's JWT-SVIDs, from spiffe-helper)",
                        dir.display()
                    )),
                    None => out("  key      none: this identity verifies but presents no token"),
                },
            }
            match (&bundle_path, &bundle_doc) {
                (Some(path), Some(doc)) => out(&format!(
                    "  bundle   {}  trust domain {}, {} identities; this identity's keys: {}",
                    path.display(),
                    id.trust_domain(),
                    doc.len(),
                    if kids.is_empty() {
                        "none".to_owned()
                    } else {
                        kids.join(", ")
                    }
                )),
                _ => out(&format!("  bundles  {}", sources.bundle.path().display())),
            }
            out(&format!(
                "  round trip  {}",
                if round_trip.is_ok() {
                    "a token of this identity verifies against its bundle"
                } else {
                    "FAILED"
                }
            ));
            for t in &tokens {
                out(&format!(
                    "  token    {}",
                    t["summary"].as_str().unwrap_or("")
                ));
            }
        }
        let doc = json!({
            "kind": "identity",
            "id": id.as_str(),
            "kid": kid,
            "files": {
                "id": sources.id_file.as_ref().map(|p| p.display().to_string()),
                "key": sources.key_file.as_ref().map(|p| p.display().to_string()),
                "bundle": sources.bundle.path().display().to_string(),
                "jwt_svid_dir": sources.jwt_svid_dir.as_ref().map(|p| p.display().to_string()),
            },
            "key_file": key.as_ref().map(|k| k.json()),
            "bundle_kids": kids,
            "round_trip": round_trip.is_ok(),
            "current": status.is_current(),
            "tokens": tokens,
        });
        report.finish(self.json, self.strict, doc)
    }
}

/// A token file: when it expires and whether it still verifies (for its own
/// audience, against this identity's bundle).
fn presented_token(identity: &spiffile::Identity, path: &Path, report: &mut Report) -> Value {
    let subject = path.display().to_string();
    let text = match std::fs::read(path) {
        Ok(b) if b.len() <= 64 * 1024 => String::from_utf8_lossy(&b).trim().to_owned(),
        Ok(_) => {
            report.problem("token_unreadable", &subject, "larger than 64 KiB");
            return json!({"file": subject, "summary": format!("{subject}: too large")});
        }
        Err(e) => {
            report.problem("token_unreadable", &subject, e.to_string());
            return json!({"file": subject, "summary": format!("{subject}: {e}")});
        }
    };
    let decoded = match UnverifiedToken::decode(&text) {
        Ok(d) => d,
        Err(e) => {
            report.problem("token_malformed", &subject, e.to_string());
            return json!({"file": subject, "summary": format!("{subject}: {e}")});
        }
    };
    let now = UnixTime::now().map_or(0, UnixTime::as_secs);
    let exp = decoded.expires_at().map(UnixTime::as_secs);
    let verified = decoded
        .audience()
        .and_then(|a| a.parse().ok())
        .map(|aud| identity.verify_for(&text, &aud));
    let remaining = exp.map(|e| e - now);
    match (&verified, remaining) {
        (Some(Ok(_)), _) => {}
        (_, Some(r)) if r <= 0 => {
            report.problem("token_expired", &subject, format!("expired {} s ago", -r))
        }
        (Some(Err(e)), _) => report.problem("token_rejected", &subject, e.to_string()),
        (None, _) => report.problem("token_rejected", &subject, "no `aud` that is a SPIFFE ID"),
    }
    let summary = format!(
        "{subject}: sub {}, aud {}, {}{}",
        decoded.subject().unwrap_or("?"),
        decoded.audience().unwrap_or("?"),
        match remaining {
            Some(r) if r > 0 => format!("expires in {r} s"),
            Some(r) => format!("EXPIRED {} s ago", -r),
            None => "no exp".into(),
        },
        match &verified {
            Some(Ok(_)) => ", verifies",
            _ => ", does NOT verify",
        }
    );
    json!({
        "file": subject,
        "sub": decoded.subject(),
        "aud": decoded.audience(),
        "exp": exp,
        "expires_in": remaining,
        "verifies": matches!(verified, Some(Ok(_))),
        "summary": summary,
    })
}

/// What `stat` says about a file.
struct FileFacts {
    mode: Option<u32>,
    uid: Option<u32>,
    age: Option<Duration>,
}

impl FileFacts {
    fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(m) = self.mode {
            s.push_str(&format!(", mode {m:04o}"));
        }
        if let Some(u) = self.uid {
            s.push_str(&format!(", owner {}", user_name(u)));
        }
        if let Some(a) = self.age {
            s.push_str(&format!(", written {} ago", span(a.as_secs())));
        }
        s
    }
    fn json(&self) -> Value {
        json!({
            "mode": self.mode.map(|m| format!("{m:04o}")),
            "uid": self.uid,
            "owner": self.uid.map(user_name),
            "age_secs": self.age.map(|a| a.as_secs()),
        })
    }
}

fn file_facts(path: &Path) -> FileFacts {
    // The link itself, never what it points to (a link is reported as
    // `unsafe` by the service's status).
    let meta = std::fs::symlink_metadata(path).ok();
    #[cfg(unix)]
    let (mode, uid) = {
        use std::os::unix::fs::MetadataExt;
        (
            meta.as_ref().map(|m| m.mode() & 0o7777),
            meta.as_ref().map(MetadataExt::uid),
        )
    };
    #[cfg(not(unix))]
    let (mode, uid) = (None, None);
    let age = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| SystemTime::now().duration_since(t).ok());
    FileFacts { mode, uid, age }
}

/// The name of a user id from /etc/passwd, or the number.
fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let id: u32 = f.nth(1)?.parse().ok()?;
                (id == uid).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// The code of a bundle finding in a status report: `bundle_` and the code
/// `bundle check --json` gives it.
fn bundle_code(kind: WarningKind) -> &'static str {
    match kind {
        WarningKind::SkippedIdentity => "bundle_identity_skipped",
        WarningKind::SkippedKey => "bundle_key_skipped",
        WarningKind::SharedKey => "bundle_shared_key",
        _ => "bundle_advice",
    }
}

fn span(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// The health of a root.
fn root_status(root: &Path, strict: bool, json: bool) -> Result<(), Failure> {
    let services = provision::list_services(root).map_err(|e| {
        let f = provision_failure(e);
        Failure {
            code: if f.code == exit::USAGE {
                exit::USAGE
            } else {
                exit::CONFIG
            },
            message: f.message,
        }
    })?;
    let mut report = Report::default();
    let bundle_path = root.join(provision::BUNDLE_FILE);
    let bundle = std::fs::read(&bundle_path)
        .map_err(|e| Failure::config(format!("cannot read {}: {e}", bundle_path.display())))
        .and_then(|b| {
            Bundle::from_json_quiet(&b)
                .map_err(|e| Failure::config(format!("{}: {e}", bundle_path.display())))
        })?;
    for w in bundle.warnings().iter().chain(&bundle.lint()) {
        let code = bundle_code(w.kind);
        if w.kind == WarningKind::Advice {
            report.warning(code, w.identity.clone(), w.to_string());
        } else {
            report.problem(code, w.identity.clone(), w.to_string());
        }
    }
    let mut rows = Vec::new();
    for s in &services {
        if !s.status.is_ok() {
            report.problem(s.status.code(), s.name.clone(), s.status.to_string());
        }
        if s.kids.len() > 1 {
            report.warning(
                "rotation_overlap",
                s.name.clone(),
                format!(
                    "{} keys bound (current first); end the overlap with `spiffile revoke-old {} {}` once every holder has the new key",
                    s.kids.len(),
                    root.display(),
                    s.name
                ),
            );
        }
        let key = file_facts(&s.dir.join(provision::KEY_FILE));
        if let Some(mode) = key.mode
            && mode & 0o077 != 0
        {
            report.warning(
                "key_exposed",
                s.name.clone(),
                format!(
                    "key.pem has mode {mode:04o}: readable by group or others; 0600 is recommended"
                ),
            );
        }
        rows.push((s, key));
    }
    let keys: usize = bundle.identities().map(|(_, k)| k.len()).sum();
    if !json {
        out(&format!(
            "root {}: trust domain {}, {} service{}, bundle: {} identit{}, {keys} key{}",
            root.display(),
            bundle.trust_domain(),
            services.len(),
            crate::rotate::plural(services.len()),
            bundle.len(),
            if bundle.len() == 1 { "y" } else { "ies" },
            crate::rotate::plural(keys),
        ));
        let name_w = services
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(0)
            .max(4);
        let status_w = services
            .iter()
            .map(|s| s.status.code().len())
            .max()
            .unwrap_or(0)
            .max(6);
        out(&format!(
            "{:name_w$}  {:status_w$}  {:>4}  {:4}  {:10}  KEY WRITTEN",
            "NAME", "STATUS", "KEYS", "MODE", "OWNER"
        ));
        for (s, key) in &rows {
            out(&format!(
                "{:name_w$}  {:status_w$}  {:>4}  {:4}  {:10}  {}",
                s.name,
                s.status.code(),
                s.kids.len(),
                key.mode.map_or("-".into(), |m| format!("{m:04o}")),
                key.uid.map_or("-".into(), user_name),
                key.age
                    .map_or("-".into(), |a| format!("{} ago", span(a.as_secs()))),
            ));
        }
    }
    let doc = json!({
        "kind": "root",
        "root": root.display().to_string(),
        "trust_domain": bundle.trust_domain().as_str(),
        "bundle": {"identities": bundle.len(), "keys": keys},
        "services": rows.iter().map(|(s, key)| json!({
            "name": s.name,
            "id": s.id.as_str(),
            "status": s.status.code(),
            "kids": s.kids,
            "key_kid": s.key_kid,
            "key_file": key.json(),
        })).collect::<Vec<_>>(),
    });
    report.finish(json, strict, doc)
}
