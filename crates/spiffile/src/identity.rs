//! The application-level API: one workload identity.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use spiffile_bundle::MAX_BUNDLE_BYTES;
use spiffile_id::SpiffeId;
use spiffile_svid::{
    Caller, DEFAULT_TOKEN_REUSE_FRACTION, DEFAULT_TTL, DEFAULT_VERIFY_CACHE_CAPACITY, JwtSvidSet,
    Signer, UnixTime, Verifier, VerifyOptions,
};
use spiffile_watch::{DirSource, WatchOptions, Watched};

use crate::Error;
use crate::files::{
    IdentityFiles, MAX_ID_FILE_BYTES, MAX_KEY_FILE_BYTES, read_limited, warn_if_exposed,
};
use crate::presented::{combine_tokens, no_identity, parse_token_file};
use crate::sources::{BundleSource, IdentitySources};
use crate::status::{FileStatus, Status};
use crate::trust::{Own, build_verifier, build_verifier_owned, file_name, parse_document};

/// Largest file read from a JWT-SVID directory (spiffe-helper writes its
/// X.509 files and bundles beside the tokens).
const MAX_JWT_SVID_DIR_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Files of spiffe-helper's directory that are never tokens, not even read:
/// certificates, keys, bundles, configuration.
fn may_hold_a_token(name: &str) -> bool {
    const NOT_TOKENS: [&str; 8] = [
        ".pem", ".key", ".crt", ".der", ".json", ".conf", ".hcl", ".pid",
    ];
    !NOT_TOKENS.iter().any(|ext| name.ends_with(ext))
}

/// Settings of an [`Identity`], set with [`Identity::builder`].
///
/// ```no_run
/// use std::time::Duration;
/// let identity = spiffile::Identity::builder()
///     .token_ttl(Duration::from_secs(30))
///     .leeway(Duration::from_secs(10))
///     .max_token_bytes(4096)
///     .verify_cache_capacity(10_000)
///     .token_reuse_fraction(0.25)
///     .from_env()?;
/// # Ok::<(), spiffile::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct IdentityBuilder {
    ttl: Duration,
    verify: VerifyOptions,
    caches: Caches,
    hot_reload: bool,
    watch: WatchOptions,
}

/// The cache settings, applied to every key and bundle snapshot: each
/// snapshot carries caches of its own, so nothing verified against an old
/// bundle, and no token minted with an old key, outlives its snapshot.
#[derive(Debug, Clone, Copy)]
struct Caches {
    verify_capacity: usize,
    token_reuse_fraction: f64,
}

impl Caches {
    fn verifier(&self, verifier: Verifier) -> Verifier {
        verifier.with_cache_capacity(self.verify_capacity)
    }
    fn signer(&self, signer: Signer) -> Signer {
        signer.with_token_reuse(self.token_reuse_fraction)
    }
}

impl Default for IdentityBuilder {
    fn default() -> Self {
        IdentityBuilder {
            ttl: DEFAULT_TTL,
            verify: VerifyOptions::default(),
            caches: Caches {
                verify_capacity: DEFAULT_VERIFY_CACHE_CAPACITY,
                token_reuse_fraction: DEFAULT_TOKEN_REUSE_FRACTION,
            },
            hot_reload: true,
            watch: WatchOptions::default(),
        }
    }
}

