//! Minting and verifying JWT-SVIDs.
//!
//! The compact JWS is parsed by hand rather than with `jose-jws`: the hot path
//! must decode each segment once, reject unknown header members and duplicate
//! members (which `serde`'s flattening would hide), and never allocate a
//! general JOSE structure for a token that will be refused.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use spiffile_bundle::{Bundle, PublicKey};
use spiffile_id::{SpiffeId, TrustDomain};

use crate::cache::ShardedCache;
use crate::error::{Error, TokenError, quote};
use crate::key::{KeyError, PrivateKey};

/// Default token lifetime of [`Signer::mint`] callers (60 s).
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// The longest lifetime [`Signer::mint`] accepts (one day). The profile
/// discourages more than 300 s.
pub const MAX_TTL: Duration = Duration::from_secs(86_400);
/// Default clock leeway of verification (30 s).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default maximum token size (8 KiB), checked before any decoding.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// NumericDates beyond ±this many seconds (year 9999) are out of range.
const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// The current time in whole seconds since the Unix epoch.
pub fn unix_now() -> Result<i64, Error> {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::Clock)?;
    i64::try_from(d.as_secs()).map_err(|_| Error::Clock)
}

// ---------------------------------------------------------------------------
// Claims and Caller

/// The verified claims of a JWT-SVID.
#[derive(Clone, PartialEq, Eq)]
pub struct Claims {
    sub: SpiffeId,
    aud: SpiffeId,
    exp: i64,
    iat: Option<i64>,
    nbf: Option<i64>,
    other: Map<String, Value>,
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

/// A token lifetime in whole seconds (rounded up), if it is one [`Signer`]
/// mints with.
fn checked_ttl_secs(ttl: Duration) -> Result<u64, Error> {
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(Error::InvalidTtl {
            requested_ms: ttl.as_millis(),
            max: MAX_TTL.as_secs(),
        });
    }
    Ok(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
}

fn secs_to_time(s: i64) -> SystemTime {
    if s >= 0 {
        UNIX_EPOCH + Duration::from_secs(s.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
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
    claims: Arc<Claims>,
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

// ---------------------------------------------------------------------------
// Signer

/// Mints JWT-SVIDs for one workload with its own private key.
///
/// The header is exactly `{"alg":"ES256","kid":"<thumbprint>","typ":"JWT"}` and
/// the claims `{"sub","aud","iat","exp"}` with integer times, byte for byte
/// what the other spiffile implementations write.
///
/// ```
/// use spiffile_svid::{Signer, generate_pkcs8_pem};
/// use std::time::Duration;
///
/// let pem = generate_pkcs8_pem()?;
/// let signer = Signer::from_pkcs8_pem("spiffe://example.org/orders".parse()?, pem.as_bytes())?;
/// let token = signer.mint(&"spiffe://example.org/billing".parse()?, Duration::from_secs(60))?;
/// assert_eq!(token.split('.').count(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Signer {
    id: SpiffeId,
    key: PrivateKey,
    rng: SystemRandom,
    /// `base64url(header) + "."`, computed once.
    header_prefix: String,
    /// The share of a token's lifetime during which
    /// [`Signer::mint_or_reuse`] hands it out again; 0 when reuse is off.
    reuse_fraction: f64,
    /// Tokens minted by [`Signer::mint_or_reuse`], by audience and lifetime.
    /// They live and die with this signer, that is with its key.
    minted: Option<ShardedCache<MintedToken>>,
}

/// A token kept for reuse by [`Signer::mint_or_reuse`].
struct MintedToken {
    audience: SpiffeId,
    ttl_secs: u64,
    token: Box<str>,
    iat: i64,
}

/// Default share of a token's lifetime during which the facade reuses it
/// ([`Signer::with_token_reuse`]): one half, so a reused token always has at
/// least half of its lifetime left.
pub const DEFAULT_TOKEN_REUSE_FRACTION: f64 = 0.5;
/// How many (audience, lifetime) pairs the minted-token cache remembers.
pub const MINTED_TOKEN_CACHE_CAPACITY: usize = 1024;

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("id", &self.id)
            .field("kid", &self.key.public.kid())
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for `id` from a PKCS#8 PEM P-256 private key.
    pub fn from_pkcs8_pem(id: SpiffeId, pem: &[u8]) -> Result<Self, KeyError> {
        Ok(Self::with_key(id, PrivateKey::from_pkcs8_pem(pem)?))
    }

    /// A signer for `id` from a PKCS#8 DER P-256 private key.
    pub fn from_pkcs8_der(id: SpiffeId, der: &[u8]) -> Result<Self, KeyError> {
        Ok(Self::with_key(id, PrivateKey::from_pkcs8_der(der)?))
    }

    fn with_key(id: SpiffeId, key: PrivateKey) -> Self {
        let header = format!(
            r#"{{"alg":"ES256","kid":{},"typ":"JWT"}}"#,
            Value::from(key.public.kid())
        );
        let mut header_prefix = URL_SAFE_NO_PAD.encode(header);
        header_prefix.push('.');
        Signer {
            id,
            key,
            rng: SystemRandom::new(),
            header_prefix,
            reuse_fraction: 0.0,
            minted: None,
        }
    }

    /// Lets [`Signer::mint_or_reuse`] hand out a token it minted before, for
    /// the same audience and lifetime, while at most `fraction` of the
    /// token's lifetime has passed (so at least `1 - fraction` of it is
    /// left). `fraction` is clamped to 1 (reuse until the token expires);
    /// 0, a negative value or NaN turns reuse off, which is the default of
    /// a new signer. [`DEFAULT_TOKEN_REUSE_FRACTION`] is one half.
    ///
    /// The kept tokens belong to this signer, that is to its key: a signer
    /// built from a new key never hands out a token signed by the old one.
    /// At most [`MINTED_TOKEN_CACHE_CAPACITY`] audience/lifetime pairs are
    /// kept.
    ///
    /// ```
    /// use spiffile_svid::{Signer, generate_pkcs8_pem};
    /// use std::time::Duration;
    ///
    /// let signer = Signer::from_pkcs8_pem("spiffe://example.org/orders".parse()?, generate_pkcs8_pem()?.as_bytes())?
    ///     .with_token_reuse(0.5);
    /// let billing = "spiffe://example.org/billing".parse()?;
    /// let first = signer.mint_or_reuse(&billing, Duration::from_secs(60))?;
    /// let again = signer.mint_or_reuse(&billing, Duration::from_secs(60))?;
    /// assert_eq!(first, again); // unless 30 s passed in between
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_token_reuse(mut self, fraction: f64) -> Self {
        if fraction > 0.0 {
            self.reuse_fraction = fraction.min(1.0);
            self.minted = Some(ShardedCache::new(MINTED_TOKEN_CACHE_CAPACITY, 16));
        } else {
            self.reuse_fraction = 0.0;
            self.minted = None;
        }
        self
    }

    /// The share of a token's lifetime during which it is reused (0 when
    /// reuse is off).
    pub fn token_reuse_fraction(&self) -> f64 {
        self.reuse_fraction
    }

    /// The SPIFFE ID tokens are minted for (`sub`).
    pub fn id(&self) -> &SpiffeId {
        &self.id
    }

    /// The `kid` of the signing key (its RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        self.key.public.kid()
    }

    /// The public key, as it belongs in the bundle.
    pub fn public_key(&self) -> &PublicKey {
        &self.key.public
    }

    /// Mints a token for `audience`, valid for `ttl` (1 s to one day; a
    /// fraction of a second is rounded up) from now.
    pub fn mint(&self, audience: &SpiffeId, ttl: Duration) -> Result<String, Error> {
        let secs = checked_ttl_secs(ttl)?;
        let now = unix_now()?;
        // `secs` is at most MAX_TTL, so the cast cannot wrap.
        self.mint_at(audience, now, now.saturating_add(secs as i64))
    }

    /// Like [`Signer::mint`], but hands out the token minted before for the
    /// same audience and lifetime while it is young enough (see
    /// [`Signer::with_token_reuse`]). Without reuse, it is [`Signer::mint`].
    pub fn mint_or_reuse(&self, audience: &SpiffeId, ttl: Duration) -> Result<String, Error> {
        if self.minted.is_none() {
            return self.mint(audience, ttl);
        }
        self.mint_or_reuse_at(audience, ttl, unix_now()?)
    }

    /// [`Signer::mint_or_reuse`] as if the time were `now` (seconds since
    /// the epoch), for tests and tools.
    pub fn mint_or_reuse_at(
        &self,
        audience: &SpiffeId,
        ttl: Duration,
        now: i64,
    ) -> Result<String, Error> {
        let secs = checked_ttl_secs(ttl)?;
        // `secs` is at most MAX_TTL, so the cast cannot wrap.
        let exp = now.saturating_add(secs as i64);
        let Some(cache) = &self.minted else {
            return self.mint_at(audience, now, exp);
        };
        let hash = cache.hash(&[audience.as_str().as_bytes(), &secs.to_le_bytes()]);
        if let Some(token) = cache.get(hash, now, |m: &MintedToken| {
            (m.ttl_secs == secs && m.audience == *audience && m.iat <= now)
                .then(|| String::from(&*m.token))
        }) {
            return Ok(token);
        }
        let token = self.mint_at(audience, now, exp)?;
        // Reused while at least `keep` seconds of the lifetime are left.
        let keep = ((secs as f64) * (1.0 - self.reuse_fraction))
            .ceil()
            .max(1.0) as i64;
        cache.insert(
            hash,
            MintedToken {
                audience: audience.clone(),
                ttl_secs: secs,
                token: token.as_str().into(),
                iat: now,
            },
            exp.saturating_sub(keep).saturating_add(1),
            now,
        );
        Ok(token)
    }

    /// Mints a token with explicit `iat` and `exp` (seconds since the epoch),
    /// for tests and tools. No lifetime limit is applied.
    pub fn mint_at(&self, audience: &SpiffeId, iat: i64, exp: i64) -> Result<String, Error> {
        // SPIFFE IDs contain only [A-Za-z0-9._-/:], so they need no JSON
        // escaping and the claims can be written directly.
        let mut claims =
            String::with_capacity(64 + self.id.as_str().len() + audience.as_str().len());
        claims.push_str(r#"{"sub":""#);
        claims.push_str(self.id.as_str());
        claims.push_str(r#"","aud":""#);
        claims.push_str(audience.as_str());
        claims.push_str(r#"","iat":"#);
        claims.push_str(&iat.to_string());
        claims.push_str(r#","exp":"#);
        claims.push_str(&exp.to_string());
        claims.push('}');
        let mut token = String::with_capacity(self.header_prefix.len() + claims.len() * 4 / 3 + 92);
        token.push_str(&self.header_prefix);
        URL_SAFE_NO_PAD.encode_string(claims.as_bytes(), &mut token);
        let sig = self
            .key
            .pair
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| Error::Clock)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut token);
        Ok(token)
    }
}

// ---------------------------------------------------------------------------
// Verifier

/// Knobs of verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    leeway: Duration,
    max_token_bytes: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            leeway: DEFAULT_LEEWAY,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }
}

impl VerifyOptions {
    /// The defaults: 30 s leeway, 8 KiB maximum token size.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the clock leeway applied to `exp`, `nbf` and `iat`.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }
    /// Sets the maximum token size in bytes.
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = max;
        self
    }
    /// The clock leeway.
    pub fn get_leeway(&self) -> Duration {
        self.leeway
    }
    /// The maximum token size.
    pub fn get_max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }
}

