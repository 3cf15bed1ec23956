//! `spiffile token`: a token from a shell, minted or SPIRE's.

use std::time::Duration;

use crate::identity_source::{IdentitySource, load_identity, parse_id};
use crate::output::{Failure, out, warn};

/// Print a token for AUDIENCE: minted with the key of the SPIFFILE_*
/// environment (or --dir, --root with --service, --key-file), or, with a
/// JWT-SVID directory (SPIFFILE_JWT_SVID_DIR, --jwt-svid-dir), the
/// freshest SPIRE-issued token spiffe-helper wrote for that audience.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  curl -H \"Authorization: Bearer $(spiffile token --audience spiffe://example.org/billing)\" https://billing/\n  spiffile token --jwt-svid-dir /run/spire --bundle-file /run/spire/jwt_bundle.json --audience spiffe://spire.test/billing"
)]
pub struct TokenArgs {
    /// The SPIFFE ID of the service the token is for.
    #[arg(long, value_name = "SPIFFE_ID")]
    audience: String,
    /// Lifetime in seconds of a minted token (1 to 86400; default 60; more
    /// than 300 is discouraged). SPIRE's tokens keep the lifetime SPIRE gave
    /// them.
    #[arg(long, value_name = "SECS")]
    ttl: Option<u64>,
    #[command(flatten)]
    source: IdentitySource,
}

impl TokenArgs {
    /// Runs `spiffile token`.
    pub fn run(self) -> Result<(), Failure> {
        let audience = parse_id(&self.audience, "--audience")?;
        let identity = load_identity(&self.source)?;
        let presents_spire_tokens = identity.sources().jwt_svid_dir.is_some();
        if presents_spire_tokens && self.ttl.is_some() {
            warn(
                "--ttl does not apply: the token comes from the JWT-SVID directory, with the lifetime SPIRE gave it",
            );
        }
        let ttl = Duration::from_secs(self.ttl.unwrap_or(60));
        let token = identity
            .token_with_ttl(&audience, ttl)
            .map_err(|e| match e {
                // Nothing to present right now (spiffe-helper not done, or
                // stopped): the operation failed, the configuration is fine.
                spiffile::Error::NoJwtSvid { .. } => Failure::failed(e),
                e => Failure::usage(e),
            })?;
        out(&token);
        Ok(())
    }
}
