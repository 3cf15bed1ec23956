//! Fixtures for the spiffile benchmarks: keys, bundles of any size, identity
//! directories on disk, and the raw `ring` baselines of the same operations.
//!
//! The benchmarks themselves are in `benches/spiffile.rs`; run them with
//! `cargo bench -p spiffile-bench` or `cargo xtask bench` (which also times
//! the Python reference and prints the table of ratios).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use spiffile_bundle::{Bundle, JwtBundle};
use spiffile_id::SpiffeId;
use spiffile_svid::{Signer, Verifier, generate_pkcs8_pem};

/// The trust domain of every fixture.
pub const TRUST_DOMAIN: &str = "example.org";
/// The calling workload.
pub const ORDERS: &str = "spiffe://example.org/orders";
/// The called workload (the verifier's own ID, the audience).
pub const BILLING: &str = "spiffe://example.org/billing";

/// The trust domain of the SPIRE-style issuer (a per-domain authority).
pub const SPIRE_TRUST_DOMAIN: &str = "spire.test";
/// The audience of the issuer's tokens.
pub const SPIRE_BILLING: &str = "spiffe://spire.test/billing";
/// The `kid` the issuer publishes its key under (SPIRE's are 32 characters).
pub const SPIRE_KID: &str = "Y2FsbGVkLWJ5LXRoZS1iZW5jaG1hcmtz";

/// Parses a SPIFFE ID known to be valid.
pub fn id(s: &str) -> SpiffeId {
    s.parse().unwrap_or_else(|e| panic!("fixture ID {s}: {e}"))
}

/// A caller (`orders`) and a callee (`billing`) with fresh keys.
pub struct Pair {
    /// The PKCS#8 PEM of `orders`.
    pub orders_pem: String,
    /// The PKCS#8 PEM of `billing`.
    pub billing_pem: String,
    /// The signer of `orders`.
    pub orders: Signer,
    /// The signer of `billing`.
    pub billing: Signer,
    /// `orders`' key as a raw `ring` key pair, for the baseline.
    pub orders_ring: EcdsaKeyPair,
    /// The key of a SPIRE-style central issuer for `spire.test`.
    pub spire_ring: EcdsaKeyPair,
    /// One distinct key per filler identity, generated on demand.
    filler: std::sync::Mutex<Vec<spiffile_bundle::PublicKey>>,
}

impl Pair {
    /// Generates the two workloads' keys and a pool of filler keys.
    pub fn new() -> Self {
        let pem = || generate_pkcs8_pem().expect("key generation").to_string();
        let orders_pem = pem();
        let billing_pem = pem();
        let orders = Signer::from_pkcs8_pem(id(ORDERS), orders_pem.as_bytes()).expect("key");
        let billing = Signer::from_pkcs8_pem(id(BILLING), billing_pem.as_bytes()).expect("key");
        let orders_ring = ring_key_pair(&orders_pem);
        let spire_ring = ring_key_pair(&pem());
        let filler = std::sync::Mutex::new(Vec::new());
        Pair {
            orders_pem,
            billing_pem,
            orders,
            billing,
            orders_ring,
            spire_ring,
            filler,
        }
    }

    /// A bundle holding `orders`, `billing` and `size - 2` more identities
    /// (`spiffe://example.org/svc/<n>`), each with a key of its own (as in a
    /// real bundle; generated once and kept for the next bundle).
    pub fn bundle(&self, size: usize) -> Bundle {
        let mut filler = self.filler.lock().expect("filler keys");
        let rng = SystemRandom::new();
        while filler.len() < size.saturating_sub(2) {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .expect("key generation");
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .expect("PKCS#8");
            filler.push(
                spiffile_bundle::PublicKey::from_sec1(pair.public_key().as_ref())
                    .expect("public key"),
            );
        }
        let mut bundle = Bundle::new(TRUST_DOMAIN.parse().expect("trust domain"));
        bundle
            .add_key(self.orders.id(), self.orders.public_key().clone())
            .expect("orders key");
        bundle
            .add_key(self.billing.id(), self.billing.public_key().clone())
            .expect("billing key");
        for n in 0..size.saturating_sub(2) {
            let key = filler[n].clone();
            bundle
                .add_key(&id(&format!("spiffe://example.org/svc/{n}")), key)
                .expect("filler key");
        }
        bundle
    }

