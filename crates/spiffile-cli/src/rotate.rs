//! `spiffile rotate` and `spiffile revoke-old`: a service's new key, and the
//! end of the overlap with its old ones.

use spiffile::provision;

use crate::confirm::Safety;
use crate::exit::provision_failure;
use crate::output::{Failure, notices_json, out, out_json, print_notices};
use crate::root_arg::root_and_names;

/// Give a service a new key, first in its bundle entry. The old keys stay
/// bound until `revoke-old` (or use --revoke-old to drop them now).
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "spiffile rotate [ROOT] <NAME> [--revoke-old [--dry-run] [--yes]]",
    after_help = "ROOT defaults to $SPIFFILE_ROOT. With --revoke-old, a terminal is asked to confirm\n(--yes skips the question, --dry-run shows what would be revoked).\n\nExamples:\n  spiffile rotate ./idroot orders\n  spiffile rotate ./idroot orders --revoke-old"
)]
pub struct RotateArgs {
    /// The root (omit it when SPIFFILE_ROOT is set), then the service.
    #[arg(required = true, num_args = 1..=2, value_name = "ROOT|NAME")]
    args: Vec<String>,
    /// Drop the old keys from the bundle right away: tokens signed with
    /// them are refused as soon as peers read the new bundle.
    #[arg(long)]
    revoke_old: bool,
    #[command(flatten)]
    safety: Safety,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl RotateArgs {
    /// Runs `spiffile rotate`.
    pub fn run(self) -> Result<(), Failure> {
        let (root, names) = root_and_names("rotate", self.args, Some(1))?;
        let name = &names[0];
        if self.revoke_old {
            let service = find_service(&root, name)?;
            if self.safety.dry_run {
                return dry_run(self.json, "rotate", &service, &service.kids);
            }
            self.safety.confirm(&format!(
                "Rotate {} and revoke its current key{} {} at once? Tokens signed with {} are refused as soon as peers read the new bundle.",
                service.id,
                plural(service.kids.len()),
                service.kids.join(", "),
                if service.kids.len() == 1 { "it" } else { "them" }
            ))?;
        } else if self.safety.dry_run {
            let service = find_service(&root, name)?;
            return dry_run(self.json, "rotate", &service, &[]);
        }
        let old_keys = if self.revoke_old {
            provision::OldKeys::Revoke
        } else {
            provision::OldKeys::Keep
        };
        let r = provision::rotate_service(&root, name, old_keys).map_err(provision_failure)?;
        if self.json {
            out_json(&serde_json::json!({
                "id": r.id.as_str(),
                "kid": r.kid,
                "kids": r.kids,
                "revoked": r.revoked,
                "notices": notices_json(&r.notices),
            }));
            return Ok(());
        }
        print_notices(&r.notices);
        out(&format!("rotated {}: new kid {}", r.id, r.kid));
        out(&format!(
            "bound keys (current first): {}",
            r.kids.join(", ")
        ));
        if !r.revoked.is_empty() {
            out(&format!("revoked: {}", r.revoked.join(", ")));
        }
        Ok(())
    }

    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        self.json
    }
}

/// Drop every key of a service except its current one (the end of a
/// rotation overlap).
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "spiffile revoke-old [ROOT] <NAME> [--dry-run] [--yes]",
    after_help = "ROOT defaults to $SPIFFILE_ROOT. A terminal is asked to confirm (--yes skips the\nquestion, --dry-run shows what would be revoked).\n\nExample:\n  spiffile revoke-old ./idroot orders"
)]
pub struct RevokeOldArgs {
    /// The root (omit it when SPIFFILE_ROOT is set), then the service.
    #[arg(required = true, num_args = 1..=2, value_name = "ROOT|NAME")]
    args: Vec<String>,
    #[command(flatten)]
    safety: Safety,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl RevokeOldArgs {
    /// Runs `spiffile revoke-old`.
    pub fn run(self) -> Result<(), Failure> {
        let (root, names) = root_and_names("revoke-old", self.args, Some(1))?;
        let name = &names[0];
        let service = find_service(&root, name)?;
        let old: Vec<String> = service
            .kids
            .iter()
            .filter(|k| service.key_kid.as_ref() != Some(*k))
            .cloned()
            .collect();
        if self.safety.dry_run {
            return dry_run(self.json, "revoke-old", &service, &old);
        }
        if !old.is_empty() {
            self.safety.confirm(&format!(
                "Revoke the old key{} {} of {}? Tokens signed with {} are refused as soon as peers read the new bundle.",
                plural(old.len()),
                old.join(", "),
                service.id,
                if old.len() == 1 { "it" } else { "them" }
            ))?;
        }
        let r = provision::revoke_old_keys(&root, name).map_err(provision_failure)?;
        if self.json {
            out_json(&serde_json::json!({
                "id": r.id.as_str(),
                "kid": r.kid,
                "revoked": r.revoked,
                "notices": notices_json(&r.notices),
            }));
            return Ok(());
        }
        print_notices(&r.notices);
        if r.revoked.is_empty() {
            out(&format!(
                "{}: only the current key {} is bound",
                r.id, r.kid
            ));
        } else {
            out(&format!(
                "{}: kept {}, revoked {}",
                r.id,
                r.kid,
                r.revoked.join(", ")
            ));
        }
        Ok(())
    }

    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        self.json
    }
}

/// `s` for more than one.
pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A service as it is before a change: checked to exist (with "did you
/// mean" when it does not), with its bound kids and its key's kid.
pub fn find_service(root: &std::path::Path, name: &str) -> Result<provision::ServiceInfo, Failure> {
    let env = provision::service_env(root, name).map_err(provision_failure)?;
    provision::list_services(root)
        .map_err(provision_failure)?
        .into_iter()
        .find(|s| s.id == env.id)
        .ok_or_else(|| {
            Failure::failed(format!(
                "{} has files but is not listed; see `spiffile list {}`",
                env.id,
                root.display()
            ))
        })
}

/// What a change would do, changing nothing.
pub fn dry_run(
    json: bool,
    command: &str,
    service: &provision::ServiceInfo,
    revoked: &[String],
) -> Result<(), Failure> {
    if json {
        out_json(&serde_json::json!({
            "dry_run": true,
            "command": command,
            "id": service.id.as_str(),
            "kids": service.kids,
            "would_revoke": revoked,
        }));
        return Ok(());
    }
    let action = match command {
        "remove" => format!(
            "would remove {} and delete {}",
            service.id,
            service.dir.display()
        ),
        "rotate" => format!("would give {} a new key, bound first", service.id),
        _ => format!("would end the rotation overlap of {}", service.id),
    };
    out(&action);
    if revoked.is_empty() {
        out("would revoke: nothing");
    } else {
        out(&format!("would revoke: {}", revoked.join(", ")));
    }
    out("dry run: nothing was changed");
    Ok(())
}
