//! The facade's error type.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use spiffile_bundle::{BundleError, FormatError};
use spiffile_id::{IdError, SpiffeId, TrustDomain};
use spiffile_svid::{KeyError, MissingJwtSvid, Reason, TokenError, TrustSetError};

/// Everything that can go wrong in `spiffile`, one variant per kind of
/// problem, so a program can match on the reason.
///
/// Messages name the file, claim or member at fault and never contain key
/// material or the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A string that should be a SPIFFE ID is not one.
    #[error("invalid SPIFFE ID in {context}: it {source}")]
    InvalidSpiffeId {
        /// Where the ID came from (a file, an argument).
        context: String,
        /// What is wrong with it.
        source: IdError,
    },
    /// The bundle document cannot be used.
    #[error("invalid bundle {}: {source}", path.display())]
    InvalidBundle {
        /// The bundle file.
        path: PathBuf,
        /// What is wrong with it.
        source: BundleError,
    },
    /// The identity file names a trust domain other than the bundle's.
    #[error(
        "identity `{id}` (from {}) is not in the bundle's trust domain `{bundle_trust_domain}`",
        path.display()
    )]
    TrustDomainMismatch {
        /// The workload's own ID.
        id: SpiffeId,
        /// The identity file.
        path: PathBuf,
        /// The bundle's trust domain.
        bundle_trust_domain: TrustDomain,
    },
    /// The token's `sub` has no keys in the bundle (never provisioned, or
    /// revoked).
    #[error("unknown identity `{0}`: it has no keys in the trust bundle")]
    UnknownIdentity(SpiffeId),
    /// The token is invalid; [`TokenError::reason`] says why.
    #[error("invalid token: {0}")]
    InvalidToken(TokenError),
    /// The private key file cannot be used.
    #[error("private key {} {source}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        source: KeyError,
    },
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },
    /// A file is not a regular file, or too large to be what it should be.
    #[error("{}: {problem}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The environment does not say where the identity files are.
    #[error("spiffile is not configured: {0}")]
    NotConfigured(String),
    /// A token lifetime that cannot be used.
    #[error(
        "token lifetime must be between 1 s and {} s, not {}",
        max.as_secs(),
        DurationShown(*requested)
    )]
    InvalidTtl {
        /// What was asked.
        requested: Duration,
        /// The longest lifetime accepted.
        max: Duration,
    },
    /// A directory given as one identity's directory (`SPIFFILE_DIR`,
    /// [`crate::Identity::from_dir`]) is a provisioning root, which holds
    /// many.
    #[error(
        "{} is a spiffile provisioning root, not the directory of one identity (id, key.pem, bundle.json): name one of its services with SPIFFILE_DIR={}/services/NAME, or on the command line with `--root {} --service NAME`{}",
        dir.display(), dir.display(), dir.display(),
        if services.is_empty() { String::new() } else { format!(" (its services: {})", services.join(", ")) }
    )]
    ProvisioningRoot {
        /// The directory given.
        dir: PathBuf,
        /// The services of the root, as far as they could be listed.
        services: Vec<String>,
    },
    /// The system clock is unusable (before 1970).
    #[error("the system clock is before the Unix epoch")]
    Clock,
    /// The private key could not sign a token (in practice: the system's
    /// random number generator failed).
    #[error("cannot mint a token: {}", spiffile_svid::Error::Signing)]
    Signing,
    /// An error of the token layer (`spiffile-svid`) that has no variant of
    /// its own here, passed through unchanged.
    #[error(transparent)]
    Svid(Box<spiffile_svid::Error>),
    /// A provisioning operation failed.
    #[error(transparent)]
    Provision(spiffile_provision::Error),
    /// The file watcher failed: its thread could not be started, or a
    /// parser panicked (a bug). Read and parse problems of the files
    /// themselves are the variants above, never this one.
    #[error(transparent)]
    Watch(spiffile_watch::WatchError<std::convert::Infallible>),
    /// A bundle file that is a SPIFFE bundle or a JWT bundle set (or in no
    /// format at all) cannot be used. (A spiffile bundle's own faults are
    /// [`Error::InvalidBundle`].)
    #[error("invalid bundle {}: {source}", path.display())]
    InvalidBundleFormat {
        /// The bundle file.
        path: PathBuf,
        /// What is wrong with it.
        source: FormatError,
    },
    /// The bundles cannot be combined into one trust set: a trust domain
    /// offered by two files (both are named).
    #[error(transparent)]
    TrustSet(TrustSetError),
    /// No bundle provides the identity's own trust domain.
    #[error(
        "identity `{id}` is in trust domain `{}`, which none of the bundles provides (they provide: {})",
        id.trust_domain(),
        list(trusted)
    )]
    OwnTrustDomainNotTrusted {
        /// The workload's own ID.
        id: SpiffeId,
        /// The trust domains the bundles provide.
        trusted: Vec<TrustDomain>,
    },
    /// A file of the JWT-SVID directory starts like a token but is not a
    /// usable one (empty or half-written while spiffe-helper rewrites it, or
    /// of a shape verifiers refuse).
    #[error("JWT-SVID file {}: {source}", path.display())]
    InvalidJwtSvid {
        /// The file.
        path: PathBuf,
        /// What is wrong with the token.
        source: TokenError,
    },
    /// A JWT-SVID of the directory is for another workload than this one.
    #[error("{0}")]
    JwtSvidForAnotherWorkload(Box<ForeignJwtSvid>),
    /// The JWT-SVID directory holds no usable token for an audience.
    #[error(
        "no JWT-SVID to present to `{audience}` in {}: {problem}{}",
        dir.display(),
        if matches!(problem, MissingJwtSvid::NoToken) {
            " (spiffe-helper's `jwt_svids` lists the audiences it fetches)"
        } else {
            " (is spiffe-helper running?)"
        }
    )]
    NoJwtSvid {
        /// The audience asked for.
        audience: SpiffeId,
        /// The JWT-SVID directory.
        dir: PathBuf,
        /// Why there is none.
        problem: MissingJwtSvid,
    },
    /// The identity has no private key and no JWT-SVID directory: it can
    /// verify tokens, not present any.
    #[error(
        "cannot mint a token for `{audience}`: this identity has no private key (no SPIFFILE_KEY_FILE) and no JWT-SVID directory (SPIFFILE_JWT_SVID_DIR); it verifies tokens but cannot present any"
    )]
    NoSigningKey {
        /// The audience asked for.
        audience: SpiffeId,
    },
}

