//! Errors of provisioning.

use std::io;
use std::path::PathBuf;

use spiffile_bundle::BundleError;
use spiffile_id::{IdError, SpiffeId, TrustDomain};
use spiffile_svid::KeyError;

use crate::fsutil::IoFailure;

/// What went wrong while provisioning. Each message names the root, service
/// or file at fault and, where there is one, the fix. Messages never contain
/// key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The directory holds no `bundle.json`.
    #[error(
        "{} is not a spiffile root: it has no bundle.json (initialize it first, e.g. `spiffile init {} --trust-domain example.org`)",
        root.display(), root.display()
    )]
    NotARoot {
        /// The directory.
        root: PathBuf,
    },
    /// `init_root` on a root that already has a bundle.
    #[error(
        "{} is already initialized (its bundle.json is for the trust domain `{trust_domain}`); pick another directory or remove it first",
        root.display()
    )]
    AlreadyInitialized {
        /// The root.
        root: PathBuf,
        /// The trust domain of its existing bundle (or a note when the
        /// bundle cannot be read).
        trust_domain: String,
    },
    /// The trust domain name is invalid.
    #[error(
        "invalid trust domain {given:?}: it {source} (a trust domain looks like `example.org`)"
    )]
    InvalidTrustDomain {
        /// What was given.
        given: String,
        /// What is wrong with it.
        source: IdError,
    },
    /// The service name is not a valid SPIFFE ID path.
    #[error(
        "invalid service name {name:?}: {problem} (a service name is a SPIFFE ID path such as `orders` or `team/orders`: segments of a-z A-Z 0-9 . - _, no `.` or `..`)"
    )]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A SPIFFE ID or identity file of another trust domain.
    #[error("`{id}` is not in the root's trust domain `{trust_domain}`")]
    TrustDomainMismatch {
        /// The ID given or found.
        id: SpiffeId,
        /// The root's trust domain.
        trust_domain: TrustDomain,
    },
    /// No such service in the root.
    #[error(
        "unknown service `{name}` in {}: it has no bundle entry and no key (add it first, e.g. `spiffile add {} {name}`)",
        root.display(), root.display()
    )]
    UnknownService {
        /// The service name.
        name: String,
        /// The root.
        root: PathBuf,
    },
    /// The bundle lists keys for the service but its private key is gone.
    #[error(
        "`{id}` has keys in the bundle but its private key {} is missing; revoke it with `spiffile remove ROOT {name}`, or issue a new key with `spiffile rotate ROOT {name} --revoke-old`",
        key_file.display()
    )]
    KeyMissing {
        /// The service name.
        name: String,
        /// Its SPIFFE ID.
        id: SpiffeId,
        /// Where its key should be.
        key_file: PathBuf,
    },
    /// The key on disk is not bound to the service in the bundle.
    #[error(
        "the key in {} (kid `{kid}`) is not bound to `{id}` in the bundle; if it is the service's own key, bind it with `spiffile add ROOT {name} --adopt-existing-key`, otherwise issue a new one with `spiffile rotate ROOT {name}`",
        key_file.display(), name = id.path().trim_start_matches('/')
    )]
    KeyNotBound {
        /// The service's SPIFFE ID.
        id: SpiffeId,
        /// The key file.
        key_file: PathBuf,
        /// The kid of the key on disk.
        kid: String,
    },
    /// A service's `id` file holds another ID than its place in the root.
    #[error(
        "{} holds {found:?}, but the service at that place is `{expected}`; fix or delete the file",
        path.display()
    )]
    IdFileMismatch {
        /// The `id` file.
        path: PathBuf,
        /// What it holds (first line, shortened).
        found: String,
        /// What it should hold.
        expected: SpiffeId,
    },
    /// The bundle document cannot be read.
    #[error("invalid bundle {}: {source}", path.display())]
    Bundle {
        /// The bundle file.
        path: PathBuf,
        /// What is wrong with it.
        source: BundleError,
    },
    /// The bundle holds entries this library cannot read; rewriting it would
    /// drop them, so it is left alone.
    #[error(
        "{} holds entries that cannot be read and would be lost by rewriting it; fix or remove them first (see `spiffile bundle check {}`):\n  {}",
        path.display(), path.display(), problems.join("\n  ")
    )]
    UnreadableEntries {
        /// The bundle file.
        path: PathBuf,
        /// One line per skipped entry or key.
        problems: Vec<String>,
    },
    /// A symbolic link inside the root (a service directory, `services/`,
    /// a service's files, `bundle.json` or the lock file). spiffile never
    /// follows links inside a root, so that no operation reads, writes,
    /// binds or deletes anything outside it.
    #[error(
        "{}{} is a symbolic link; spiffile does not follow links inside a root (it would act on files outside it): replace the link with the directory or file itself{}",
        link.display(), crate::nofollow::describe(target),
        if link.ends_with(crate::BUNDLE_FILE) { ", and to publish the bundle elsewhere, point a link there at the root's bundle.json instead" } else { "" }
    )]
    Symlink {
        /// The link.
        link: PathBuf,
        /// Where it points, when that could be read.
        target: Option<PathBuf>,
    },
    /// `add` found a key on disk that the bundle does not bind to the
    /// service, and was not told to adopt it.
    #[error(
        "{} holds a key (kid `{kid}`) that the bundle does not bind to `{id}`; spiffile does not bind a key it did not generate, since whoever could write that directory may have put it there. If this is the service's own key, bind it with `spiffile add ROOT {name} --adopt-existing-key`; otherwise issue a new one with `spiffile rotate ROOT {name}`",
        key_file.display(), name = id.path().trim_start_matches('/')
    )]
    UnboundKey {
        /// The service's SPIFFE ID.
        id: SpiffeId,
        /// The key file.
        key_file: PathBuf,
        /// The kid of the key on disk.
        kid: String,
    },
    /// The key on disk is already bound to another identity: binding it
    /// would let that identity's key holder sign as this one too.
    #[error(
        "{} holds the key that the bundle binds to `{other}`; a key is never bound to a second identity (its holder could sign as both); issue `{name}` its own key with `spiffile rotate ROOT {name}`",
        key_file.display()
    )]
    KeyBoundElsewhere {
        /// The service name.
        name: String,
        /// The key file.
        key_file: PathBuf,
        /// The identity it is bound to.
        other: SpiffeId,
    },
    /// A step failed after the operation had started writing, and what it
    /// had written was undone: the root is as it was before.
    #[error(
        "{operation} failed, and what it had written was undone (the root is unchanged): {source}"
    )]
    RolledBack {
        /// The operation (`rotate of spiffe://example.org/orders`).
        operation: String,
        /// The failure.
        source: Box<Error>,
    },
    /// A step failed after the operation had started writing, and undoing
    /// it failed too: `state` says what the root holds and how the next
    /// operation completes or discards it.
    #[error("{operation} failed ({source}), and undoing it failed too ({rollback}); {state}")]
    Incomplete {
        /// The operation.
        operation: String,
        /// The failure.
        source: Box<Error>,
        /// Why it could not be undone.
        rollback: Box<Error>,
        /// What the root holds now.
        state: String,
    },
    /// A private key file cannot be used.
    #[error("private key {} {source}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        source: KeyError,
    },
    /// `import_root` was given a key its bundle does not bind.
    #[error(
        "the key of `{id}` (kid {kid}) is not in the bundle; refusing to write a root that cannot verify it"
    )]
    ImportedKeyNotInBundle {
        /// The identity.
        id: SpiffeId,
        /// Its key's `kid`.
        kid: String,
    },
    /// A file-system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done (`create`, `rename a new version over`, …).
        action: &'static str,
        /// The system error.
        source: io::Error,
    },
    /// The root has no X.509 CA yet.
    #[error(
        "{} has no X.509 CA (no x509/ca.pem); create it with `spiffile x509 init {}`",
        root.display(), root.display()
    )]
    NoCa {
        /// The root.
        root: PathBuf,
    },
    /// `init_ca` on a root that already has a CA.
    #[error(
        "{} already has an X.509 CA (x509/ca.pem); rotate it with `spiffile x509 rotate-ca {}`",
        root.display(), root.display()
    )]
    CaExists {
        /// The root.
        root: PathBuf,
    },
    /// A certificate file (the CA, an SVID, the X.509 bundle) cannot be
    /// read.
    #[error("{}: {problem}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (never key material).
        problem: String,
    },
    /// rcgen could not make a certificate.
    #[error("cannot make the {what}: {message}")]
    CertificateGeneration {
        /// Which certificate.
        what: String,
        /// rcgen's message.
        message: String,
    },
    /// Retiring the old CAs would leave X.509-SVIDs that chain to them
    /// without a root.
    #[error(
        "the old CA still signs the X.509-SVIDs of {}; renew them first (`spiffile x509 renew {} --within 0`)",
        services.join(", "), root.display()
    )]
    OldCaInUse {
        /// The root.
        root: PathBuf,
        /// The services whose SVID an old CA signed.
        services: Vec<String>,
    },
}

impl From<IoFailure> for Error {
    fn from(f: IoFailure) -> Self {
        Error::Io {
            path: f.path,
            action: f.action,
            source: f.source,
        }
    }
}
