//! The verified claims of a token, and the verified caller that shares them.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value};
use spiffile_id::SpiffeId;

use crate::numeric_date::secs_to_time;

/// The verified claims of a JWT-SVID.
#[derive(Clone, PartialEq, Eq)]
pub struct Claims {
    pub(crate) sub: SpiffeId,
    pub(crate) aud: SpiffeId,
    pub(crate) exp: i64,
    pub(crate) iat: Option<i64>,
    pub(crate) nbf: Option<i64>,
    pub(crate) other: Map<String, Value>,
}

impl Claims {
    /// `sub`: the SPIFFE ID of the caller.
    pub fn sub(&self) -> &SpiffeId {
        &self.sub
    }
    /// `aud`: the audience the token was minted for (the verifier).
    pub fn aud(&self) -> &SpiffeId {
        &self.aud
    }
    /// `exp`, seconds since the Unix epoch (fractional values are rounded
    /// down).
    pub fn exp(&self) -> i64 {
        self.exp
    }
    /// `iat`, seconds since the Unix epoch, if present (rounded up).
    pub fn iat(&self) -> Option<i64> {
        self.iat
    }
    /// `nbf`, seconds since the Unix epoch, if present (rounded up).
    pub fn nbf(&self) -> Option<i64> {
        self.nbf
    }
    /// Every other claim, as JSON.
    pub fn other(&self) -> &Map<String, Value> {
        &self.other
    }
    /// `exp` as a [`SystemTime`].
    pub fn expires_at(&self) -> SystemTime {
        secs_to_time(self.exp)
    }
    /// All claims as one JSON object.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("sub".into(), Value::from(self.sub.as_str()));
        m.insert("aud".into(), Value::from(self.aud.as_str()));
        if let Some(iat) = self.iat {
            m.insert("iat".into(), Value::from(iat));
        }
        if let Some(nbf) = self.nbf {
            m.insert("nbf".into(), Value::from(nbf));
        }
        m.insert("exp".into(), Value::from(self.exp));
        for (k, v) in &self.other {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("sub", &self.sub)
            .field("aud", &self.aud)
            .field("exp", &self.exp)
            .field("iat", &self.iat)
            .field("nbf", &self.nbf)
            .field("other", &self.other)
            .finish()
    }
}

/// A verified caller: who signed the token, and its claims.
///
/// Cheap to clone. The SPIFFE ID is what the application authorizes against.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    pub(crate) claims: Arc<Claims>,
}

impl Caller {
    /// The caller's verified SPIFFE ID (the token's `sub`).
    pub fn id(&self) -> &SpiffeId {
        &self.claims.sub
    }
    /// The verified claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("id", &self.claims.sub)
            .finish_non_exhaustive()
    }
}
