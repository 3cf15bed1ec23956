//! spiffe-helper's token files: reading one never panics, and a token read
//! is never accepted from a strict prefix of its bytes (a half-written file).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spiffile_svid::{JwtSvid, JwtSvidSet};

fuzz_target!(|data: &[u8]| {
    let Ok(Some(svid)) = JwtSvid::parse(data) else {
        return;
    };
    let token = svid.token().to_owned();
    assert!(svid.audiences().len() > 0);
    for n in [0, token.len() / 2, token.len() - 1] {
        assert!(
            JwtSvid::parse(&token.as_bytes()[..n]).is_err(),
            "a prefix of {n} bytes was accepted"
        );
    }
    let aud = svid.audiences().next().map(str::to_owned).unwrap_or_default();
    let set = JwtSvidSet::new([("fuzz", svid.clone())]);
    let _ = set.freshest(&aud, svid.exp() - 1);
});