struct BoundKey {
    kid: Box<str>,
    key: UnparsedPublicKey<[u8; 65]>,
}

/// Verifies JWT-SVIDs offline against a bundle.
///
/// Keys are converted once, when the verifier is built; a lookup is one hash
/// of the claimed `sub`. The key that checks a token is always one bound to
/// the token's own `sub`: no other key in the bundle can ever validate it.
///
/// ```
/// use spiffile_bundle::Bundle;
/// use spiffile_svid::{Signer, Verifier, VerifyOptions, generate_pkcs8_pem};
/// use std::time::Duration;
///
/// let orders = "spiffe://example.org/orders".parse()?;
/// let billing = "spiffe://example.org/billing".parse()?;
/// let signer = Signer::from_pkcs8_pem(orders, generate_pkcs8_pem()?.as_bytes())?;
///
/// let mut bundle = Bundle::new("example.org".parse()?);
/// bundle.add_key(signer.id(), signer.public_key().clone())?;
/// let verifier = Verifier::new(&bundle);
///
/// let token = signer.mint(&billing, Duration::from_secs(60))?;
/// let caller = verifier.verify(&token, &billing, &VerifyOptions::default())?;
/// assert_eq!(caller.id(), signer.id());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Verifier {
    trust_domain: TrustDomain,
    keys: HashMap<SpiffeId, Box<[BoundKey]>>,
    /// Tokens this verifier (this bundle) has accepted, by token and
    /// audience. It lives and dies with the verifier, so a new bundle starts
    /// with an empty cache.
    cache: Option<ShardedCache<(Box<str>, Caller)>>,
}

