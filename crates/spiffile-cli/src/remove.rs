//! `spiffile remove`: remove (and revoke) a service.

use spiffile::provision;

use crate::confirm::Safety;
use crate::exit::provision_failure;
use crate::output::{Failure, notices_json, out, out_json, print_notices};
use crate::root_arg::root_and_names;
use crate::rotate::{dry_run, find_service, plural};

/// Remove a service: its key, its bundle entry (revocation), its files.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "spiffile remove [ROOT] <NAME> [--dry-run] [--yes]",
    after_help = "ROOT defaults to $SPIFFILE_ROOT. A terminal is asked to confirm (--yes skips the\nquestion, --dry-run shows what would be removed and revoked).\n\nExample:\n  spiffile remove ./idroot orders"
)]
pub struct RemoveArgs {
    /// The root (omit it when SPIFFILE_ROOT is set), then the service.
    #[arg(required = true, num_args = 1..=2, value_name = "ROOT|NAME")]
    args: Vec<String>,
    #[command(flatten)]
    safety: Safety,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl RemoveArgs {
    /// Runs `spiffile remove`.
    pub fn run(self) -> Result<(), Failure> {
        let (root, names) = root_and_names("remove", self.args, Some(1))?;
        let name = &names[0];
        let service = find_service(&root, name)?;
        if self.safety.dry_run {
            return dry_run(self.json, "remove", &service, &service.kids);
        }
        self.safety.confirm(&format!(
            "Remove {} and revoke its key{}{}? Its tokens are refused as soon as peers read the new bundle; its key file is deleted.",
            service.id,
            plural(service.kids.len()),
            if service.kids.is_empty() {
                String::new()
            } else {
                format!(" {}", service.kids.join(", "))
            }
        ))?;
        let r = provision::remove_service(&root, name).map_err(provision_failure)?;
        if self.json {
            out_json(&serde_json::json!({
                "id": r.id.as_str(),
                "revoked": r.revoked,
                "notices": notices_json(&r.notices),
            }));
            return Ok(());
        }
        print_notices(&r.notices);
        if r.revoked.is_empty() {
            out(&format!("removed {} (it had no bundle entry)", r.id));
        } else {
            out(&format!(
                "removed {}; revoked {}",
                r.id,
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
