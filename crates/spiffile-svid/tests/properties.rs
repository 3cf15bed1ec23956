//! Properties of verification, on generated inputs: it never panics, any
//! single-byte change to a valid token is refused, and a token is good for
//! its own audience only.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use proptest::prelude::*;
use spiffile_bundle::Bundle;
use spiffile_id::SpiffeId;
use spiffile_svid::{Error, Signer, TokenError, Verifier, VerifyOptions, generate_pkcs8_pem};
use spiffile_svid::{UnixTime, danger};

const NOW: i64 = 1_800_000_000;

/// A time for the `danger` functions.
fn at(secs: i64) -> UnixTime {
    UnixTime::from_secs(secs)
}

struct World {
    signer: Signer,
    verifier: Verifier,
    audience: SpiffeId,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let pem = generate_pkcs8_pem().unwrap();
        let signer = Signer::from_pkcs8_pem(
            "spiffe://example.org/orders".parse().unwrap(),
            pem.as_bytes(),
        )
        .unwrap();
        let mut bundle = Bundle::new("example.org".parse().unwrap());
        bundle
            .add_key(signer.id(), signer.public_key().clone())
            .unwrap();
        World {
            verifier: Verifier::new(&bundle),
            signer,
            audience: "spiffe://example.org/billing".parse().unwrap(),
        }
    })
}

fn verify(token: &str, audience: &SpiffeId) -> Result<SpiffeId, Error> {
    let options = VerifyOptions::default().with_max_token_bytes(1 << 16);
    danger::verify_at(&world().verifier, token, audience, &options, at(NOW)).map(|c| c.id().clone())
}

/// Three segments of arbitrary bytes, each base64url-encoded: gets past the
/// framing checks into the JSON and signature code.
fn three_segments() -> impl Strategy<Value = String> {
    let seg = prop::collection::vec(any::<u8>(), 0..200);
    (seg.clone(), seg.clone(), seg)
        .prop_map(|(h, c, s)| format!("{}.{}.{}", B64.encode(h), B64.encode(c), B64.encode(s)))
}

/// JSON-shaped header and claims, with a real signature.
fn signed_json() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("\"ES256\"".to_owned()),
        Just("\"spiffe://example.org/orders\"".to_owned()),
        Just("\"spiffe://example.org/billing\"".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| serde_json::json!(f).to_string()),
        "\"[ -~]{0,20}\"",
        Just("null".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
    ];
    let member = prop_oneof![
        Just("alg"),
        Just("kid"),
        Just("typ"),
        Just("sub"),
        Just("aud"),
        Just("exp"),
        Just("nbf"),
        Just("iat"),
        Just("x"),
    ];
    let object = prop::collection::vec((member, value), 0..7).prop_map(|ms| {
        let body: Vec<String> = ms.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    });
    (object.clone(), object).prop_map(|(h, c)| {
        // Signed for real, so the checks run up to the signature.
        sign(&format!("{}.{}", B64.encode(&h), B64.encode(&c)))
    })
}

fn sign(input: &str) -> String {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    static PAIR: OnceLock<EcdsaKeyPair> = OnceLock::new();
    let pair = PAIR.get_or_init(|| {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            doc.as_ref(),
            &SystemRandom::new(),
        )
        .unwrap()
    });
    let sig = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", B64.encode(sig.as_ref()))
}

fn audience_path() -> impl Strategy<Value = SpiffeId> {
    "(/[a-z]{1,6}){0,3}".prop_map(|p| format!("spiffe://example.org{p}").parse().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn verify_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(verify(&text, &world().audience).is_err());
    }

    #[test]
    fn verify_never_panics_on_arbitrary_segments(token in three_segments()) {
        prop_assert!(verify(&token, &world().audience).is_err());
    }

    #[test]
    fn verify_never_panics_on_signed_json(token in signed_json()) {
        // Signed by a key that is not in the bundle: never accepted.
        prop_assert!(verify(&token, &world().audience).is_err());
    }

    #[test]
    fn any_single_byte_change_is_refused(
        position in any::<prop::sample::Index>(),
        replacement in prop_oneof![
            prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ".to_vec()),
            any::<u8>().prop_filter("ascii", u8::is_ascii),
        ],
    ) {
        let w = world();
        let token = danger::mint_at(&w.signer, &w.audience, at(NOW), at(NOW + 60)).unwrap();
        let mut bytes = token.clone().into_bytes();
        let i = position.index(bytes.len());
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        let changed = String::from_utf8(bytes).unwrap();
        let got = verify(&changed, &w.audience);
        prop_assert!(got.is_err(), "byte {} -> {:?} accepted", i, replacement as char);
    }

    #[test]
    fn a_token_verifies_only_for_its_own_audience(a in audience_path(), b in audience_path()) {
        let w = world();
        let token = danger::mint_at(&w.signer, &a, at(NOW), at(NOW + 60)).unwrap();
        prop_assert_eq!(verify(&token, &a).unwrap(), w.signer.id().clone());
        let other = verify(&token, &b);
        if a == b {
            prop_assert!(other.is_ok());
        } else {
            let refused = matches!(other, Err(Error::InvalidToken(TokenError::Audience { .. })));
            prop_assert!(refused, "{:?}", other);
        }
    }
}
