//! SPIRE's JWT signing key rotated under running identities (`spire-server
//! localauthority jwt prepare` / `activate`, then `taint` / `revoke`), with
//! daemon-mode spiffe-helpers keeping the files fresh: the bundle change is
//! picked up by hot reload, old and new tokens both verify across the
//! overlap, the presenting side moves to the new token on its own, and the
//! revoked key's tokens are refused once the bundle drops it.
//!
//! Its own test binary (process): it changes the shared deployment's keys.

use std::time::{Duration, Instant};

use base64::Engine as _;
use spiffile::{BundleSource, Error, Identity, IdentitySources};
use spiffile_testinfra::{HelperFiles, unique_name};
use spiffile_testkit::id;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap_or("");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    v["kid"].as_str().unwrap_or("").to_owned()
}

fn eventually(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "not within {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn presenter(dir: &std::path::Path) -> Result<Identity, Error> {
    Identity::builder().load_sources(
        IdentitySources::new(BundleSource::file(dir.join("jwt_bundle.json"))).jwt_svid_dir(dir),
    )
}

fn spire_key_count(identity: &Identity) -> usize {
    identity
        .trust_domains()
        .iter()
        .find(|d| d.trust_domain.as_str() == "spire.test")
        .map_or(0, |d| d.keys)
}

#[test]
fn jwt_key_rotation_with_hot_reload_and_revocation() -> TestResult {
    let Some(spire) = spiffile_testinfra::spire() else {
        return Ok(());
    };
    let billing = spire.registration(&unique_name("billing")).register()?;
    let billing_id = billing.spiffe_id().to_owned();
    // Short-lived tokens: spiffe-helper fetches a new one every ~10 s.
    let orders = spire
        .registration(&unique_name("orders"))
        .jwt_svid_ttl(Duration::from_secs(20))
        .register()?;

    let (billing_dir, orders_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let billing_files = HelperFiles::new()
        .jwt_bundle("jwt_bundle.json")
        .jwt_svid("spiffe://spire.test/nobody", "self.token");
    let orders_files = HelperFiles::new()
        .jwt_bundle("jwt_bundle.json")
        .jwt_svid(&billing_id, "billing.token");
    let billing_helper = billing.spawn_helper(billing_dir.path(), &billing_files)?;
    let orders_helper = orders.spawn_helper(orders_dir.path(), &orders_files)?;
    billing_helper.wait_for_files(Duration::from_secs(60))?;
    orders_helper.wait_for_files(Duration::from_secs(60))?;

    let billing_identity = presenter(billing_dir.path())?;
    let orders_identity = presenter(orders_dir.path())?;
    let audience = id(&billing_id);
    let old_token = orders_identity.token(&audience)?;
    assert!(billing_identity.verify(&old_token).is_ok());
    let keys_before = spire_key_count(&billing_identity);
    let generation_before = billing_identity.bundle_generation();

    let (old, new) = spire.rotate_jwt_authority()?;
    let old = old.ok_or("an active JWT authority before the rotation")?;
    assert_eq!(kid_of(&old_token), old.authority_id);

    // The agent publishes the new key; spiffe-helper rewrites the bundle in
    // place; both identities follow it without a reload call.
    eventually(
        "the new key in billing's trust set",
        Duration::from_secs(60),
        || spire_key_count(&billing_identity) > keys_before,
    );
    assert!(billing_identity.bundle_generation() > generation_before);
    assert!(billing_identity.status().is_current());

    // orders moves to a token signed by the new key on its own.
    eventually(
        "orders presenting a new-key token",
        Duration::from_secs(90),
        || {
            orders_identity
                .token(&audience)
                .is_ok_and(|t| kid_of(&t) == new.authority_id)
        },
    );
    let new_token = orders_identity.token(&audience)?;
    // The overlap: both verify.
    assert_eq!(
        billing_identity.verify(&new_token)?.id().as_str(),
        orders.spiffe_id()
    );
    assert!(
        billing_identity.verify(&old_token).is_ok(),
        "the old key's token still verifies during the overlap"
    );

    // Revoking the old key: the bundle drops it, its tokens are refused.
    spire.taint_jwt_authority(&old.authority_id)?;
    spire.revoke_jwt_authority(&old.authority_id)?;
    eventually(
        "the old key revoked in billing's trust set",
        Duration::from_secs(60),
        || {
            matches!(
                billing_identity.verify(&old_token),
                Err(Error::InvalidToken(
                    spiffile::svid::TokenError::UnknownKeyId { .. }
                ))
            )
        },
    );
    assert!(billing_identity.verify(&new_token).is_ok());
    orders_helper.stop()?;
    billing_helper.stop()?;
    Ok(())
}
