//! Graduation to SPIRE, against a real SPIRE server and agent and the real
//! spiffe-helper (`spiffile-testinfra`, feature `spire`): SPIRE mints
//! orders→billing, spiffe-helper writes its files, and our `Identity` on
//! each side presents and accepts the token from those files with no code
//! of its own for SPIRE; tokens for another audience, expired, or re-signed
//! with a foreign key are refused. Federation: a spiffile trust domain and
//! SPIRE's side by side in one `Identity`, neither able to speak for the
//! other (SPIRE's own signing key, read from its key manager, is used to
//! forge for example.org).
//!
//! Skipped (loudly) without a SPIRE deployment or its binaries; a failure
//! under `cargo xtask test` / CI (see docs/testing.md).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::Value;
use spiffile::bundle::JwtBundleSet;
use spiffile::svid::TokenError;
use spiffile::{BundleSource, Error, Identity, IdentitySources, Reason};
use spiffile_testinfra::{HelperFiles, Spire, Workload, unique_name};
use spiffile_testkit::{Root, id};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A workload and the directory spiffe-helper writes its files into.
struct Helped {
    workload: Workload,
    dir: tempfile::TempDir,
}

impl Helped {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// This workload as an `Identity` configured the graduated way:
    /// `SPIFFILE_BUNDLE_FILE` = spiffe-helper's JWT bundle file,
    /// `SPIFFILE_JWT_SVID_DIR` = its directory (the variables are given to
    /// `IdentitySources::from_vars`: tests run in parallel).
    fn identity(&self) -> Result<Identity, Error> {
        let sources = IdentitySources::from_vars(|name| match name {
            "SPIFFILE_BUNDLE_FILE" => Some(self.path("jwt_bundle.json").into()),
            "SPIFFILE_JWT_SVID_DIR" => Some(self.dir.path().into()),
            _ => None,
        })?;
        Identity::builder().load_sources(sources)
    }
}

/// Registers a workload and runs spiffe-helper once as it, writing a token
/// for each audience (`<n>.token`) and the JWT bundle set.
fn helped(
    spire: &Spire,
    name: &str,
    ttl: Option<Duration>,
    audiences: &[&str],
) -> Result<Helped, Box<dyn std::error::Error>> {
    let mut reg = spire.registration(&unique_name(name));
    if let Some(ttl) = ttl {
        reg = reg.jwt_svid_ttl(ttl);
    }
    let workload = reg.register()?;
    let dir = tempfile::tempdir()?;
    let mut files = HelperFiles::new().jwt_bundle("jwt_bundle.json");
    for (i, aud) in audiences.iter().enumerate() {
        files = files.jwt_svid(aud, &format!("{i}.token"));
    }
    // X.509 files too, as a real deployment has them beside the tokens.
    files = files.x509("svid.pem", "svid_key.pem", "svid_bundle.pem");
    workload.write_helper_files(dir.path(), &files)?;
    Ok(Helped { workload, dir })
}

fn claims_of(token: &str) -> Value {
    let claims = token.split('.').nth(1).unwrap_or("");
    serde_json::from_slice(&B64.decode(claims).unwrap_or_default()).unwrap_or(Value::Null)
}

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().unwrap_or("");
    serde_json::from_slice(&B64.decode(header).unwrap_or_default()).unwrap_or(Value::Null)
}

