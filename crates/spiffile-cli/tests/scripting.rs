//! What scripts and operators read from `spiffile`: JSON from every command
//! that reports, `status` with monitoring exit codes, `exec`, the manual
//! page and the completion paths (issue 16), on the real binary.

mod common;

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;

const ORDERS: &str = "spiffe://example.org/orders";
const BILLING: &str = "spiffe://example.org/billing";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn provisioning_commands_report_json() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let r = s(&root);
    let v = json(&run(["init", r, "--trust-domain", "example.org", "--json"]).ok());
    assert_eq!(v["trust_domain"], "example.org");
    let v = json(&run(["add", r, "orders", "billing", "--json"]).ok());
    assert_eq!(v["added"].as_array().unwrap().len(), 2);
    assert_eq!(v["added"][0]["action"], "created");
    let v = json(&run(["add", r, "orders", "../x", "--json"]).code(2).stdout);
    assert_eq!(v["added"][0]["action"], "unchanged");
    assert_eq!(v["errors"][0]["name"], "../x");
    assert_eq!(v["errors"][0]["exit_code"], 2);
    let v = json(&run(["rotate", r, "orders", "--json"]).ok());
    assert_eq!(v["id"], ORDERS);
    assert_eq!(v["kids"].as_array().unwrap().len(), 2);
    let v = json(&run(["revoke-old", r, "orders", "--json"]).ok());
    assert_eq!(v["revoked"].as_array().unwrap().len(), 1);
    let v = json(&run(["remove", r, "billing", "--json"]).ok());
    assert_eq!(v["id"], BILLING);
    assert_eq!(v["revoked"].as_array().unwrap().len(), 1);
    // A usage error of a JSON command: a document on stdout too.
    let e = run(["rotate", r, "ordres", "--json"]).code(2);
    let v = json(&e.stdout);
    assert_eq!(v["error"]["exit_code"], 2);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `orders`?")
    );
    // bundle check.
    let v = json(&run(["bundle", "check", s(&root.join("bundle.json")), "--json"]).ok());
    assert_eq!(v["ok"], true);
    assert_eq!(v["identities"][0]["id"], ORDERS);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
}

#[test]
fn verify_reports_json_accepted_and_rejected() {
    let (_dir, root) = root_with(&["orders", "billing"]);
    let billing = root.join("services/billing");
    let token = run([
        "token",
        "--dir",
        s(&root.join("services/orders")),
        "--audience",
        BILLING,
    ])
    .ok();
    let v = json(&run(["verify", "--dir", s(&billing), "--json", token.trim()]).ok());
    assert_eq!(v["accepted"], true);
    assert_eq!(v["caller"], ORDERS);
    // Rejected: a document with the reason code and the unverified claims.
    let e = run([
        "verify",
        "--dir",
        s(&root.join("services/orders")),
        "--json",
        token.trim(),
    ])
    .code(1);
    let v = json(&e.stdout);
    assert_eq!(v["accepted"], false);
    assert_eq!(v["reason"], "audience");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("not the expected audience")
    );
    assert_eq!(v["unverified"]["claims"]["sub"], ORDERS);
    assert_eq!(v["unverified"]["header"]["alg"], "ES256");
    let e = run(["verify", "--dir", s(&billing), "--json", "garbage"]).code(1);
    let v = json(&e.stdout);
    assert_eq!(v["reason"], "malformed");
    assert!(v["unverified"].is_null());
    // Configuration error: exit 3, and still a document.
    let e = run(["verify", "--json", token.trim()]).code(3);
    assert_eq!(json(&e.stdout)["error"]["exit_code"], 3);
}

#[test]
fn status_of_a_root_fits_monitoring() {
    let (_dir, root) = root_with(&["orders", "billing"]);
    let r = s(&root);
    let out = run(["status", r]).ok();
    assert!(out.contains("healthy: 0 problems"), "{out}");
    assert!(out.contains("0600"), "{out}");
    let v = json(&run(["status", r, "--json"]).ok());
    assert_eq!(v["kind"], "root");
    assert_eq!(v["healthy"], true);
    assert_eq!(v["services"].as_array().unwrap().len(), 2);
    assert_eq!(v["services"][0]["key_file"]["mode"], "0600");
    // A rotation overlap is a warning: exit 0, or 1 with --strict.
    run(["rotate", r, "orders"]).ok();
    let v = json(&run(["status", r, "--json"]).ok());
    assert_eq!(v["warnings"][0]["code"], "rotation_overlap");
    run(["status", r, "--strict"]).code(1);
    // A key readable by others is a warning; a missing key a problem.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = root.join("services/billing/key.pem");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let v = json(&run(["status", r, "--json"]).ok());
        assert!(
            v["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["code"] == "key_exposed"),
            "{v}"
        );
        // A service directory others can write is a problem (issue 15's
        // `unsafe`): its key could be replaced under it.
        let billing = root.join("services/billing");
        fs::set_permissions(&billing, fs::Permissions::from_mode(0o777)).unwrap();
        let e = run(["status", r, "--json"]).code(1);
        let v = json(&e.stdout);
        assert!(
            v["problems"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["code"] == "unsafe" && p["subject"] == "billing"),
            "{v}"
        );
        fs::set_permissions(&billing, fs::Permissions::from_mode(0o700)).unwrap();
    }
    fs::remove_file(root.join("services/orders/key.pem")).unwrap();
    let e = run(["status", r, "--json"]).code(1);
    let v = json(&e.stdout);
    assert_eq!(v["healthy"], false);
    assert_eq!(v["problems"][0]["code"], "key_missing");
    // Not a root: exit 2 (the command line names something that is not one).
    run(["status", "/nonexistent-spiffile-root"]).code(2);
}