/// Default capacity of the verified-token cache that
/// [`Verifier::with_cache_capacity`] sizes (4096 tokens; an entry holds the
/// token and its claims, about 1 KiB for a typical token).
pub const DEFAULT_VERIFY_CACHE_CAPACITY: usize = 4096;
/// The verified-token cache never splits into more shards than this.
const VERIFY_CACHE_MAX_SHARDS: usize = 256;

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("trust_domain", &self.trust_domain)
            .field("identities", &self.keys.len())
            .field(
                "cache_capacity",
                &self.cache.as_ref().map_or(0, ShardedCache::capacity),
            )
            .finish()
    }
}

/// A JSON member value that is usually a string: borrowed from the decoded
/// segment when it has no escapes, so the common case allocates nothing.
/// Anything else is kept as a [`Value`] for the error message.
enum MaybeStr<'de> {
    Str(std::borrow::Cow<'de, str>),
    Other(Value),
}

impl MaybeStr<'_> {
    fn quoted(&self) -> String {
        match self {
            MaybeStr::Str(s) => short(s),
            MaybeStr::Other(v) => quote(v),
        }
    }
}

impl<'de> de::Deserialize<'de> for MaybeStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr::Str(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr::Str(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(MaybeStr::Str(std::borrow::Cow::Owned(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other(Value::from(v)))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other(Value::Null))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                de::Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(MaybeStr::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                de::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(MaybeStr::Other)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Default)]
struct RawHeader<'de> {
    alg: Option<MaybeStr<'de>>,
    kid: Option<MaybeStr<'de>>,
    typ: Option<MaybeStr<'de>>,
}

#[derive(Default)]
struct RawClaims<'de> {
    sub: Option<MaybeStr<'de>>,
    aud: Option<MaybeStr<'de>>,
    exp: Option<Value>,
    nbf: Option<Value>,
    iat: Option<Value>,
    other: Map<String, Value>,
}

