//! SPIRE, for real: two workloads told apart by the unix attestor, a
//! JWT-SVID for billing fetched as orders, the JWT bundle and an
//! X.509-SVID, written by spiffe-helper v0.11.0 itself and by
//! `spire-agent api fetch`. Every shape is checked against
//! ../shared/NOTES.md §6, so these tests fail when a shape changes.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine as _;
use serde_json::Value;
use spiffile_testinfra::HelperFiles;

const BILLING: &str = "spiffe://spire.test/billing";
const ORDERS: &str = "spiffe://spire.test/orders";

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn b64url(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap_or_else(|e| panic!("not base64url without padding ({e}): {s}"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn keys_of(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// NOTES §6: header `{"alg":"ES256","kid":<32 [a-zA-Z0-9]>,"typ":"JWT"}`;
/// claims `aud` (always an array), `exp`, `iat`, `sub` (+ `iss` only when
/// the server sets `jwt_issuer`, which ours does not). Returns (header,
/// claims).
fn check_jwt_svid(token: &str, subject: &str, audience: &str) -> (Value, Value) {
    assert!(
        !token.ends_with('\n') && token.trim() == token,
        "bare compact JWT"
    );
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS: {token}");
    let header: Value = serde_json::from_slice(&b64url(parts[0])).expect("header JSON");
    let claims: Value = serde_json::from_slice(&b64url(parts[1])).expect("claims JSON");
    assert_eq!(
        keys_of(&header),
        BTreeSet::from(["alg", "kid", "typ"]),
        "{header}"
    );
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "JWT");
    let kid = header["kid"].as_str().expect("kid is a string");
    assert_eq!(kid.len(), 32, "kid {kid}");
    assert!(kid.bytes().all(|b| b.is_ascii_alphanumeric()), "kid {kid}");
    assert_eq!(
        keys_of(&claims),
        BTreeSet::from(["aud", "exp", "iat", "sub"]),
        "{claims}"
    );
    assert_eq!(claims["sub"], subject);
    assert_eq!(
        claims["aud"],
        serde_json::json!([audience]),
        "aud is an array, also with one audience"
    );
    let (iat, exp) = (
        claims["iat"].as_i64().expect("iat integer"),
        claims["exp"].as_i64().expect("exp integer"),
    );
    // The deployment's default_jwt_svid_ttl is 2m.
    assert!(exp > iat && exp - iat <= 120, "lifetime {}s", exp - iat);
    (header, claims)
}

/// NOTES §6: one flat JWKS; SPIRE's keys carry only `kty, kid, crv, x, y`.
fn check_jwks(jwks: &Value) {
    assert_eq!(keys_of(jwks), BTreeSet::from(["keys"]), "{jwks}");
    let keys = jwks["keys"].as_array().expect("keys array");
    assert!(!keys.is_empty());
    for k in keys {
        assert_eq!(
            keys_of(k),
            BTreeSet::from(["crv", "kid", "kty", "x", "y"]),
            "{k}"
        );
        assert_eq!(k["kty"], "EC");
        assert_eq!(k["crv"], "P-256");
        assert_eq!(b64url(k["x"].as_str().expect("x")).len(), 32);
        assert_eq!(b64url(k["y"].as_str().expect("y")).len(), 32);
    }
}

/// The token's signature verifies with the bundle key its `kid` names.
fn check_signed_by_bundle(token: &str, jwks: &Value) {
    let parts: Vec<&str> = token.split('.').collect();
    let header: Value = serde_json::from_slice(&b64url(parts[0])).expect("header");
    let kid = header["kid"].as_str().expect("kid");
    let key = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("kid {kid} not in the bundle {jwks}"));
    let mut point = vec![4u8];
    point.extend(b64url(key["x"].as_str().expect("x")));
    point.extend(b64url(key["y"].as_str().expect("y")));
    let signed = format!("{}.{}", parts[0], parts[1]);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(signed.as_bytes(), &b64url(parts[2]))
        .expect("the JWT-SVID verifies against the JWT bundle");
}

fn pem_blocks(path: &Path, label: &str) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find(&begin) {
        let after = &rest[i + begin.len()..];
        let j = after.find(&end).expect("PEM end line");
        let b64: String = after[..j].split_whitespace().collect();
        out.push(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("PEM base64"),
        );
        rest = &after[j + end.len()..];
    }
    let other = text.matches("-----BEGIN ").count();
    assert_eq!(
        other,
        out.len(),
        "{} holds only {label} blocks",
        path.display()
    );
    out
}

/// Leaf then intermediates; the leaf's only URI SAN is the SPIFFE ID.
fn check_svid_chain(path: &Path, spiffe_id: &str) {
    let certs = pem_blocks(path, "CERTIFICATE");
    assert!(!certs.is_empty(), "{} has a certificate", path.display());
    let (_, leaf) = x509_parser::parse_x509_certificate(&certs[0]).expect("leaf parses");
    let san = leaf
        .subject_alternative_name()
        .expect("SAN extension parses")
        .expect("leaf has a SAN");
    let uris: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect();
    assert_eq!(uris, vec![spiffe_id]);
    assert!(!leaf.is_ca(), "the leaf is not a CA");
}

fn check_ca_bundle(path: &Path) {
    let certs = pem_blocks(path, "CERTIFICATE");
    assert!(!certs.is_empty(), "{} has a CA", path.display());
    for der in certs {
        let (_, ca) = x509_parser::parse_x509_certificate(&der).expect("CA parses");
        assert!(ca.is_ca(), "bundle certificates are CAs");
        let uris: Vec<String> = ca
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|s| {
                s.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::URI(u) => Some((*u).to_owned()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            uris,
            vec!["spiffe://spire.test".to_owned()],
            "CA names the trust domain"
        );
    }
}

fn check_pkcs8_key(path: &Path) {
    let keys = pem_blocks(path, "PRIVATE KEY");
    assert_eq!(keys.len(), 1, "one PKCS#8 key in {}", path.display());
    ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &keys[0],
        &ring::rand::SystemRandom::new(),
    )
    .expect("a P-256 PKCS#8 key");
}

#[test]
fn spiffe_helper_writes_billing_token_bundle_and_svid_for_orders() -> TestResult {
    let Some(spire) = spiffile_testinfra::spire() else {
        return Ok(());
    };
    let orders = spire.register("orders")?;
    let billing = spire.register("billing")?;
    assert_eq!((orders.spiffe_id(), billing.spiffe_id()), (ORDERS, BILLING));

    let dir = tempfile::tempdir()?;
    let files = orders.write_helper_files(dir.path(), &HelperFiles::standard(BILLING))?;

    // JWT-SVID: the bare compact JWT, no newline, 0600.
    let (aud, token_path) = &files.jwt_svids[0];
    assert_eq!(aud, BILLING);
    let token = std::fs::read_to_string(token_path)?;
    assert_eq!(mode(token_path), 0o600, "JWT-SVID file mode");
    let (header, _) = check_jwt_svid(&token, ORDERS, BILLING);

    // JWT bundle: {"spire.test": "<standard padded base64 of the JWKS>"}.
    let bundle_path = files.jwt_bundle.as_ref().expect("bundle file");
    let map: Value = serde_json::from_slice(&std::fs::read(bundle_path)?)?;
    assert_eq!(
        keys_of(&map),
        BTreeSet::from(["spire.test"]),
        "keyed by trust-domain name"
    );
    let b64 = map["spire.test"].as_str().expect("a base64 string");
    assert_eq!(b64.len() % 4, 0, "padded standard base64");
    let jwks: Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(b64)?)?;
    check_jwks(&jwks);
    check_signed_by_bundle(&token, &jwks);
    assert!(
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k["kid"] == header["kid"]),
        "the signing key is in the bundle"
    );

    // X.509: svid.pem (leaf first, 0644), svid_key.pem (PKCS#8, 0600),
    // svid_bundle.pem (CA roots, 0644).
    let x509 = files.x509.as_ref().expect("x509 files");
    check_svid_chain(&x509.svid, ORDERS);
    check_pkcs8_key(&x509.key);
    check_ca_bundle(&x509.bundle);
    assert_eq!(mode(&x509.svid), 0o644);
    assert_eq!(mode(&x509.key), 0o600);
    assert_eq!(mode(&x509.bundle), 0o644);
    Ok(())
}