/// Signs `header` and `claims` (JSON) with a PKCS#8 key.
fn sign(pkcs8: &[u8], header: &Value, claims: &Value) -> String {
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).unwrap();
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = pair.sign(&rng, input.as_bytes()).unwrap();
    format!("{input}.{}", B64.encode(sig.as_ref()))
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "not seen within {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn spire_mints_orders_to_billing_and_billing_accepts_it_from_spiffe_helper_files() -> TestResult {
    let Some(spire) = spiffile_testinfra::spire() else {
        return Ok(());
    };
    // billing first: its ID is the audience orders asks SPIRE for.
    let billing = helped(spire, "billing", None, &["spiffe://spire.test/nobody"])?;
    let billing_id = billing.workload.spiffe_id().to_owned();
    let audit = format!("spiffe://spire.test/{}", unique_name("audit"));
    let orders = helped(spire, "orders", None, &[&billing_id, &audit])?;

    // Each side loads from the environment alone: no ID file, no key.
    let orders_identity = orders.identity()?;
    let billing_identity = billing.identity()?;
    assert_eq!(orders_identity.id().as_str(), orders.workload.spiffe_id());
    assert_eq!(billing_identity.id().as_str(), billing_id);
    assert_eq!(orders_identity.kid(), None);

    // orders presents the token spiffe-helper wrote, as SPIRE minted it.
    let token = orders_identity.token(&id(&billing_id))?;
    assert_eq!(token, std::fs::read_to_string(orders.path("0.token"))?);
    let claims = claims_of(&token);
    assert!(
        claims["aud"].is_array(),
        "SPIRE writes aud as an array: {claims}"
    );
    assert_eq!(header_of(&token)["typ"], "JWT");

    // billing accepts it.
    let caller = billing_identity.verify(&token)?;
    assert_eq!(caller.id().as_str(), orders.workload.spiffe_id());
    let kinds: Vec<_> = billing_identity
        .trust_domains()
        .into_iter()
        .map(|d| (d.trust_domain.to_string(), d.kind.as_str()))
        .collect();
    assert_eq!(kinds, [("spire.test".to_owned(), "per_domain")]);

    // A SPIRE token for another audience is refused.
    let for_audit = orders_identity.token(&id(&audit))?;
    assert_eq!(
        billing_identity.verify(&for_audit).unwrap_err().reason(),
        Some(Reason::Audience)
    );
    // An audience nothing was fetched for: the error names it and the dir.
    let e = orders_identity
        .token(&id("spiffe://spire.test/unfetched"))
        .unwrap_err();
    assert!(
        e.to_string().contains("spiffe://spire.test/unfetched"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&orders.dir.path().display().to_string()),
        "{e}"
    );

    // Re-signed with a foreign key, same header and claims: refused.
    let foreign =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| "key generation")?;
    let forged = sign(foreign.as_ref(), &header_of(&token), &claims);
    assert!(matches!(
        billing_identity.verify(&forged),
        Err(Error::InvalidToken(TokenError::DomainSignature { .. }))
    ));
    // ... and under a kid SPIRE never published.
    let mut header = header_of(&token);
    header["kid"] = "not-a-spire-kid".into();
    let forged = sign(foreign.as_ref(), &header, &claims);
    assert_eq!(
        billing_identity.verify(&forged).unwrap_err().reason(),
        Some(Reason::KeyId)
    );

    // Minting without a key says why (the token comes from SPIRE).
    let verify_only = Identity::builder().load_sources(
        IdentitySources::new(BundleSource::file(billing.path("jwt_bundle.json")))
            .id_file(write_id(billing.dir.path(), &billing_id)?),
    )?;
    assert!(verify_only.verify(&token).is_ok());
    assert!(matches!(
        verify_only.token(&id(orders.workload.spiffe_id())),
        Err(Error::NoSigningKey { .. })
    ));
    // status() covers the bundle, the token directory and each token file.
    let st = orders_identity.status();
    assert!(st.is_current(), "{st:?}");
    assert!(
        st.jwt_svid_files
            .iter()
            .any(|f| f.path.ends_with("0.token"))
    );
    Ok(())
}

fn write_id(dir: &Path, id: &str) -> std::io::Result<PathBuf> {
    let path = dir.join(".id-for-test");
    std::fs::write(&path, format!("{id}\n"))?;
    Ok(path)
}

