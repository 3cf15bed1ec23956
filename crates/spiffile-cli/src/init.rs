//! `spiffile init`: create a root.

use std::path::PathBuf;

use spiffile::provision;

use crate::output::{Failure, out};

/// Create a root for a trust domain: ROOT/bundle.json and ROOT/services/.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  spiffile init ./idroot --trust-domain example.org")]
pub struct InitArgs {
    /// The directory to initialize (created if needed).
    root: PathBuf,
    /// The trust domain, such as example.org.
    #[arg(long, value_name = "TD")]
    trust_domain: String,
}

impl InitArgs {
    /// Runs `spiffile init`.
    pub fn run(self) -> Result<(), Failure> {
        let td = provision::init_root(&self.root, &self.trust_domain).map_err(Failure::failed)?;
        out(&format!(
            "initialized {} for the trust domain {td}",
            self.root.display()
        ));
        Ok(())
    }
}