#[test]
fn workload_api_tells_the_two_workloads_apart() -> TestResult {
    let Some(spire) = spiffile_testinfra::spire() else {
        return Ok(());
    };
    let orders = spire.register("orders")?;
    let billing = spire.register("billing")?;

    let as_orders = orders.fetch_jwt(BILLING)?;
    check_jwt_svid(&as_orders.token, ORDERS, BILLING);
    let as_billing = billing.fetch_jwt(ORDERS)?;
    check_jwt_svid(&as_billing.token, BILLING, ORDERS);

    // `spire-agent api fetch jwt` gives the bundle keyed by trust-domain ID.
    assert_eq!(
        as_orders
            .bundles
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        vec!["spiffe://spire.test"]
    );
    let jwks: Value = serde_json::from_str(&orders.fetch_jwt_bundle()?)?;
    check_jwks(&jwks);
    check_signed_by_bundle(&as_orders.token, &jwks);
    check_signed_by_bundle(&as_billing.token, &jwks);

    // `spire-agent api fetch x509 -write DIR`: svid.0.pem, svid.0.key, bundle.0.pem.
    let dir = tempfile::tempdir()?;
    let written = orders.fetch_x509_into(dir.path())?;
    let names: Vec<String> = written
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(names, vec!["bundle.0.pem", "svid.0.key", "svid.0.pem"]);
    check_svid_chain(&dir.path().join("svid.0.pem"), ORDERS);
    check_pkcs8_key(&dir.path().join("svid.0.key"));
    check_ca_bundle(&dir.path().join("bundle.0.pem"));
    Ok(())
}