#[test]
fn an_expired_spire_token_is_refused_and_not_presented() -> TestResult {
    let Some(spire) = spiffile_testinfra::spire() else {
        return Ok(());
    };
    let billing = helped(spire, "billing", None, &["spiffe://spire.test/nobody"])?;
    let billing_id = billing.workload.spiffe_id().to_owned();
    let orders = helped(
        spire,
        "orders",
        Some(Duration::from_secs(5)),
        &[&billing_id],
    )?;
    let token = std::fs::read_to_string(orders.path("0.token"))?;
    let exp = claims_of(&token)["exp"].as_i64().ok_or("exp")?;
    let strict = Identity::builder().leeway(Duration::ZERO).load_sources(
        IdentitySources::new(BundleSource::file(billing.path("jwt_bundle.json")))
            .jwt_svid_dir(billing.dir.path()),
    )?;
    let orders_identity = orders.identity()?;
    assert!(strict.verify(&token).is_ok());
    wait_for("the token to expire", Duration::from_secs(30), || {
        spiffile::svid::UnixTime::now().map_or(0, spiffile::svid::UnixTime::as_secs) > exp
    });
    assert_eq!(
        strict.verify(&token).unwrap_err().reason(),
        Some(Reason::Expired)
    );
    // Not presented either: spiffe-helper (not running) has not refreshed it.
    let e = orders_identity.token(&id(&billing_id)).unwrap_err();
    assert!(e.to_string().contains("expired at"), "{e}");
    Ok(())
}

/// SPIRE's JWT signing keys, from its disk key manager, with the `kid`
/// under which its bundle publishes each (matched by public key).
fn spire_signing_keys(spire: &Spire, jwks: &str) -> Vec<(String, Vec<u8>)> {
    let keys: Value = serde_json::from_slice(
        &std::fs::read(spire.run_dir().join("server/keys/keys.json")).expect("SPIRE's key file"),
    )
    .expect("key file JSON");
    let jwks: Value = serde_json::from_str(jwks).expect("JWKS");
    let mut out = Vec::new();
    for der in keys["keys"].as_object().expect("keys").values() {
        let Some(der) = der.as_str().and_then(|d| STANDARD.decode(d).ok()) else {
            continue;
        };
        let Ok(pair) =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
        else {
            continue; // the X.509 CA key may be of another type
        };
        let point = pair.public_key().as_ref();
        for k in jwks["keys"].as_array().expect("keys") {
            let x = B64
                .decode(k["x"].as_str().unwrap_or(""))
                .unwrap_or_default();
            let y = B64
                .decode(k["y"].as_str().unwrap_or(""))
                .unwrap_or_default();
            if point.len() == 65 && point[1..33] == x[..] && point[33..] == y[..] {
                out.push((k["kid"].as_str().unwrap_or("").to_owned(), der.clone()));
            }
        }
    }
    out
}

