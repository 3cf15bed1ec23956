//! The SPIFFE-ID grammar: the character classes, the length limits and the
//! checks, without allocating.

use crate::IdError;

/// The scheme prefix every SPIFFE ID starts with.
pub const SCHEME_PREFIX: &str = "spiffe://";
/// The longest trust domain name accepted, in bytes (the URI host limit).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;
/// The longest SPIFFE ID accepted, in bytes.
pub const MAX_ID_LEN: usize = 2048;

fn is_td_char(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_')
}

fn is_path_char(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_')
}

fn bad_char(s: &str, position: usize) -> char {
    s.get(position..)
        .and_then(|rest| rest.chars().next())
        .unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Validates a bare trust domain name (no scheme). `offset` is added to
/// positions in errors.
pub(crate) fn check_trust_domain(name: &str, offset: usize) -> Result<(), IdError> {
    if name.is_empty() {
        return Err(IdError::EmptyTrustDomain);
    }
    if let Some(i) = name.bytes().position(|b| !is_td_char(b)) {
        return Err(IdError::BadTrustDomainChar {
            ch: bad_char(name, i),
            position: offset + i,
        });
    }
    if name.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(IdError::TrustDomainTooLong { len: name.len() });
    }
    Ok(())
}

/// Validates a path (empty, or starting with `/`). `offset` is added to
/// positions in errors.
fn check_path(path: &str, offset: usize) -> Result<(), IdError> {
    if path.is_empty() {
        return Ok(());
    }
    let bytes = path.as_bytes();
    // `path` always starts with '/' here: the caller split at the first '/'.
    let mut seg_start = 1;
    for i in 1..=bytes.len() {
        let at_end = i == bytes.len();
        if at_end || bytes[i] == b'/' {
            let seg = &bytes[seg_start..i];
            if seg.is_empty() {
                return Err(if at_end {
                    IdError::TrailingSlash
                } else {
                    IdError::EmptySegment {
                        position: offset + seg_start,
                    }
                });
            }
            if seg == b"." || seg == b".." {
                return Err(IdError::DotSegment {
                    position: offset + seg_start,
                });
            }
            seg_start = i + 1;
        } else if !is_path_char(bytes[i]) {
            return Err(IdError::BadPathChar {
                ch: bad_char(path, i),
                position: offset + i,
            });
        }
    }
    Ok(())
}

