//! The `spiffile` binary, run as a real process.

mod common;

use std::fs;

use common::*;

const ORDERS: &str = "spiffe://example.org/orders";
const BILLING: &str = "spiffe://example.org/billing";

fn r(root: &std::path::Path) -> &str {
    root.to_str().unwrap()
}

#[test]
fn provisioning_commands() {
    let (_dir, root) = root_with(&[]);
    let root = r(&root);
    let e = run(["init", root, "--trust-domain", "example.org"]).code(1);
    assert!(e.stderr.contains("already initialized"), "{}", e.stderr);

    let out = run(["add", root, "orders", "billing"]).ok();
    assert!(out.contains(&format!("{ORDERS} added, kid ")), "{out}");
    assert!(out.contains(&format!("{BILLING} added, kid ")), "{out}");
    let out = run(["add", root, "orders"]).ok();
    assert!(out.contains("unchanged"), "{out}");
    // One bad name among good ones: the good ones are added, exit 1.
    let bad = run(["add", root, "inventory", "../etc"]).code(2);
    assert!(bad.stdout.contains("inventory added"), "{}", bad.stdout);
    assert!(
        bad.stderr.contains("invalid service name"),
        "{}",
        bad.stderr
    );

    let list = run(["list", root]).ok();
    assert!(list.starts_with("NAME"), "{list}");
    assert_eq!(list.lines().count(), 4, "{list}");
    let json: serde_json::Value =
        serde_json::from_str(&run(["list", root, "--json"]).ok()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    assert!(json.as_array().unwrap().iter().all(|s| s["status"] == "ok"));

    let out = run(["rotate", root, "orders"]).ok();
    assert!(out.contains("rotated spiffe://example.org/orders"), "{out}");
    let listed: serde_json::Value =
        serde_json::from_str(&run(["list", root, "--json"]).ok()).unwrap();
    let orders = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "orders")
        .unwrap();
    assert_eq!(orders["kids"].as_array().unwrap().len(), 2);
    let out = run(["revoke-old", root, "orders"]).ok();
    assert!(out.contains("revoked"), "{out}");
    let out = run(["rotate", root, "orders", "--revoke-old"]).ok();
    assert!(out.contains("revoked: "), "{out}");

    let out = run(["remove", root, "inventory"]).ok();
    assert!(
        out.contains("removed spiffe://example.org/inventory"),
        "{out}"
    );
    let e = run(["remove", root, "inventory"]).code(2);
    assert!(
        e.stderr.contains("unknown service `inventory`"),
        "{}",
        e.stderr
    );
    let e = run(["rotate", root, "ghost"]).code(2);
    assert!(e.stderr.contains("unknown service"), "{}", e.stderr);

    let e = run(["list", "/nonexistent-spiffile-root"]).code(2);
    assert!(e.stderr.contains("not a spiffile root"), "{}", e.stderr);
}

#[test]
fn list_shows_key_missing_and_commands_warn() {
    let (_dir, root) = root_with(&["orders", "billing"]);
    fs::remove_file(root.join("services/orders/key.pem")).unwrap();
    let list = run(["list", r(&root)]).code(1).stdout;
    let line = list.lines().find(|l| l.starts_with("orders")).unwrap();
    assert!(line.contains("key_missing"), "{list}");
    let add = run(["add", r(&root), "billing"]).ok();
    assert!(add.contains("unchanged"));
    let add = run(["add", r(&root), "billing"]);
    assert!(
        add.stderr
            .contains("warning: key missing: `spiffe://example.org/orders` is in the bundle"),
        "{}",
        add.stderr
    );
    let e = run(["add", r(&root), "orders"]).code(1);
    assert!(e.stderr.contains("--revoke-old"), "{}", e.stderr);
}

