//! `spiffile verify`: verify a token from a shell.

use std::ffi::OsString;

use serde_json::{Value, json};
use spiffile::svid::UnverifiedToken;
use spiffile::{Error, Identity};

use crate::exit::{self, identity_failure};
use crate::identity_source::{IdentitySource, load_identity_with, parse_id};
use crate::output::{Failure, out, out_json};
use crate::token_input::{TokenInput, read_token};

/// Verify a token as the identity of the SPIFFILE_* environment (or --dir,
/// --root with --service, --bundle-file/--bundle-dir, ...), against every
/// trust domain its bundles hold. Prints the caller's SPIFFE ID; exit 1
/// when rejected.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The token is read from standard input when TOKEN is `-` or absent; a `Bearer `\nprefix is dropped.\n\nExit codes: 0 accepted (caller on the first line of stdout), 1 rejected (reason on\nstderr; with --json a document on stdout with `accepted: false`, the reason code and\nthe unverified claims), 2 usage error, 3 the identity cannot be loaded.\n\nExamples:\n  spiffile verify \"$TOKEN\"\n  spiffile verify --json < token.txt\n  spiffile verify --bundle-dir /etc/spiffe/bundles --id-file /etc/spiffile/id \"$TOKEN\""
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
    /// Print the result as JSON, accepted or rejected.
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
        let builder = Identity::builder().accept_multiple_audiences(multiple_audiences);
        let identity = load_identity_with(&source, builder)?;
        let token = match read_token(token)? {
            TokenInput::Text(t) => t,
            TokenInput::Unusable(why) => {
                return reject(json, "malformed", &why, None);
            }
        };
        let result = match &audience {
            Some(a) => identity.verify_for(&token, a),
            None => identity.verify(&token),
        };
        match result {
            Ok(caller) => {
                if json {
                    out_json(&json!({
                        "accepted": true,
                        "caller": caller.id().as_str(),
                        "claims": caller.claims().to_json(),
                    }));
                } else {
                    out(caller.id().as_str());
                }
                Ok(())
            }
            Err(e) if e.is_unauthenticated() => {
                let reason = e.reason().map_or("unknown_identity", |r| r.as_str());
                let message = explain(&e, &identity);
                reject(json, reason, &message, Some(&token))
            }
            Err(e) => Err(identity_failure(e)),
        }
    }

    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        self.json
    }
}

/// The refusal in words, with what the library cannot know: that the
/// caller belongs to another trust domain.
fn explain(e: &Error, identity: &Identity) -> String {
    if let Error::UnknownIdentity(id) = e
        && id.trust_domain() != identity.id().trust_domain()
    {
        return format!(
            "the token is from `{id}`, of the trust domain `{}`, which none of this identity's bundles holds (its own trust domain is `{}`)",
            id.trust_domain(),
            identity.id().trust_domain()
        );
    }
    e.to_string()
}

/// A rejected token: exit 1, the reason on stderr, and with `--json` a
/// document on stdout.
fn reject(json: bool, reason: &str, message: &str, token: Option<&str>) -> Result<(), Failure> {
    if json {
        let unverified = token.and_then(|t| UnverifiedToken::decode(t).ok()).map_or(
            Value::Null,
            |t| json!({"header": t.header(), "claims": t.claims()}),
        );
        out_json(&json!({
            "accepted": false,
            "reason": reason,
            "message": message,
            "unverified": unverified,
        }));
    }
    Err(Failure {
        message: format!("rejected ({reason}): {message}"),
        code: exit::FAILED,
    })
}
