//! Writing the two JSON segments of a token, byte for byte what the other
//! spiffile implementations write.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use spiffile_id::SpiffeId;

/// `base64url({"alg":"ES256","kid":"<kid>","typ":"JWT"}) + "."`: the start
/// of every token a signer with this `kid` mints, computed once per key.
pub(crate) fn header_prefix(kid: &str) -> String {
    let header = format!(
        r#"{{"alg":"ES256","kid":{},"typ":"JWT"}}"#,
        Value::from(kid)
    );
    let mut prefix = URL_SAFE_NO_PAD.encode(header);
    prefix.push('.');
    prefix
}

/// The claims `{"sub","aud","iat","exp"}` with integer times.
pub(crate) fn claims_json(sub: &SpiffeId, aud: &SpiffeId, iat: i64, exp: i64) -> String {
    use std::fmt::Write as _;
    // SPIFFE IDs contain only [A-Za-z0-9._-/:], so they need no JSON
    // escaping and the claims can be written directly, in one allocation
    // (the numbers are formatted in place, 20 digits at most each).
    let mut claims = String::with_capacity(80 + sub.as_str().len() + aud.as_str().len());
    claims.push_str(r#"{"sub":""#);
    claims.push_str(sub.as_str());
    claims.push_str(r#"","aud":""#);
    claims.push_str(aud.as_str());
    let _ = write!(claims, r#"","iat":{iat},"exp":{exp}}}"#);
    claims
}