impl IdentityBuilder {
    /// Lifetime of tokens minted by [`Identity::token`] (default 60 s; the
    /// profile discourages more than 300 s). Checked when the identity is
    /// loaded: 0 or more than a day is [`Error::InvalidTtl`].
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Clock leeway for `exp`, `nbf` and `iat` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.verify = self.verify.with_leeway(leeway);
        self
    }

    /// Largest token accepted, in bytes (default 8 KiB); longer tokens are
    /// refused before any decoding.
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.verify = self.verify.with_max_token_bytes(max);
        self
    }

    /// Size of the verified-token cache: how many accepted tokens
    /// [`Identity::verify`] remembers so that a token seen again is accepted
    /// without a signature check (default
    /// [`DEFAULT_VERIFY_CACHE_CAPACITY`](spiffile_svid::DEFAULT_VERIFY_CACHE_CAPACITY),
    /// 4096; 0 turns the cache off).
    ///
    /// Entries are keyed by the whole token and the audience, live only
    /// until the token's `exp` plus the leeway (times are checked again on
    /// every hit), and are dropped with the bundle they were verified
    /// against: the moment a changed bundle is loaded, a revoked identity is
    /// refused even for tokens accepted a moment before. Refused tokens are
    /// never remembered, and an accepted one is remembered from its second
    /// verification on (a token presented once costs no insert). The cost
    /// is memory (about 1 KiB per token held) and one keyed hash of the
    /// token on every call.
    pub fn verify_cache_capacity(mut self, capacity: usize) -> Self {
        self.caches.verify_capacity = capacity;
        self
    }

    /// Reuse of minted tokens by [`Identity::token`] and
    /// [`Identity::token_with_ttl`]: a token for the same audience and
    /// lifetime is handed out again while at most `fraction` of its lifetime
    /// has passed (default one half, so a reused token has at least half of
    /// its lifetime left; at most 1; 0 turns reuse off and mints on every
    /// call). A token is kept from its audience's second request on, so an
    /// audience asked for only once costs nothing to keep.
    ///
    /// A token is never reused after the key changes. Reuse means a receiver
    /// sees the same token several times, which is what makes its
    /// verified-token cache work; if something downstream treats tokens as
    /// single-use, turn reuse off.
    pub fn token_reuse_fraction(mut self, fraction: f64) -> Self {
        self.caches.token_reuse_fraction = fraction;
        self
    }

    /// Whether the key and bundle files are followed while the service runs
    /// (default: yes). When off, they change only on [`Identity::reload`].
    pub fn hot_reload(mut self, enabled: bool) -> Self {
        self.hot_reload = enabled;
        self
    }

    /// How often the files are checked in case a file-system event was
    /// missed or events are unavailable (default 1 s, at most 2 s).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.watch = self.watch.poll_interval(interval);
        self
    }

    /// Whether file-system events (inotify on Linux) are used (default: yes).
    /// Without them, changes are seen within the poll interval.
    pub fn file_events(mut self, enabled: bool) -> Self {
        self.watch = self.watch.use_notify(enabled);
        self
    }

    /// Whether a token from a per-domain authority (SPIRE) whose `aud` names
    /// several audiences is accepted when this workload is one of them
    /// (default: no; a one-element array is always accepted).
    ///
    /// **This weakens replay protection**: a token for several audiences
    /// can be replayed by any one of them against every other. Tokens from
    /// spiffile (per-identity) bundles must carry one audience string
    /// whatever this says. See
    /// [`VerifyOptions::multiple_audiences`](spiffile_svid::VerifyOptions::multiple_audiences).
    pub fn accept_multiple_audiences(mut self, accept: bool) -> Self {
        self.verify = self.verify.multiple_audiences(accept);
        self
    }

    /// Loads the identity named by the `SPIFFILE_*` environment variables
    /// (see [`IdentitySources::from_vars`]).
    pub fn from_env(self) -> Result<Identity, Error> {
        self.load_sources(IdentitySources::from_env()?)
    }

    /// Loads the identity from three files.
    pub fn from_files(
        self,
        id_file: impl AsRef<Path>,
        key_file: impl AsRef<Path>,
        bundle_file: impl AsRef<Path>,
    ) -> Result<Identity, Error> {
        self.load(IdentityFiles {
            id: id_file.as_ref().to_owned(),
            key: key_file.as_ref().to_owned(),
            bundle: bundle_file.as_ref().to_owned(),
        })
    }

    /// Loads the identity from a directory holding `id`, `key.pem` and
    /// `bundle.json`, or from a service directory of a provisioning root
    /// (`ROOT/services/NAME`, see [`IdentityFiles::from_dir`]).
    pub fn from_dir(self, dir: impl AsRef<Path>) -> Result<Identity, Error> {
        self.load(IdentityFiles::from_dir(dir)?)
    }

    /// Loads the identity from the given files.
    ///
    /// The settings are checked first: a token lifetime outside 1 s to one
    /// day is [`Error::InvalidTtl`] here, not at the first token; one above
    /// the profile's recommended 300 s is logged as a warning.
    pub fn load(self, files: IdentityFiles) -> Result<Identity, Error> {
        self.load_sources(files.into())
    }

    /// Loads the identity from any configuration: the profile's three
    /// files, a bundle directory, SPIRE's files through spiffe-helper, a
    /// verify-only identity (see [`IdentitySources`]).
    pub fn load_sources(self, sources: IdentitySources) -> Result<Identity, Error> {
        spiffile_svid::check_ttl(self.ttl)?;
        if self.ttl > spiffile_svid::RECOMMENDED_MAX_TTL {
            tracing::warn!(
                target: "spiffile",
                "token lifetime {} s is longer than the 300 s the profile recommends at most: a stolen token stays usable that long",
                self.ttl.as_secs()
            );
        }
        let watch = if self.hot_reload {
            self.watch.clone()
        } else {
            self.watch.clone().follow(false)
        };
        let caches = self.caches;

        // Who this workload is: the identity file, or its tokens' `sub`.
        let own = Arc::new(OnceLock::new());
        if let Some(path) = &sources.id_file {
            let id = read_id(path)?;
            let _ = own.set(Own {
                id,
                from: path.clone(),
            });
        }
        // What it presents: its tokens from SPIRE, or those it mints.
        let presenter = match (&sources.jwt_svid_dir, &sources.key_file) {
            (Some(dir), _) => {
                let own = Arc::clone(&own);
                let set = Watched::dir(
                    DirSource::new(dir).filter(may_hold_a_token),
                    parse_token_file,
                    move |entries| combine_tokens(entries, &own),
                    watch.clone().max_size(MAX_JWT_SVID_DIR_FILE_BYTES),
                )
                .map_err(Error::from_watch)?;
                Presenter::JwtSvids {
                    dir: dir.clone(),
                    set,
                }
            }
            (None, Some(key_path)) => {
                let Some(own) = own.get() else {
                    return Err(Error::NotConfigured(format!(
                        "the key file {} is given without an identity file: set SPIFFILE_ID_FILE",
                        key_path.display()
                    )));
                };
                let (key_path, key_id) = (key_path.clone(), own.id.clone());
                let signer = Watched::new(
                    key_path.clone(),
                    move |bytes: &[u8]| {
                        warn_if_exposed(&key_path);
                        parse_key(bytes, &key_path, &key_id).map(|k| caches.signer(k))
                    },
                    watch.clone().max_size(MAX_KEY_FILE_BYTES),
                )
                .map_err(Error::from_watch)?;
                Presenter::Key(signer)
            }
            (None, None) => Presenter::Nothing,
        };
        let own = match own.get() {
            Some(own) => own.clone(),
            None => {
                return Err(no_identity(
                    sources.jwt_svid_dir.clone().unwrap_or_default(),
                ));
            }
        };

        // What it trusts.
        let verifier = watch_bundles(&sources.bundle, &own, caches, &watch)?;

        let id_watch = match (&sources.id_file, self.hot_reload) {
            (Some(path), true) => Some(watch_id_file(path, &own.id, watch)?),
            _ => None,
        };
        let id = own.id;
        match &presenter {
            Presenter::Key(_) if !verifier.load().contains(&id) => tracing::warn!(
                target: "spiffile",
                "identity `{id}` has no keys in the bundle {}: peers will refuse its tokens until it is added",
                sources.bundle.path().display()
            ),
            // A verify-only identity is a configuration of its own, not a
            // fault: said at info level, and by `token()` if it is asked.
            Presenter::Nothing => tracing::info!(
                target: "spiffile",
                "identity `{id}` has no private key and no JWT-SVID directory: it verifies tokens but cannot present any"
            ),
            _ => {}
        }
        Ok(Identity {
            inner: Arc::new(Inner {
                id,
                sources,
                ttl: self.ttl,
                verify: self.verify,
                verifier,
                presenter,
                _id_watch: id_watch,
            }),
        })
    }
}

