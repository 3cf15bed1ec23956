//! Rotating SPIRE's JWT signing key with `spire-server localauthority jwt
//! prepare/activate/taint/revoke`, seen from a workload: new tokens carry
//! the new `kid`, the bundle holds both keys during the overlap, and the
//! revoked key leaves the bundle. Its own test binary (process), because it
//! changes the shared deployment's keys under any test running beside it.

use std::time::{Duration, Instant};

use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap_or("");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("header base64url");
    let v: Value = serde_json::from_slice(&bytes).expect("header JSON");
    v["kid"].as_str().expect("kid").to_owned()
}

fn kids(jwks: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(jwks).expect("JWKS JSON");
    v["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

/// Polls until `f` holds (the agent syncs with the server every second).
fn eventually(
    what: &str,
    mut f: impl FnMut() -> Result<bool, Box<dyn std::error::Error>>,
) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f()? {
        assert!(Instant::now() < deadline, "not within 60 s: {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

#[test]
fn jwt_key_rotation_reaches_tokens_and_bundle_and_revocation_removes_the_old_key() -> TestResult {
    let Some(spire) = spiffile_testinfra::spire() else {
        return Ok(());
    };
    let orders = spire.register("orders")?;
    // A fresh audience each time: the agent caches JWT-SVIDs per audience.
    let fresh = || {
        format!(
            "spiffe://spire.test/{}",
            spiffile_testinfra::unique_name("aud")
        )
    };

    let before = kid_of(&orders.fetch_jwt_svid(&fresh())?);
    let (old, new) = spire.rotate_jwt_authority()?;
    let old = old.ok_or("an active JWT authority before the rotation")?;
    assert_eq!(
        old.authority_id, before,
        "tokens were signed by the active authority"
    );
    assert_ne!(new.authority_id, old.authority_id);
    assert_eq!(
        spire
            .jwt_authorities()?
            .get("old")
            .map(|a| a.authority_id.clone()),
        Some(old.authority_id.clone())
    );

    // New tokens carry the new kid; the bundle holds both keys.
    eventually("a token signed by the new key", || {
        Ok(kid_of(&orders.fetch_jwt_svid(&fresh())?) == new.authority_id)
    })?;
    // The agent syncs its bundle from the server on its own schedule, which
    // may lag the first token signed by the new key.
    eventually("the bundle holding the old and the new key", || {
        let both = kids(&orders.fetch_jwt_bundle()?);
        Ok(both.contains(&old.authority_id) && both.contains(&new.authority_id))
    })?;

    // Taint, then revoke: the old key leaves the bundle.
    spire.taint_jwt_authority(&old.authority_id)?;
    spire.revoke_jwt_authority(&old.authority_id)?;
    eventually("the revoked key gone from the bundle", || {
        Ok(!kids(&orders.fetch_jwt_bundle()?).contains(&old.authority_id))
    })?;
    assert!(kids(&orders.fetch_jwt_bundle()?).contains(&new.authority_id));
    Ok(())
}
