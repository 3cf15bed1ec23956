//! Reading a token as `verify` and `inspect` take it: from the argument, or
//! from standard input; a `Bearer ` prefix recognised and dropped.

use std::ffi::OsString;
use std::io::{IsTerminal as _, Read as _};

use crate::output::{Failure, err};

/// The largest token read from standard input. Verification refuses far
/// smaller tokens; this only bounds what is read.
const MAX_STDIN_TOKEN: u64 = 1024 * 1024;

/// A token as given: from the argument, or from stdin for `-` or none.
pub enum TokenInput {
    /// Valid UTF-8, surrounding whitespace (and a `Bearer ` prefix) removed.
    Text(String),
    /// Not something that can be a token (with why).
    Unusable(String),
}

pub fn read_token(arg: Option<OsString>) -> Result<TokenInput, Failure> {
    let bytes: Vec<u8> = match arg {
        Some(a) if a != "-" => a.into_encoded_bytes(),
        _ => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                err(
                    "spiffile: reading the token from standard input: paste it, then press Enter and Ctrl-D (or pass it as an argument)",
                );
            }
            let mut buf = Vec::new();
            stdin
                .lock()
                .take(MAX_STDIN_TOKEN + 1)
                .read_to_end(&mut buf)
                .map_err(|e| Failure::usage(format!("cannot read the token from stdin: {e}")))?;
            if buf.len() as u64 > MAX_STDIN_TOKEN {
                return Ok(TokenInput::Unusable(format!(
                    "token on stdin is larger than {MAX_STDIN_TOKEN} bytes"
                )));
            }
            buf
        }
    };
    match String::from_utf8(bytes) {
        Ok(s) => {
            let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
            let t = match strip_bearer(t) {
                Some(rest) => {
                    err(
                        "spiffile: note: dropped the `Bearer ` prefix of an Authorization header; the token is what follows it",
                    );
                    rest
                }
                None => t,
            };
            if t.is_empty() {
                Ok(TokenInput::Unusable("the token is empty".into()))
            } else {
                Ok(TokenInput::Text(t.to_owned()))
            }
        }
        Err(_) => Ok(TokenInput::Unusable(
            "the token is not UTF-8 text (a JWT is ASCII)".into(),
        )),
    }
}

/// The token after `Bearer ` (any case, as HTTP allows), or after a whole
/// `Authorization: Bearer ` header line.
fn strip_bearer(t: &str) -> Option<&str> {
    let t = match t.get(..14) {
        Some(h) if h.eq_ignore_ascii_case("authorization:") => t[14..].trim_start(),
        _ => t,
    };
    match t.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => Some(t[7..].trim_start()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::strip_bearer;

    #[test]
    fn bearer_prefixes() {
        assert_eq!(strip_bearer("Bearer abc"), Some("abc"));
        assert_eq!(strip_bearer("bearer   abc"), Some("abc"));
        assert_eq!(strip_bearer("Authorization: Bearer abc"), Some("abc"));
        assert_eq!(strip_bearer("abc.def.ghi"), None);
        assert_eq!(strip_bearer("Bearer"), None);
        assert_eq!(strip_bearer("é"), None);
    }
}