#[test]
fn federation_spiffile_and_spire_side_by_side_neither_speaks_for_the_other() -> TestResult {
    let Some(spire) = spiffile_testinfra::spire() else {
        return Ok(());
    };
    // example.org: a spiffile root with orders and billing.
    let mut root = Root::new("example.org");
    root.add("orders");
    root.add("billing");
    let spiffile_orders = root.identity("orders");
    let billing_id = "spiffe://example.org/billing";
    // spire.test: a SPIRE workload asking for a token to example.org's billing.
    let spire_orders = helped(spire, "orders", None, &[billing_id])?;
    let spire_token = std::fs::read_to_string(spire_orders.path("0.token"))?;

    // One bundle directory: the spiffile bundle beside spiffe-helper's set.
    let bundles = tempfile::tempdir()?;
    std::fs::write(
        bundles.path().join("example.org.json"),
        root.bundle.to_json(),
    )?;
    std::fs::copy(
        spire_orders.path("jwt_bundle.json"),
        bundles.path().join("jwt_bundle.json"),
    )?;
    let svc = root.service_dir("billing");
    let billing = Identity::builder().load_sources(
        IdentitySources::new(BundleSource::dir(bundles.path()))
            .id_file(svc.join("id"))
            .key_file(svc.join("key.pem")),
    )?;
    let domains: Vec<_> = billing
        .trust_domains()
        .into_iter()
        .map(|d| (d.trust_domain.to_string(), d.kind.as_str()))
        .collect();
    assert_eq!(
        domains,
        [
            ("example.org".to_owned(), "per_identity"),
            ("spire.test".to_owned(), "per_domain")
        ]
    );

    // Both accepted side by side.
    let spiffile_token = spiffile_orders.token(billing.id())?;
    assert_eq!(billing.verify(&spiffile_token)?.id(), spiffile_orders.id());
    assert_eq!(
        billing.verify(&spire_token)?.id().as_str(),
        spire_orders.workload.spiffe_id()
    );

    // example.org's per-identity key cannot sign for spire.test: orders'
    // key, its own kid or SPIRE's kid, a spire.test subject.
    let orders_pem = root.pem("orders");
    let orders_der = pem_der(&orders_pem);
    let mut claims = claims_of(&spire_token);
    let spire_kid = header_of(&spire_token)["kid"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let own_kid = spiffile_orders.kid().unwrap_or_default();
    let forged = sign(
        &orders_der,
        &serde_json::json!({"alg": "ES256", "kid": own_kid, "typ": "JWT"}),
        &claims,
    );
    assert!(
        matches!(
            billing.verify(&forged),
            Err(Error::InvalidToken(TokenError::UnknownKeyId { .. }))
        ),
        "an example.org key, under its own kid, signing for spire.test"
    );
    let forged = sign(
        &orders_der,
        &serde_json::json!({"alg": "ES256", "kid": spire_kid, "typ": "JWT"}),
        &claims,
    );
    assert!(
        matches!(
            billing.verify(&forged),
            Err(Error::InvalidToken(TokenError::DomainSignature { .. }))
        ),
        "an example.org key, under SPIRE's kid, signing for spire.test"
    );

    // SPIRE's keys cannot sign for example.org: SPIRE's own JWT signing
    // key, read from its key manager, forging an example.org subject.
    let set = JwtBundleSet::from_json(&std::fs::read(spire_orders.path("jwt_bundle.json"))?)?;
    let jwks = set
        .get("spire.test")
        .ok_or("spire.test in the set")?
        .to_jwks();
    let keys = spire_signing_keys(spire, &jwks);
    assert!(
        !keys.is_empty(),
        "SPIRE's JWT signing key found in its key manager"
    );
    for (kid, der) in &keys {
        let header = serde_json::json!({"alg": "ES256", "kid": kid, "typ": "JWT"});
        // Control: this really is SPIRE's key (it signs for spire.test).
        claims["sub"] = spire_orders.workload.spiffe_id().into();
        let genuine = sign(der, &header, &claims);
        assert!(
            billing.verify(&genuine).is_ok(),
            "SPIRE's key signs for spire.test"
        );
        for sub in [
            "spiffe://example.org/orders",
            "spiffe://example.org/someone-new",
        ] {
            // In every other way a token example.org's verifier would take:
            // one audience string.
            claims["sub"] = sub.into();
            claims["aud"] = billing_id.into();
            let forged = sign(der, &header, &claims);
            let e = billing.verify(&forged).unwrap_err();
            match sub {
                "spiffe://example.org/orders" => assert!(
                    // SPIRE's kid is bound to no example.org identity.
                    matches!(e, Error::InvalidToken(TokenError::UnboundKey { sub: ref who, .. }) if who.as_str() == sub),
                    "{e}"
                ),
                _ => assert!(matches!(e, Error::UnknownIdentity(_)), "{e}"),
            }
        }
    }

    Ok(())
}

/// The DER of a PKCS#8 PEM.
fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("PEM body")
}
