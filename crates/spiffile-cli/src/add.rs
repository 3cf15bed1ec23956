//! `spiffile add`: provision services.

use spiffile::provision;

use crate::exit::{self, provision_code, provision_failure};
use crate::output::{Failure, err, notices_json, out, out_json, print_notices};
use crate::root_arg::root_and_names;

/// Provision services: a key (ROOT/services/NAME/key.pem, mode 0600), an
/// id file, and a bundle entry. Re-adding keeps the existing key.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "spiffile add [ROOT] <NAME>...",
    after_help = "ROOT defaults to $SPIFFILE_ROOT.\n\nExamples:\n  spiffile add ./idroot orders billing\n  spiffile add ./idroot team/orders"
)]
pub struct AddArgs {
    /// The root (omit it when SPIFFILE_ROOT is set), then the service names
    /// (SPIFFE ID paths such as `orders` or `team/orders`).
    #[arg(required = true, value_name = "ROOT|NAME")]
    args: Vec<String>,
    /// Bind a key.pem that is already on disk but not bound to the service
    /// (made by another tool, or restored). Without it such a key is
    /// refused: whoever can write the service's directory could have put it
    /// there. A key bound to another identity is refused even so.
    #[arg(long)]
    adopt_existing_key: bool,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

impl AddArgs {
    /// Runs `spiffile add`: every name is tried; the exit code says whether
    /// any failed.
    pub fn run(self) -> Result<(), Failure> {
        let (root, names) = root_and_names("add", self.args, None)?;
        let mut worst = exit::OK;
        let mut last_notices = Vec::new();
        let mut added = Vec::new();
        let mut errors = Vec::new();
        let options = provision::AddOptions::new().adopt_existing_key(self.adopt_existing_key);
        for name in &names {
            match provision::add_service_with(&root, name, &options) {
                Ok(a) => {
                    let (code, what) = match a.action {
                        provision::AddAction::Created => ("created", "added"),
                        provision::AddAction::Unchanged => ("unchanged", "unchanged"),
                        provision::AddAction::Adopted => (
                            "adopted",
                            "adopted (bound its existing key.pem in the bundle)",
                        ),
                        _ => ("done", "done"),
                    };
                    if !self.json {
                        out(&format!("{} {what}, kid {}", a.id, a.kid));
                    }
                    added.push(serde_json::json!({
                        "name": name, "id": a.id.as_str(), "action": code, "kid": a.kid,
                    }));
                    // Report what the last operation saw, once.
                    last_notices = a.notices;
                }
                Err(e) => {
                    let code = provision_code(&e);
                    worst = worst.max(code);
                    let failure = provision_failure(e);
                    if !self.json {
                        err(&format!("spiffile: {name}: {}", failure.message));
                    }
                    errors.push(serde_json::json!({
                        "name": name, "exit_code": failure.code, "message": failure.message,
                    }));
                }
            }
        }
        if self.json {
            out_json(&serde_json::json!({
                "root": root.display().to_string(),
                "added": added,
                "errors": errors,
                "notices": notices_json(&last_notices),
            }));
        } else {
            print_notices(&last_notices);
        }
        if worst != exit::OK {
            return Err(Failure::reported(worst));
        }
        Ok(())
    }

    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        self.json
    }
}
