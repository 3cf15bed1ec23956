//! `cargo xtask conformance`: the shared fixture suite, then a live matrix
//! against the Python reference implementation.
//!
//! Every pair (minter → verifier) mints `orders → billing` and checks that
//! billing accepts it with the right caller and that a service it was not
//! addressed to refuses it. One line per check; any miss fails the command.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use spiffile::{Identity, SpiffeId};

use crate::python;

const TD: &str = "example.org";

/// Counts checks and failures, printing one line per check.
#[derive(Default)]
pub struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    pub fn check(&mut self, label: &str, outcome: Result<String, String>) {
        match outcome {
            Ok(detail) => {
                self.passed += 1;
                println!("  ok    {label:<58} {detail}");
            }
            Err(why) => {
                self.failed += 1;
                println!("  FAIL  {label:<58} {why}");
            }
        }
    }

    pub fn finish(&self, what: &str) -> Result<(), String> {
        println!("{what}: {} passed, {} failed", self.passed, self.failed);
        if self.failed == 0 {
            Ok(())
        } else {
            Err(format!("{what}: {} check(s) failed", self.failed))
        }
    }
}

/// One side of the matrix: an implementation that can mint and verify as a
/// service of a provisioned root.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    Rust,
    Python,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Rust => "rust",
            Side::Python => "python",
        }
    }
}

/// The Python peer: its interpreter and script.
pub struct Peer {
    pub python: PathBuf,
    pub script: PathBuf,
}

impl Peer {
    pub fn new(root: &Path) -> Result<Peer, String> {
        Ok(Peer {
            python: python::ensure_venv(root)?,
            script: root.join("xtask/peer/peer.py"),
        })
    }

    /// Runs a peer command and parses its one-line JSON reply.
    pub fn call(&self, args: &[&str]) -> Result<Value, String> {
        let out = python::run_peer(&self.python, &self.script, args)?;
        serde_json::from_str(out.trim()).map_err(|e| format!("peer reply is not JSON ({e}): {out}"))
    }

    fn ok(&self, args: &[&str]) -> Result<Value, String> {
        let v = self.call(args)?;
        if v["ok"] == true {
            Ok(v)
        } else {
            Err(format!("peer {}: {v}", args.first().unwrap_or(&"")))
        }
    }
}

fn service_files(root: &Path, name: &str) -> [String; 6] {
    let svc = root.join("services").join(name);
    [
        "--id-file".into(),
        svc.join("id").display().to_string(),
        "--key-file".into(),
        svc.join("key.pem").display().to_string(),
        "--bundle-file".into(),
        root.join("bundle.json").display().to_string(),
    ]
}

fn rust_identity(root: &Path, name: &str) -> Result<Identity, String> {
    let svc = root.join("services").join(name);
    Identity::from_files(
        svc.join("id"),
        svc.join("key.pem"),
        root.join("bundle.json"),
    )
    .map_err(|e| format!("rust cannot load {name}: {e}"))
}

/// Mints a token from `from` to `to` with the given implementation.
pub fn mint(side: Side, peer: &Peer, root: &Path, from: &str, to: &str) -> Result<String, String> {
    let audience = format!("spiffe://{TD}/{to}");
    match side {
        Side::Rust => {
            let aud: SpiffeId = audience.parse().map_err(|e| format!("{e}"))?;
            rust_identity(root, from)?
                .token(&aud)
                .map_err(|e| format!("rust mint: {e}"))
        }
        Side::Python => {
            let files = service_files(root, from);
            let mut args: Vec<&str> = vec!["token"];
            args.extend(files.iter().map(String::as_str));
            args.extend(["--audience", &audience]);
            let v = peer.ok(&args)?;
            v["token"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("no token in {v}"))
        }
    }
}

/// Verifies `token` as service `as_name`; returns the caller or the error.
pub fn verify(
    side: Side,
    peer: &Peer,
    root: &Path,
    as_name: &str,
    token: &str,
) -> Result<Result<String, String>, String> {
    match side {
        Side::Rust => Ok(rust_identity(root, as_name)?
            .verify(token)
            .map(|c| c.id().to_string())
            .map_err(|e| e.to_string())),
        Side::Python => {
            let files = service_files(root, as_name);
            let mut args: Vec<&str> = vec!["verify"];
            args.extend(files.iter().map(String::as_str));
            args.push(token);
            let v = peer.call(&args)?;
            Ok(if v["ok"] == true {
                Ok(v["caller"].as_str().unwrap_or_default().to_owned())
            } else {
                Err(format!(
                    "{}: {}",
                    v["error_type"].as_str().unwrap_or("?"),
                    v["error"].as_str().unwrap_or("?")
                ))
            })
        }
    }
}

