//! Reading a token as `verify` and `inspect` take it: from the argument, or
//! from standard input.

use std::ffi::OsString;
use std::io::Read as _;

use crate::output::Failure;

/// The largest token read from standard input. Verification refuses far
/// smaller tokens; this only bounds what is read.
const MAX_STDIN_TOKEN: u64 = 1024 * 1024;

/// A token as given: from the argument, or from stdin for `-` or none.
pub enum TokenInput {
    /// Valid UTF-8, surrounding whitespace removed.
    Text(String),
    /// Not something that can be a token (with why).
    Unusable(String),
}

pub fn read_token(arg: Option<OsString>) -> Result<TokenInput, Failure> {
    let bytes: Vec<u8> = match arg {
        Some(a) if a != "-" => a.into_encoded_bytes(),
        _ => {
            let mut buf = Vec::new();
            std::io::stdin()
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
