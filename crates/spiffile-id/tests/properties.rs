//! Properties of SPIFFE ID parsing, on generated inputs.

use proptest::prelude::*;
use spiffile_id::{SpiffeId, TrustDomain};

/// A valid trust domain: `a-z 0-9 . - _`, 1 to 60 bytes.
fn trust_domain() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,60}"
}

/// A valid path: segments of `a-zA-Z0-9._-`, none of them `.` or `..`.
fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(
        "[a-zA-Z0-9._-]{1,12}".prop_filter("dot segment", |s| s != "." && s != ".."),
        0..6,
    )
    .prop_map(|segs| segs.iter().map(|s| format!("/{s}")).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_of_display_is_identity(td in trust_domain(), path in path()) {
        let text = format!("spiffe://{td}{path}");
        let id = SpiffeId::new(&text).unwrap();
        prop_assert_eq!(id.to_string(), text.clone());
        let again: SpiffeId = id.to_string().parse().unwrap();
        prop_assert_eq!(&again, &id);
        prop_assert_eq!(id.trust_domain(), &TrustDomain::new(&td).unwrap());
        prop_assert_eq!(id.path(), path.as_str());
        let tdo = TrustDomain::new(&td).unwrap();
        prop_assert_eq!(TrustDomain::new(&tdo.to_string()).unwrap(), tdo);
    }

    /// Arbitrary text never panics; whatever is accepted displays as itself
    /// (parsing never normalizes).
    #[test]
    fn arbitrary_text_never_panics_and_never_normalizes(s in "spiffe://\\PC{0,40}|\\PC{0,40}") {
        if let Ok(id) = SpiffeId::new(&s) {
            prop_assert_eq!(id.as_str(), s.as_str());
            let shown = format!("{id}");
            prop_assert_eq!(SpiffeId::new(&shown).unwrap(), id);
        }
        let _ = TrustDomain::new(&s);
    }

    /// One byte changed to a character outside the grammar is refused.
    #[test]
    fn a_forbidden_character_anywhere_is_refused(
        td in trust_domain(),
        path in path(),
        bad in prop::sample::select(vec!['%', '?', '#', '@', ':', ' ', '\u{e9}', '\\', '\0']),
        at in any::<prop::sample::Index>(),
    ) {
        let text = format!("spiffe://{td}{path}");
        let pos = 9 + at.index(text.len() - 9);
        let mut broken = text[..pos].to_owned();
        broken.push(bad);
        broken.push_str(&text[pos + 1..]);
        prop_assert!(SpiffeId::new(&broken).is_err(), "{}", broken);
    }
}
