//! Properties of reading spiffe-helper's token files, on generated input:
//! nothing panics, a whole token reads back with its claims, no strict
//! prefix of a token (what a reader of an in-place rewrite can see) is ever
//! taken for a token, and the freshest unexpired token is the one given.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use proptest::prelude::*;
use spiffile_svid::{JwtSvid, JwtSvidSet};

fn token(sub: &str, aud: &[String], exp: i64) -> String {
    let claims = serde_json::json!({"aud": aud, "exp": exp, "iat": exp - 300, "sub": sub});
    format!(
        "{}.{}.{}",
        B64.encode(r#"{"alg":"ES256","kid":"Y2FsbGVkLWJ5LXRoZS1wcm9wZXJ0aWVz","typ":"JWT"}"#),
        B64.encode(claims.to_string()),
        B64.encode([0x5au8; 64])
    )
}

fn audiences() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("spiffe://spire\\.test/[a-z]{1,8}", 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = JwtSvid::parse(&data);
    }

    #[test]
    fn token_alphabet_never_panics(text in "[a-zA-Z0-9_.-]{0,300}") {
        let _ = JwtSvid::parse(text.as_bytes());
        let _ = JwtSvid::parse(format!("eyJ{text}").as_bytes());
    }

    #[test]
    fn a_whole_token_reads_back_and_no_prefix_does(
        path in "[a-z]{1,10}(/[a-z]{1,10}){0,2}",
        aud in audiences(),
        exp in 1_700_000_000i64..1_900_000_000,
        cut in any::<prop::sample::Index>(),
    ) {
        let sub = format!("spiffe://spire.test/{path}");
        let t = token(&sub, &aud, exp);
        let svid = JwtSvid::parse(t.as_bytes()).unwrap().unwrap();
        prop_assert_eq!(svid.sub().as_str(), sub.as_str());
        prop_assert_eq!(svid.audiences().collect::<Vec<_>>(), aud.iter().map(String::as_str).collect::<Vec<_>>());
        prop_assert_eq!(svid.exp(), exp);
        prop_assert_eq!(svid.token(), t.as_str());
        let n = cut.index(t.len());
        prop_assert!(JwtSvid::parse(&t.as_bytes()[..n]).is_err(), "a {}-byte prefix was accepted", n);
    }

    #[test]
    fn the_freshest_unexpired_token_is_given(
        exps in prop::collection::vec(1_000i64..2_000, 1..6),
        now in 900i64..2_100,
    ) {
        let aud = vec!["spiffe://spire.test/billing".to_owned()];
        let tokens: Vec<(String, JwtSvid)> = exps
            .iter()
            .enumerate()
            .map(|(i, &e)| (format!("t{i}"), JwtSvid::parse(token("spiffe://spire.test/orders", &aud, e).as_bytes()).unwrap().unwrap()))
            .collect();
        let set = JwtSvidSet::new(tokens);
        let max = *exps.iter().max().unwrap();
        match set.freshest(&aud[0], now) {
            Ok(t) => {
                prop_assert_eq!(t.exp(), max);
                prop_assert!(max > now);
            }
            Err(_) => prop_assert!(max <= now),
        }
    }
}
