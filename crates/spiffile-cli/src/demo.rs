//! `spiffile demo`: the whole story in a throw-away root, every outcome
//! checked. Exits 1 when anything does not happen as it should.

use std::path::Path;
use std::time::Duration;

use spiffile::provision;
use spiffile::svid::{Reason, Signer};
use spiffile::{Error, SpiffeId};

use crate::output::{Failure, out};

const TRUST_DOMAIN: &str = "example.org";

/// The checks made so far.
#[derive(Default)]
struct Checks {
    passed: usize,
    failed: Vec<String>,
}

impl Checks {
    /// A token that must be accepted as coming from `from`.
    fn accepted(&mut self, what: &str, result: Result<spiffile::Caller, Error>, from: &SpiffeId) {
        match result {
            Ok(caller) if caller.id() == from => {
                self.pass(&format!("{what}: accepted, caller {}", caller.id()));
            }
            Ok(caller) => self.fail(
                what,
                &format!("accepted as {} instead of {from}", caller.id()),
            ),
            Err(e) => self.fail(what, &format!("refused: {e}")),
        }
    }

    /// A token that must be refused for `reason`.
    fn refused(&mut self, what: &str, result: Result<spiffile::Caller, Error>, reason: Reason) {
        match result {
            Err(e) if e.reason() == Some(reason) => {
                self.pass(&format!("{what}: refused ({reason}): {e}"));
            }
            Err(e) => self.fail(what, &format!("refused, but for another reason: {e}")),
            Ok(caller) => self.fail(what, &format!("ACCEPTED as {}", caller.id())),
        }
    }

    fn pass(&mut self, line: &str) {
        self.passed += 1;
        out(&format!("   [ok] {line}"));
    }

    fn fail(&mut self, what: &str, line: &str) {
        out(&format!("   [UNEXPECTED] {what}: {line}"));
        self.failed.push(format!("{what}: {line}"));
    }
}

fn step<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> Result<T, Failure> {
    r.map_err(|e| Failure::failed(format!("demo: {what} failed: {e}")))
}

fn short(kid: &str) -> String {
    format!("{}…", kid.chars().take(10).collect::<String>())
}

/// Runs the demo.
pub fn run() -> Result<(), Failure> {
    let dir = step(
        "creating a temporary directory",
        tempfile::Builder::new().prefix("spiffile-demo-").tempdir(),
    )?;
    let root = dir.path().join("root");
    let shown = root.display().to_string();
    out("spiffile demo: one trust domain, three services, every outcome checked.");
    out(&format!("ROOT={shown} (deleted at exit)"));
    out("");
    let mut checks = Checks::default();
    story(&root, &mut checks)?;
    out("");
    if checks.failed.is_empty() {
        out(&format!(
            "demo passed: all {} checks went as expected.",
            checks.passed
        ));
        Ok(())
    } else {
        Err(Failure::failed(format!(
            "demo FAILED: {} of {} checks did not go as expected:\n  {}",
            checks.failed.len(),
            checks.passed + checks.failed.len(),
            checks.failed.join("\n  ")
        )))
    }
}

fn story(root: &Path, checks: &mut Checks) -> Result<(), Failure> {
    out(&format!(
        "1. Provision the trust domain {TRUST_DOMAIN} with orders, billing and mallory"
    ));
    out(&format!(
        "   $ spiffile init $ROOT --trust-domain {TRUST_DOMAIN}"
    ));
    step("init", provision::init_root(root, TRUST_DOMAIN))?;
    out("   $ spiffile add $ROOT orders billing mallory");
    for name in ["orders", "billing", "mallory"] {
        let added = step("add", provision::add_service(root, name))?;
        out(&format!("     {} kid {}", added.id, short(&added.kid)));
    }
    let orders = step("loading orders", provision::load_identity(root, "orders"))?;
    let billing = step("loading billing", provision::load_identity(root, "billing"))?;
    let mallory = step("loading mallory", provision::load_identity(root, "mallory"))?;

    out("");
    out("2. orders calls billing");
    out(&format!(
        "   orders$  spiffile token --audience {}",
        billing.id()
    ));
    let first = step("minting", orders.token(billing.id()))?;
    out("   billing$ spiffile verify \"$TOKEN\"");
    checks.accepted("orders -> billing", billing.verify(&first), orders.id());

    out("");
    out("3. mallory claims to be orders");
    out("   mallory signs a token with sub=orders using its own key (it has no other)");
    let mallory_key = step(
        "reading mallory's key",
        std::fs::read(root.join("services/mallory/key.pem")),
    )?;
    let forger = step(
        "loading mallory's key",
        Signer::from_pkcs8_pem(orders.id().clone(), &mallory_key),
    )?;
    let forged = step(
        "forging",
        forger.mint(billing.id(), Duration::from_secs(60)),
    )?;
    checks.refused(
        "forged orders -> billing",
        billing.verify(&forged),
        Reason::Signature,
    );

    out("");
    out("4. a token for another audience is replayed");
    out("   orders mints a token for mallory; mallory presents it to billing");
    let for_mallory = step("minting", orders.token(mallory.id()))?;
    checks.refused(
        "replayed orders -> mallory token at billing",
        billing.verify(&for_mallory),
        Reason::Audience,
    );

    out("");
    out("5. orders' key is rotated; old and new keys overlap");
    out("   $ spiffile rotate $ROOT orders");
    let rotated = step(
        "rotate",
        provision::rotate_service(root, "orders", provision::OldKeys::Keep),
    )?;
    let kids: Vec<String> = rotated.kids.iter().map(|k| short(k)).collect();
    out(&format!(
        "     bundle binds orders to {} keys, current first: {}",
        rotated.kids.len(),
        kids.join(", ")
    ));
    step("reloading orders", orders.reload())?;
    step("reloading billing", billing.reload())?;
    let second = step("minting", orders.token(billing.id()))?;
    checks.accepted(
        "old token (old key) at billing",
        billing.verify(&first),
        orders.id(),
    );
    checks.accepted(
        "new token (new key) at billing",
        billing.verify(&second),
        orders.id(),
    );

    out("");
    out("6. the old key is revoked");
    out("   $ spiffile revoke-old $ROOT orders");
    let revoked = step("revoke-old", provision::revoke_old_keys(root, "orders"))?;
    out(&format!(
        "     revoked {}",
        revoked
            .revoked
            .iter()
            .map(|k| short(k))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    step("reloading billing", billing.reload())?;
    checks.refused(
        "old token (revoked key) at billing",
        billing.verify(&first),
        Reason::Signature,
    );
    checks.accepted("new token at billing", billing.verify(&second), orders.id());
    Ok(())
}
