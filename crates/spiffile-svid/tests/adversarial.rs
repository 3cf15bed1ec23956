//! The adversarial suite: hostile tokens, each with a name and the exact
//! rejection it must meet (or, for the few documented acceptances, the exact
//! caller it must yield).
//!
//! Every token is built here from keys this test generates; nothing is
//! hard-coded that could rot. `rules.rs` states each rule once; this table
//! attacks them from every side the issue lists (algorithm, key confusion,
//! header injection, audience, time, subject, duplicates, framing).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair,
};
use serde_json::{Value, json};
use spiffile_bundle::{Bundle, WarningKind};
use spiffile_id::SpiffeId;
use spiffile_svid::{Error, Signer, TokenError, Verifier, VerifyOptions, generate_pkcs8_pem};
use spiffile_svid::{UnixTime, danger};

const NOW: i64 = 1_800_000_000;

/// A time for the `danger` functions.
fn at(secs: i64) -> UnixTime {
    UnixTime::from_secs(secs)
}
const LEEWAY: u64 = 30;
const ORDERS: &str = "spiffe://example.org/orders";
const TWIN: &str = "spiffe://example.org/twin";
const MALLORY: &str = "spiffe://example.org/mallory";
const STRANGER: &str = "spiffe://example.org/stranger";
const BILLING: &str = "spiffe://example.org/billing";

const THREE: &str = "a JWT-SVID has exactly three dot-separated segments";
const HEADER_B64: &str = "the header segment is not unpadded base64url";
const CLAIMS_B64: &str = "the claims segment is not unpadded base64url";
const SIG_B64: &str = "the signature segment is not unpadded base64url";
const NOT_A_DATE: &str = "is not a number (NumericDate)";
const OUT_OF_RANGE: &str = "is out of range (beyond the year 9999)";
const NOT_A_STRING: &str = "is not a string";

/// The order of P-256, big-endian.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

fn id(s: &str) -> SpiffeId {
    s.parse().unwrap()
}

/// A key holder: its signer (for `mint_at`), the raw key pair (to sign
/// anything), and its PKCS#8 DER (to sign in other encodings).
struct Party {
    signer: Signer,
    pair: EcdsaKeyPair,
    der: Vec<u8>,
}

impl Party {
    fn new(sub: &str) -> Party {
        let pem = generate_pkcs8_pem().unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(body).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
                .unwrap();
        Party {
            signer: Signer::from_pkcs8_pem(id(sub), pem.as_bytes()).unwrap(),
            pair,
            der,
        }
    }

    fn kid(&self) -> &str {
        self.signer.kid()
    }

    /// `base64url(header).base64url(claims)` signed with ES256 (r ‖ s).
    fn sign_bytes(&self, header: &[u8], claims: &[u8]) -> String {
        let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_bytes(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    fn sign_raw(&self, header: &str, claims: &str) -> String {
        self.sign_bytes(header.as_bytes(), claims.as_bytes())
    }

    /// The same signing input signed with a DER (ASN.1) ECDSA signature.
    fn sign_der(&self, header: &Value, claims: &Value) -> String {
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &self.der, &rng).unwrap();
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = pair.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }

    /// The public key as an SPKI PEM, the form an HS256 confusion attack
    /// would use as the HMAC secret.
    fn public_pem(&self) -> String {
        let mut der = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        der.extend_from_slice(&self.signer.public_key().to_sec1());
        let b64 = STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }
}

/// HS256 over arbitrary header and claims with `secret` as the HMAC key.
fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

fn hdr(kid: &str) -> Value {
    json!({"alg": "ES256", "kid": kid, "typ": "JWT"})
}

fn hdr_with(kid: &str, member: &str, value: Value) -> Value {
    let mut h = hdr(kid);
    h[member] = value;
    h
}

fn cl(sub: &str) -> Value {
    json!({"sub": sub, "aud": BILLING, "iat": NOW, "exp": NOW + 60})
}

fn cl_with(sub: &str, member: &str, value: Value) -> Value {
    let mut c = cl(sub);
    c[member] = value;
    c
}

fn cl_without(sub: &str, member: &str) -> Value {
    let mut c = cl(sub);
    c.as_object_mut().unwrap().remove(member);
    c
}

fn q(s: &str) -> String {
    Value::from(s).to_string()
}

fn segments(token: &str) -> (String, String, String) {
    let p: Vec<&str> = token.split('.').collect();
    assert_eq!(p.len(), 3);
    (p[0].to_owned(), p[1].to_owned(), p[2].to_owned())
}

fn with_signature(token: &str, sig: &[u8]) -> String {
    let (h, c, _) = segments(token);
    format!("{h}.{c}.{}", B64.encode(sig))
}

fn signature_of(token: &str) -> Vec<u8> {
    B64.decode(segments(token).2).unwrap()
}

/// `a - b` for 256-bit big-endian numbers, `a >= b`.
fn sub256(a: &[u8; 32], b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = 0;
        if d < 0 {
            d += 256;
            borrow = 1;
        }
        out[i] = d as u8;
    }
    out
}

