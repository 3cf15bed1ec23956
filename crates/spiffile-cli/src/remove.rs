//! `spiffile remove`: remove (and revoke) a service.

use std::path::PathBuf;

use spiffile::provision;

use crate::output::{Failure, out, print_notices};

/// Remove a service: its key, its bundle entry (revocation), its files.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  spiffile remove ./idroot orders")]
pub struct RemoveArgs {
    /// The root.
    root: PathBuf,
    /// The service.
    name: String,
}

impl RemoveArgs {
    /// Runs `spiffile remove`.
    pub fn run(self) -> Result<(), Failure> {
        let r = provision::remove_service(&self.root, &self.name).map_err(Failure::failed)?;
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
}