/// Reads a JSON object member by member, keeping the precise reason for a
/// refusal in `problem` (serde's own errors carry only text).
struct ObjectVisitor<'p, T> {
    segment: &'static str,
    problem: &'p mut Option<TokenError>,
    _t: std::marker::PhantomData<T>,
}

fn short(s: &str) -> String {
    quote(&Value::from(s))
}

impl<'de> Visitor<'de> for ObjectVisitor<'_, RawHeader<'de>> {
    type Value = RawHeader<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader<'de>, A::Error> {
        let mut h = RawHeader::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let slot = match &*key {
                "alg" => &mut h.alg,
                "kid" => &mut h.kid,
                "typ" => &mut h.typ,
                other => {
                    *self.problem = Some(TokenError::HeaderMember(short(other)));
                    return Err(de::Error::custom("refused"));
                }
            };
            if slot.replace(map.next_value()?).is_some() {
                *self.problem = Some(TokenError::Duplicate {
                    segment: self.segment,
                    member: short(&key),
                });
                return Err(de::Error::custom("refused"));
            }
        }
        Ok(h)
    }
}

impl<'de> Visitor<'de> for ObjectVisitor<'_, RawClaims<'de>> {
    type Value = RawClaims<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawClaims<'de>, A::Error> {
        let mut c = RawClaims::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let dup = match &*key {
                "sub" => c.sub.replace(map.next_value()?).is_some(),
                "aud" => c.aud.replace(map.next_value()?).is_some(),
                "exp" => c.exp.replace(map.next_value()?).is_some(),
                "nbf" => c.nbf.replace(map.next_value()?).is_some(),
                "iat" => c.iat.replace(map.next_value()?).is_some(),
                _ => {
                    let v = map.next_value()?;
                    c.other.insert(key.clone().into_owned(), v).is_some()
                }
            };
            if dup {
                *self.problem = Some(TokenError::Duplicate {
                    segment: self.segment,
                    member: short(&key),
                });
                return Err(de::Error::custom("refused"));
            }
        }
        Ok(c)
    }
}

