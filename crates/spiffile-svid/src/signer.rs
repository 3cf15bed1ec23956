//! Minting: a workload's [`Signer`] and the tokens it keeps for reuse.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use spiffile_bundle::PublicKey;
use spiffile_id::SpiffeId;

use crate::cache::{SeenOnce, ShardedCache};
use crate::encode::{claims_json, header_prefix};
use crate::error::Error;
use crate::key::{KeyError, PrivateKey};
use crate::numeric_date::UnixTime;

/// Default token lifetime of [`Signer::mint`] callers (60 s).
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// The longest lifetime [`Signer::mint`] accepts (one day). The profile
/// discourages more than 300 s.
pub const MAX_TTL: Duration = Duration::from_secs(86_400);

/// The longest lifetime the profile recommends (300 s); longer ones are
/// accepted, up to [`MAX_TTL`], but a stolen token stays usable that long.
pub const RECOMMENDED_MAX_TTL: Duration = Duration::from_secs(300);

/// Checks that `ttl` is a lifetime a [`Signer`] mints with: more than zero
/// and at most [`MAX_TTL`]. Builders call it when they are built, so a bad
/// setting fails at startup rather than at the first token.
///
/// ```
/// use std::time::Duration;
/// assert!(spiffile_svid::check_ttl(Duration::from_secs(60)).is_ok());
/// let e = spiffile_svid::check_ttl(Duration::from_secs(100_000)).unwrap_err();
/// assert_eq!(e.to_string(), "token lifetime must be between 1 s and 86400 s, not 100000 s");
/// ```
pub fn check_ttl(ttl: Duration) -> Result<(), Error> {
    checked_ttl_secs(ttl).map(|_| ())
}

/// A token lifetime in whole seconds (rounded up), if it is one [`Signer`]
/// mints with.
fn checked_ttl_secs(ttl: Duration) -> Result<u64, Error> {
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(Error::InvalidTtl {
            requested: ttl,
            max: MAX_TTL,
        });
    }
    Ok(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
}

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
    /// The audiences (by keyed hash) asked for once: a token is kept for
    /// reuse from an audience's second request on. A service that calls a
    /// few peers again and again keeps every token from the second call on;
    /// one that calls a new audience each time never pays for keeping and
    /// evicting tokens nobody asks for again (about 7 % of a mint, in cold
    /// memory, by the paired benchmark).
    seen: SeenOnce,
}

/// A token kept for reuse by [`Signer::mint_or_reuse`].
///
/// The audience and the token share one allocation: a lookup compares the
/// audience and copies the token out of one block, and neither keeping nor
/// evicting an entry touches the reference counts of the caller's
/// `SpiffeId` (with many audiences, those are cold cache lines: they were
/// most of what a miss cost).
struct MintedToken {
    /// The audience, then the token.
    text: Box<str>,
    audience_len: usize,
    ttl_secs: u64,
    iat: i64,
}

impl MintedToken {
    fn new(audience: &SpiffeId, token: &str, ttl_secs: u64, iat: i64) -> Self {
        let mut text = String::with_capacity(audience.as_str().len() + token.len());
        text.push_str(audience.as_str());
        text.push_str(token);
        MintedToken {
            text: text.into_boxed_str(),
            audience_len: audience.as_str().len(),
            ttl_secs,
            iat,
        }
    }

    fn audience(&self) -> &str {
        self.text.get(..self.audience_len).unwrap_or("")
    }