/// Follows the bundle file or directory: every document in any format, one
/// verifier over all of them.
fn watch_bundles(
    source: &BundleSource,
    own: &Own,
    caches: Caches,
    watch: &WatchOptions,
) -> Result<Watched<Verifier, Error>, Error> {
    let own = own.clone();
    let options = watch.clone().max_size(MAX_BUNDLE_BYTES as u64);
    let watched = match source {
        BundleSource::File { path, trust_domain } => {
            let (path, td) = (path.clone(), trust_domain.clone());
            let name = file_name(&path).to_owned();
            Watched::new(
                path.clone(),
                move |bytes: &[u8]| {
                    let doc = parse_document(bytes, &name, &path, td.as_ref())?;
                    build_verifier_owned(&path, doc, &own).map(|v| caches.verifier(v))
                },
                options,
            )
        }
        BundleSource::Dir(dir) => Watched::dir(
            DirSource::new(dir).pattern("*.json"),
            |file| parse_document(file.bytes(), file.name(), file.path(), None),
            move |entries| {
                build_verifier(entries.iter().map(|e| (e.path(), &**e.value())), &own)
                    .map(|v| caches.verifier(v))
            },
            options,
        ),
    };
    watched.map_err(Error::from_watch)
}

/// The identity file is read once: a process cannot change who it is. If
/// the file changes anyway, say that a restart is needed. (Followed by the
/// same process-wide worker as the key and bundle: no thread of its own.)
fn watch_id_file(
    path: &Path,
    started_as: &SpiffeId,
    watch: WatchOptions,
) -> Result<Watched<(), Error>, Error> {
    let (started_as, id_path) = (started_as.clone(), path.to_owned());
    Watched::new(
        path,
        move |bytes: &[u8]| {
            let now = std::str::from_utf8(bytes).map(str::trim_end).unwrap_or("");
            if now != started_as.as_str() {
                tracing::warn!(
                    target: "spiffile",
                    "identity file {} changed (it no longer says `{started_as}`); this process keeps its identity until it is restarted",
                    id_path.display()
                );
            }
            Ok(())
        },
        watch.max_size(MAX_ID_FILE_BYTES),
    )
    .map_err(Error::from_watch)
}

