//! `spiffile verify`: verify a token from a shell.

use std::ffi::OsString;

use crate::identity_source::{IdentitySource, load_identity_with, parse_id};
use crate::output::{Failure, out};
use crate::token_input::{TokenInput, read_token};

/// Verify a token as the identity of the SPIFFILE_* environment (or --dir,
/// --root with --service, --bundle-file/--bundle-dir, ...), against every
/// trust domain its bundles hold. Prints the caller's SPIFFE ID; exit 1
/// when rejected.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The token is read from standard input when TOKEN is `-` or absent.\n\nExit codes: 0 accepted (caller on the first line of stdout), 1 rejected (reason on\nstderr), 2 usage or configuration error.\n\nExamples:\n  spiffile verify \"$TOKEN\"\n  spiffile verify --json < token.txt\n  spiffile verify --bundle-dir /etc/spiffe/bundles --id-file /etc/spiffile/id \"$TOKEN\""
)]
pub struct VerifyArgs {
    /// The token, or `-` for standard input (the default).
    token: Option<OsString>,
    /// The audience to expect, instead of this identity's own SPIFFE ID.
    #[arg(long, value_name = "SPIFFE_ID")]
    audience: Option<String>,
    /// Accept a SPIRE token whose `aud` names several audiences, one of
    /// them ours. This weakens replay protection: any of those audiences
    /// can replay the token against the others.
    #[arg(long)]
    multiple_audiences: bool,
    /// Print the caller and the claims as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: IdentitySource,
}

impl VerifyArgs {
    /// Runs `spiffile verify`.
    pub fn run(self) -> Result<(), Failure> {
        let VerifyArgs {
            token,
            audience,
            multiple_audiences,
            json,
            source,
        } = self;
        let audience = audience
            .as_deref()
            .map(|a| parse_id(a, "--audience"))
            .transpose()?;
        let builder = spiffile::Identity::builder().accept_multiple_audiences(multiple_audiences);
        let identity = load_identity_with(&source, builder)?;
        let token = match read_token(token)? {
            TokenInput::Text(t) => t,
            TokenInput::Unusable(why) => {
                return Err(Failure::failed(format!("rejected (malformed): {why}")));
            }
        };
        let result = match &audience {
            Some(a) => identity.verify_for(&token, a),
            None => identity.verify(&token),
        };
        match result {
            Ok(caller) => {
                if json {
                    let doc = serde_json::json!({
                        "caller": caller.id().as_str(),
                        "claims": caller.claims().to_json(),
                    });
                    out(&doc.to_string());
                } else {
                    out(caller.id().as_str());
                }
                Ok(())
            }
            Err(e) if e.is_unauthenticated() => {
                let reason = e.reason().map(|r| r.as_str()).unwrap_or("unknown_identity");
                Err(Failure::failed(format!("rejected ({reason}): {e}")))
            }
            Err(e) => Err(Failure::usage(e)),
        }
    }
}