impl<'de, T> DeserializeSeed<'de> for ObjectVisitor<'_, T>
where
    Self: Visitor<'de, Value = T>,
{
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_map(self)
    }
}

fn parse_object<'a, T>(segment: &'static str, json: &'a [u8]) -> Result<T, TokenError>
where
    for<'p> ObjectVisitor<'p, T>: Visitor<'a, Value = T>,
{
    let mut problem = None;
    let mut de = serde_json::Deserializer::from_slice(json);
    let seed = ObjectVisitor {
        segment,
        problem: &mut problem,
        _t: std::marker::PhantomData,
    };
    let parsed = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(v) => Ok(v),
        Err(e) => Err(problem.unwrap_or_else(|| TokenError::Json {
            segment,
            message: json_problem(&e, json),
        })),
    }
}

/// What serde_json said, without repeating the input: its "invalid type"
/// message quotes a string value in full, and the segment is whatever the
/// sender chose. Syntax messages are fixed texts with a position.
fn json_problem(e: &serde_json::Error, json: &[u8]) -> String {
    if e.classify() == serde_json::error::Category::Data {
        let found = match json.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'"') => "a string",
            Some(b'[') => "an array",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            _ => "a number",
        };
        return format!("found {found}");
    }
    let mut message = e.to_string();
    if message.len() > 120 {
        let mut cut = 117;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("...");
    }
    message
}

/// The `exp`, `nbf` and `iat` checks of verification, with `leeway`.
fn check_times(
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    now: i64,
    leeway: Duration,
) -> Result<(), TokenError> {
    let leeway_secs = leeway.as_secs();
    let leeway = i64::try_from(leeway_secs).unwrap_or(i64::MAX);
    if exp.saturating_add(leeway) <= now {
        return Err(TokenError::Expired {
            exp,
            now,
            leeway: leeway_secs,
        });
    }
    if let Some(nbf) = nbf
        && nbf > now.saturating_add(leeway)
    {
        return Err(TokenError::NotYetValid {
            nbf,
            now,
            leeway: leeway_secs,
        });
    }
    if let Some(iat) = iat
        && iat > now.saturating_add(leeway)
    {
        return Err(TokenError::IssuedInFuture {
            iat,
            now,
            leeway: leeway_secs,
        });
    }
    Ok(())
}

