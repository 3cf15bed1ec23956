//! SPIFFE ID and trust domain parsing: never panics, never normalizes, and
//! agrees with `validate`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spiffile_id::{SpiffeId, TrustDomain, validate};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = SpiffeId::new(s);
    assert_eq!(parsed.is_ok(), validate(s).is_ok(), "{s:?}");
    if let Ok(id) = parsed {
        assert_eq!(id.as_str(), s);
        let again: SpiffeId = id.to_string().parse().expect("display parses");
        assert_eq!(again, id);
        assert!(id.is_member_of(id.trust_domain()));
        assert_eq!(format!("spiffe://{}{}", id.trust_domain(), id.path()), s);
    }
    if let Ok(td) = TrustDomain::new(s) {
        assert_eq!(td.as_str(), s);
        assert_eq!(td.id().trust_domain(), &td);
    }
});
