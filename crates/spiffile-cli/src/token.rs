//! `spiffile token`: mint a token from a shell.

use std::time::Duration;

use crate::identity_source::{IdentitySource, load_identity, parse_id};
use crate::output::{Failure, out};

/// Mint a token for AUDIENCE with the identity of the SPIFFILE_*
/// environment (or --dir, or --root with --service) and print it.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  curl -H \"Authorization: Bearer $(spiffile token --audience spiffe://example.org/billing)\" https://billing/"
)]
pub struct TokenArgs {
    /// The SPIFFE ID of the service the token is for.
    #[arg(long, value_name = "SPIFFE_ID")]
    audience: String,
    /// Lifetime in seconds (1 to 86400; more than 300 is discouraged).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    ttl: u64,
    #[command(flatten)]
    source: IdentitySource,
}

impl TokenArgs {
    /// Runs `spiffile token`.
    pub fn run(self) -> Result<(), Failure> {
        let audience = parse_id(&self.audience, "--audience")?;
        let identity = load_identity(&self.source)?;
        let token = identity
            .token_with_ttl(&audience, Duration::from_secs(self.ttl))
            .map_err(Failure::usage)?;
        out(&token);
        Ok(())
    }
}