/// Decodes a segment into `buf`, or onto the heap when it does not fit.
fn decode_segment_into<'b>(
    segment: &str,
    buf: &'b mut [u8],
    what: &'static str,
) -> Result<std::borrow::Cow<'b, [u8]>, TokenError> {
    match URL_SAFE_NO_PAD.decode_slice(segment.as_bytes(), &mut *buf) {
        Ok(n) => {
            let buf: &'b [u8] = buf;
            Ok(std::borrow::Cow::Borrowed(buf.get(..n).unwrap_or(&[])))
        }
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            decode_segment(segment, what).map(std::borrow::Cow::Owned)
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => Err(TokenError::Malformed(what)),
    }
}

fn decode_segment(segment: &str, what: &'static str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(segment.as_bytes())
        .map_err(|_| TokenError::Malformed(what))
}

/// Reads a NumericDate. Fractions round toward the stricter side: `exp`
/// down, `nbf`/`iat` up.
fn numeric_date(v: &Value, claim: &'static str, round_up: bool) -> Result<i64, TokenError> {
    let out_of_range = TokenError::InvalidClaim {
        claim,
        problem: "is out of range (beyond the year 9999)",
    };
    let Value::Number(n) = v else {
        return Err(TokenError::InvalidClaim {
            claim,
            problem: "is not a number (NumericDate)",
        });
    };
    let secs = if let Some(i) = n.as_i64() {
        i
    } else if n.is_u64() {
        return Err(out_of_range);
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        if !f.is_finite() || f.abs() > MAX_NUMERIC_DATE as f64 {
            return Err(out_of_range);
        }
        // In range, so the conversion is exact after rounding.
        (if round_up { f.ceil() } else { f.floor() }) as i64
    };
    if !(-MAX_NUMERIC_DATE..=MAX_NUMERIC_DATE).contains(&secs) {
        return Err(out_of_range);
    }
    Ok(secs)
}

