//! The `spiffile` command against a real SPIRE deployment and the real
//! spiffe-helper (`spiffile-testinfra`, feature `spire`): `token`, `verify`
//! and `inspect` from spiffe-helper's files (flags and environment), and
//! `bundle check` on its JWT bundle set and on a directory mixing it with a
//! spiffile bundle. Skipped (loudly) without SPIRE; a failure under CI.

mod common;

use std::path::Path;

use common::{cmd, root_with, run};
use spiffile_testinfra::{HelperFiles, Spire, Workload, unique_name};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Registers a workload and runs spiffe-helper once as it: a token per
/// audience (`<n>.token`), the JWT bundle set, the X.509 files.
fn helped(
    spire: &Spire,
    name: &str,
    audiences: &[&str],
) -> Result<(Workload, tempfile::TempDir), Box<dyn std::error::Error>> {
    let workload = spire.register(&unique_name(name))?;
    let dir = tempfile::tempdir()?;
    let mut files = HelperFiles::new().jwt_bundle("jwt_bundle.json").x509(
        "svid.pem",
        "svid_key.pem",
        "svid_bundle.pem",
    );
    for (i, aud) in audiences.iter().enumerate() {
        files = files.jwt_svid(aud, &format!("{i}.token"));
    }
    workload.write_helper_files(dir.path(), &files)?;
    Ok((workload, dir))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn token_verify_and_inspect_from_spiffe_helper_files() -> TestResult {
    let Some(spire) = spiffile_testinfra::spire() else {
        return Ok(());
    };
    let (billing, billing_dir) = helped(spire, "billing", &["spiffe://spire.test/nobody"])?;
    let audit = format!("spiffe://spire.test/{}", unique_name("audit"));
    let (orders, orders_dir) = helped(spire, "orders", &[billing.spiffe_id(), &audit])?;
    let (od, bd) = (orders_dir.path(), billing_dir.path());
    let orders_bundle = od.join("jwt_bundle.json");
    let billing_bundle = bd.join("jwt_bundle.json");

    // token: flags.
    let token = run([
        "token",
        "--jwt-svid-dir",
        s(od),
        "--bundle-file",
        s(&orders_bundle),
        "--audience",
        billing.spiffe_id(),
    ])
    .ok();
    let token = token.trim().to_owned();
    assert_eq!(token, std::fs::read_to_string(od.join("0.token"))?);
    // token: the environment alone.
    let out = cmd()
        .env("SPIFFILE_BUNDLE_FILE", &orders_bundle)
        .env("SPIFFILE_JWT_SVID_DIR", od)
        .args(["token", "--audience", billing.spiffe_id()])
        .output()?;
    assert_eq!(String::from_utf8(out.stdout)?.trim(), token);
    // An audience nothing was fetched for: exit 1, naming it.
    let e = run([
        "token",
        "--jwt-svid-dir",
        s(od),
        "--bundle-file",
        s(&orders_bundle),
        "--audience",
        "spiffe://spire.test/unfetched",
    ])
    .code(1);
    assert!(
        e.stderr.contains("spiffe://spire.test/unfetched"),
        "{}",
        e.stderr
    );

    // verify, as billing: flags, then environment.
    let args = |t: &str| {
        vec![
            "verify".to_owned(),
            "--jwt-svid-dir".into(),
            s(bd).into(),
            "--bundle-file".into(),
            s(&billing_bundle).into(),
            t.to_owned(),
        ]
    };
    assert_eq!(run(args(&token)).ok().trim(), orders.spiffe_id());
    let out = cmd()
        .env("SPIFFILE_BUNDLE_FILE", &billing_bundle)
        .env("SPIFFILE_JWT_SVID_DIR", bd)
        .args(["verify", "--json", &token])
        .output()?;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(doc["caller"], orders.spiffe_id());
    // Another audience's token: rejected, reason on stderr.
    let for_audit = std::fs::read_to_string(od.join("1.token"))?;
    let e = run(args(&for_audit)).code(1);
    assert!(e.stderr.contains("rejected (audience)"), "{}", e.stderr);

    // inspect: spiffe-helper's token file, placed against the bundle.
    let out = run([
        "inspect",
        s(&od.join("0.token")),
        "--bundle-file",
        s(&orders_bundle),
    ])
    .ok();
    assert!(out.starts_with("UNVERIFIED"), "{out}");
    assert!(
        out.contains("trust domain spire.test: per trust domain"),
        "{out}"
    );
    assert!(out.contains("names one of its keys"), "{out}");
    assert!(out.contains("an array of one"), "{out}");
    // inspect: the directory, and the token that would be presented.
    let out = run(["inspect", "--jwt-svid-dir", s(od)]).ok();
    assert!(out.contains("2 JWT-SVIDs"), "{out}");
    assert!(
        out.contains(&format!("0.token: sub {}", orders.spiffe_id())),
        "{out}"
    );
    let out = run([
        "inspect",
        "--jwt-svid-dir",
        s(od),
        "--audience",
        billing.spiffe_id(),
        "--json",
    ])
    .ok();
    let doc: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(doc["file"], "0.token");
    assert_eq!(doc["token"]["sub"], orders.spiffe_id());
    Ok(())
}

#[test]
fn bundle_check_reads_spiffe_helpers_set_and_a_mixed_directory() -> TestResult {
    let Some(spire) = spiffile_testinfra::spire() else {
        return Ok(());
    };
    let (_orders, dir) = helped(spire, "orders", &["spiffe://example.org/billing"])?;
    let set = dir.path().join("jwt_bundle.json");
    let out = run(["bundle", "check", s(&set)]).ok();
    assert!(
        out.contains("JWT bundle set (spiffe-helper), 1 trust domain"),
        "{out}"
    );
    assert!(out.contains("trust domain spire.test, "), "{out}");
    assert!(out.contains("per trust domain"), "{out}");
    assert!(out.contains("    kid "), "{out}");
    let doc: serde_json::Value =
        serde_json::from_str(&run(["bundle", "check", s(&set), "--json"]).ok())?;
    assert_eq!(doc["ok"], true);
    let td = &doc["files"][0]["trust_domains"][0];
    assert_eq!(doc["files"][0]["format"], "jwt_bundle_set");
    assert_eq!(td["trust_domain"], "spire.test");
    assert_eq!(td["kind"], "per_domain");
    assert!(!td["kids"].as_array().ok_or("kids")?.is_empty());

    // A bundle directory: the spiffile root's bundle beside SPIRE's set.
    let (_root_dir, root) = root_with(&["orders", "billing"]);
    let bundles = tempfile::tempdir()?;
    std::fs::copy(
        root.join("bundle.json"),
        bundles.path().join("example.org.json"),
    )?;
    std::fs::copy(&set, bundles.path().join("jwt_bundle.json"))?;
    let out = run(["bundle", "check", s(bundles.path())]).ok();
    assert!(out.contains("2 bundle files, 2 trust domains"), "{out}");
    let doc: serde_json::Value =
        serde_json::from_str(&run(["bundle", "check", s(bundles.path()), "--json"]).ok())?;
    let kinds: Vec<_> = doc["files"]
        .as_array()
        .ok_or("files")?
        .iter()
        .map(|f| {
            f["trust_domains"][0]["kind"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, ["per_identity", "per_domain"]);

    // Both verify through --bundle-dir, as example.org's billing.
    let svc = root.join("services/billing");
    let spiffile_token = common::run_as(
        &root,
        "orders",
        ["token", "--audience", "spiffe://example.org/billing"],
    )
    .ok();
    let spire_token = std::fs::read_to_string(dir.path().join("0.token"))?;
    for t in [spiffile_token.trim(), spire_token.trim()] {
        run([
            "verify",
            "--bundle-dir",
            s(bundles.path()),
            "--id-file",
            s(&svc.join("id")),
            t,
        ])
        .ok();
    }

    // spire.test offered a second time: a problem naming both files.
    std::fs::copy(&set, bundles.path().join("again.json"))?;
    let e = run(["bundle", "check", s(bundles.path())]).code(1);
    assert!(
        e.stdout
            .contains("trust domain `spire.test` is offered by both"),
        "{}",
        e.stdout
    );
    Ok(())
}