/// Reads the identity file: one SPIFFE ID, trailing whitespace ignored.
pub(crate) fn read_id(path: &Path) -> Result<SpiffeId, Error> {
    let bytes = read_limited(path, MAX_ID_FILE_BYTES)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::BadFile {
        path: path.to_owned(),
        problem: "is not UTF-8 text".into(),
    })?;
    SpiffeId::new(text.trim_end()).map_err(|source| Error::InvalidSpiffeId {
        context: format!("identity file {}", path.display()),
        source,
    })
}

/// Parses a private key file into a signer for `id`.
pub(crate) fn parse_key(bytes: &[u8], path: &Path, id: &SpiffeId) -> Result<Signer, Error> {
    Signer::from_pkcs8_pem(id.clone(), bytes).map_err(|source| Error::Key {
        path: path.to_owned(),
        source,
    })
}

/// What an identity presents to the services it calls.
enum Presenter {
    /// Tokens it mints with its own key (spiffile).
    Key(Watched<Signer, Error>),
    /// Tokens a central issuer gave it (SPIRE, through spiffe-helper).
    JwtSvids {
        dir: PathBuf,
        set: Watched<JwtSvidSet, Error>,
    },
    /// Nothing: a verify-only identity.
    Nothing,
}

struct Inner {
    id: SpiffeId,
    sources: IdentitySources,
    ttl: Duration,
    verify: VerifyOptions,
    verifier: Watched<Verifier, Error>,
    presenter: Presenter,
    /// Kept alive only to warn when the identity file changes.
    _id_watch: Option<Watched<(), Error>>,
}