#[test]
fn status_of_an_identity_checks_its_key_and_presented_tokens() {
    let (_dir, root) = root_with(&["orders", "billing"]);
    let orders = root.join("services/orders");
    let out = run(["status", "--dir", s(&orders)]).ok();
    assert!(out.contains(&format!("identity {ORDERS}")), "{out}");
    assert!(
        out.contains("round trip  a token of this identity verifies"),
        "{out}"
    );
    // A presented token: time to expiry, and whether it still verifies.
    let token = run([
        "token",
        "--dir",
        s(&orders),
        "--audience",
        BILLING,
        "--ttl",
        "90",
    ])
    .ok();
    let file = root.join("token");
    fs::write(&file, &token).unwrap();
    let v = json(
        &run([
            "status",
            "--dir",
            s(&orders),
            "--token-file",
            s(&file),
            "--json",
        ])
        .ok(),
    );
    assert_eq!(v["kind"], "identity");
    assert_eq!(v["round_trip"], true);
    let t = &v["tokens"][0];
    assert_eq!(t["verifies"], true);
    let left = t["expires_in"].as_i64().unwrap();
    assert!((80..=90).contains(&left), "{t}");
    // After `rotate --revoke-old`, this process's key is no longer bound:
    // a problem, and the presented token is refused.
    run(["rotate", s(&root), "orders", "--revoke-old", "--yes"]).ok();
    fs::write(
        orders.join("key.pem"),
        fs::read(orders.join("key.pem")).unwrap(),
    )
    .unwrap();
    let e = run([
        "status",
        "--dir",
        s(&orders),
        "--token-file",
        s(&file),
        "--json",
    ])
    .code(1);
    let v = json(&e.stdout);
    let codes: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"token_rejected"), "{codes:?}");
    // Nothing configured: exit 3.
    run(["status"]).code(3);
}

#[test]
fn exec_runs_a_program_as_the_service_and_passes_its_exit_code_on() {
    let (_dir, root) = root_with(&["orders", "billing"]);
    let r = s(&root);
    let out = run([
        "exec",
        r,
        "orders",
        "--",
        "sh",
        "-c",
        "cat \"$SPIFFILE_ID_FILE\"; echo \"$SPIFFILE_BUNDLE_FILE\"",
    ])
    .ok();
    assert!(out.starts_with(ORDERS), "{out}");
    assert!(out.contains("/bundle.json"), "{out}");
    // The program can use the identity: spiffile itself, as orders.
    let out = run([
        "exec",
        r,
        "orders",
        "--",
        BIN,
        "token",
        "--audience",
        BILLING,
    ])
    .ok();
    let v = json(
        &run([
            "verify",
            "--root",
            r,
            "--service",
            "billing",
            "--json",
            out.trim(),
        ])
        .ok(),
    );
    assert_eq!(v["caller"], ORDERS);
    // Its exit code is ours; a missing program is 127.
    run(["exec", r, "orders", "--", "sh", "-c", "exit 7"]).code(7);
    run(["exec", r, "orders", "--", "/nonexistent/program"]).code(127);
    // SPIFFILE_ROOT and the environment form.
    let out = cmd()
        .env("SPIFFILE_ROOT", &root)
        .args([
            "exec",
            "billing",
            "--",
            "sh",
            "-c",
            "cat \"$SPIFFILE_ID_FILE\"",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), BILLING);
    run(["exec", "--", "true"]).code(3);
}

#[cfg(unix)]
#[test]
fn exec_passes_signals_to_the_program() {
    let (_dir, root) = root_with(&["orders"]);
    let mut child = cmd()
        .args([
            "exec",
            s(&root),
            "orders",
            "--",
            "sh",
            "-c",
            "trap 'echo got TERM; exit 42' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    // The signal goes to the pid we started: spiffile has become the program.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(100));
    let code = child.wait().unwrap().code();
    assert_eq!(lines.next().unwrap().unwrap(), "got TERM");
    assert_eq!(code, Some(42));
}

#[test]
fn a_man_page_and_completion_paths() {
    let page = run(["man"]).ok();
    assert!(
        page.starts_with(".ie") || page.contains(".TH spiffile 1"),
        "{}",
        &page[..200.min(page.len())]
    );
    assert!(page.contains("revoke\\-old"), "the page lists the commands");
    let page = run(["man", "verify"]).ok();
    assert!(
        page.contains(".TH spiffile-verify 1"),
        "{}",
        &page[..300.min(page.len())]
    );
    let e = run(["man", "verfy"]).code(2);
    assert!(e.stderr.contains("did you mean `verify`?"), "{}", e.stderr);
    // The README gives the install paths the help gives.
    let help = run(["completions", "--help"]).ok();
    let readme =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let paths: Vec<&str> = help
        .lines()
        .filter(|l| l.contains("spiffile completions ") && l.contains(" > "))
        .collect();
    assert_eq!(paths.len(), 3, "{help}");
    for l in paths {
        assert!(readme.contains(l.trim()), "README lacks {l:?}");
    }
    // The scripts complete the new commands.
    let bash = run(["completions", "bash"]).ok();
    for c in ["status", "exec", "man"] {
        assert!(bash.contains(c), "{c}");
    }
}
