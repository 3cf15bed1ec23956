//! `spiffile inspect`: decode a token without verifying it.

use std::ffi::OsString;

use serde_json::{Map, Value};
use spiffile::svid::{UnixTime, UnverifiedToken};

use crate::output::{Failure, out};
use crate::token_input::{TokenInput, read_token};
use crate::trust_view;

/// Decode a token WITHOUT verifying it (header, claims, dates, remaining
/// lifetime; with bundles configured, which trust domain and authority it
/// would be checked by), list the tokens of spiffe-helper's directory, or
/// show a PEM certificate chain (SPIFFE ID, validity, issuer, key usage,
/// whether it is a valid X.509-SVID).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "A token's output is labelled UNVERIFIED: anyone can write these values.\n\nWith bundles configured (--bundle-file, --bundle-dir, or SPIFFILE_BUNDLE_FILE,\nSPIFFILE_BUNDLE_DIR, SPIFFILE_DIR), a `trust:` section says which trust domain, authority and\nfile the token's sub selects, and whether its kid and aud fit that authority.\n\nExamples:\n  spiffile inspect \"$TOKEN\"\n  spiffile inspect /run/spire/billing.token --bundle-file /run/spire/jwt_bundle.json\n  spiffile inspect --jwt-svid-dir /run/spire\n  spiffile inspect ./idroot/services/orders/svid.pem --bundle ./idroot/bundle.pem"
)]
pub struct InspectArgs {
    /// The token, a file holding one (spiffe-helper's), a PEM certificate
    /// file, or `-` for standard input (the default).
    token: Option<OsString>,
    /// For a certificate: also validate its chain against this PEM bundle.
    #[arg(long, value_name = "FILE")]
    bundle: Option<std::path::PathBuf>,
    /// For a token: the JWT bundles to place it against (any format).
    #[arg(long, value_name = "FILE", conflicts_with = "bundle_dir")]
    bundle_file: Option<std::path::PathBuf>,
    /// For a token: a directory of JWT bundles to place it against.
    #[arg(long, value_name = "DIR")]
    bundle_dir: Option<std::path::PathBuf>,
    /// The trust domain of a SPIFFE bundle (JWKS) file not named
    /// <trust-domain>.json.
    #[arg(long, value_name = "TRUST_DOMAIN")]
    bundle_trust_domain: Option<String>,
    /// List the JWT-SVIDs of spiffe-helper's directory (DIR, or
    /// SPIFFILE_JWT_SVID_DIR when no DIR is given) instead of a token.
    #[arg(long, value_name = "DIR", num_args = 0..=1, conflicts_with = "token")]
    jwt_svid_dir: Option<Option<std::path::PathBuf>>,
    /// With --jwt-svid-dir: only the token `spiffile token` would present to
    /// this audience.
    #[arg(long, value_name = "SPIFFE_ID", requires = "jwt_svid_dir")]
    audience: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Largest certificate file read.
const MAX_PEM: u64 = 1024 * 1024;

impl InspectArgs {
    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Runs `spiffile inspect`.
    pub fn run(self) -> Result<(), Failure> {
        if let Some(dir) = &self.jwt_svid_dir {
            let dir = match dir {
                Some(d) => d.clone(),
                None => std::env::var_os(spiffile::ENV_JWT_SVID_DIR)
                    .filter(|v| !v.is_empty())
                    .map(std::path::PathBuf::from)
                    .ok_or_else(|| {
                        Failure::usage("--jwt-svid-dir without DIR needs SPIFFILE_JWT_SVID_DIR")
                    })?,
            };
            return crate::jwt_svid_list::list(&dir, self.audience.as_deref(), self.json);
        }
        let trust = trust_view::configured_source(
            self.bundle_file.as_deref(),
            self.bundle_dir.as_deref(),
            self.bundle_trust_domain.as_deref(),
        );
        if let Some(arg) = &self.token {
            let path = std::path::Path::new(arg);
            if arg != "-" && path.is_file() {
                let bytes = spiffile::watch::read_regular_file(path, MAX_PEM)
                    .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
                if crate::x509_inspect::is_pem_certificate(&bytes) {
                    return crate::x509_inspect::inspect(&bytes, self.bundle.as_deref(), self.json);
                }
                // A token file, as spiffe-helper writes them.
                if let Ok(Some(svid)) = spiffile::svid::JwtSvid::parse(&bytes) {
                    let token = TokenInput::Text(svid.token().to_owned());
                    return inspect(&token, trust.as_ref(), self.json);
                }
                return Err(Failure::usage(format!(
                    "{} holds no PEM certificate and no JWT; give a token as text",
                    path.display()
                )));
            }
        }
        let token = read_token(self.token)?;
        if let TokenInput::Text(text) = &token
            && crate::x509_inspect::is_pem_certificate(text.as_bytes())
        {
            return crate::x509_inspect::inspect(
                text.as_bytes(),
                self.bundle.as_deref(),
                self.json,
            );
        }
        inspect(&token, trust.as_ref(), self.json)
    }
}

/// The label printed above every decoded token.
const UNVERIFIED: &str = "UNVERIFIED: decoded without checking the signature or the bundle; anyone can write these values (use `spiffile verify` to authenticate a token)";

/// Largest token decoded.
const MAX_TOKEN: usize = 64 * 1024;

/// Decodes and prints a token, placed against `trust` when given.
pub fn inspect(
    token: &TokenInput,
    trust: Option<&spiffile::BundleSource>,
    json: bool,
) -> Result<(), Failure> {
    let token = match token {
        TokenInput::Text(t) => t,
        TokenInput::Unusable(why) => return Err(Failure::failed(format!("cannot decode: {why}"))),
    };
    if token.len() > MAX_TOKEN {
        return Err(Failure::failed(format!(
            "cannot decode: the token is {} bytes; inspect reads at most {MAX_TOKEN}",
            token.len()
        )));
    }
    let decoded = UnverifiedToken::decode(token)
        .map_err(|e| Failure::failed(format!("cannot decode: {e}")))?;
    let now = UnixTime::now().map_or(0, UnixTime::as_secs);
    let signature_len = decoded.signature().map(<[u8]>::len);
    let placed = trust.map(|source| {
        let (docs, errors) = trust_view::load(source);
        let (lines, value) = trust_view::describe(decoded.header(), decoded.claims(), &docs);
        (lines, value, errors)
    });
    if json {
        let mut doc = serde_json::json!({
            "verified": false,
            "header": decoded.header(),
            "claims": decoded.claims(),
            "signature_bytes": signature_len,
            "now": now,
        });
        if let Some((_, mut value, errors)) = placed {
            if !errors.is_empty() {
                value["bundle_errors"] = errors.into();
            }
            doc["trust"] = value;
        }
        out(&doc.to_string());
        return Ok(());
    }
    out(UNVERIFIED);
    out("header:");
    print_members(decoded.header(), now);
    out("claims:");
    print_members(decoded.claims(), now);
    match signature_len {
        Some(n) => out(&format!("signature: {n} bytes (not checked)")),
        None => out("signature: not valid base64url"),
    }
    if let Some((lines, _, errors)) = placed {
        out("trust (UNVERIFIED: the signature is not checked):");
        for e in errors {
            out(&format!("  bundle not read: {e}"));
        }
        for l in lines {
            out(&format!("  {l}"));
        }
    }
    Ok(())
}

/// A member name as printed: bare when it is a plain word, JSON-quoted
/// otherwise (so control characters cannot reach the terminal).
fn name(key: &str) -> String {
    if !key.is_empty()
        && key.len() <= 40
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        key.to_owned()
    } else {
        shorten(&Value::from(key).to_string())
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= 200 {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(197).collect();
        t.push_str("...");
        t
    }
}

fn print_members(members: &Map<String, Value>, now: i64) {
    for (key, value) in members {
        // JSON serialization escapes control characters.
        let shown = match value {
            Value::String(s) if s.chars().all(|c| !c.is_control()) => shorten(s),
            _ => shorten(&value.to_string()),
        };
        let time = if matches!(key.as_str(), "exp" | "iat" | "nbf") {
            value.as_f64().map(|t| describe_time(key, t, now))
        } else {
            None
        };
        match time {
            Some(t) => out(&format!("  {:<4} {shown}  ({t})", name(key))),
            None => out(&format!("  {:<4} {shown}", name(key))),
        }
    }
}

pub(crate) fn describe_time(key: &str, t: f64, now: i64) -> String {
    if !t.is_finite() || t.abs() > 253_402_300_799.0 {
        return "out of range".into();
    }
    let secs = t.floor() as i64;
    let date = format_utc(secs);
    let delta = secs - now;
    let rel = match key {
        "exp" if delta > 0 => format!("expires in {}", span(delta)),
        "exp" => format!("EXPIRED {} ago", span(-delta)),
        "nbf" if delta > 0 => format!("not valid for another {}", span(delta)),
        _ if delta > 0 => format!("{} in the future", span(delta)),
        _ => format!("{} ago", span(-delta)),
    };
    format!("{date}, {rel}")
}

fn span(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

fn format_utc(secs: i64) -> String {
    UnixTime::from_secs(secs).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        assert_eq!(
            describe_time("exp", 160.0, 100),
            "1970-01-01 00:02:40 UTC, expires in 60 s"
        );
        assert!(describe_time("exp", 100.0, 400).contains("EXPIRED 5 min ago"));
        assert_eq!(describe_time("iat", f64::NAN, 0), "out of range");
    }
}
