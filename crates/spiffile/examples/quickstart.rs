//! Provisions a throw-away trust root in a temporary directory, then shows the
//! three lines of a service: load, mint, verify.
//!
//! Run it with `cargo run -p spiffile --example quickstart`.

use std::path::Path;

use spiffile::bundle::Bundle;
use spiffile::svid::{generate_pkcs8_pem, public_key_of_pem};
use spiffile::{Error, Identity, SpiffeId, TrustDomain};

/// Writes `services/<name>/{id,key.pem}` and binds the public key in the bundle.
fn provision(
    root: &Path,
    bundle: &mut Bundle,
    name: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let id = bundle.trust_domain().join(name)?;
    let pem = generate_pkcs8_pem()?;
    let dir = root.join("services").join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("id"), format!("{id}\n"))?;
    std::fs::write(dir.join("key.pem"), pem.as_bytes())?;
    bundle.add_key(&id, public_key_of_pem(pem.as_bytes())?)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let td: TrustDomain = "example.org".parse()?;
    let mut bundle = Bundle::new(td);
    for name in ["orders", "billing"] {
        provision(root, &mut bundle, name)?;
    }
    std::fs::write(root.join("bundle.json"), bundle.to_json())?;
    println!("provisioned {} with orders and billing", root.display());

    let load = |name: &str| {
        let svc = root.join("services").join(name);
        Identity::from_files(
            svc.join("id"),
            svc.join("key.pem"),
            root.join("bundle.json"),
        )
    };
    let orders = load("orders")?;
    let billing = load("billing")?;

    // Outbound, in orders: a token for billing.
    let token = orders.token(billing.id())?;
    println!("orders minted a 60 s token for {}", billing.id());

    // Inbound, in billing: who is calling?
    let caller = billing.verify(&token)?;
    println!("billing verified the caller: {}", caller.id());
    assert_eq!(caller.id(), orders.id());

    // The same token is useless against any other service.
    let elsewhere: SpiffeId = "spiffe://example.org/inventory".parse()?;
    match billing.verify_for(&token, &elsewhere) {
        Err(Error::InvalidToken(e)) => {
            println!("replayed against {elsewhere}: refused ({})", e.reason())
        }
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }
    Ok(())
}
