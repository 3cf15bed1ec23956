//! The JWT-SVIDs an identity presents when SPIRE issues them: spiffe-helper's
//! token files, read from its directory and combined into one set, all for
//! the same workload.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use spiffile_svid::{JwtSvid, JwtSvidSet};
use spiffile_watch::{DirEntry, FileRef};

use crate::Error;
use crate::error::ForeignJwtSvid;
use crate::trust::Own;

/// Reads one file of the directory: a token, something else (`None`), or a
/// token that cannot be used (empty, half-written, the wrong shape).
pub(crate) fn parse_token_file(file: &FileRef<'_>) -> Result<Option<JwtSvid>, Error> {
    JwtSvid::parse(file.bytes()).map_err(|source| Error::InvalidJwtSvid {
        path: file.path().to_owned(),
        source,
    })
}

/// Combines the tokens of the directory. Every token must be for the same
/// workload: the one the identity file names, or (without one) the `sub` of
/// the tokens, fixed by the first set built.
pub(crate) fn combine_tokens(
    entries: &[DirEntry<Option<JwtSvid>>],
    own: &Arc<OnceLock<Own>>,
) -> Result<JwtSvidSet, Error> {
    let tokens: Vec<(&DirEntry<Option<JwtSvid>>, &JwtSvid)> = entries
        .iter()
        .filter_map(|e| e.value().as_ref().as_ref().map(|t| (e, t)))
        .collect();
    let expected = match own.get() {
        Some(own) => Some(own.clone()),
        None => tokens.first().map(|(e, t)| Own {
            id: t.sub().clone(),
            from: e.path().to_owned(),
        }),
    };
    if let Some(expected) = &expected {
        for (entry, token) in &tokens {
            if token.sub() != &expected.id {
                return Err(Error::JwtSvidForAnotherWorkload(Box::new(ForeignJwtSvid {
                    path: entry.path().to_owned(),
                    sub: token.sub().clone(),
                    expected: expected.id.clone(),
                    expected_from: expected.from.clone(),
                })));
            }
        }
        let _ = own.set(expected.clone());
    }
    Ok(JwtSvidSet::new(
        tokens.iter().map(|(e, t)| (e.name(), (*t).clone())),
    ))
}

/// Where a token-less identity's ID would have come from, for the error.
pub(crate) fn no_identity(dir: PathBuf) -> Error {
    Error::NotConfigured(format!(
        "no JWT-SVID in {} to take this workload's SPIFFE ID from: set SPIFFILE_ID_FILE, or start once spiffe-helper has written its tokens",
        dir.display()
    ))
}
