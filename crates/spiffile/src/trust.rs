//! The trust set an identity verifies with, built from its bundle file or
//! directory: every document in any format, each trust domain from exactly
//! one file, the identity's own trust domain among them.

use std::path::{Path, PathBuf};

use spiffile_bundle::{BundleDocument, BundleError, FormatError, TrustDomain};
use spiffile_id::SpiffeId;
use spiffile_svid::Verifier;

use crate::Error;

/// The file name of `path` (for a SPIFFE bundle's `<trust-domain>.json`).
pub(crate) fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// Parses one bundle file in any format. A SPIFFE bundle (JWKS) takes its
/// trust domain from `jwks_trust_domain` when given, else from the file
/// name `name` (`<trust-domain>.json`; in a Kubernetes volume, the visible
/// name, not the `..data` target's).
pub(crate) fn parse_document(
    bytes: &[u8],
    name: &str,
    path: &Path,
    jwks_trust_domain: Option<&TrustDomain>,
) -> Result<BundleDocument, Error> {
    BundleDocument::from_named_json(name, bytes, jwks_trust_domain)
        .map_err(|source| Error::from_format(path, source))
}

/// Who the verifier is built for: its own ID, and where that came from.
#[derive(Clone, Debug)]
pub(crate) struct Own {
    pub(crate) id: SpiffeId,
    pub(crate) from: PathBuf,
}

/// The verifier over `documents` (each with the file it came from), for
/// identity `own`: a trust domain two files offer is an error naming both;
/// the identity's own trust domain must be one of them.
pub(crate) fn build_verifier<'a>(
    documents: impl IntoIterator<Item = (&'a Path, &'a BundleDocument)>,
    own: &Own,
) -> Result<Verifier, Error> {
    let mut builder = Verifier::builder();
    let mut first: Option<(&Path, &BundleDocument)> = None;
    let mut count = 0;
    for (path, doc) in documents {
        count += 1;
        first.get_or_insert((path, doc));
        builder
            .document(&path.display().to_string(), doc)
            .map_err(Error::TrustSet)?;
    }
    let verifier = builder.build();
    let own_td = own.id.trust_domain();
    if !verifier.trusts_domain(own_td.as_str()) {
        // One spiffile bundle of another trust domain: the profile's error.
        if let (1, Some((_, BundleDocument::Spiffile(b)))) = (count, first) {
            return Err(Error::TrustDomainMismatch {
                id: own.id.clone(),
                path: own.from.clone(),
                bundle_trust_domain: b.trust_domain().clone(),
            });
        }
        return Err(Error::OwnTrustDomainNotTrusted {
            id: own.id.clone(),
            trusted: verifier.trust_domains().map(|d| d.trust_domain).collect(),
        });
    }
    Ok(verifier)
}

/// [`build_verifier`] over one document, consumed: a spiffile bundle's
/// keys are freed as they are converted, so a large bundle and its verifier
/// never both exist whole (the peak memory of a load).
pub(crate) fn build_verifier_owned(
    path: &Path,
    document: BundleDocument,
    own: &Own,
) -> Result<Verifier, Error> {
    let BundleDocument::Spiffile(bundle) = document else {
        return build_verifier([(path, &document)], own);
    };
    if bundle.trust_domain() != own.id.trust_domain() {
        return Err(Error::TrustDomainMismatch {
            id: own.id.clone(),
            path: own.from.clone(),
            bundle_trust_domain: bundle.trust_domain().clone(),
        });
    }
    let mut builder = Verifier::builder();
    builder
        .bundle_owned(&path.display().to_string(), bundle)
        .map_err(Error::TrustSet)?;
    Ok(builder.build())
}

impl Error {
    /// A bundle document that cannot be used: a spiffile bundle's own
    /// error stays [`Error::InvalidBundle`].
    ///
    /// Faults before any format is known (not JSON, not an object, too
    /// large) are the same in every format: they are
    /// [`Error::InvalidBundle`] too, with the same messages.
    pub(crate) fn from_format(path: &Path, source: FormatError) -> Error {
        let path = path.to_owned();
        let source = match source {
            FormatError::Spiffile(source) => source,
            FormatError::Json {
                message,
                line,
                column,
            } => BundleError::Json {
                message,
                line,
                column,
            },
            FormatError::NotAnObject => BundleError::NotAnObject,
            FormatError::TooLarge { len, max } => BundleError::TooLarge { len, max },
            source => return Error::InvalidBundleFormat { path, source },
        };
        Error::InvalidBundle { path, source }
    }
}