/// A workload identity: its SPIFFE ID, its signing key, and the trust bundle.
///
/// `Identity` is `Send + Sync` and cheap to clone (one reference count):
/// share it across tasks and threads. Minting and verifying read an
/// immutable snapshot of the key and bundle with one atomic load; they make
/// no file-system calls.
///
/// The key and bundle files are followed while the identity lives (see
/// [`IdentityBuilder::hot_reload`]): a rotated key or a revoked identity takes
/// effect within milliseconds of the file changing, whichever way the file is
/// replaced (rename, in-place rewrite, delete and recreate, Kubernetes
/// `..data` swap). A file that is missing, half-written or invalid never
/// replaces a good snapshot; [`Identity::status`] reports it. The watcher
/// stops when the last clone is dropped.
#[derive(Clone)]
pub struct Identity {
    inner: Arc<Inner>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("id", &self.inner.id)
            .field("sources", &self.inner.sources)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Settings beyond the defaults (token lifetime, leeway, token size).
    pub fn builder() -> IdentityBuilder {
        IdentityBuilder::default()
    }

    /// Loads the identity named by the environment: `SPIFFILE_ID_FILE`,
    /// `SPIFFILE_KEY_FILE`, `SPIFFILE_BUNDLE_FILE`, or `SPIFFILE_DIR` holding
    /// `id`, `key.pem` and `bundle.json` (each explicit variable wins over the
    /// directory; an empty variable counts as unset).
    pub fn from_env() -> Result<Identity, Error> {
        IdentityBuilder::default().from_env()
    }

    /// Loads the identity from three files.
    pub fn from_files(
        id_file: impl AsRef<Path>,
        key_file: impl AsRef<Path>,
        bundle_file: impl AsRef<Path>,
    ) -> Result<Identity, Error> {
        IdentityBuilder::default().from_files(id_file, key_file, bundle_file)
    }

