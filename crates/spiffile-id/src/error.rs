//! Why a string is not a valid SPIFFE ID or trust domain.

use std::fmt;

/// Why a string is not a valid SPIFFE ID or trust domain.
///
/// Positions are byte offsets into the rejected input (for
/// [`TrustDomain::join`](crate::TrustDomain::join), into the path given).
/// The input itself is not repeated in the message; callers add the context
/// (file, claim, argument) they know.
///
/// Messages are predicates, written to follow "it": a caller writes
/// `format!("{what} is not a SPIFFE ID: it {error}")`, which reads
/// "… it has the character ' ' at byte 6 in its path; …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The input is empty.
    #[error("is empty")]
    Empty,
    /// The input does not start with `spiffe://` (the scheme is case-sensitive).
    #[error("does not start with the scheme `spiffe://`")]
    WrongScheme,
    /// The trust domain part is empty.
    #[error("has an empty trust domain")]
    EmptyTrustDomain,
    /// A bare trust domain name was given with the `spiffe://` scheme
    /// (`spiffe://example.org` where `example.org` is meant).
    #[error("starts with `spiffe://`; a trust domain is the bare name: drop `spiffe://`")]
    SchemeInTrustDomain,
    /// The trust domain holds a character outside `a-z 0-9 . - _`.
    #[error("{}", BadChar { ch: *ch, position: *position, part: Part::TrustDomain })]
    BadTrustDomainChar {
        /// The offending character.
        ch: char,
        /// Its byte offset in the input.
        position: usize,
    },
    /// The trust domain is longer than [`MAX_TRUST_DOMAIN_LEN`](crate::MAX_TRUST_DOMAIN_LEN).
    #[error("has a trust domain of {len} bytes; at most 255 are allowed")]
    TrustDomainTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The whole ID is longer than [`MAX_ID_LEN`](crate::MAX_ID_LEN).
    #[error("is {len} bytes long; at most 2048 are allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The path holds a character outside `a-z A-Z 0-9 . - _` (or a query,
    /// fragment or percent-encoding).
    #[error("{}", BadChar { ch: *ch, position: *position, part: Part::Path })]
    BadPathChar {
        /// The offending character.
        ch: char,
        /// Its byte offset in the input.
        position: usize,
    },
    /// The path has an empty segment (`//`).
    #[error("has an empty path segment at byte {position}")]
    EmptySegment {
        /// Byte offset of the empty segment.
        position: usize,
    },
    /// The path ends with a slash.
    #[error("ends with a slash; a path has no trailing slash")]
    TrailingSlash,
    /// The path has a `.` or `..` segment.
    #[error("has a '.' or '..' path segment at byte {position}")]
    DotSegment {
        /// Byte offset of the segment.
        position: usize,
    },
}

impl IdError {
    /// The byte offset the error points at, if it points at one.
    pub fn position(&self) -> Option<usize> {
        match self {
            IdError::BadTrustDomainChar { position, .. }
            | IdError::BadPathChar { position, .. }
            | IdError::EmptySegment { position }
            | IdError::DotSegment { position } => Some(*position),
            _ => None,
        }
    }

    /// The same error with its position moved `by` bytes to the left: for
    /// an error found in a string built around what the caller typed.
    pub(crate) fn shifted_left(self, by: usize) -> IdError {
        match self {
            IdError::BadTrustDomainChar { ch, position } => IdError::BadTrustDomainChar {
                ch,
                position: position.saturating_sub(by),
            },
            IdError::BadPathChar { ch, position } => IdError::BadPathChar {
                ch,
                position: position.saturating_sub(by),
            },
            IdError::EmptySegment { position } => IdError::EmptySegment {
                position: position.saturating_sub(by),
            },
            IdError::DotSegment { position } => IdError::DotSegment {
                position: position.saturating_sub(by),
            },
            other => other,
        }
    }
}

#[derive(Clone, Copy)]
enum Part {
    TrustDomain,
    Path,
}

/// The message of a character outside its part's alphabet, with a hint for
/// the usual mistakes.
struct BadChar {
    ch: char,
    position: usize,
    part: Part,
}

impl fmt::Display for BadChar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let BadChar { ch, position, part } = *self;
        match part {
            Part::TrustDomain => {
                write!(
                    f,
                    "has the character {ch:?} at byte {position} in its trust domain; only a-z, 0-9, '.', '-' and '_' are allowed"
                )?;
                if ch.is_ascii_uppercase() {
                    f.write_str(" (trust domains are lowercase)")?;
                } else if ch == ':' {
                    f.write_str(" (a trust domain has no port)")?;
                } else if ch == '@' {
                    f.write_str(" (a trust domain has no user part)")?;
                }
                Ok(())
            }
            Part::Path => {
                write!(
                    f,
                    "has the character {ch:?} at byte {position} in its path; only a-z, A-Z, 0-9, '.', '-' and '_' are allowed in path segments"
                )?;
                if ch == '%' {
                    f.write_str(" (no percent-encoding)")?;
                } else if ch == '?' || ch == '#' {
                    f.write_str(" (a SPIFFE ID has no query or fragment)")?;
                }
                Ok(())
            }
        }
    }
}