#[test]
fn an_unregistered_binary_gets_no_identity() -> TestResult {
    let Some(spire) = spiffile_testinfra::spire() else {
        return Ok(());
    };
    // The cached spire-agent binary itself matches no entry's unix:path.
    let out = std::process::Command::new(spire.spire_agent_bin())
        .args([
            "api",
            "fetch",
            "jwt",
            "-audience",
            BILLING,
            "-timeout",
            "3s",
            "-socketPath",
        ])
        .arg(spire.agent_socket())
        .output()?;
    assert!(
        !out.status.success(),
        "an unregistered workload must be refused"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no identity issued"), "{stderr}");
    Ok(())
}

#[test]
fn short_ttl_entries_and_a_daemon_helper_keep_files_fresh() -> TestResult {
    let Some(spire) = spiffile_testinfra::spire() else {
        return Ok(());
    };
    let name = spiffile_testinfra::unique_name("short");
    let short = spire
        .registration(&name)
        .jwt_svid_ttl(std::time::Duration::from_secs(30))
        .x509_svid_ttl(std::time::Duration::from_secs(60))
        .register()?;
    let token = short.fetch_jwt_svid(BILLING)?;
    let (_, claims) = check_jwt_svid(&token, short.spiffe_id(), BILLING);
    let life = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    assert!(life <= 30, "the entry's TTL holds: {life}s");

    let dir = tempfile::tempdir()?;
    let helper = short.spawn_helper(
        dir.path(),
        &HelperFiles::new().jwt_svid(BILLING, "billing.token"),
    )?;
    helper.wait_for_files(std::time::Duration::from_secs(30))?;
    let path = dir.path().join("billing.token");
    let first = std::fs::read_to_string(&path)?;
    check_jwt_svid(&first, short.spiffe_id(), BILLING);
    // Re-fetched at half its (30 s) life + 1 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let now = std::fs::read_to_string(&path)?;
        if !now.is_empty() && now != first {
            check_jwt_svid(&now, short.spiffe_id(), BILLING);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "spiffe-helper did not refresh the token"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let pid = helper.pid();
    helper.stop()?;
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the helper is gone"
    );
    Ok(())
}