/// The matrix over a root whose services `orders`, `billing` and `mallory`
/// exist: every minter × every verifier.
pub fn matrix(tally: &mut Tally, peer: &Peer, root: &Path, provisioned_by: &str) {
    let sides = [Side::Rust, Side::Python];
    tally.check(
        &format!("[{provisioned_by} root] same header bytes and claim order"),
        same_shape(peer, root),
    );
    let orders = format!("spiffe://{TD}/orders");
    for minter in sides {
        let token = match mint(minter, peer, root, "orders", "billing") {
            Ok(t) => t,
            Err(e) => {
                tally.check(
                    &format!(
                        "[{provisioned_by} root] {} mints orders→billing",
                        minter.name()
                    ),
                    Err(e),
                );
                continue;
            }
        };
        for verifier in sides {
            let label = format!(
                "[{provisioned_by} root] {} → {}: billing accepts orders",
                minter.name(),
                verifier.name()
            );
            let outcome = match verify(verifier, peer, root, "billing", &token) {
                Ok(Ok(caller)) if caller == orders => Ok(format!("caller {caller}")),
                Ok(Ok(caller)) => Err(format!("wrong caller {caller}")),
                Ok(Err(e)) => Err(format!("refused: {e}")),
                Err(e) => Err(e),
            };
            tally.check(&label, outcome);
            let label = format!(
                "[{provisioned_by} root] {} → {}: mallory refuses it",
                minter.name(),
                verifier.name()
            );
            let outcome = match verify(verifier, peer, root, "mallory", &token) {
                Ok(Ok(caller)) => Err(format!("ACCEPTED as {caller}")),
                Ok(Err(e)) => Ok(format!("refused ({})", short(&e))),
                Err(e) => Err(e),
            };
            tally.check(&label, outcome);
        }
    }
}

