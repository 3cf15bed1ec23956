//! `spiffile x509 init|issue|renew|rotate-ca` and `spiffile inspect` on
//! certificates, through the built binary; the certificates are then
//! checked by OpenSSL, an independent X.509 implementation.

mod common;

use std::path::Path;
use std::process::Command;

use common::{cmd, run};

fn openssl_verify(root: &Path, name: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["verify", "-x509_strict", "-purpose", "sslclient", "-CAfile"])
        .arg(root.join("bundle.pem"))
        .arg(root.join("services").join(name).join("svid.pem"))
        .output()
        .expect("openssl is needed by this test (apt-get install openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn init_issue_renew_rotate_retire() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let r = root.to_str().unwrap();
    let out = run(["x509", "init", r, "--trust-domain", "example.org"]).ok();
    assert!(out.contains("created the X.509 CA of example.org"), "{out}");
    run(["x509", "init", r]).code(1);
    let out = run(["x509", "issue", r, "orders", "billing", "--ttl", "2h"]).ok();
    assert_eq!(out.lines().count(), 2, "{out}");
    let (ok, text) = openssl_verify(&root, "orders");
    assert!(ok, "{text}");

    let out = run(["x509", "renew", r]).ok();
    assert!(
        out.contains("kept orders") && out.contains("kept billing"),
        "{out}"
    );
    let out = run(["x509", "renew", r, "--within", "0"]).ok();
    assert_eq!(out.matches("renewed ").count(), 2, "{out}");

    let out = run(["x509", "rotate-ca", r]).ok();
    assert!(out.contains("2 CA certificates"), "{out}");
    // Old SVIDs still verify during the overlap (OpenSSL agrees).
    assert!(openssl_verify(&root, "billing").0);
    let refused = run(["x509", "rotate-ca", r, "--retire"]).code(1);
    assert!(
        refused.stderr.contains("renew them first"),
        "{}",
        refused.stderr
    );
    let out = run(["x509", "renew", r]).ok();
    assert_eq!(
        out.matches("renewed ").count(),
        2,
        "old-CA SVIDs are renewed: {out}"
    );
    run(["x509", "rotate-ca", r, "--retire"]).ok();
    let (ok, text) = openssl_verify(&root, "orders");
    assert!(ok, "{text}");

    // Usage errors exit 2.
    run(["x509", "issue", r, "orders", "--ttl", "1w"]).code(2);
    run(["x509", "renew", r, "--within", "2"]).code(2);
}

