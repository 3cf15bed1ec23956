//! Workspace automation (`cargo xtask <command>`).

mod bench;
mod conformance;
mod fuzz;
mod infra;
mod python;
mod test;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("conformance") => conformance::run(&workspace_root()).map(|()| ExitCode::SUCCESS),
        Some("peer-selftest") => peer_selftest().map(|()| ExitCode::SUCCESS),
        Some("bench") => bench::run(&workspace_root(), &args[1..]).map(|()| ExitCode::SUCCESS),
        Some("infra") => infra::run(&args[1..]),
        Some("test") => test::run(&workspace_root(), &args[1..]),
        Some("fuzz") => fuzz::run(&workspace_root(), &args[1..]),
        _ => Err(
            "usage: cargo xtask <test | conformance | fuzz <replay|run> | bench [--help] | peer-selftest | infra <build|up|down|status|env> [k8s|spire|all]>"
                .to_owned(),
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Builds the venv, then provisions a fresh root with the Python reference
/// and checks orders -> billing: accepted as billing, refused as orders.
fn peer_selftest() -> Result<(), String> {
    let root = workspace_root();
    let python = python::ensure_venv(&root)?;
    let script = root.join("xtask/peer/peer.py");
    let peer = |args: &[&str]| python::run_peer(&python, &script, args);

    let version = peer(&["version"])?;
    println!("peer: {version}");

    let dir = root.join("target/peer-selftest");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let dir_s = dir.to_str().ok_or("non-UTF-8 target path")?;
    expect_ok(&peer(&["init", dir_s, "example.org"])?)?;
    expect_ok(&peer(&["add", dir_s, "orders", "billing"])?)?;

    let files = |name: &str| -> [String; 6] {
        let svc = dir.join("services").join(name);
        [
            "--id-file".into(),
            svc.join("id").display().to_string(),
            "--key-file".into(),
            svc.join("key.pem").display().to_string(),
            "--bundle-file".into(),
            dir.join("bundle.json").display().to_string(),
        ]
    };

    let orders = files("orders");
    let mut args: Vec<&str> = orders.iter().map(String::as_str).collect();
    args.splice(0..0, ["token"]);
    args.extend(["--audience", "spiffe://example.org/billing"]);
    let minted = expect_ok(&peer(&args)?)?;
    let token = python::json_string_field(&minted, "token").ok_or("no token in reply")?;

    let verify_as = |name: &str, stdin: bool| {
        let f = files(name);
        let mut args: Vec<&str> = vec!["verify"];
        args.extend(f.iter().map(String::as_str));
        if stdin {
            args.push("-");
            python::run_peer_stdin(&python, &script, &args, Some(&token))
        } else {
            args.push(&token);
            python::run_peer(&python, &script, &args)
        }
    };

    let as_billing = expect_ok(&verify_as("billing", false)?)?;
    let caller = python::json_string_field(&as_billing, "caller");
    if caller.as_deref() != Some("spiffe://example.org/orders") {
        return Err(format!("billing verified the wrong caller: {as_billing}"));
    }
    println!("verify as billing: {as_billing}");
    expect_ok(&verify_as("billing", true)?)?;

    let as_orders = verify_as("orders", false)?;
    if python::json_ok(&as_orders)
        || python::json_string_field(&as_orders, "error_type").as_deref()
            != Some("InvalidTokenError")
    {
        return Err(format!(
            "orders should refuse a token for billing: {as_orders}"
        ));
    }
    println!("verify as orders (refused as expected): {as_orders}");
    println!("peer-selftest: ok");
    Ok(())
}

fn expect_ok(reply: &str) -> Result<String, String> {
    if python::json_ok(reply) {
        Ok(reply.to_owned())
    } else {
        Err(format!("peer failed: {reply}"))
    }
}
