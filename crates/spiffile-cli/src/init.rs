//! `spiffile init`: create a root.

use std::path::PathBuf;

use spiffile::provision;

use crate::exit::provision_failure;
use crate::output::{Failure, out, out_json};

/// Create a root for a trust domain: ROOT/bundle.json and ROOT/services/.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  spiffile init ./idroot --trust-domain example.org")]
pub struct InitArgs {
    /// The directory to initialize (created if needed).
    root: PathBuf,
    /// The trust domain, such as example.org (lowercase, without spiffe://).
    #[arg(long, value_name = "TD")]
    trust_domain: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl InitArgs {
    /// Runs `spiffile init`.
    pub fn run(self) -> Result<(), Failure> {
        let td = provision::init_root(&self.root, &self.trust_domain).map_err(provision_failure)?;
        if self.json {
            out_json(&serde_json::json!({
                "root": self.root.display().to_string(),
                "trust_domain": td.as_str(),
            }));
        } else {
            out(&format!(
                "initialized {} for the trust domain {td}",
                self.root.display()
            ));
        }
        Ok(())
    }

    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        self.json
    }
}