    fn token(&self) -> &str {
        self.text.get(self.audience_len..).unwrap_or("")
    }
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
        Signer {
            header_prefix: header_prefix(key.public.kid()),
            id,
            key,
            rng: SystemRandom::new(),
            reuse_fraction: 0.0,
            minted: None,
            seen: SeenOnce::new(0),
        }
    }

    /// Lets [`Signer::mint_or_reuse`] hand out a token it minted before, for
    /// the same audience and lifetime, while at most `fraction` of the
    /// token's lifetime has passed (so at least `1 - fraction` of it is
    /// left). `fraction` is clamped to 1 (reuse until the token expires);
    /// 0, a negative value or NaN turns reuse off, which is the default of
    /// a new signer. [`DEFAULT_TOKEN_REUSE_FRACTION`] is one half.
    ///
    /// A token is kept from its audience's second request on: an audience
    /// asked for once (fan-out to many peers) costs no insert and evicts
    /// nothing.
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
    /// let _once = signer.mint_or_reuse(&billing, Duration::from_secs(60))?; // first request: not kept
    /// let first = signer.mint_or_reuse(&billing, Duration::from_secs(60))?;
    /// let again = signer.mint_or_reuse(&billing, Duration::from_secs(60))?;
    /// assert_eq!(first, again); // unless 30 s passed in between
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_token_reuse(mut self, fraction: f64) -> Self {
        if fraction > 0.0 {
            self.reuse_fraction = fraction.min(1.0);
            // Shards of 16: a full shard is scanned on each insert.
            self.minted = Some(ShardedCache::new(MINTED_TOKEN_CACHE_CAPACITY, 64));
            self.seen = SeenOnce::new(2 * MINTED_TOKEN_CACHE_CAPACITY);
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
        let now = UnixTime::now()?.as_secs();
        // `secs` is at most MAX_TTL, so the cast cannot wrap.
        self.sign_claims(audience, now, now.saturating_add(secs as i64))
    }

    /// Like [`Signer::mint`], but hands out the token minted before for the
    /// same audience and lifetime while it is young enough (see
    /// [`Signer::with_token_reuse`]). Without reuse, it is [`Signer::mint`].
    pub fn mint_or_reuse(&self, audience: &SpiffeId, ttl: Duration) -> Result<String, Error> {
        if self.minted.is_none() {
            return self.mint(audience, ttl);
        }
        self.mint_or_reuse_with_now(audience, ttl, UnixTime::now()?.as_secs())
    }

    /// [`Signer::mint_or_reuse`] as if the time were `now` (seconds since
    /// the epoch); public as [`crate::danger::mint_or_reuse_at`].
    pub(crate) fn mint_or_reuse_with_now(
        &self,
        audience: &SpiffeId,
        ttl: Duration,
        now: i64,
    ) -> Result<String, Error> {
        let secs = checked_ttl_secs(ttl)?;
        // `secs` is at most MAX_TTL, so the cast cannot wrap.
        let exp = now.saturating_add(secs as i64);
        let Some(cache) = &self.minted else {
            return self.sign_claims(audience, now, exp);
        };
        let hash = cache.hash(&[audience.as_str().as_bytes(), &secs.to_le_bytes()]);
        // The doorkeeper first: entries are admitted from their key's second
        // sighting, so a key it has not seen is not in the cache, and a
        // stream of new audiences skips the shard's lock and lookup (cold
        // memory after a signature) as well as the insert. The one cost: a
        // kept token whose slot another key has taken since is minted once
        // more (and found again from the next call).
        let seen = self.seen.seen_before(hash);
        if seen
            && let Some(token) = cache.get(hash, now, |m: &MintedToken| {
                (m.ttl_secs == secs && m.audience() == audience.as_str() && m.iat <= now)
                    .then(|| m.token().to_owned())
            })
        {
            return Ok(token);
        }
        let token = self.sign_claims(audience, now, exp)?;
        if !seen {
            return Ok(token);
        }
        // Reused while at least `keep` seconds of the lifetime are left.
        let keep = ((secs as f64) * (1.0 - self.reuse_fraction))
            .ceil()
            .max(1.0) as i64;
        cache.insert(
            hash,
            MintedToken::new(audience, &token, secs, now),
            exp.saturating_sub(keep).saturating_add(1),
            now,
        );
        Ok(token)
    }

    /// Signs the claims `{sub, aud, iat, exp}` (seconds since the epoch),
    /// with no lifetime limit; public as [`crate::danger::mint_at`].
    pub(crate) fn sign_claims(
        &self,
        audience: &SpiffeId,
        iat: i64,
        exp: i64,
    ) -> Result<String, Error> {
        let claims = claims_json(&self.id, audience, iat, exp);
        let mut token = String::with_capacity(self.header_prefix.len() + claims.len() * 4 / 3 + 92);
        token.push_str(&self.header_prefix);
        URL_SAFE_NO_PAD.encode_string(claims.as_bytes(), &mut token);
        let sig = self
            .key
            .pair
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| Error::Signing)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut token);
        Ok(token)
    }
}
