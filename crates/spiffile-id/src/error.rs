//! Why a string is not a valid SPIFFE ID or trust domain.

/// Why a string is not a valid SPIFFE ID or trust domain.
///
/// Positions are byte offsets into the rejected input. The input itself is not
/// repeated in the message; callers add the context (file, claim) they know.
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
    /// The trust domain holds a character outside `a-z 0-9 . - _`.
    #[error(
        "trust domain has the character {ch:?} at byte {position}; only a-z, 0-9, '.', '-' and '_' are allowed"
    )]
    BadTrustDomainChar {
        /// The offending character.
        ch: char,
        /// Its byte offset in the input.
        position: usize,
    },
    /// The trust domain is longer than [`MAX_TRUST_DOMAIN_LEN`](crate::MAX_TRUST_DOMAIN_LEN).
    #[error("trust domain is {len} bytes long; at most 255 are allowed")]
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
    #[error(
        "path has the character {ch:?} at byte {position}; only a-z, A-Z, 0-9, '.', '-' and '_' are allowed in segments"
    )]
    BadPathChar {
        /// The offending character.
        ch: char,
        /// Its byte offset in the input.
        position: usize,
    },
    /// The path has an empty segment (`//`).
    #[error("path has an empty segment at byte {position}")]
    EmptySegment {
        /// Byte offset of the empty segment.
        position: usize,
    },
    /// The path ends with a slash.
    #[error("path ends with a trailing slash")]
    TrailingSlash,
    /// The path has a `.` or `..` segment.
    #[error("path has a '.' or '..' segment at byte {position}")]
    DotSegment {
        /// Byte offset of the segment.
        position: usize,
    },
}