    /// Loads the identity from a directory holding `id`, `key.pem` and
    /// `bundle.json` (the `SPIFFILE_DIR` form), or from a service directory
    /// of a provisioning root, `ROOT/services/NAME`, whose bundle is
    /// `ROOT/bundle.json`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let root = dir.path();
    /// # spiffile::provision::init_root(root, "example.org")?;
    /// # spiffile::provision::add_service(root, "orders")?;
    /// let orders = spiffile::Identity::from_dir(root.join("services/orders"))?;
    /// assert_eq!(orders.id().as_str(), "spiffe://example.org/orders");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Identity, Error> {
        IdentityBuilder::default().from_dir(dir)
    }

    /// This workload's SPIFFE ID.
    pub fn id(&self) -> &SpiffeId {
        &self.inner.id
    }

    /// Where this identity's files are.
    pub fn sources(&self) -> &IdentitySources {
        &self.inner.sources
    }

    /// The `kid` of the current signing key; `None` for an identity without
    /// a key (it presents SPIRE's tokens, or only verifies).
    pub fn kid(&self) -> Option<String> {
        match &self.inner.presenter {
            Presenter::Key(signer) => Some(signer.load().kid().to_owned()),
            _ => None,
        }
    }

    /// A token for calling `audience`.
    ///
    /// * With a key: minted with the configured lifetime (60 s by default);
    ///   a token minted for the same audience is reused while it has more
    ///   than half its lifetime left (see
    ///   [`IdentityBuilder::token_reuse_fraction`]).
    /// * With a JWT-SVID directory (SPIRE): the freshest unexpired token of
    ///   the directory for that audience; none is [`Error::NoJwtSvid`],
    ///   naming the audience and the directory.
    /// * With neither: [`Error::NoSigningKey`].
    pub fn token(&self, audience: &SpiffeId) -> Result<String, Error> {
        self.token_with_ttl(audience, self.inner.ttl)
    }

    /// A token for calling `audience`, valid for `ttl` (reused like
    /// [`Identity::token`]). Tokens from a JWT-SVID directory keep the
    /// lifetime SPIRE gave them: `ttl` is not used for them.
    pub fn token_with_ttl(&self, audience: &SpiffeId, ttl: Duration) -> Result<String, Error> {
        match &self.inner.presenter {
            Presenter::Key(signer) => Ok(signer.load().mint_or_reuse(audience, ttl)?),
            Presenter::JwtSvids { dir, set } => {
                let now = UnixTime::now()?.as_secs();
                match set.load().freshest(audience.as_str(), now) {
                    Ok(svid) => Ok(svid.token().to_owned()),
                    Err(problem) => Err(Error::NoJwtSvid {
                        audience: audience.clone(),
                        dir: dir.clone(),
                        problem,
                    }),
                }
            }
            Presenter::Nothing => Err(Error::NoSigningKey {
                audience: audience.clone(),
            }),
        }
    }

    /// Verifies an inbound token addressed to this workload and returns the
    /// verified caller.
    ///
    /// An unknown `sub` is [`Error::UnknownIdentity`]; any other refusal is
    /// [`Error::InvalidToken`] with a [`crate::Reason`].
    pub fn verify(&self, token: &str) -> Result<Caller, Error> {
        self.verify_for(token, &self.inner.id)
    }

    /// Verifies a token addressed to `audience` instead of this workload's
    /// own ID.
    pub fn verify_for(&self, token: &str, audience: &SpiffeId) -> Result<Caller, Error> {
        Ok(self
            .inner
            .verifier
            .load()
            .verify(token, audience, &self.inner.verify)?)
    }

    /// Re-reads every file and directory now. One that cannot be used
    /// leaves its current snapshot in place and is reported as the error.
    ///
    /// With hot reload on (the default) this is never needed; it makes a
    /// change visible synchronously, e.g. in tests.
    pub fn reload(&self) -> Result<(), Error> {
        let bundle = self.inner.verifier.reload().map(drop);
        let presented = match &self.inner.presenter {
            Presenter::Key(signer) => signer.reload().map(drop),
            Presenter::JwtSvids { set, .. } => set.reload().map(drop),
            Presenter::Nothing => Ok(()),
        };
        bundle.and(presented).map_err(Error::from_watch)
    }

    /// The generation, load time and health of every file and directory in
    /// play (bundles, key, JWT-SVIDs, identity file), for health endpoints
    /// and metrics.
    pub fn status(&self) -> Status {
        let inner = &self.inner;
        let bundle = inner.verifier.status();
        let (key, jwt_svids) = match &inner.presenter {
            Presenter::Key(signer) => (Some(FileStatus::of(signer.status())), None),
            Presenter::JwtSvids { set, .. } => (None, Some(set.status())),
            Presenter::Nothing => (None, None),
        };
        Status::new(
            bundle,
            key,
            jwt_svids,
            inner._id_watch.as_ref().map(|w| FileStatus::of(w.status())),
        )
    }

    /// The current bundle generation: 1 at startup, +1 for each change
    /// (one atomic load). Anything derived from the bundle is stale when it
    /// changes.
    pub fn bundle_generation(&self) -> u64 {
        self.inner.verifier.generation()
    }

    /// The current key generation (see [`Identity::bundle_generation`]); 0
    /// for an identity without a key.
    pub fn key_generation(&self) -> u64 {
        match &self.inner.presenter {
            Presenter::Key(signer) => signer.generation(),
            _ => 0,
        }
    }

    /// The trust domains this identity verifies tokens of, each with its
    /// kind of authority, source file and keys.
    pub fn trust_domains(&self) -> Vec<spiffile_svid::TrustDomainInfo> {
        self.inner.verifier.load().trust_domains().collect()
    }
}

// Servers share an Identity across threads and tasks: checked at compile time.
const _: fn() = || {
    fn check<T: Send + Sync + Clone>() {}
    check::<Identity>();
};
