//! `spiffile add`: provision services.

use std::path::PathBuf;

use spiffile::provision;

use crate::output::{Failure, err, out, print_notices};

/// Provision services: a key (ROOT/services/NAME/key.pem, mode 0600), an
/// id file, and a bundle entry. Re-adding keeps the existing key.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  spiffile add ./idroot orders billing\n  spiffile add ./idroot team/orders"
)]
pub struct AddArgs {
    /// The root.
    root: PathBuf,
    /// Service names (SPIFFE ID paths such as `orders` or `team/orders`).
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
    /// Bind a key.pem that is already on disk but not bound to the service
    /// (made by another tool, or restored). Without it such a key is
    /// refused: whoever can write the service's directory could have put it
    /// there. A key bound to another identity is refused even so.
    #[arg(long)]
    adopt_existing_key: bool,
}

impl AddArgs {
    /// Runs `spiffile add`: every name is tried; the exit code says whether
    /// any failed.
    pub fn run(self) -> Result<(), Failure> {
        let mut failed = 0;
        let mut last_notices = Vec::new();
        for name in &self.names {
            let options = provision::AddOptions::new().adopt_existing_key(self.adopt_existing_key);
            match provision::add_service_with(&self.root, name, &options) {
                Ok(a) => {
                    let what = match a.action {
                        provision::AddAction::Created => "added",
                        provision::AddAction::Unchanged => "unchanged",
                        provision::AddAction::Adopted => {
                            "adopted (bound its existing key.pem in the bundle)"
                        }
                        _ => "done",
                    };
                    out(&format!("{} {what}, kid {}", a.id, a.kid));
                    // Report what the last operation saw, once.
                    last_notices = a.notices;
                }
                Err(e) => {
                    failed += 1;
                    err(&format!("spiffile: {name}: {e}"));
                }
            }
        }
        print_notices(&last_notices);
        if failed > 0 {
            return Err(Failure {
                message: String::new(),
                code: 1,
            });
        }
        Ok(())
    }
}