    /// Writes `billing`'s identity directory (`id`, `key.pem`, `bundle.json`
    /// with `size` identities) into `dir` and returns it.
    pub fn write_billing_dir(&self, dir: &Path, size: usize) -> PathBuf {
        std::fs::create_dir_all(dir).expect("create fixture dir");
        std::fs::write(dir.join("id"), format!("{BILLING}\n")).expect("write id");
        std::fs::write(dir.join("key.pem"), &self.billing_pem).expect("write key");
        std::fs::write(dir.join("bundle.json"), self.bundle(size).to_json()).expect("write bundle");
        dir.to_owned()
    }

    /// Writes `orders`' identity directory into `dir`.
    pub fn write_orders_dir(&self, dir: &Path, size: usize) -> PathBuf {
        std::fs::create_dir_all(dir).expect("create fixture dir");
        std::fs::write(dir.join("id"), format!("{ORDERS}\n")).expect("write id");
        std::fs::write(dir.join("key.pem"), &self.orders_pem).expect("write key");
        std::fs::write(dir.join("bundle.json"), self.bundle(size).to_json()).expect("write bundle");
        dir.to_owned()
    }

    /// A fresh token from `orders` to `billing`, valid for an hour.
    pub fn token(&self) -> String {
        self.orders
            .mint(&id(BILLING), std::time::Duration::from_secs(3600))
            .expect("mint")
    }
}

impl Pair {
    /// The issuer's SPIFFE bundle: its one key, as SPIRE publishes it.
    pub fn spire_bundle(&self) -> JwtBundle {
        let key = spiffile_bundle::PublicKey::from_sec1(self.spire_ring.public_key().as_ref())
            .expect("public key");
        let mut jwk = key.to_jwk();
        if let Some(m) = jwk.as_object_mut() {
            m.remove("use");
            m.remove("alg");
            m.insert("kid".into(), SPIRE_KID.into());
        }
        let jwks = format!(r#"{{"keys":[{jwk}]}}"#);
        JwtBundle::from_jwks(SPIRE_TRUST_DOMAIN.parse().expect("td"), jwks.as_bytes())
            .expect("JWKS")
    }

    /// A verifier over two trust domains: `example.org` per identity
    /// (`bundle(size)`) and `spire.test` per domain.
    pub fn federated_verifier(&self, size: usize) -> Verifier {
        Verifier::builder()
            .bundle("bundle.json", &self.bundle(size))
            .expect("example.org")
            .jwt_bundle("spire.test.json", &self.spire_bundle())
            .expect("spire.test")
            .build()
    }

    /// A token as SPIRE mints it (`aud` an array, the issuer's `kid`), from
    /// `spiffe://spire.test/orders` to [`SPIRE_BILLING`], valid for an hour.
    pub fn spire_token(&self) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = spiffile_svid::UnixTime::now().expect("clock").as_secs();
        let header = format!(r#"{{"alg":"ES256","kid":"{SPIRE_KID}","typ":"JWT"}}"#);
        let claims = format!(
            r#"{{"aud":["{SPIRE_BILLING}"],"exp":{},"iat":{now},"sub":"spiffe://spire.test/orders"}}"#,
            now + 3600
        );
        let input = format!("{}.{}", b64.encode(header), b64.encode(claims));
        let sig = self
            .spire_ring
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("sign");
        format!("{input}.{}", b64.encode(sig.as_ref()))
    }
}

impl Default for Pair {
    fn default() -> Self {
        Self::new()
    }
}

/// The `ring` key pair of a PKCS#8 PEM.
pub fn ring_key_pair(pem: &str) -> EcdsaKeyPair {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body");
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
        .expect("PKCS#8")
}

/// A token split into what the raw baseline works on: the signing input
/// and the 64-byte signature.
pub fn signing_input_and_signature(token: &str) -> (Vec<u8>, Vec<u8>) {
    use base64::Engine as _;
    let dot = token.rfind('.').expect("three segments");
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token[dot + 1..])
        .expect("signature segment");
    (token.as_bytes()[..dot].to_vec(), sig)
}

/// The raw `ring` verify of a signing input: the floor of verification.
pub fn ring_verify(public_sec1: &[u8; 65], input: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_sec1)
        .verify(input, sig)
        .is_ok()
}

/// Where the benchmarks leave their fixtures (the Python peer reads them):
/// `<workspace>/target/spiffile-bench`.
pub fn output_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/spiffile-bench")
}