/// A JWT-SVID file whose `sub` is not this workload (see
/// [`Error::JwtSvidForAnotherWorkload`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "JWT-SVID file {} is for `{sub}`, but this workload is `{expected}` (from {})",
    path.display(),
    expected_from.display()
)]
#[non_exhaustive]
pub struct ForeignJwtSvid {
    /// The token file.
    pub path: PathBuf,
    /// Its `sub`.
    pub sub: SpiffeId,
    /// This workload's SPIFFE ID.
    pub expected: SpiffeId,
    /// Where that came from: the identity file, or another token file.
    pub expected_from: PathBuf,
}

fn list(tds: &[TrustDomain]) -> String {
    if tds.is_empty() {
        return "none".into();
    }
    tds.iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    /// Maps a watcher error: the watcher runs the facade's own parsers, so
    /// a parse error already is the facade's error, returned as it is; a
    /// file that cannot be read is mapped like any other read.
    pub(crate) fn from_watch(e: spiffile_watch::WatchError<Error>) -> Error {
        match e.into_parse_error() {
            Ok((_, error)) => error,
            Err(spiffile_watch::WatchError::Io { path, source }) => Error::from_read(&path, source),
            Err(other) => Error::Watch(other),
        }
    }

    /// A file that could not be read: what it is (a directory, a FIFO, too
    /// large) is a [`Error::BadFile`], a system error an [`Error::Io`].
    pub(crate) fn from_read(path: &std::path::Path, source: io::Error) -> Error {
        match source.kind() {
            io::ErrorKind::InvalidInput | io::ErrorKind::FileTooLarge => Error::BadFile {
                path: path.to_owned(),
                problem: source.to_string(),
            },
            _ => Error::Io {
                path: path.to_owned(),
                source,
            },
        }
    }
}

impl Error {
    /// The token rejection reason, for [`Error::InvalidToken`].
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Error::InvalidToken(t) => Some(t.reason()),
            _ => None,
        }
    }

    /// Whether this error means "the caller is not authenticated": an invalid
    /// token or an unknown identity (as opposed to a local problem).
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, Error::InvalidToken(_) | Error::UnknownIdentity(_))
    }
}

/// Each error of the token layer becomes the facade variant with the same
/// meaning; one this version does not know (the enum is non-exhaustive) is
/// passed through as [`Error::Svid`], never relabelled.
impl From<spiffile_svid::Error> for Error {
    fn from(e: spiffile_svid::Error) -> Self {
        use spiffile_svid::Error as Svid;
        match e {
            Svid::InvalidToken(t) => Error::InvalidToken(t),
            Svid::UnknownIdentity(id) => Error::UnknownIdentity(id),
            Svid::InvalidTtl { requested, max } => Error::InvalidTtl { requested, max },
            Svid::Clock => Error::Clock,
            Svid::Signing => Error::Signing,
            other => Error::Svid(Box::new(other)),
        }
    }
}

/// A duration as a person would write it back: whole seconds in seconds,
/// whole milliseconds in milliseconds, anything finer as `Debug` does.
struct DurationShown(Duration);

impl std::fmt::Display for DurationShown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{} s", d.as_secs())
        } else if d.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{} ms", d.as_millis())
        } else {
            write!(f, "{d:?}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spiffile_svid::Error as Svid;

    /// Issue 15, item 8: every error of the token layer keeps its meaning
    /// (a signing failure used to surface as `Error::Clock`).
    #[test]
    fn token_layer_errors_map_to_the_variant_with_their_meaning() {
        let id: SpiffeId = "spiffe://example.org/orders".parse().unwrap();
        let token = TokenError::Malformed("two segments");
        assert!(matches!(
            Error::from(Svid::InvalidToken(token.clone())),
            Error::InvalidToken(t) if t == token
        ));
        assert!(matches!(
            Error::from(Svid::UnknownIdentity(id.clone())),
            Error::UnknownIdentity(i) if i == id
        ));
        assert!(matches!(
            Error::from(Svid::InvalidTtl {
                requested: Duration::from_millis(5),
                max: Duration::from_secs(86_400)
            }),
            Error::InvalidTtl { requested, max }
                if requested == Duration::from_millis(5) && max == Duration::from_secs(86_400)
        ));
        assert!(matches!(Error::from(Svid::Clock), Error::Clock));
        let signing = Error::from(Svid::Signing);
        assert!(matches!(signing, Error::Signing), "{signing:?}");
        assert!(signing.to_string().contains("signing failed"), "{signing}");
        assert!(!signing.is_unauthenticated());
        assert_eq!(signing.reason(), None);
    }

    #[test]
    fn provisioning_errors_are_passed_through() {
        let e = spiffile_provision::Error::UnknownService {
            name: "orders".into(),
            root: "/r".into(),
        };
        let text = e.to_string();
        let mapped = Error::Provision(e);
        assert_eq!(mapped.to_string(), text);
        assert!(matches!(
            mapped,
            Error::Provision(spiffile_provision::Error::UnknownService { .. })
        ));
    }
}
