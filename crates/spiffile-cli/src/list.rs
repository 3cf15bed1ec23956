//! `spiffile list`: the services of a root and whether key and bundle agree.

use std::path::PathBuf;

use spiffile::provision;

use crate::exit::{self, provision_failure};
use crate::output::{Failure, out, out_json, warn};
use crate::root_arg::optional_root;

/// List the services of a root and whether key and bundle agree; exit 1
/// when any service has a problem.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "ROOT defaults to $SPIFFILE_ROOT. STATUS is a code (ok, unsafe, key_missing, not_in_bundle,\nkey_not_bound, rotation_pending, removal_pending, key_unreadable); --json gives the\nsame codes.\n\nExample:\n  spiffile list ./idroot"
)]
pub struct ListArgs {
    /// The root (default: $SPIFFILE_ROOT).
    root: Option<PathBuf>,
    /// Print JSON instead of a table: one object per service, with its
    /// `status` code and the `problem` in words (null when ok).
    #[arg(long)]
    json: bool,
}

impl ListArgs {
    /// Runs `spiffile list`.
    pub fn run(self) -> Result<(), Failure> {
        let ListArgs { root, json } = self;
        let root = optional_root(root).ok_or_else(|| {
            Failure::usage(
                "spiffile list needs a root: `spiffile list ROOT` (or set SPIFFILE_ROOT)",
            )
        })?;
        let services = provision::list_services(&root).map_err(provision_failure)?;
        let problems = services.iter().filter(|s| !s.status.is_ok()).count();
        if json {
            let items: Vec<serde_json::Value> = services
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "name": s.name,
                        "id": s.id.as_str(),
                        "status": s.status.code(),
                        "problem": (!s.status.is_ok()).then(|| s.status.to_string()),
                        "kids": s.kids,
                        "key_kid": s.key_kid,
                    })
                })
                .collect();
            out_json(&serde_json::Value::Array(items));
        } else if services.is_empty() {
            out("no services (add one with `spiffile add ROOT NAME`)");
        } else {
            print_table(&services);
        }
        if problems > 0 {
            if !json {
                warn(format!(
                    "{problems} service(s) need attention: `unsafe` means someone else can change the service's files (fix the mode, owner or link it names); `key_missing` means the bundle binds keys nobody here holds (remove the service, or rotate it with --revoke-old); `not_in_bundle`/`key_not_bound` mean key.pem holds a key spiffile did not bind (rotate to issue a new one, or `spiffile add ROOT NAME --adopt-existing-key` if it is the service's own); a pending rotation or removal is finished by the next provisioning command"
                ));
            }
            return Err(Failure::reported(exit::FAILED));
        }
        Ok(())
    }

    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        self.json
    }
}

/// The table: every column but the last has a fixed width whatever a
/// service's problem says; the problem, in words, comes last.
fn print_table(services: &[provision::ServiceInfo]) {
    let name_w = services
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0)
        .max("NAME".len());
    let status_w = services
        .iter()
        .map(|s| s.status.code().len())
        .max()
        .unwrap_or(0)
        .max("STATUS".len());
    let kid_w = services
        .iter()
        .map(|s| s.key_kid.as_deref().map_or(1, str::len))
        .max()
        .unwrap_or(0)
        .max("CURRENT KID".len());
    out(format!(
        "{:name_w$}  {:status_w$}  {:>4}  {:kid_w$}  PROBLEM",
        "NAME", "STATUS", "KEYS", "CURRENT KID"
    )
    .trim_end());
    for s in services {
        let problem = if s.status.is_ok() {
            String::new()
        } else {
            one_line(&s.status.to_string())
        };
        out(format!(
            "{:name_w$}  {:status_w$}  {:>4}  {:kid_w$}  {problem}",
            s.name,
            s.status.code(),
            s.kids.len(),
            s.key_kid.as_deref().unwrap_or("-"),
        )
        .trim_end());
    }
}

/// A message on one line of at most 100 characters (control characters
/// shown as spaces).
fn one_line(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= 100 {
        flat
    } else {
        let mut cut: String = flat.chars().take(97).collect();
        cut.push_str("...");
        cut
    }
}