enum Expect {
    /// Refused with exactly this error.
    Reject(TokenError),
    /// Refused as a segment that is not a JSON object (the parser's message
    /// is not ours to pin).
    Json(&'static str),
    /// Refused as an unknown identity.
    Unknown(&'static str),
    /// Accepted, and the caller is this identity.
    Accept(&'static str),
}

struct Case {
    name: &'static str,
    token: String,
    options: VerifyOptions,
    expect: Expect,
}

#[derive(Default)]
struct Table {
    cases: Vec<Case>,
}

impl Table {
    fn add(&mut self, name: &'static str, token: String, expect: Expect) {
        self.add_opts(name, token, VerifyOptions::default(), expect);
    }
    fn add_opts(
        &mut self,
        name: &'static str,
        token: String,
        options: VerifyOptions,
        expect: Expect,
    ) {
        self.cases.push(Case {
            name,
            token,
            options,
            expect,
        });
    }
    fn reject(&mut self, name: &'static str, token: String, e: TokenError) {
        self.add(name, token, Expect::Reject(e));
    }
}

struct World {
    orders: Party,
    mallory: Party,
    stranger: Party,
    verifier: Verifier,
}

fn world() -> World {
    let orders = Party::new(ORDERS);
    let mallory = Party::new(MALLORY);
    let stranger = Party::new(STRANGER);
    let mut bundle = Bundle::new("example.org".parse().unwrap());
    for (sub, p) in [(ORDERS, &orders), (TWIN, &orders), (MALLORY, &mallory)] {
        bundle
            .add_key(&id(sub), p.signer.public_key().clone())
            .unwrap();
    }
    // Through the document, as a verifier would see it: the shared key is
    // accepted, reported as a shared key.
    let bundle = Bundle::from_json_quiet(bundle.to_json().as_bytes()).unwrap();
    assert!(
        bundle
            .warnings()
            .iter()
            .any(|w| w.kind == WarningKind::SharedKey && w.message.contains("also bound to")),
        "{:?}",
        bundle.warnings()
    );
    World {
        verifier: Verifier::new(&bundle),
        orders,
        mallory,
        stranger,
    }
}

fn alg(a: &str) -> TokenError {
    TokenError::Algorithm(q(a))
}

fn header_member(m: &str) -> TokenError {
    TokenError::HeaderMember(q(m))
}

fn invalid(claim: &'static str, problem: &'static str) -> TokenError {
    TokenError::InvalidClaim { claim, problem }
}

fn audience(found: &str) -> TokenError {
    let mut found = q(found);
    if found.len() > 80 {
        found = format!("{}...", &found[..77]);
    }
    TokenError::Audience {
        found,
        expected: id(BILLING),
    }
}

/// Refused, and the key the token names is not bound to `sub` (reason
/// `signature`, with the kid named).
fn unbound_key(sub: &str, kid: &str) -> TokenError {
    TokenError::UnboundKey {
        sub: id(sub),
        kid: q(kid),
    }
}

fn subject(sub: &str) -> TokenError {
    TokenError::Subject(SpiffeId::new(sub).unwrap_err())
}

fn dup(segment: &'static str, member: &str) -> TokenError {
    TokenError::Duplicate {
        segment,
        member: q(member),
    }
}

fn signature(sub: &str) -> TokenError {
    TokenError::Signature(id(sub))
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn build(w: &World) -> Table {
    let o = &w.orders;
    let m = &w.mallory;
    let mut t = Table::default();
    let good = danger::mint_at(&o.signer, &id(BILLING), at(NOW), at(NOW + 60)).unwrap();

    // --- control
    t.add("control_minted_token", good.clone(), Expect::Accept(ORDERS));

    // --- algorithm attacks
    let none_h = json!({"alg": "none", "typ": "JWT"});
    let (h, c, _) = segments(&o.sign(&none_h, &cl(ORDERS)));
    t.reject(
        "alg_none_without_signature",
        format!("{h}.{c}."),
        alg("none"),
    );
    t.reject(
        "alg_none_with_valid_es256_signature",
        o.sign(&hdr_with(o.kid(), "alg", json!("none")), &cl(ORDERS)),
        alg("none"),
    );
    t.reject(
        "alg_none_mixed_case",
        o.sign(&hdr_with(o.kid(), "alg", json!("None")), &cl(ORDERS)),
        alg("None"),
    );
    let hs = hdr_with(o.kid(), "alg", json!("HS256"));
    t.reject(
        "alg_hs256_keyed_with_victim_public_pem",
        hs256(o.public_pem().as_bytes(), &hs, &cl(ORDERS)),
        alg("HS256"),
    );
    t.reject(
        "alg_hs256_keyed_with_victim_public_jwk",
        hs256(
            o.signer.public_key().to_jwk().to_string().as_bytes(),
            &hs,
            &cl(ORDERS),
        ),
        alg("HS256"),
    );
    t.reject(
        "alg_hs256_keyed_with_victim_sec1_point",
        hs256(&o.signer.public_key().to_sec1(), &hs, &cl(ORDERS)),
        alg("HS256"),
    );
    t.reject(
        "alg_hs256_pem_without_kid",
        hs256(
            o.public_pem().as_bytes(),
            &json!({"alg": "HS256", "typ": "JWT"}),
            &cl(ORDERS),
        ),
        alg("HS256"),
    );
    for (name, label) in [
        ("alg_es384_label_on_es256_signature", "ES384"),
        ("alg_rs256_label_on_es256_signature", "RS256"),
        ("alg_lowercase_es256_label", "es256"),
        ("alg_es256_with_trailing_space", "ES256 "),
        ("alg_eddsa_label", "EdDSA"),
        ("alg_ps256_label", "PS256"),
    ] {
        t.reject(
            name,
            o.sign(&hdr_with(o.kid(), "alg", json!(label)), &cl(ORDERS)),
            alg(label),
        );
    }
    t.reject(
        "alg_missing",
        o.sign(&json!({"kid": o.kid(), "typ": "JWT"}), &cl(ORDERS)),
        TokenError::Algorithm("missing".into()),
    );
    t.reject(
        "alg_null",
        o.sign(&hdr_with(o.kid(), "alg", json!(null)), &cl(ORDERS)),
        TokenError::Algorithm("null".into()),
    );
    t.reject(
        "alg_array_of_es256",
        o.sign(&hdr_with(o.kid(), "alg", json!(["ES256"])), &cl(ORDERS)),
        TokenError::Algorithm(r#"["ES256"]"#.into()),
    );
    // A JSON escape is the same string: the comparison is on decoded values.
    t.add(
        "alg_es256_spelled_with_json_escapes_is_es256",
        o.sign_raw(
            &format!(
                r#"{{"alg":"ES\u0032\u0035\u0036","kid":"{}","typ":"JWT"}}"#,
                o.kid()
            ),
            &cl(ORDERS).to_string(),
        ),
        Expect::Accept(ORDERS),
    );

    // --- key confusion: the key is always chosen among those bound to `sub`
    t.reject(
        "attacker_key_claims_victim_with_own_kid",
        m.sign(&hdr(m.kid()), &cl(ORDERS)),
        unbound_key(ORDERS, m.kid()),
    );
    t.reject(
        "attacker_key_claims_victim_with_victim_kid",
        m.sign(&hdr(o.kid()), &cl(ORDERS)),
        signature(ORDERS),
    );
    t.reject(
        "attacker_key_claims_victim_with_unknown_kid",
        m.sign(&hdr("not-a-kid"), &cl(ORDERS)),
        unbound_key(ORDERS, "not-a-kid"),
    );
    t.add(
        "victim_kid_on_attackers_own_token_selects_nothing_foreign",
        m.sign(&hdr(o.kid()), &cl(MALLORY)),
        Expect::Accept(MALLORY),
    );
    t.reject(
        "key_bound_to_another_identity",
        o.sign(&hdr(o.kid()), &cl(MALLORY)),
        unbound_key(MALLORY, o.kid()),
    );
    t.add(
        "unbundled_signer_own_sub",
        danger::mint_at(&w.stranger.signer, &id(BILLING), at(NOW), at(NOW + 60)).unwrap(),
        Expect::Unknown(STRANGER),
    );
    t.reject(
        "unbundled_signer_claims_victim",
        w.stranger.sign(&hdr(o.kid()), &cl(ORDERS)),
        signature(ORDERS),
    );
    // The same public key is bound to orders and twin: its holder signs as
    // both, by the bundle's own statement (which draws an advice warning).
    t.add(
        "shared_key_signs_as_the_other_identity_it_is_bound_to",
        o.sign(&hdr(o.kid()), &cl(TWIN)),
        Expect::Accept(TWIN),
    );
    let (h, _, s) = segments(&good);
    t.reject(
        "signature_transplanted_onto_longer_lived_claims",
        format!(
            "{h}.{}.{s}",
            B64.encode(cl_with(ORDERS, "exp", json!(NOW + 86_400)).to_string())
        ),
        signature(ORDERS),
    );
    t.reject(
        "signature_transplanted_onto_twin_subject",
        format!("{h}.{}.{s}", B64.encode(cl(TWIN).to_string())),
        signature(TWIN),
    );

    // --- header injection (signed by the attacker, claiming the victim)
    let inject = [
        ("jwk", m.signer.public_key().to_jwk()),
        ("jku", json!("https://evil.example/jwks.json")),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("x5c", json!([STANDARD.encode(b"not a certificate")])),
        ("x5t#S256", json!("AAAA")),
        ("crit", json!(["exp"])),
        ("b64", json!(false)),
        ("cty", json!("JWT")),
    ];
    let names = [
        "header_jwk_embedding_attacker_key",
        "header_jku",
        "header_x5u",
        "header_x5c",
        "header_x5t_s256",
        "header_crit",
        "header_b64_false",
        "header_cty",
    ];
    for ((member, value), name) in inject.into_iter().zip(names) {
        t.reject(
            name,
            m.sign(&hdr_with(m.kid(), member, value), &cl(ORDERS)),
            header_member(member),
        );
    }
    t.reject(
        "kid_missing",
        o.sign(&json!({"alg": "ES256", "typ": "JWT"}), &cl(ORDERS)),
        TokenError::KeyId("missing"),
    );
    t.reject(
        "kid_empty",
        o.sign(&hdr(""), &cl(ORDERS)),
        TokenError::KeyId("empty"),
    );
    for (name, kid) in [
        ("kid_number", json!(1)),
        ("kid_null", json!(null)),
        ("kid_object", json!({"kid": o.kid()})),
    ] {
        t.reject(
            name,
            o.sign(&hdr_with(o.kid(), "kid", kid), &cl(ORDERS)),
            TokenError::KeyId("not a string"),
        );
    }
    for (name, typ, shown) in [
        ("typ_at_jwt", json!("at+jwt"), r#""at+jwt""#),
        ("typ_lowercase_jwt", json!("jwt"), r#""jwt""#),
        ("typ_jose_json", json!("JOSE+JSON"), r#""JOSE+JSON""#),
        ("typ_number", json!(1), "1"),
        ("typ_null", json!(null), "null"),
    ] {
        t.reject(
            name,
            o.sign(&hdr_with(o.kid(), "typ", typ), &cl(ORDERS)),
            TokenError::Type(shown.into()),
        );
    }
    t.add(
        "typ_jose_accepted",
        o.sign(&hdr_with(o.kid(), "typ", json!("JOSE")), &cl(ORDERS)),
        Expect::Accept(ORDERS),
    );
    t.add(
        "header_not_an_object",
        o.sign(&json!(["ES256"]), &cl(ORDERS)),
        Expect::Json("header"),
    );
    t.reject(
        "header_empty_object",
        o.sign(&json!({}), &cl(ORDERS)),
        TokenError::Algorithm("missing".into()),
    );

    // --- audience
    let h = hdr(o.kid());
    for (name, aud) in [
        ("aud_array_of_one", json!([BILLING])),
        (
            "aud_array_of_two",
            json!([BILLING, "spiffe://example.org/x"]),
        ),
        ("aud_empty_array", json!([])),
    ] {
        t.reject(
            name,
            o.sign(&h, &cl_with(ORDERS, "aud", aud)),
            TokenError::AudienceArray,
        );
    }
    let long_aud = format!("spiffe://example.org/{}", "b".repeat(200));
    for (name, aud) in [
        ("aud_another_service", "spiffe://example.org/inventory"),
        ("aud_trust_domain_alone", "spiffe://example.org"),
        ("aud_trailing_slash", "spiffe://example.org/billing/"),
        ("aud_empty_string", ""),
        ("aud_case_changed", "spiffe://example.org/Billing"),
        ("aud_other_trust_domain", "spiffe://other.org/billing"),
        ("aud_long_is_shortened_in_error", long_aud.as_str()),
    ] {
        t.reject(
            name,
            o.sign(&h, &cl_with(ORDERS, "aud", json!(aud))),
            audience(aud),
        );
    }
    t.reject(
        "aud_missing",
        o.sign(&h, &cl_without(ORDERS, "aud")),
        TokenError::MissingClaim("aud"),
    );
    for (name, aud) in [("aud_number", json!(7)), ("aud_null", json!(null))] {
        t.reject(
            name,
            o.sign(&h, &cl_with(ORDERS, "aud", aud)),
            invalid("aud", NOT_A_STRING),
        );
    }

    // --- time
    let mint =
        |iat: i64, exp: i64| danger::mint_at(&o.signer, &id(BILLING), at(iat), at(exp)).unwrap();
    t.reject(
        "exp_missing",
        o.sign(&h, &cl_without(ORDERS, "exp")),
        TokenError::MissingClaim("exp"),
    );
    let expired = |exp| TokenError::Expired {
        exp,
        now: NOW,
        leeway: LEEWAY,
    };
    t.reject(
        "exp_expired_beyond_leeway",
        mint(NOW - 100, NOW - 31),
        expired(NOW - 31),
    );
    t.reject(
        "exp_at_the_leeway_edge",
        mint(NOW - 100, NOW - 30),
        expired(NOW - 30),
    );
    t.add(
        "exp_just_inside_leeway",
        mint(NOW - 100, NOW - 29),
        Expect::Accept(ORDERS),
    );
    t.reject(
        "nbf_future_beyond_leeway",
        o.sign(&h, &cl_with(ORDERS, "nbf", json!(NOW + 31))),
        TokenError::NotYetValid {
            nbf: NOW + 31,
            now: NOW,
            leeway: LEEWAY,
        },
    );
    t.add(
        "nbf_just_inside_leeway",
        o.sign(&h, &cl_with(ORDERS, "nbf", json!(NOW + 30))),
        Expect::Accept(ORDERS),
    );
    t.reject(
        "iat_future_beyond_leeway",
        mint(NOW + 31, NOW + 90),
        TokenError::IssuedInFuture {
            iat: NOW + 31,
            now: NOW,
            leeway: LEEWAY,
        },
    );
    for (name, claim, value) in [
        ("exp_as_string", "exp", json!((NOW + 60).to_string())),
        ("nbf_as_string", "nbf", json!(NOW.to_string())),
        ("iat_as_string", "iat", json!(NOW.to_string())),
        ("exp_as_bool", "exp", json!(true)),
    ] {
        let claim: &'static str = claim;
        t.reject(
            name,
            o.sign(&h, &cl_with(ORDERS, claim, value)),
            invalid(claim, NOT_A_DATE),
        );
    }
    t.add(
        "exp_float_in_range",
        o.sign(&h, &cl_with(ORDERS, "exp", json!(NOW as f64 + 60.5))),
        Expect::Accept(ORDERS),
    );
    t.reject(
        "exp_float_rounds_down",
        o.sign(&h, &cl_with(ORDERS, "exp", json!(NOW as f64 - 29.5))),
        expired(NOW - 30),
    );
    t.reject(
        "nbf_float_rounds_up",
        o.sign(&h, &cl_with(ORDERS, "nbf", json!(NOW as f64 + 30.5))),
        TokenError::NotYetValid {
            nbf: NOW + 31,
            now: NOW,
            leeway: LEEWAY,
        },
    );
    t.reject(
        "exp_negative",
        o.sign(&h, &cl_with(ORDERS, "exp", json!(-1))),
        expired(-1),
    );
    t.add(
        "exp_in_the_year_9999",
        o.sign(&h, &cl_with(ORDERS, "exp", json!(253_402_300_799i64))),
        Expect::Accept(ORDERS),
    );
    for (name, claim, raw) in [
        ("exp_beyond_the_year_9999", "exp", "253402300800"),
        ("exp_i64_max", "exp", "9223372036854775807"),
        ("exp_2_pow_63", "exp", "9223372036854775808"),
        ("exp_2_pow_64", "exp", "18446744073709551616"),
        ("exp_i64_min", "exp", "-9223372036854775808"),
        ("exp_1e300", "exp", "1e300"),
        ("iat_1e20", "iat", "1e20"),
        ("nbf_minus_1e20", "nbf", "-1e20"),
    ] {
        let claims = if claim == "exp" {
            format!(r#"{{"sub":"{ORDERS}","aud":"{BILLING}","exp":{raw}}}"#)
        } else {
            format!(
                r#"{{"sub":"{ORDERS}","aud":"{BILLING}","exp":{},"{claim}":{raw}}}"#,
                NOW + 60
            )
        };
        t.reject(
            name,
            o.sign_raw(&h.to_string(), &claims),
            invalid(claim, OUT_OF_RANGE),
        );
    }
    // Beyond f64: the JSON parser itself refuses the number.
    let claims = format!(r#"{{"sub":"{ORDERS}","aud":"{BILLING}","exp":1e400}}"#);
    t.add(
        "exp_1e400_beyond_f64",
        o.sign_raw(&h.to_string(), &claims),
        Expect::Json("claims"),
    );
    let claims = format!(
        r#"{{"sub":"{ORDERS}","aud":"{BILLING}","exp":1{}}}"#,
        "0".repeat(400)
    );
    t.add(
        "exp_with_401_digits",
        o.sign_raw(&h.to_string(), &claims),
        Expect::Json("claims"),
    );

    // --- subject (signed with the victim's own key, so only `sub` is wrong)
    t.reject(
        "sub_missing",
        o.sign(&h, &cl_without(ORDERS, "sub")),
        TokenError::MissingClaim("sub"),
    );
    for (name, sub) in [
        ("sub_not_a_spiffe_id", "orders"),
        ("sub_uppercase_scheme", "SPIFFE://example.org/orders"),
        ("sub_trailing_slash", "spiffe://example.org/orders/"),
        ("sub_uppercase_trust_domain", "spiffe://Example.org/orders"),
        ("sub_with_query", "spiffe://example.org/orders?admin=1"),
        ("sub_percent_encoded", "spiffe://example.org/%6Frders"),
        ("sub_dot_segment", "spiffe://example.org/./orders"),
        ("sub_with_nul", "spiffe://example.org/orders\u{0}"),
        ("sub_empty", ""),
    ] {
        t.reject(name, o.sign(&h, &cl(sub)), subject(sub));
    }
    t.add(
        "sub_other_trust_domain",
        o.sign(&h, &cl("spiffe://other.org/orders")),
        Expect::Unknown("spiffe://other.org/orders"),
    );
    t.add(
        "sub_trust_domain_alone",
        o.sign(&h, &cl("spiffe://example.org")),
        Expect::Unknown("spiffe://example.org"),
    );
    for (name, sub) in [
        ("sub_not_a_string", json!(42)),
        ("sub_array", json!([ORDERS])),
    ] {
        t.reject(
            name,
            o.sign(&h, &cl_with(ORDERS, "sub", sub)),
            invalid("sub", NOT_A_STRING),
        );
    }

    // --- duplicate members: rejected, whatever the order
    let exp = NOW + 60;
    let mh = hdr(m.kid()).to_string();
    for (name, claims, member) in [
        (
            "dup_sub_attacker_then_victim",
            format!(r#"{{"sub":"{MALLORY}","aud":"{BILLING}","exp":{exp},"sub":"{ORDERS}"}}"#),
            "sub",
        ),
        (
            "dup_sub_victim_then_attacker",
            format!(r#"{{"sub":"{ORDERS}","aud":"{BILLING}","exp":{exp},"sub":"{MALLORY}"}}"#),
            "sub",
        ),
        (
            "dup_sub_identical",
            format!(r#"{{"sub":"{MALLORY}","sub":"{MALLORY}","aud":"{BILLING}","exp":{exp}}}"#),
            "sub",
        ),
        (
            "dup_sub_with_escaped_member_name",
            format!(r#"{{"sub":"{MALLORY}","aud":"{BILLING}","exp":{exp},"s\u0075b":"{ORDERS}"}}"#),
            "sub",
        ),
        (
            "dup_aud",
            format!(
                r#"{{"sub":"{MALLORY}","aud":"spiffe://example.org/x","aud":"{BILLING}","exp":{exp}}}"#
            ),
            "aud",
        ),
        (
            "dup_exp",
            format!(r#"{{"sub":"{MALLORY}","aud":"{BILLING}","exp":1,"exp":{exp}}}"#),
            "exp",
        ),
        (
            "dup_private_claim",
            format!(
                r#"{{"sub":"{MALLORY}","aud":"{BILLING}","exp":{exp},"scope":"read","scope":"admin"}}"#
            ),
            "scope",
        ),
    ] {
        t.reject(name, m.sign_raw(&mh, &claims), dup("claims", member));
    }
    t.reject(
        "dup_header_alg_none_then_es256",
        o.sign_raw(
            &format!(r#"{{"alg":"none","kid":"{}","alg":"ES256"}}"#, o.kid()),
            &cl(ORDERS).to_string(),
        ),
        dup("header", "alg"),
    );
    t.reject(
        "dup_header_kid_attacker_then_victim",
        m.sign_raw(
            &format!(
                r#"{{"alg":"ES256","kid":"{}","kid":"{}"}}"#,
                m.kid(),
                o.kid()
            ),
            &cl(MALLORY).to_string(),
        ),
        dup("header", "kid"),
    );

    // --- framing and encoding
    let (gh, gc, gs) = segments(&good);
    let malformed = TokenError::Malformed;
    t.reject("two_segments", format!("{gh}.{gc}"), malformed(THREE));
    t.reject("four_segments", format!("{good}.{gs}"), malformed(THREE));
    t.reject(
        "five_segments_jwe_shape",
        format!("{gh}..{gc}.{gs}.{gs}"),
        malformed(THREE),
    );
    t.reject("empty_token", String::new(), malformed(THREE));
    t.add("only_dots", "..".into(), Expect::Json("header"));
    t.reject(
        "header_padded",
        format!("{gh}=.{gc}.{gs}"),
        malformed(HEADER_B64),
    );
    t.reject(
        "claims_padded",
        format!("{gh}.{gc}=.{gs}"),
        malformed(CLAIMS_B64),
    );
    t.reject(
        "signature_padded",
        format!("{gh}.{gc}.{gs}=="),
        malformed(SIG_B64),
    );
    // The standard alphabet: a signature that has '-' or '_' in base64url.
    let std_sig_token = (0..200)
        .map(|_| danger::mint_at(&o.signer, &id(BILLING), at(NOW), at(NOW + 60)).unwrap())
        .find(|t| segments(t).2.contains(['-', '_']))
        .unwrap();
    let (sh, sc, ss) = segments(&std_sig_token);
    t.reject(
        "signature_standard_base64_alphabet",
        format!("{sh}.{sc}.{}", ss.replace('-', "+").replace('_', "/")),
        malformed(SIG_B64),
    );
    // "???" is "Pz8_" in base64url, "Pz8/" in the standard alphabet.
    let tok = o.sign(&h, &cl_with(ORDERS, "x", json!("???")));
    let (th, tc, ts) = segments(&tok);
    assert!(tc.contains('_'));
    t.reject(
        "claims_standard_base64_alphabet",
        format!("{th}.{}.{ts}", tc.replace('_', "/")),
        malformed(CLAIMS_B64),
    );
    t.reject("leading_space", format!(" {good}"), malformed(HEADER_B64));
    t.reject("trailing_newline", format!("{good}\n"), malformed(SIG_B64));
    t.reject(
        "bearer_prefix",
        format!("Bearer {good}"),
        malformed(HEADER_B64),
    );
    t.reject(
        "space_inside_claims",
        format!("{gh}.{} {}.{gs}", &gc[..10], &gc[10..]),
        malformed(CLAIMS_B64),
    );
    t.reject("nul_byte_first", format!("\0{good}"), malformed(HEADER_B64));
    t.reject(
        "non_ascii_in_signature",
        format!("{good}é"),
        malformed(SIG_B64),
    );
    let der = o.sign_der(&h, &cl(ORDERS));
    let der_len = B64.decode(segments(&der).2).unwrap().len();
    assert_ne!(der_len, 64);
    t.reject(
        "der_encoded_signature",
        der,
        TokenError::SignatureLength(der_len),
    );
    let sig = signature_of(&good);
    t.reject(
        "signature_63_bytes",
        with_signature(&good, &sig[..63]),
        TokenError::SignatureLength(63),
    );
    let mut sig65 = sig.clone();
    sig65.push(0);
    t.reject(
        "signature_65_bytes",
        with_signature(&good, &sig65),
        TokenError::SignatureLength(65),
    );
    t.reject(
        "signature_empty",
        format!("{gh}.{gc}."),
        TokenError::SignatureLength(0),
    );
    t.reject(
        "signature_r_and_s_zero",
        with_signature(&good, &[0u8; 64]),
        signature(ORDERS),
    );
    let mut zero_r = sig.clone();
    zero_r[..32].fill(0);
    t.reject(
        "signature_r_zero",
        with_signature(&good, &zero_r),
        signature(ORDERS),
    );
    let mut zero_s = sig.clone();
    zero_s[32..].fill(0);
    t.reject(
        "signature_s_zero",
        with_signature(&good, &zero_s),
        signature(ORDERS),
    );
    let mut r_is_n = sig.clone();
    r_is_n[..32].copy_from_slice(&N);
    t.reject(
        "signature_r_equals_n",
        with_signature(&good, &r_is_n),
        signature(ORDERS),
    );
    let mut s_is_n = sig.clone();
    s_is_n[32..].copy_from_slice(&N);
    t.reject(
        "signature_s_equals_n",
        with_signature(&good, &s_is_n),
        signature(ORDERS),
    );
    // ECDSA is malleable: (r, n - s) is a second valid signature of the same
    // message by the same key. It is not a forgery (nothing new is signed),
    // but it means the signature bytes must not key a replay cache.
    let mut high_s = sig.clone();
    let s_neg = sub256(&N, &sig[32..]);
    high_s[32..].copy_from_slice(&s_neg);
    t.add(
        "signature_malleated_to_n_minus_s",
        with_signature(&good, &high_s),
        Expect::Accept(ORDERS),
    );
    // Single-bit flips in each segment, in the decoded bytes.
    let hb = B64.decode(&gh).unwrap();
    let kid_at = hb
        .windows(6)
        .position(|w| w == b"\"kid\":")
        .map(|i| i + 7)
        .unwrap();
    let letter = (kid_at..hb.len())
        .find(|&i| hb[i].is_ascii_alphabetic())
        .unwrap();
    let mut hb2 = hb.clone();
    hb2[letter] ^= 0x20; // flips case: still a string, another kid
    let flipped: Value = serde_json::from_slice(&hb2).unwrap();
    t.reject(
        "bit_flip_in_header_kid",
        format!("{}.{gc}.{gs}", B64.encode(&hb2)),
        unbound_key(ORDERS, flipped["kid"].as_str().unwrap()),
    );
    let cb = B64.decode(&gc).unwrap();
    let mut cb2 = cb.clone();
    let last_digit = cb2.len() - 2; // …,"exp":1800000060}
    cb2[last_digit] ^= 0x01; // a digit stays a digit: exp moves by a second
    t.reject(
        "bit_flip_in_claims_exp",
        format!("{gh}.{}.{gs}", B64.encode(&cb2)),
        signature(ORDERS),
    );
    let mut cb3 = cb.clone();
    let sub_at = cb3.windows(6).position(|w| w == b"orders").unwrap();
    cb3[sub_at] ^= 0x20; // "Orders": another valid, unbundled, ID
    t.add(
        "bit_flip_in_claims_sub",
        format!("{gh}.{}.{gs}", B64.encode(&cb3)),
        Expect::Unknown("spiffe://example.org/Orders"),
    );
    for (name, byte) in [
        ("bit_flip_in_signature_first_byte", 0),
        ("bit_flip_in_signature_byte_32", 32),
        ("bit_flip_in_signature_last_byte", 63),
    ] {
        let mut s = sig.clone();
        s[byte] ^= 0x80;
        t.reject(name, with_signature(&good, &s), signature(ORDERS));
    }
    let mut bad_utf8_header = br#"{"alg":"ES256","kid":""#.to_vec();
    bad_utf8_header.push(0xff);
    bad_utf8_header.extend_from_slice(br#"","typ":"JWT"}"#);
    t.add(
        "header_invalid_utf8",
        o.sign_bytes(&bad_utf8_header, cl(ORDERS).to_string().as_bytes()),
        Expect::Json("header"),
    );
    let mut bad_utf8_claims = cl(ORDERS).to_string().into_bytes();
    let at = bad_utf8_claims
        .windows(6)
        .position(|w| w == b"orders")
        .unwrap();
    bad_utf8_claims[at] = 0xc3; // a lead byte followed by ASCII
    t.add(
        "claims_invalid_utf8_in_sub",
        o.sign_bytes(h.to_string().as_bytes(), &bad_utf8_claims),
        Expect::Json("claims"),
    );
    for (name, claims) in [
        ("claims_array", "[]"),
        ("claims_string", r#""spiffe://example.org/orders""#),
        ("claims_null", "null"),
        ("claims_number", "1800000060"),
        ("claims_empty", ""),
    ] {
        t.add(
            name,
            o.sign_raw(&h.to_string(), claims),
            Expect::Json("claims"),
        );
    }
    // A JSON string where the object should be: the parser's message must
    // not repeat it (it could be anything the sender chose, up to 8 KiB).
    t.add(
        "claims_long_string_is_not_echoed",
        o.sign_raw(&h.to_string(), &q(&"secret-ish ".repeat(500))),
        Expect::Json("claims"),
    );
    t.add(
        "claims_trailing_garbage",
        o.sign_raw(&h.to_string(), &format!("{} x", cl(ORDERS))),
        Expect::Json("claims"),
    );
    let big = o.sign(&h, &cl_with(ORDERS, "pad", json!("p".repeat(1 << 20))));
    assert!(big.len() > 1 << 20);
    t.reject(
        "token_of_1_mib",
        big.clone(),
        TokenError::TooLarge {
            len: big.len(),
            max: 8192,
        },
    );
    let roomy = VerifyOptions::default().with_max_token_bytes(2 << 20);
    t.add_opts(
        "token_of_1_mib_under_a_raised_limit",
        big,
        roomy,
        Expect::Accept(ORDERS),
    );
    let deep_claims = format!(
        r#"{{"sub":"{ORDERS}","aud":"{BILLING}","exp":{exp},"x":{}}}"#,
        nested(10_000)
    );
    let deep = o.sign_raw(&h.to_string(), &deep_claims);
    t.reject(
        "claims_nested_10000_deep",
        deep.clone(),
        TokenError::TooLarge {
            len: deep.len(),
            max: 8192,
        },
    );
    t.add_opts(
        "claims_nested_10000_deep_under_a_raised_limit",
        deep,
        roomy,
        Expect::Json("claims"),
    );
    let deep_header = format!(r#"{{"alg":"ES256","kid":{}}}"#, nested(10_000));
    t.add_opts(
        "header_nested_10000_deep_under_a_raised_limit",
        o.sign_raw(&deep_header, &cl(ORDERS).to_string()),
        roomy,
        Expect::Json("header"),
    );
    let deep_object = format!(
        r#"{{"sub":"{ORDERS}","aud":"{BILLING}","exp":{exp},"x":{}{}}}"#,
        r#"{"a":"#.repeat(10_000),
        "}".repeat(10_000)
    );
    t.add_opts(
        "claims_objects_nested_10000_deep_under_a_raised_limit",
        o.sign_raw(&h.to_string(), &deep_object),
        roomy,
        Expect::Json("claims"),
    );
    t
}

/// The `sub` member of a token's claims, read independently of the verifier.
fn claimed_sub(token: &str) -> Option<String> {
    let c = token.split('.').nth(1)?;
    let v: Value = serde_json::from_slice(&B64.decode(c).ok()?).ok()?;
    v.get("sub")?.as_str().map(str::to_owned)
}

#[test]
fn adversarial_tokens_meet_their_exact_fate() {
    let w = world();
    let table = build(&w);
    let billing = id(BILLING);
    let mut failures = Vec::new();
    for case in &table.cases {
        let got = danger::verify_at(&w.verifier, &case.token, &billing, &case.options, at(NOW));
        let ok = match (&case.expect, &got) {
            (Expect::Reject(want), Err(Error::InvalidToken(e))) => {
                e == want && got.as_ref().err().and_then(Error::reason) == Some(want.reason())
            }
            (Expect::Json(seg), Err(Error::InvalidToken(TokenError::Json { segment, .. }))) => {
                segment == seg
            }
            (Expect::Unknown(sub), Err(Error::UnknownIdentity(u))) => u.as_str() == *sub,
            (Expect::Accept(sub), Ok(caller)) => {
                // The caller is the `sub` the token claims: the identity whose
                // keys checked the signature is the one returned.
                caller.id().as_str() == *sub
                    && claimed_sub(&case.token).as_deref() == Some(*sub)
                    && caller.claims().aud() == &billing
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("{}: got {got:?}", case.name));
        }
        if let Err(e) = &got {
            let msg = e.to_string();
            let debug = format!("{e:?}");
            let sig = case.token.rsplit('.').next().unwrap_or("");
            for shown in [&msg, &debug] {
                if shown.len() > 400 || (sig.len() >= 16 && shown.contains(sig)) {
                    failures.push(format!("{}: error echoes the token: {shown}", case.name));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        table.cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_suite_is_large_and_every_case_is_named_once() {
    let w = world();
    let table = build(&w);
    let rejected = table
        .cases
        .iter()
        .filter(|c| !matches!(c.expect, Expect::Accept(_)))
        .count();
    assert!(rejected >= 60, "only {rejected} hostile tokens");
    let mut names: Vec<&str> = table.cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "case names repeat");
    // Distinct tokens too: no case silently tests what another does.
    let mut tokens: Vec<(&str, usize)> = table
        .cases
        .iter()
        .map(|c| (c.token.as_str(), c.options.max_token_bytes()))
        .collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), table.cases.len(), "two cases share a token");
}

#[test]
fn duplicate_subs_never_split_key_lookup_from_the_caller() {
    // Whatever the order of two `sub` members, and whichever key signs, the
    // token is refused: there is no token for which one `sub` selects the
    // key and another is returned.
    let w = world();
    let exp = NOW + 60;
    for signer in [&w.orders, &w.mallory] {
        for (a, b) in [(ORDERS, MALLORY), (MALLORY, ORDERS), (ORDERS, ORDERS)] {
            let claims = format!(r#"{{"sub":"{a}","aud":"{BILLING}","exp":{exp},"sub":"{b}"}}"#);
            let token = signer.sign_raw(&hdr(signer.kid()).to_string(), &claims);
            assert_eq!(
                danger::verify_at(
                    &w.verifier,
                    &token,
                    &id(BILLING),
                    &VerifyOptions::default(),
                    at(NOW)
                ),
                Err(Error::InvalidToken(dup("claims", "sub"))),
                "{a} then {b}"
            );
        }
    }
}

#[test]
fn json_errors_say_what_was_found_without_repeating_it() {
    let w = world();
    let h = hdr(w.orders.kid()).to_string();
    for (claims, found) in [
        (q(&"x".repeat(3000)), "found a string"),
        (
            "[\"spiffe://example.org/orders\"]".to_owned(),
            "found an array",
        ),
        ("true".to_owned(), "found a boolean"),
        ("null".to_owned(), "found null"),
        ("-12.5".to_owned(), "found a number"),
    ] {
        let token = w.orders.sign_raw(&h, &claims);
        let got = danger::verify_at(
            &w.verifier,
            &token,
            &id(BILLING),
            &VerifyOptions::default(),
            at(NOW),
        );
        assert_eq!(
            got,
            Err(Error::InvalidToken(TokenError::Json {
                segment: "claims",
                message: found.into()
            })),
            "{claims:.40}"
        );
    }
}