impl Verifier {
    /// Builds a verifier over the identities and keys of `bundle`.
    pub fn new(bundle: &Bundle) -> Self {
        let keys = bundle
            .identities()
            .map(|(id, keys)| {
                let bound: Box<[BoundKey]> = keys
                    .iter()
                    .map(|k| BoundKey {
                        kid: k.kid().into(),
                        key: UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, k.to_sec1()),
                    })
                    .collect();
                (id.clone(), bound)
            })
            .collect();
        Verifier {
            trust_domain: bundle.trust_domain().clone(),
            keys,
            cache: None,
        }
    }

    /// Remembers up to about `capacity` accepted tokens (0: none, the
    /// default of [`Verifier::new`]), so that a token seen again verifies
    /// without a signature check.
    ///
    /// An entry is keyed by the whole token and the expected audience (a
    /// keyed hash, then a full comparison), and is used only while the
    /// token's `exp` plus the leeway of the call has not passed; `exp`,
    /// `nbf` and `iat` are checked again on every hit with the same errors
    /// as a first verification. Refused tokens are never remembered. The
    /// cache belongs to this verifier, that is to one bundle: a verifier
    /// built from a new bundle starts empty, so revoking an identity takes
    /// effect as soon as the new verifier is in use.
    ///
    /// ```
    /// # use spiffile_bundle::Bundle;
    /// # use spiffile_svid::{Signer, Verifier, VerifyOptions, generate_pkcs8_pem};
    /// # use std::time::Duration;
    /// # let signer = Signer::from_pkcs8_pem("spiffe://example.org/orders".parse()?, generate_pkcs8_pem()?.as_bytes())?;
    /// # let mut bundle = Bundle::new("example.org".parse()?);
    /// # bundle.add_key(signer.id(), signer.public_key().clone())?;
    /// let billing = "spiffe://example.org/billing".parse()?;
    /// let verifier = Verifier::new(&bundle).with_cache_capacity(1024);
    /// let token = signer.mint(&billing, Duration::from_secs(60))?;
    /// let first = verifier.verify(&token, &billing, &VerifyOptions::default())?;
    /// let again = verifier.verify(&token, &billing, &VerifyOptions::default())?; // from the cache
    /// assert_eq!(first, again);
    /// assert_eq!(verifier.cached_tokens(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache = (capacity > 0).then(|| ShardedCache::new(capacity, VERIFY_CACHE_MAX_SHARDS));
        self
    }

    /// The most tokens the verified-token cache holds (0 when it is off);
    /// at least the capacity asked for, rounded up to whole shards.
    pub fn cache_capacity(&self) -> usize {
        self.cache.as_ref().map_or(0, ShardedCache::capacity)
    }

    /// The number of tokens in the verified-token cache (expired ones
    /// included until they are evicted).
    pub fn cached_tokens(&self) -> usize {
        self.cache.as_ref().map_or(0, ShardedCache::len)
    }

    /// The trust domain of the bundle.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The number of identities with keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no identity has keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `id` has keys.
    pub fn contains(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }

    /// Verifies `token` for `audience` at the current time.
    pub fn verify(
        &self,
        token: &str,
        audience: &SpiffeId,
        options: &VerifyOptions,
    ) -> Result<Caller, Error> {
        self.verify_at(token, audience, options, unix_now()?)
    }

    /// Verifies `token` for `audience` as if the time were `now` (seconds
    /// since the epoch).
    pub fn verify_at(
        &self,
        token: &str,
        audience: &SpiffeId,
        options: &VerifyOptions,
        now: i64,
    ) -> Result<Caller, Error> {
        if token.len() > options.max_token_bytes {
            return Err(TokenError::TooLarge {
                len: token.len(),
                max: options.max_token_bytes,
            }
            .into());
        }
        let Some(cache) = &self.cache else {
            return self.verify_signed(token, audience, options, now);
        };
        let hash = cache.hash(&[token.as_bytes(), audience.as_str().as_bytes()]);
        if let Some(caller) = cache.get(hash, now, |(cached, caller)| {
            (**cached == *token && caller.claims.aud == *audience).then(|| caller.clone())
        }) {
            // Exactly the time checks (and errors) of a first verification.
            let c = &caller.claims;
            check_times(c.exp, c.nbf, c.iat, now, options.leeway)?;
            return Ok(caller);
        }
        let caller = self.verify_signed(token, audience, options, now)?;
        let leeway = i64::try_from(options.leeway.as_secs()).unwrap_or(i64::MAX);
        cache.insert(
            hash,
            (token.into(), caller.clone()),
            caller.claims.exp.saturating_add(leeway),
            now,
        );
        Ok(caller)
    }

    /// Everything but the cache: decodes and checks the token, then its
    /// signature.
    fn verify_signed(
        &self,
        token: &str,
        audience: &SpiffeId,
        options: &VerifyOptions,
        now: i64,
    ) -> Result<Caller, Error> {
        // 1. Framing, header and claims.
        let mut parts = token.splitn(4, '.');
        let (Some(h64), Some(c64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed(
                "a JWT-SVID has exactly three dot-separated segments",
            )
            .into());
        };
        let signing_input = &token[..h64.len() + 1 + c64.len()];

        // Both segments are decoded into buffers on the stack when they fit
        // (they always do for tokens of the spiffile implementations).
        let mut header_buf = [0u8; 256];
        let mut claims_buf = [0u8; 768];
        let header_json = decode_segment_into(
            h64,
            &mut header_buf,
            "the header segment is not unpadded base64url",
        )?;
        let header: RawHeader<'_> = parse_object("header", &header_json)?;
        match &header.alg {
            Some(MaybeStr::Str(a)) if a == "ES256" => {}
            Some(other) => return Err(TokenError::Algorithm(other.quoted()).into()),
            None => return Err(TokenError::Algorithm("missing".into()).into()),
        }
        let kid = match &header.kid {
            Some(MaybeStr::Str(k)) if !k.is_empty() => &**k,
            Some(MaybeStr::Str(_)) => return Err(TokenError::KeyId("empty").into()),
            Some(_) => return Err(TokenError::KeyId("not a string").into()),
            None => return Err(TokenError::KeyId("missing").into()),
        };
        match &header.typ {
            None => {}
            Some(MaybeStr::Str(t)) if t == "JWT" || t == "JOSE" => {}
            Some(other) => return Err(TokenError::Type(other.quoted()).into()),
        }

        let claims_json = decode_segment_into(
            c64,
            &mut claims_buf,
            "the claims segment is not unpadded base64url",
        )?;
        let raw: RawClaims<'_> = parse_object("claims", &claims_json)?;
        let sub = match &raw.sub {
            Some(MaybeStr::Str(s)) => &**s,
            Some(_) => {
                return Err(TokenError::InvalidClaim {
                    claim: "sub",
                    problem: "is not a string",
                }
                .into());
            }
            None => return Err(TokenError::MissingClaim("sub").into()),
        };
        let aud = match &raw.aud {
            Some(MaybeStr::Str(a)) => &**a,
            Some(MaybeStr::Other(Value::Array(_))) => {
                return Err(TokenError::AudienceArray.into());
            }
            Some(_) => {
                return Err(TokenError::InvalidClaim {
                    claim: "aud",
                    problem: "is not a string",
                }
                .into());
            }
            None => return Err(TokenError::MissingClaim("aud").into()),
        };
        let exp = match &raw.exp {
            Some(v) => numeric_date(v, "exp", false)?,
            None => return Err(TokenError::MissingClaim("exp").into()),
        };
        let nbf = raw
            .nbf
            .as_ref()
            .map(|v| numeric_date(v, "nbf", true))
            .transpose()?;
        let iat = raw
            .iat
            .as_ref()
            .map(|v| numeric_date(v, "iat", true))
            .transpose()?;

        // 2. The claimed identity, looked up in the bundle.
        let Some((sub_id, keys)) = self.keys.get_key_value(sub) else {
            return Err(match SpiffeId::new(sub) {
                Ok(id) => Error::UnknownIdentity(id),
                Err(e) => TokenError::Subject(e).into(),
            });
        };

        // 3. Audience and time.
        if aud != audience.as_str() {
            return Err(TokenError::Audience {
                found: short(aud),
                expected: audience.clone(),
            }
            .into());
        }
        check_times(exp, nbf, iat, now, options.leeway)?;

        // 4. The signature, with keys bound to `sub` only: the one whose kid
        //    matches first, then the others.
        let mut sig = [0u8; 64];
        match URL_SAFE_NO_PAD.decode_slice(s64.as_bytes(), &mut sig) {
            Ok(64) => {}
            Ok(n) => return Err(TokenError::SignatureLength(n).into()),
            Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
                let n = URL_SAFE_NO_PAD
                    .decode(s64.as_bytes())
                    .map(|v| v.len())
                    .map_err(|_| {
                        TokenError::Malformed("the signature segment is not unpadded base64url")
                    })?;
                return Err(TokenError::SignatureLength(n).into());
            }
            Err(base64::DecodeSliceError::DecodeError(_)) => {
                return Err(TokenError::Malformed(
                    "the signature segment is not unpadded base64url",
                )
                .into());
            }
        }
        let msg = signing_input.as_bytes();
        let matching = keys.iter().filter(|k| &*k.kid == kid);
        let others = keys.iter().filter(|k| &*k.kid != kid);
        if !matching
            .chain(others)
            .any(|k| k.key.verify(msg, &sig).is_ok())
        {
            return Err(TokenError::Signature(sub_id.clone()).into());
        }

        Ok(Caller {
            claims: Arc::new(Claims {
                sub: sub_id.clone(),
                aud: audience.clone(),
                exp,
                iat,
                nbf,
                other: raw.other,
            }),
        })
    }
}