/// Issue 16: `--json` on every command a script reads, SPIFFILE_ROOT for
/// the root, and the exit codes of the table (a misspelt service: 2 with
/// "did you mean"; a refused step: 1 with a JSON error document).
#[test]
fn x509_commands_report_json_and_take_spiffile_root() {
    let json = |text: &str| -> serde_json::Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let r = root.to_str().unwrap();
    let v = json(&run(["x509", "init", r, "--trust-domain", "example.org", "--json"]).ok());
    assert_eq!(v["ca"]["trust_domain"], "example.org", "{v}");
    assert_eq!(v["ca"]["bundle_cas"], 1, "{v}");
    // A second init is refused (exit 1), with a document for the script.
    let e = run(["x509", "init", r, "--json"]).code(1);
    let v = json(&e.stdout);
    assert_eq!(v["error"]["exit_code"], 1, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rotate-ca"),
        "{v}"
    );
    run(["add", r, "orders"]).ok();
    let with_root = |args: &[&str]| {
        let out = cmd()
            .env("SPIFFILE_ROOT", &root)
            .args(args)
            .output()
            .unwrap();
        common::Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let v = json(&with_root(&["x509", "issue", "orders", "billing", "--json"]).ok());
    let issued = v["issued"].as_array().unwrap();
    assert_eq!(issued.len(), 2, "{v}");
    assert_eq!(issued[0]["id"], "spiffe://example.org/orders", "{v}");
    assert!(
        issued[1]["svid_file"]
            .as_str()
            .unwrap()
            .ends_with("billing/svid.pem"),
        "{v}"
    );
    let v = json(&with_root(&["x509", "renew", "--json"]).ok());
    assert_eq!(v["renewed"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["kept"].as_array().unwrap().len(), 2, "{v}");
    let v = json(&with_root(&["x509", "renew", "--within", "0", "--json"]).ok());
    assert_eq!(v["renewed"].as_array().unwrap().len(), 2, "{v}");
    let v = json(&with_root(&["x509", "rotate-ca", "--json"]).ok());
    assert_eq!(v["ca"]["bundle_cas"], 2, "{v}");
    let e = with_root(&["x509", "rotate-ca", "--retire", "--json"]).code(1);
    assert!(
        json(&e.stdout)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("renew them first")
    );
    with_root(&["x509", "renew", "--json"]).ok();
    let v = json(&with_root(&["x509", "rotate-ca", "--retire", "--json"]).ok());
    assert_eq!(v["retired"], 1, "{v}");
    // No root anywhere: usage.
    let e = run(["x509", "renew"]).code(2);
    assert!(e.stderr.contains("SPIFFILE_ROOT"), "{}", e.stderr);
    // Arguments swapped: the command in the right order.
    let e = run(["x509", "issue", "orders", r]).code(2);
    assert!(
        e.stderr.contains("did you mean `spiffile x509 issue"),
        "{}",
        e.stderr
    );
}

#[test]
fn inspect_shows_a_certificate_and_whether_it_is_an_x509_svid() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let r = root.to_str().unwrap();
    run(["x509", "init", r, "--trust-domain", "example.org"]).ok();
    run(["x509", "issue", r, "billing", "--dns", "billing.internal"]).ok();
    let svid = root.join("services/billing/svid.pem");
    let bundle = root.join("bundle.pem");
    let out = run(["inspect", svid.to_str().unwrap()]).ok();
    assert!(
        out.contains("SPIFFE ID: spiffe://example.org/billing"),
        "{out}"
    );
    assert!(out.contains("key usage:   digitalSignature"), "{out}");
    assert!(out.contains("DNS SAN:     billing.internal"), "{out}");
    assert!(
        out.contains("issuer:      O=spiffile, CN=example.org X.509 CA"),
        "{out}"
    );
    let out = run([
        "inspect",
        svid.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
    ])
    .ok();
    assert!(
        out.contains("as a client: ok") && out.contains("as a server: ok"),
        "{out}"
    );
    let out = run(["inspect", svid.to_str().unwrap(), "--json"]).ok();
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["spiffe_id"], "spiffe://example.org/billing");
    assert_eq!(doc["valid_x509_svid"], true);
    // The CA certificate is not an X.509-SVID leaf: exit 1, and why.
    let ca = run(["inspect", bundle.to_str().unwrap()]).code(1);
    assert!(
        ca.stdout.contains("NOT a valid X.509-SVID"),
        "{}",
        ca.stdout
    );
    assert!(ca.stdout.contains("CA:          true"), "{}", ca.stdout);
    // Against another root's bundle: the chain does not verify.
    let other = dir.path().join("o");
    run([
        "x509",
        "init",
        other.to_str().unwrap(),
        "--trust-domain",
        "example.org",
    ])
    .ok();
    let out = run([
        "inspect",
        svid.to_str().unwrap(),
        "--bundle",
        other.join("bundle.pem").to_str().unwrap(),
    ])
    .code(1);
    assert!(out.stdout.contains("untrusted_chain"), "{}", out.stdout);
    // The private key is never shown.
    let key = root.join("services/billing/svid_key.pem");
    let out = run(["inspect", key.to_str().unwrap()]).code(2);
    assert!(!out.stdout.contains("PRIVATE") && !out.stderr.contains("PRIVATE"));
}
