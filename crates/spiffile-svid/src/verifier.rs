//! Verification: a trust set prepared as a [`Verifier`], its cache of
//! accepted tokens, and the order of the checks (each step in [`steps`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use spiffile_bundle::Bundle;
use spiffile_id::SpiffeId;

use crate::cache::{SeenOnce, ShardedCache};
use crate::claims::{Caller, Claims};
use crate::decode::decode_segment_into;
use crate::error::Error;
use crate::numeric_date::UnixTime;

pub(crate) mod steps;
mod trust_set;

pub use trust_set::{AuthorityKind, TrustDomainInfo, TrustSetBuilder, TrustSetError};
use trust_set::{Domain, per_identity, per_identity_owned};

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
    multiple_audiences: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            leeway: DEFAULT_LEEWAY,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            multiple_audiences: false,
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
    /// Whether a token of a per-domain authority (SPIRE) whose `aud` is an
    /// array of several audiences is accepted when the expected audience is
    /// one of them (default: no).
    ///
    /// **This weakens replay protection**: a token minted for several
    /// audiences can be replayed by any one of them against every other.
    /// Turn it on only for a sender you know asks SPIRE for several
    /// audiences on purpose. A one-element array is always accepted from a
    /// per-domain authority (that is how SPIRE writes a single audience);
    /// tokens of per-identity (spiffile) authorities must carry one
    /// audience string whatever this says.
    pub fn multiple_audiences(mut self, accept: bool) -> Self {
        self.multiple_audiences = accept;
        self
    }
    /// Whether several audiences are accepted (see
    /// [`VerifyOptions::multiple_audiences`]).
    pub fn get_multiple_audiences(&self) -> bool {
        self.multiple_audiences
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

/// Verifies JWT-SVIDs offline against a trust set: for each trust domain,
/// exactly one authority.
///
/// * **per identity** (a spiffile [`Bundle`]): a key validates tokens only
///   for the SPIFFE ID it is bound to;
/// * **per domain** (a SPIFFE bundle, [`spiffile_bundle::JwtBundle`], e.g.
///   SPIRE's): any of its keys validates tokens for SPIFFE IDs of that trust
///   domain only, the one the token's `kid` names.
///
/// The token's `sub` selects the trust domain, then its authority, then the
/// keys: no key of one trust domain can ever validate a token whose `sub` is
/// in another, and in a per-identity trust domain no key bound to another
/// identity can. Keys are converted once, when the verifier is built; a
/// lookup is a hash of the trust domain, then (per identity) of the `sub`.
///
/// [`Verifier::new`] builds the verifier of one spiffile bundle; build one
/// over several trust domains with [`Verifier::builder`].
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
    /// The trust set, by trust domain name.
    domains: HashMap<Box<str>, Domain>,
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
        let mut domains: Vec<&str> = self.domains.keys().map(|d| &**d).collect();
        domains.sort_unstable();
        f.debug_struct("Verifier")
            .field("trust_domains", &domains)
            .field("identities", &self.len())
            .field(
                "cache_capacity",
                &self.cache.as_ref().map_or(0, ShardedCache::capacity),
            )
            .finish()
    }
}

impl Verifier {
    /// Builds a verifier over the identities and keys of one spiffile
    /// bundle: a trust set of one per-identity authority.
    pub fn new(bundle: &Bundle) -> Self {
        let domain = per_identity("".into(), bundle);
        let mut domains = HashMap::with_capacity(1);
        domains.insert(domain.trust_domain.as_str().into(), domain);
        Verifier {
            domains,
            cache: None,
            seen: SeenOnce::new(0),
        }
    }

    /// Builds a verifier from `bundle`, consuming it: each identity's keys
    /// are freed as they are converted, so a large bundle and its verifier
    /// never both exist whole (the peak memory of a load).
    pub fn from_bundle(bundle: Bundle) -> Self {
        let domain = per_identity_owned("".into(), bundle);
        let mut domains = HashMap::with_capacity(1);
        domains.insert(domain.trust_domain.as_str().into(), domain);
        Verifier {
            domains,
            cache: None,
            seen: SeenOnce::new(0),
        }
    }