#[test]
fn env_formats() {
    let (_dir, root) = root_with(&["orders"]);
    let shell = run(["env", r(&root), "orders"]).ok();
    let lines: Vec<&str> = shell.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].starts_with("export SPIFFILE_ID_FILE='/"),
        "{shell}"
    );
    assert!(lines[2].ends_with("/bundle.json'"), "{shell}");
    // The shell output really works with eval.
    let script = format!(
        "eval \"$({BIN} env '{}' orders)\" && cat \"$SPIFFILE_ID_FILE\"",
        r(&root)
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{ORDERS}\n"));

    let dotenv = run(["env", r(&root), "orders", "--format", "dotenv"]).ok();
    assert!(
        dotenv.lines().all(|l| l.starts_with("SPIFFILE_")),
        "{dotenv}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run(["env", r(&root), "orders", "--format", "json"]).ok()).unwrap();
    assert!(
        json["SPIFFILE_KEY_FILE"]
            .as_str()
            .unwrap()
            .ends_with("/services/orders/key.pem")
    );
    run(["env", r(&root), "ghost"]).code(2);
    run(["env", r(&root), "orders", "--format", "yaml"]).code(2);
}

#[test]
fn token_and_verify_exit_codes() {
    let (_dir, root) = root_with(&["orders", "billing"]);
    let token = run_as(&root, "orders", ["token", "--audience", BILLING]).ok();
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3);

    // Accepted: caller on the first line; from the argument, from stdin
    // (absent or `-`).
    let out = run_as(&root, "billing", ["verify", token]).ok();
    assert_eq!(out.lines().next(), Some(ORDERS));
    let out = run_with_stdin(
        &root,
        "billing",
        ["verify"],
        format!("{token}\n").into_bytes(),
    )
    .ok();
    assert_eq!(out.lines().next(), Some(ORDERS));
    let out = run_with_stdin(&root, "billing", ["verify", "-"], token.as_bytes().to_vec()).ok();
    assert_eq!(out.lines().next(), Some(ORDERS));
    let out = run_as(&root, "billing", ["verify", "--json", token]).ok();
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["caller"], ORDERS);
    assert_eq!(json["claims"]["aud"], BILLING);
    assert!(json["claims"]["exp"].as_i64().unwrap() > json["claims"]["iat"].as_i64().unwrap());

    // Rejected: exit 1, reason on stderr, nothing on stdout.
    let e = run_as(&root, "orders", ["verify", token]).code(1);
    assert!(e.stdout.is_empty());
    assert!(e.stderr.contains("rejected (audience)"), "{}", e.stderr);
    let out = run_as(&root, "orders", ["verify", "--audience", BILLING, token]).ok();
    assert_eq!(out.lines().next(), Some(ORDERS));
    run(["remove", r(&root), "orders"]).ok();
    let e = run_as(&root, "billing", ["verify", token]).code(1);
    assert!(
        e.stderr.contains("rejected (unknown_identity)"),
        "{}",
        e.stderr
    );

    // --dir works as well as the environment.
    let dir = root.join("billing-files");
    fs::create_dir(&dir).unwrap();
    fs::copy(root.join("services/billing/id"), dir.join("id")).unwrap();
    fs::copy(root.join("services/billing/key.pem"), dir.join("key.pem")).unwrap();
    fs::copy(root.join("bundle.json"), dir.join("bundle.json")).unwrap();
    let t = run([
        "token",
        "--dir",
        dir.to_str().unwrap(),
        "--audience",
        BILLING,
    ])
    .ok();
    let out = run(["verify", "--dir", dir.to_str().unwrap(), t.trim()]).ok();
    assert_eq!(out.trim(), BILLING);

    // Usage errors exit 2, configuration errors 3.
    let e = run(["verify", token]).code(3);
    assert!(e.stderr.contains("SPIFFILE_DIR"), "{}", e.stderr);
    run_as(&root, "billing", ["verify", "--audience", "billing", token]).code(2);
    run_as(&root, "billing", ["verify", "--bogus", token]).code(2);
    run_as(&root, "billing", ["verify", "a", "b"]).code(2);
    run(["verify", "--dir", "/nonexistent", token]).code(3);
    run(["token", "--audience", BILLING]).code(3);
    run_as(&root, "billing", ["token", "--audience", "not-an-id"]).code(2);
    run_as(
        &root,
        "billing",
        ["token", "--audience", BILLING, "--ttl", "0"],
    )
    .code(2);
    run_as(
        &root,
        "billing",
        ["token", "--audience", BILLING, "--ttl", "-5"],
    )
    .code(2);
}

