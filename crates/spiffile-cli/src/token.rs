//! `spiffile token`: a token from a shell, minted or SPIRE's.

use std::time::Duration;

use spiffile::svid::{MAX_TTL, RECOMMENDED_MAX_TTL, UnverifiedToken};

use crate::identity_source::{IdentitySource, load_identity, parse_id};
use crate::output::{Failure, out, out_json, warn};

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
    /// Lifetime of a minted token: seconds, or a number with s, m or h (1 s
    /// to 24 h; default 60 s; more than 300 s is discouraged and warned
    /// about). SPIRE's tokens keep the lifetime SPIRE gave them.
    #[arg(long, value_name = "TTL", value_parser = parse_ttl)]
    ttl: Option<Ttl>,
    /// Print the token with its claims as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: IdentitySource,
}

/// A lifetime as given on the command line, kept in the user's own words
/// for messages.
#[derive(Debug, Clone)]
struct Ttl {
    given: String,
    duration: Duration,
}

/// `90`, `90s`, `5m`, `1h`: a lifetime in the bounds a token can have, with
/// errors in the unit the user wrote.
fn parse_ttl(s: &str) -> Result<Ttl, String> {
    let t = s.trim();
    let (digits, unit, per) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t, "s", 1),
        Some((i, _)) => match &t[i..] {
            "s" | "sec" | "secs" => (&t[..i], "s", 1),
            "m" | "min" | "mins" => (&t[..i], "min", 60),
            "h" => (&t[..i], "h", 3600),
            _ => {
                return Err(format!(
                    "{s:?} is not a lifetime: give seconds (60), or a number with s, m or h (90s, 5m, 1h)"
                ));
            }
        },
    };
    let n: u64 = digits.parse().map_err(|_| {
        format!(
            "{s:?} is not a lifetime: give seconds (60), or a number with s, m or h (90s, 5m, 1h)"
        )
    })?;
    let secs = n.saturating_mul(per);
    let max = MAX_TTL.as_secs();
    if secs == 0 {
        return Err(format!(
            "{n} {unit} is no lifetime: a token lives at least 1 s"
        ));
    }
    if secs > max {
        let limit = if per == 1 {
            format!("{max} s (one day)")
        } else {
            format!("{} {unit} ({max} s, one day)", max / per)
        };
        return Err(format!(
            "{n} {unit} is longer than a token may live: at most {limit}"
        ));
    }
    Ok(Ttl {
        given: format!("{n} {unit}"),
        duration: Duration::from_secs(secs),
    })
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
        } else if let Some(ttl) = &self.ttl
            && ttl.duration > RECOMMENDED_MAX_TTL
        {
            warn(format!(
                "--ttl {} is longer than the {} s the profile recommends at most: a stolen token stays usable that long",
                ttl.given,
                RECOMMENDED_MAX_TTL.as_secs()
            ));
        }
        let ttl = self
            .ttl
            .as_ref()
            .map_or(Duration::from_secs(60), |t| t.duration);
        let token = identity
            .token_with_ttl(&audience, ttl)
            .map_err(crate::exit::identity_failure)?;
        if self.json {
            let claims = UnverifiedToken::decode(&token)
                .map(|t| serde_json::Value::Object(t.claims().clone()))
                .unwrap_or(serde_json::Value::Null);
            out_json(&serde_json::json!({
                "token": token,
                "kid": identity.kid(),
                "claims": claims,
            }));
        } else {
            out(&token);
        }
        Ok(())
    }

    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        self.json
    }
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn lifetimes_answer_in_the_unit_given() {
        assert_eq!(parse_ttl("90").unwrap().duration.as_secs(), 90);
        assert_eq!(parse_ttl("5m").unwrap().duration.as_secs(), 300);
        assert_eq!(parse_ttl("2h").unwrap().given, "2 h");
        let e = parse_ttl("100000").unwrap_err();
        assert_eq!(
            e,
            "100000 s is longer than a token may live: at most 86400 s (one day)"
        );
        assert!(parse_ttl("25h").unwrap_err().starts_with("25 h is longer"));
        assert!(parse_ttl("2000m").unwrap_err().contains("at most 1440 min"));
        assert!(parse_ttl("0").unwrap_err().contains("at least 1 s"));
        assert!(parse_ttl("-5").is_err());
        assert!(parse_ttl("1d").is_err());
    }
}
