//! Verification: a bundle prepared as a [`Verifier`], its cache of accepted
//! tokens, and the order of the checks (each step in [`steps`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use spiffile_bundle::Bundle;
use spiffile_id::{SpiffeId, TrustDomain};

use crate::cache::{SeenOnce, ShardedCache};
use crate::claims::{Caller, Claims};
use crate::decode::decode_segment_into;
use crate::error::Error;
use crate::numeric_date::UnixTime;

mod steps;

pub(crate) use steps::split_segments;

/// Default clock leeway of verification (30 s).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default maximum token size (8 KiB), checked before any decoding.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

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
    /// These options with the clock leeway applied to `exp`, `nbf` and
    /// `iat` set to `leeway`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = spiffile_svid::VerifyOptions::new().with_leeway(Duration::from_secs(5));
    /// assert_eq!(options.leeway(), Duration::from_secs(5));
    /// ```
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }
    /// These options with the largest accepted token set to `max` bytes.
    pub fn with_max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = max;
        self
    }
    /// The clock leeway.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }
    /// The largest accepted token, in bytes.
    pub fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }
}

/// A key bound to an identity, in the form `ring` verifies with.
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
    /// Tokens verified once (by keyed hash): a token is kept in the cache
    /// from its second verification on, so a stream of tokens that are never
    /// presented again (a client minting per request) costs no insert.
    seen: SeenOnce,
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
            seen: SeenOnce::new(0),
        }
    }

    /// Builds a verifier from `bundle`, consuming it: each identity's keys
    /// are freed as they are converted, so a large bundle and its verifier
    /// never both exist whole (the peak memory of a load).
    pub fn from_bundle(bundle: Bundle) -> Self {
        let trust_domain = bundle.trust_domain().clone();
        let keys = bundle
            .into_identities()
            .map(|(id, keys)| {
                let bound: Box<[BoundKey]> = keys
                    .into_iter()
                    .map(|k| BoundKey {
                        kid: k.kid().into(),
                        key: UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, k.to_sec1()),
                    })
                    .collect();
                (id, bound)
            })
            .collect();
        Verifier {
            trust_domain,
            keys,
            cache: None,
            seen: SeenOnce::new(0),
        }
    }

    /// Remembers up to about `capacity` accepted tokens (0: none, the
    /// default of [`Verifier::new`]), so that a token presented again
    /// verifies without a signature check. A token is remembered from its
    /// second verification on: a token that is never presented again (a
    /// client that mints per request) costs no insert.
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
        self.seen = SeenOnce::new(if capacity > 0 { 2 * capacity } else { 0 });
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
    pub fn contains(&self, id: &SpiffeId) -> bool {
        self.keys.contains_key(id)
    }

    /// The kids bound to `id`, in bundle order (current first); empty when
    /// `id` has no keys.
    pub fn kids(&self, id: &SpiffeId) -> impl ExactSizeIterator<Item = &str> {
        self.keys
            .get(id)
            .map_or(&[][..], |k| &k[..])
            .iter()
            .map(|k| &*k.kid)
    }

    /// Verifies `token` for `audience` at the current time.
    pub fn verify(
        &self,
        token: &str,
        audience: &SpiffeId,
        options: &VerifyOptions,
    ) -> Result<Caller, Error> {
        self.verify_with_now(token, audience, options, UnixTime::now()?.as_secs())
    }

    /// Verifies `token` for `audience` as if the time were `now` (seconds
    /// since the epoch); public as [`crate::danger::verify_at`].
    pub(crate) fn verify_with_now(
        &self,
        token: &str,
        audience: &SpiffeId,
        options: &VerifyOptions,
        now: i64,
    ) -> Result<Caller, Error> {
        steps::check_size(token, options.max_token_bytes)?;
        let Some(cache) = &self.cache else {
            return self.verify_signed(token, audience, options, now);
        };
        let hash = cache.hash(&[token.as_bytes(), audience.as_str().as_bytes()]);
        // A token the doorkeeper has not recorded is not in the cache, so a
        // fresh one skips the shard's lock and lookup. Only looked at here:
        // a token is recorded once it verifies, so refused input never
        // moves the table.
        if self.seen.contains(hash)
            && let Some(caller) = cache.get(hash, now, |(cached, caller)| {
                (**cached == *token && caller.claims.aud == *audience).then(|| caller.clone())
            })
        {
            // Exactly the time checks (and errors) of a first verification.
            let c = &caller.claims;
            steps::check_times(c.exp, c.nbf, c.iat, now, options.leeway)?;
            return Ok(caller);
        }
        let caller = self.verify_signed(token, audience, options, now)?;
        if !self.seen.seen_before(hash) {
            return Ok(caller);
        }
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
    /// signature. The steps run in this order, so a token wrong in several
    /// ways is refused for the first of them.
    fn verify_signed(
        &self,
        token: &str,
        audience: &SpiffeId,
        options: &VerifyOptions,
        now: i64,
    ) -> Result<Caller, Error> {
        let segments = steps::split_segments(token)?;
        // Both segments are decoded into buffers on the stack when they fit
        // (they always do for tokens of the spiffile implementations).
        let mut header_buf = [0u8; 256];
        let mut claims_buf = [0u8; 768];
        let header_json = decode_segment_into(
            segments.header,
            &mut header_buf,
            "the header segment is not unpadded base64url",
        )?;
        let kid = steps::check_header(&header_json)?;
        let claims_json = decode_segment_into(
            segments.claims,
            &mut claims_buf,
            "the claims segment is not unpadded base64url",
        )?;
        let claims = steps::read_claims(&claims_json)?;
        let (sub, keys) = steps::look_up_subject(&self.keys, &claims.sub)?;
        steps::check_audience(&claims.aud, audience)?;
        steps::check_times(claims.exp, claims.nbf, claims.iat, now, options.leeway)?;
        steps::check_signature(keys, &kid, segments.signing_input, segments.signature, sub)?;
        Ok(Caller {
            claims: Arc::new(Claims {
                sub: sub.clone(),
                aud: audience.clone(),
                exp: claims.exp,
                iat: claims.iat,
                nbf: claims.nbf,
                other: claims.other,
            }),
        })
    }
}