#[test]
fn verify_never_panics_on_garbage() {
    let (_dir, root) = root_with(&["billing"]);
    let cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"   \n".to_vec(),
        b"a.b.c".to_vec(),
        b"...".to_vec(),
        b"eyJhbGciOiJub25lIn0.e30.".to_vec(),
        vec![0xff, 0xfe, b'.', 0x80, b'.', 0xc3],
        vec![0u8; 5000],
        "é.é.é".as_bytes().to_vec(),
        b"x".repeat(100_000),
    ];
    for input in &cases {
        let e = run_with_stdin(&root, "billing", ["verify"], input.clone()).code(1);
        assert!(e.stderr.contains("rejected"), "{}", e.stderr);
        assert!(e.stdout.is_empty());
    }
    // Larger than the stdin bound, and far larger than any argument.
    let huge = b"A".repeat(20 * 1024 * 1024);
    let e = run_with_stdin(&root, "billing", ["verify", "-"], huge).code(1);
    assert!(e.stderr.contains("larger than"), "{}", e.stderr);
    // Invalid UTF-8 as the argument.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let arg = std::ffi::OsStr::from_bytes(&[b'e', b'y', 0xff, b'.', b'x', b'.', b'y']);
        let e = run_as(&root, "billing", [std::ffi::OsStr::new("verify"), arg]).code(1);
        assert!(e.stderr.contains("not UTF-8"), "{}", e.stderr);
        let e = run([std::ffi::OsStr::new("inspect"), arg]).code(1);
        assert!(e.stderr.contains("cannot decode"), "{}", e.stderr);
    }
}