/// The header segment of both implementations' tokens must be identical
/// (same key → same kid), and the claims must carry the same members in the
/// same order (`sub, aud, iat, exp`).
fn same_shape(peer: &Peer, root: &Path) -> Result<String, String> {
    let decode = |t: &str, i: usize| -> Result<Value, String> {
        use base64::Engine as _;
        let seg = t.split('.').nth(i).ok_or("no segment")?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(seg)
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let r = mint(Side::Rust, peer, root, "orders", "billing")?;
    let p = mint(Side::Python, peer, root, "orders", "billing")?;
    let (rh, ph) = (r.split('.').next(), p.split('.').next());
    if rh != ph {
        return Err(format!(
            "headers differ: {} vs {}",
            decode(&r, 0)?,
            decode(&p, 0)?
        ));
    }
    // Member order, read from the raw JSON text (serde_json's Map sorts).
    let member_order = |t: &str| -> Result<Vec<String>, String> {
        use base64::Engine as _;
        let seg = t.split('.').nth(1).ok_or("no claims")?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(seg)
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8(bytes).map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let mut keys: Vec<(usize, String)> = v
            .as_object()
            .map(|m| {
                m.keys()
                    .filter_map(|k| text.find(&format!("\"{k}\":")).map(|i| (i, k.clone())))
                    .collect()
            })
            .unwrap_or_default();
        keys.sort();
        Ok(keys.into_iter().map(|(_, k)| k).collect())
    };
    let (rk, pk) = (member_order(&r)?, member_order(&p)?);
    if rk != pk {
        return Err(format!("claims differ: {rk:?} vs {pk:?}"));
    }
    Ok(format!("claims {}", rk.join(",")))
}

fn short(s: &str) -> String {
    if s.len() > 60 {
        format!(
            "{}…",
            &s[..s.char_indices().take(59).last().map_or(0, |(i, _)| i)]
        )
    } else {
        s.to_owned()
    }
}

/// Python verifies the shared fixture tokens (the Rust side is pinned to the
/// same fixtures by `cargo test`).
fn python_fixtures(tally: &mut Tally, peer: &Peer, root: &Path, ws: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(ws.join("conformance/fixtures.json"))
        .map_err(|e| format!("conformance/fixtures.json: {e}"))?;
    let f: Value = serde_json::from_str(&text).map_err(|e| format!("fixtures: {e}"))?;
    let dir = root.join("fixture-billing");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("id"), format!("spiffe://{TD}/billing\n"))
        .map_err(|e| e.to_string())?;
    std::fs::write(
        dir.join("key.pem"),
        f["billing_private_key_pem"].as_str().unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(
        dir.join("bundle.json"),
        serde_json::to_string_pretty(&f["bundle"]).unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    let files = [
        "--id-file".to_owned(),
        dir.join("id").display().to_string(),
        "--key-file".to_owned(),
        dir.join("key.pem").display().to_string(),
        "--bundle-file".to_owned(),
        dir.join("bundle.json").display().to_string(),
    ];
    let run = |token: &str| -> Result<Value, String> {
        let mut args: Vec<&str> = vec!["verify"];
        args.extend(files.iter().map(String::as_str));
        args.push(token);
        peer.call(&args)
    };
    let good = f["token_orders_to_billing_exp_2035"]
        .as_str()
        .unwrap_or_default();
    let v = run(good)?;
    tally.check(
        "[fixtures] python verifies the pinned token as billing",
        if v["ok"] == true && v["caller"] == "spiffe://example.org/orders" {
            Ok("caller spiffe://example.org/orders".into())
        } else {
            Err(v.to_string())
        },
    );
    let multi = f["token_orders_to_billing_multi_aud_exp_2035"]
        .as_str()
        .unwrap_or_default();
    let v = run(multi)?;
    tally.check(
        "[fixtures] python refuses the multi-audience token",
        if v["ok"] == false {
            Ok("refused".into())
        } else {
            Err(v.to_string())
        },
    );
    Ok(())
}

/// Runs the Rust fixture tests (the conformance suite pinned to
/// conformance/fixtures.json).
fn rust_fixtures(tally: &mut Tally, ws: &Path) {
    cargo_test(
        tally,
        ws,
        "[fixtures] rust: jwk/kid, bundle, pinned tokens, ID vectors",
        &[
            "-p",
            "spiffile",
            "--test",
            "conformance",
            "-p",
            "spiffile-id",
            "--test",
            "fixtures",
        ],
        &[],
    );
}

/// Runs `cargo test --quiet <args>` as one check.
fn cargo_test(tally: &mut Tally, ws: &Path, label: &str, args: &[&str], env: &[(&str, &str)]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(ws)
        .args(["test", "--quiet"])
        .args(args)
        .envs(env.iter().copied())
        .status();
    tally.check(
        label,
        match status {
            Ok(s) if s.success() => Ok("cargo test passed".into()),
            Ok(s) => Err(format!("cargo test exited with {s}")),
            Err(e) => Err(format!("cannot run cargo: {e}")),
        },
    );
}

pub fn run(ws: &Path) -> Result<(), String> {
    let mut tally = Tally::default();
    println!("conformance: shared fixtures");
    rust_fixtures(&mut tally, ws);

    let peer = Peer::new(ws)?;
    let version = peer.ok(&["version"])?;
    println!(
        "conformance: live matrix against the Python reference spiffile {} (PyJWT {}, cryptography {})",
        version["version"].as_str().unwrap_or("?"),
        version["pyjwt"].as_str().unwrap_or("?"),
        version["cryptography"].as_str().unwrap_or("?")
    );
    let work = ws.join("target/conformance-run");
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    }
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    python_fixtures(&mut tally, &peer, &work, ws)?;

    // A root provisioned by the Python reference.
    let py_root = work.join("python-root");
    let py_root_s = py_root.to_str().ok_or("non-UTF-8 path")?;
    peer.ok(&["init", py_root_s, TD])?;
    peer.ok(&["add", py_root_s, "orders", "billing", "mallory"])?;
    matrix(&mut tally, &peer, &py_root, "python");

    // A root provisioned by this implementation.
    let rs_root = work.join("rust-root");
    spiffile::provision::init_root(&rs_root, TD).map_err(|e| format!("rust init: {e}"))?;
    for name in ["orders", "billing", "mallory"] {
        spiffile::provision::add_service(&rs_root, name)
            .map_err(|e| format!("rust add {name}: {e}"))?;
    }
    matrix(&mut tally, &peer, &rs_root, "rust");

    // Mixed roots, rotation and revocation across implementations, and the
    // `spiffile` command line's tokens: the CLI's interop tests, with the
    // peer now required.
    cargo_test(
        &mut tally,
        ws,
        "[mixed roots] each side provisions into the other's root; CLI tokens; rotate/revoke",
        &["-p", "spiffile-cli", "--test", "interop"],
        &[("SPIFFILE_REQUIRE_PEER", "1")],
    );

    tally.finish("conformance")
}