    /// Starts a trust set of several trust domains, each from one source: a
    /// trust domain offered twice is a [`TrustSetError`] naming both.
    ///
    /// ```
    /// use spiffile_bundle::{Bundle, JwtBundle};
    /// use spiffile_svid::{AuthorityKind, Signer, Verifier, VerifyOptions, generate_pkcs8_pem};
    /// use std::time::Duration;
    ///
    /// // example.org: spiffile, each workload signs for itself.
    /// let orders = Signer::from_pkcs8_pem("spiffe://example.org/orders".parse()?, generate_pkcs8_pem()?.as_bytes())?;
    /// let mut spiffile = Bundle::new("example.org".parse()?);
    /// spiffile.add_key(orders.id(), orders.public_key().clone())?;
    /// // spire.test: one issuer signs for the whole trust domain.
    /// let issuer = Signer::from_pkcs8_pem("spiffe://spire.test/issuer".parse()?, generate_pkcs8_pem()?.as_bytes())?;
    /// let mut spire = JwtBundle::new("spire.test".parse()?);
    /// spire.add_key(issuer.public_key().clone()).unwrap();
    ///
    /// let verifier = Verifier::builder()
    ///     .bundle("/etc/spiffile/bundle.json", &spiffile)?
    ///     .jwt_bundle("/run/spire/spire.test.json", &spire)?
    ///     .build();
    /// let kinds: Vec<_> = verifier.trust_domains().map(|d| d.kind).collect();
    /// assert_eq!(kinds, [AuthorityKind::PerIdentity, AuthorityKind::PerDomain]);
    ///
    /// let billing = "spiffe://example.org/billing".parse()?;
    /// let token = orders.mint(&billing, Duration::from_secs(60))?;
    /// assert_eq!(verifier.verify(&token, &billing, &VerifyOptions::default())?.id(), orders.id());
    ///
    /// // The same trust domain twice is refused, naming both sources.
    /// let err = Verifier::builder()
    ///     .bundle("a.json", &spiffile)?
    ///     .bundle("b.json", &spiffile)
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("offered by both a.json and b.json"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> TrustSetBuilder {
        TrustSetBuilder::default()
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

    /// Each trust domain of the set, sorted by name: its kind of authority,
    /// its source, its keys.
    pub fn trust_domains(&self) -> impl Iterator<Item = TrustDomainInfo> + '_ {
        let mut domains: Vec<&Domain> = self.domains.values().collect();
        domains.sort_unstable_by(|a, b| a.trust_domain.cmp(&b.trust_domain));
        domains.into_iter().map(Domain::info)
    }

    /// Whether the set holds this trust domain (by name).
    pub fn trusts_domain(&self, trust_domain: &str) -> bool {
        self.domains.contains_key(trust_domain)
    }

    /// The number of identities with keys in per-identity trust domains.
    pub fn len(&self) -> usize {
        self.domains
            .values()
            .map(|d| match &d.authority {
                trust_set::Authority::PerIdentity(map) => map.len(),
                trust_set::Authority::PerDomain { .. } => 0,
            })
            .sum()
    }

    /// Whether no trust domain has any key.
    pub fn is_empty(&self) -> bool {
        self.domains.values().all(|d| match &d.authority {
            trust_set::Authority::PerIdentity(map) => map.is_empty(),
            trust_set::Authority::PerDomain { keys, .. } => keys.is_empty(),
        })
    }

    /// Whether tokens claiming `id` can be checked at all: `id` has keys in
    /// a per-identity trust domain, or is a workload of a per-domain one.
    pub fn contains(&self, id: &SpiffeId) -> bool {
        steps::look_up_subject(&self.domains, id.as_str()).is_ok()
    }

    /// The kids bound to `id` in a per-identity trust domain, in bundle
    /// order (current first); empty when `id` has no keys of its own (a
    /// workload of a per-domain trust domain has none: its domain's keys
    /// speak for every workload of the domain).
    pub fn kids(&self, id: &SpiffeId) -> impl ExactSizeIterator<Item = &str> {
        let keys = match steps::look_up_subject(&self.domains, id.as_str()) {
            Ok(subject) if subject.domain.is_none() => subject.keys,
            _ => &[][..],
        };
        keys.iter().map(|k| &*k.kid)
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
        let subject = steps::look_up_subject(&self.domains, &claims.sub)?;
        steps::check_audience(&claims.aud, audience, &subject, options.multiple_audiences)?;
        steps::check_times(claims.exp, claims.nbf, claims.iat, now, options.leeway)?;
        steps::check_signature(&subject, &kid, segments.signing_input, segments.signature)?;
        Ok(Caller {
            claims: Arc::new(Claims {
                sub: subject.id,
                aud: audience.clone(),
                exp: claims.exp,
                iat: claims.iat,
                nbf: claims.nbf,
                other: claims.other,
            }),
        })
    }
}