#[test]
fn inspect_is_labelled_unverified() {
    let (_dir, root) = root_with(&["orders", "billing"]);
    let token = run_as(
        &root,
        "orders",
        ["token", "--audience", BILLING, "--ttl", "120"],
    )
    .ok();
    let out = run(["inspect", token.trim()]).ok();
    assert!(out.starts_with("UNVERIFIED"), "{out}");
    assert!(out.contains(&format!("sub  {ORDERS}")), "{out}");
    assert!(out.contains("UTC, expires in"), "{out}");
    assert!(out.contains("signature: 64 bytes (not checked)"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&run(["inspect", "--json", token.trim()]).ok()).unwrap();
    assert_eq!(json["verified"], false);
    assert_eq!(json["header"]["alg"], "ES256");
    // The fixture token of 2035 (from stdin).
    let fixtures = spiffile_testkit::fixtures();
    let t = fixtures["token_orders_to_billing_exp_2035"]
        .as_str()
        .unwrap();
    let out = run_with_stdin(&root, "orders", ["inspect"], t.as_bytes().to_vec()).ok();
    assert!(out.contains("2035-01-01 00:00:00 UTC"), "{out}");
    // A token with control characters in a claim does not reach the terminal raw.
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let evil = format!(
        "{}.{}.AA",
        b64(r#"{"alg":"ES256"}"#),
        b64("{\"sub\":\"a\\u001b[31mb\",\"exp\":\"soon\"}")
    );
    let out = run(["inspect", &evil]).ok();
    assert!(!out.contains('\u{1b}'), "{out:?}");
    for garbage in ["", "abc", "a.b.c", "e30.e30"] {
        run(["inspect", garbage]).code(1);
    }
}

#[test]
fn bundle_check_and_fmt() {
    let (_dir, root) = root_with(&["orders", "billing"]);
    let bundle = root.join("bundle.json");
    let b = bundle.to_str().unwrap();
    let out = run(["bundle", "check", b]).ok();
    assert!(
        out.contains("trust domain example.org, 2 identities, 2 keys"),
        "{out}"
    );
    assert!(out.contains("    kid "), "{out}");

    // Compact, reordered JSON: valid, not canonical; fmt rewrites it.
    let canonical = fs::read_to_string(&bundle).unwrap();
    let value: serde_json::Value = serde_json::from_str(&canonical).unwrap();
    fs::write(&bundle, value.to_string()).unwrap();
    let out = run(["bundle", "check", b]).ok();
    assert!(out.contains("not in the canonical form"), "{out}");
    let out = run(["bundle", "fmt", b]).ok();
    assert!(out.contains("rewritten"), "{out}");
    assert_eq!(fs::read_to_string(&bundle).unwrap(), canonical);
    assert!(run(["bundle", "fmt", b]).ok().contains("already canonical"));
    let leftovers: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".spiffile-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A skipped entry: check exits 1, fmt refuses to drop it.
    let mut doc = value.clone();
    doc["identities"]["spiffe://other.org/x"] = doc["identities"][ORDERS].clone();
    let with_foreign = serde_json::to_string_pretty(&doc).unwrap();
    fs::write(&bundle, &with_foreign).unwrap();
    let e = run(["bundle", "check", b]).code(1);
    assert!(
        e.stdout
            .contains("problem: identity \"spiffe://other.org/x\" skipped"),
        "{}",
        e.stdout
    );
    let e = run(["bundle", "fmt", b]).code(1);
    assert!(e.stderr.contains("would be lost"), "{}", e.stderr);
    assert_eq!(fs::read_to_string(&bundle).unwrap(), with_foreign);

    // An identity that appears twice (issue 15, item 4): not trusted at all,
    // one problem naming it, exit 1; fmt refuses to pick an entry.
    let billing_entry = serde_json::to_string(&value["identities"][BILLING]).unwrap();
    let twice = canonical.replacen(
        "\"identities\": {",
        &format!("\"identities\": {{\n    \"{ORDERS}\": {billing_entry},"),
        1,
    );
    fs::write(&bundle, &twice).unwrap();
    let e = run(["bundle", "check", b]).code(1);
    assert!(
        e.stdout.contains(&format!(
            "problem: identity \"{ORDERS}\" skipped: appears 2 times in `identities`; none of its entries is used"
        )),
        "{}",
        e.stdout
    );
    assert_eq!(e.stdout.matches("problem:").count(), 1, "{}", e.stdout);
    assert!(e.stderr.contains("1 entry skipped"), "{}", e.stderr);
    let e = run(["bundle", "check", b, "--json"]).code(1);
    let v: serde_json::Value = serde_json::from_str(&e.stdout).unwrap();
    assert_eq!(v["problems"][0]["code"], "identity_skipped", "{v}");
    assert_eq!(v["problems"][0]["identity"], ORDERS, "{v}");
    run(["bundle", "fmt", b]).code(1);
    assert_eq!(fs::read_to_string(&bundle).unwrap(), twice);

    // One public key bound to two identities: trusted, but a problem.
    let mut shared = value.clone();
    shared["identities"]["spiffe://example.org/twin"] = value["identities"][ORDERS].clone();
    fs::write(&bundle, serde_json::to_string_pretty(&shared).unwrap()).unwrap();
    let e = run(["bundle", "check", b]).code(1);
    assert!(
        e.stdout.contains("problem: identity \"spiffe://example.org/twin\" key #0: the same public key is also bound to `spiffe://example.org/orders`"),
        "{}",
        e.stdout
    );
    assert!(
        e.stderr
            .contains("1 public key bound to more than one identity"),
        "{}",
        e.stderr
    );
    // The same finding for a script: a stable code beside the words.
    let e = run(["bundle", "check", b, "--json"]).code(1);
    let v: serde_json::Value = serde_json::from_str(&e.stdout).unwrap();
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["problems"][0]["code"], "shared_key", "{v}");
    assert_eq!(
        v["problems"][0]["identity"], "spiffe://example.org/twin",
        "{v}"
    );

    fs::write(&bundle, "{not json").unwrap();
    let e = run(["bundle", "check", b]).code(1);
    assert!(e.stderr.contains("not valid JSON"), "{}", e.stderr);
    run(["bundle", "check", "/nonexistent/bundle.json"]).code(2);
}

#[test]
fn the_pinned_fixture_token_verifies() {
    let fixtures = spiffile_testkit::fixtures();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("id"), format!("{BILLING}\n")).unwrap();
    fs::write(
        dir.path().join("key.pem"),
        fixtures["billing_private_key_pem"].as_str().unwrap(),
    )
    .unwrap();
    fs::write(
        dir.path().join("bundle.json"),
        fixtures["bundle"].to_string(),
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    let token = fixtures["token_orders_to_billing_exp_2035"]
        .as_str()
        .unwrap();
    let out = run(["verify", "--dir", d, token]).ok();
    assert_eq!(out.trim(), ORDERS);
    let multi = fixtures["token_orders_to_billing_multi_aud_exp_2035"]
        .as_str()
        .unwrap();
    let e = run(["verify", "--dir", d, multi]).code(1);
    assert!(e.stderr.contains("rejected (audience)"), "{}", e.stderr);
}

#[test]
fn demo_runs_and_checks() {
    let out = run(["demo"]).ok();
    assert!(
        out.contains("demo passed: all 7 checks went as expected."),
        "{out}"
    );
    assert_eq!(out.matches("[ok]").count(), 7, "{out}");
    assert!(!out.contains("UNEXPECTED"));
}

#[test]
fn help_and_completions() {
    let help = run(["--help"]).ok();
    for cmd in [
        "init",
        "add",
        "rotate",
        "remove",
        "list",
        "env",
        "token",
        "verify",
        "inspect",
        "bundle",
        "demo",
        "completions",
    ] {
        assert!(help.contains(cmd), "{cmd} missing from help");
    }
    assert!(help.contains("Examples:"));
    let verify_help = run(["verify", "--help"]).ok();
    assert!(
        verify_help.contains("Exit codes: 0 accepted"),
        "{verify_help}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let script = run(["completions", shell]).ok();
        assert!(script.contains("spiffile"), "{shell}");
        assert!(script.contains("revoke-old"), "{shell}");
    }
    run(["completions", "cmd.exe"]).code(2);
    run(Vec::<&str>::new()).code(2);
    assert!(run(["--version"]).ok().starts_with("spiffile "));
}

#[test]
fn token_and_verify_as_a_service_of_a_root() {
    let (_dir, root) = root_with(&["orders", "billing"]);
    let root_arg = root.to_str().unwrap();
    let as_service = |name: &str| ["--root", root_arg, "--service", name].map(str::to_owned);
    let mut args = vec![
        "token".to_owned(),
        "--audience".to_owned(),
        BILLING.to_owned(),
    ];
    args.extend(as_service("orders"));
    let token = run(&args).ok();
    let token = token.trim().to_owned();

    let mut args = vec!["verify".to_owned(), token.clone()];
    args.extend(as_service("billing"));
    assert_eq!(run(&args).ok().lines().next(), Some(ORDERS));

    // As orders, the token is for someone else: rejected.
    let mut args = vec!["verify".to_owned(), token.clone()];
    args.extend(as_service("orders"));
    assert!(run(&args).code(1).stderr.contains("audience"));

    // --root needs --service; --dir excludes both; an unknown service is a
    // configuration error.
    run(["verify", "--root", root_arg, &token]).code(2);
    run([
        "verify",
        "--dir",
        root_arg,
        "--root",
        root_arg,
        "--service",
        "billing",
        &token,
    ])
    .code(2);
    let mut args = vec!["verify".to_owned(), token];
    args.extend(as_service("nobody"));
    assert!(run(&args).code(2).stderr.contains("nobody"));
}