/// Checks `s` against the SPIFFE-ID grammar without allocating.
///
/// Returns the byte offset where the path starts (equal to `s.len()` when
/// there is no path).
///
/// ```
/// assert_eq!(spiffile_id::validate("spiffe://example.org/a"), Ok(20));
/// assert!(spiffile_id::validate("spiffe://example.org/").is_err());
/// ```
pub fn validate(s: &str) -> Result<usize, IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    let rest = s.strip_prefix(SCHEME_PREFIX).ok_or(IdError::WrongScheme)?;
    let td_len = rest.find('/').unwrap_or(rest.len());
    let (td, path) = rest.split_at(td_len);
    check_trust_domain(td, SCHEME_PREFIX.len())?;
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { len: s.len() });
    }
    check_path(path, SCHEME_PREFIX.len() + td_len)?;
    Ok(SCHEME_PREFIX.len() + td_len)
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::{IdError, MAX_ID_LEN, SpiffeId, TrustDomain};

    pub(crate) fn ok(s: &str) -> SpiffeId {
        match SpiffeId::new(s) {
            Ok(id) => id,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn err(s: &str) -> IdError {
        match SpiffeId::new(s) {
            Ok(_) => panic!("{s:?} should be rejected"),
            Err(e) => e,
        }
    }

    #[test]
    fn scheme() {
        assert_eq!(err(""), IdError::Empty);
        assert_eq!(err("SPIFFE://example.org/x"), IdError::WrongScheme);
        assert_eq!(err("Spiffe://example.org/x"), IdError::WrongScheme);
        assert_eq!(err("http://example.org/x"), IdError::WrongScheme);
        assert_eq!(err("spiffe:/example.org/x"), IdError::WrongScheme);
        assert_eq!(err("example.org/x"), IdError::WrongScheme);
    }

    #[test]
    fn trust_domain_rules() {
        assert_eq!(err("spiffe://"), IdError::EmptyTrustDomain);
        assert_eq!(err("spiffe:///x"), IdError::EmptyTrustDomain);
        assert!(matches!(
            err("spiffe://Example.org/x"),
            IdError::BadTrustDomainChar {
                ch: 'E',
                position: 9
            }
        ));
        for s in [
            "spiffe://user@example.org/x",
            "spiffe://example.org:8080/x",
            "spiffe://exa%41mple.org/x",
            "spiffe://example.org?q=1",
            "spiffe://example.org#f",
            "spiffe://exämple.org",
        ] {
            assert!(matches!(err(s), IdError::BadTrustDomainChar { .. }), "{s}");
        }
        let td255 = "a".repeat(255);
        ok(&format!("spiffe://{td255}/x"));
        let td256 = "a".repeat(256);
        assert_eq!(
            err(&format!("spiffe://{td256}/x")),
            IdError::TrustDomainTooLong { len: 256 }
        );
        assert!(TrustDomain::new(&td255).is_ok());
        assert!(TrustDomain::new(&td256).is_err());
    }

    #[test]
    fn path_rules() {
        assert_eq!(err("spiffe://example.org/"), IdError::TrailingSlash);
        assert_eq!(err("spiffe://example.org/a/"), IdError::TrailingSlash);
        assert_eq!(
            err("spiffe://example.org//x"),
            IdError::EmptySegment { position: 21 }
        );
        assert_eq!(
            err("spiffe://example.org/a/../b"),
            IdError::DotSegment { position: 23 }
        );
        assert_eq!(
            err("spiffe://example.org/./b"),
            IdError::DotSegment { position: 21 }
        );
        assert_eq!(
            err("spiffe://example.org/.."),
            IdError::DotSegment { position: 21 }
        );
        for s in [
            "spiffe://example.org/bad~path",
            "spiffe://example.org/a b",
            "spiffe://example.org/a%20b",
            "spiffe://example.org/a?q=1",
            "spiffe://example.org/a#frag",
            "spiffe://example.org/ä",
            "spiffe://example.org/a\nb",
        ] {
            assert!(matches!(err(s), IdError::BadPathChar { .. }), "{s}");
        }
        assert!(matches!(
            err("spiffe://example.org/é"),
            IdError::BadPathChar {
                ch: 'é',
                position: 21
            }
        ));
    }

    #[test]
    fn length_limits() {
        let prefix = "spiffe://example.org/";
        let at_limit = format!("{prefix}{}", "a".repeat(MAX_ID_LEN - prefix.len()));
        assert_eq!(at_limit.len(), 2048);
        assert_eq!(ok(&at_limit).to_string(), at_limit);
        let over = format!("{at_limit}b");
        assert_eq!(err(&over), IdError::TooLong { len: 2049 });
    }

    #[test]
    fn messages_name_the_problem() {
        let e = err("spiffe://example.org/a b");
        assert_eq!(
            e.to_string(),
            "has the character ' ' at byte 22 in its path; only a-z, A-Z, 0-9, '.', '-' and '_' are allowed in path segments"
        );
        let e = err("spiffe://Example.org/a");
        assert_eq!(
            format!("it {e}"),
            "it has the character 'E' at byte 9 in its trust domain; only a-z, 0-9, '.', '-' and '_' are allowed (trust domains are lowercase)"
        );
        assert_eq!(e.position(), Some(9));
        assert!(
            err("spiffe://example.org/a%20b")
                .to_string()
                .ends_with("(no percent-encoding)")
        );
        assert_eq!(
            TrustDomain::new("spiffe://example.org")
                .unwrap_err()
                .to_string(),
            "starts with `spiffe://`; a trust domain is the bare name: drop `spiffe://`"
        );
        assert!(
            TrustDomain::new("example.org:8443")
                .unwrap_err()
                .to_string()
                .ends_with("(a trust domain has no port)")
        );
    }

    #[test]
    fn join_points_into_the_path_given() {
        let td = TrustDomain::new("example.org").unwrap();
        assert_eq!(
            td.join("team/or ders").unwrap_err(),
            IdError::BadPathChar {
                ch: ' ',
                position: 7
            }
        );
        assert_eq!(
            td.join("a//b").unwrap_err(),
            IdError::EmptySegment { position: 2 }
        );
        assert_eq!(
            td.join("a/../b").unwrap_err(),
            IdError::DotSegment { position: 2 }
        );
        assert_eq!(
            td.join("/a").unwrap_err(),
            IdError::EmptySegment { position: 0 }
        );
        assert_eq!(td.join("a/").unwrap_err(), IdError::TrailingSlash);
    }
}
