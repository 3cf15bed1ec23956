//! Conversions between SPIFFE IDs and `url::Url` (the `url` feature).

use crate::{IdError, SpiffeId};

impl TryFrom<&url::Url> for SpiffeId {
    type Error = IdError;
    /// Converts a parsed URL by checking its serialization against the
    /// exact grammar. The `url` crate has already normalized it (it
    /// resolves `.` and `..` segments), so to reject such input parse the
    /// original string with [`SpiffeId::new`] instead.
    fn try_from(u: &url::Url) -> Result<Self, IdError> {
        SpiffeId::new(u.as_str())
    }
}

impl From<&SpiffeId> for url::Url {
    fn from(id: &SpiffeId) -> url::Url {
        // A valid SPIFFE ID is always a valid absolute URL.
        #[allow(clippy::expect_used)]
        url::Url::parse(id.as_str()).expect("a SPIFFE ID is a valid URL")
    }
}

#[cfg(test)]
mod tests {
    use crate::SpiffeId;

    #[test]
    fn url_conversion_keeps_the_exact_grammar() {
        let u = url::Url::parse("spiffe://example.org/a/b").unwrap();
        let id = SpiffeId::try_from(&u).unwrap();
        assert_eq!(url::Url::from(&id), u);
        // `url` accepts these; the grammar does not.
        for s in [
            "spiffe://example.org:80/a",
            "spiffe://u@example.org/a",
            "spiffe://example.org/a?q",
            "spiffe://example.org/a/",
        ] {
            let u = url::Url::parse(s).unwrap();
            assert!(SpiffeId::try_from(&u).is_err(), "{s}");
        }
    }
}
