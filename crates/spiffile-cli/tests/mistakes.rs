//! The mistakes people make with the `spiffile` command, each caught with a
//! message that says what to do instead (issue 16), on the real binary.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

const BILLING: &str = "spiffe://example.org/billing";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `spiffile ARGS` with `SPIFFILE_ROOT` set.
fn run_with_root(root: &Path, args: &[&str]) -> Run {
    let out = cmd()
        .env("SPIFFILE_ROOT", root)
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `spiffile ARGS` on a terminal (a pseudo-terminal from `script`),
/// typing `input`. Stdout and stderr arrive together.
fn run_on_terminal(args: &[&str], input: &str) -> Run {
    let line: Vec<String> = std::iter::once(BIN)
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let mut child = Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) runs a command on a pseudo-terminal");
    use std::io::Write as _;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn swapped_arguments_get_the_command_in_the_right_order() {
    let (_dir, root) = root_with(&["orders"]);
    let cwd = root.parent().unwrap();
    for command in ["add", "env", "rotate", "remove"] {
        let out = cmd()
            .current_dir(cwd)
            .args([command, "orders", "root"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("did you mean `spiffile {command} root orders`?")),
            "{command}: {stderr}"
        );
        assert!(!stderr.contains("spiffile init"), "{stderr}");
    }
    // Nothing was created where the root was expected.
    assert!(!cwd.join("orders").exists());
}

#[test]
fn a_misspelt_service_gets_did_you_mean_and_exit_2_in_every_command() {
    let (_dir, root) = root_with(&["orders", "billing"]);
    let r = s(&root);
    let cases: Vec<Vec<&str>> = vec![
        vec!["env", r, "ordres"],
        vec!["rotate", r, "ordres"],
        vec!["revoke-old", r, "ordres"],
        vec!["remove", r, "ordres", "--yes"],
        vec!["exec", r, "ordres", "--", "true"],
        vec![
            "token",
            "--root",
            r,
            "--service",
            "ordres",
            "--audience",
            BILLING,
        ],
        vec!["verify", "--root", r, "--service", "ordres", "x.y.z"],
        vec!["status", "--root", r, "--service", "ordres"],
    ];
    for args in cases {
        let e = run(&args).code(2);
        assert!(
            e.stderr.contains("unknown service `ordres`")
                && e.stderr.contains("did you mean `orders`?"),
            "{args:?}: {}",
            e.stderr
        );
    }
    // Far from every name: the library's advice to add it.
    let e = run(["rotate", r, "inventory"]).code(2);
    assert!(e.stderr.contains("spiffile add"), "{}", e.stderr);
}

#[test]
fn the_exit_code_table_is_in_the_help_and_the_readme() {
    let help = run(["--help"]).ok();
    let table_start = help
        .find("Exit codes (the same for every command):")
        .expect("table in --help");
    let table: String = help[table_start..]
        .lines()
        .take(10)
        .collect::<Vec<_>>()
        .join("\n");
    let readme =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    for line in table.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            readme.contains(line.trim()),
            "README lacks the help's line {line:?}"
        );
    }
    // And the codes are what the table says: 0, 1, 2, 3.
    let (_dir, root) = root_with(&["orders", "billing"]);
    run(["list", s(&root)]).code(0);
    run([
        "verify",
        "--dir",
        s(&root.join("services/billing")),
        "a.b.c",
    ])
    .code(1);
    run(["list", "--bogus"]).code(2);
    run(["token", "--audience", BILLING]).code(3);
}

#[test]
fn trust_domain_mistakes_say_how_to_write_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let e = run(["init", s(&root), "--trust-domain", "spiffe://example.org"]).code(2);
    assert!(e.stderr.contains("drop `spiffe://`"), "{}", e.stderr);
    let e = run(["init", s(&root), "--trust-domain", "Example.org"]).code(2);
    assert!(
        e.stderr.contains("trust domains are lowercase"),
        "{}",
        e.stderr
    );
    assert!(!e.stderr.contains("it trust domain"), "{}", e.stderr);
    assert!(!root.join("bundle.json").exists());
}

#[test]
fn error_offsets_point_into_the_name_typed() {
    let (_dir, root) = root_with(&[]);
    let e = run(["add", s(&root), "team/or ders"]).code(2);
    assert!(
        e.stderr
            .contains("it has the character ' ' at byte 7 in its path"),
        "{}",
        e.stderr
    );
    assert!(!e.stderr.contains("it path"), "{}", e.stderr);
    let e = run(["token", "--audience", "spiffe://example.org/a b"]).code(2);
    assert!(e.stderr.contains("at byte 22"), "{}", e.stderr);
    let e = run(["token", "--audience", "billing"]).code(2);
    assert!(
        e.stderr.contains("spiffe://example.org/billing"),
        "{}",
        e.stderr
    );
}

#[test]
fn ttl_answers_in_the_unit_given_and_warns_above_300_s() {
    let (_dir, root) = root_with(&["orders", "billing"]);
    let dir = root.join("services/orders");
    let token = |ttl: &str| {
        run([
            "token",
            "--dir",
            s(&dir),
            "--audience",
            BILLING,
            "--ttl",
            ttl,
        ])
    };
    let e = token("100000").code(2);
    assert!(
        e.stderr
            .contains("100000 s is longer than a token may live: at most 86400 s"),
        "{}",
        e.stderr
    );
    assert!(!e.stderr.contains(" ms"), "{}", e.stderr);
    let e = token("2000m").code(2);
    assert!(
        e.stderr.contains("2000 min") && e.stderr.contains("1440 min"),
        "{}",
        e.stderr
    );
    let ok = token("600").code(0);
    assert!(
        ok.stderr
            .contains("warning: --ttl 600 s is longer than the 300 s"),
        "{}",
        ok.stderr
    );
    let ok = token("5m").code(0);
    assert!(!ok.stderr.contains("warning"), "{}", ok.stderr);
    let json: serde_json::Value = serde_json::from_str(
        &run([
            "token",
            "--dir",
            s(&dir),
            "--audience",
            BILLING,
            "--ttl",
            "2m",
            "--json",
        ])
        .ok(),
    )
    .unwrap();
    let c = &json["claims"];
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 120);
}

#[test]
fn a_root_or_a_service_directory_as_the_directory_form() {
    let (_dir, root) = root_with(&["orders", "billing"]);
    // A service directory works as --dir and as SPIFFILE_DIR.
    let t = run([
        "token",
        "--dir",
        s(&root.join("services/orders")),
        "--audience",
        BILLING,
    ])
    .ok();
    let out = cmd()
        .env("SPIFFILE_DIR", root.join("services/billing"))
        .args(["verify", t.trim()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "spiffe://example.org/orders"
    );
    // The root itself: what to use instead.
    let e = run(["token", "--dir", s(&root), "--audience", BILLING]).code(3);
    assert!(
        e.stderr.contains("--root") && e.stderr.contains("--service NAME"),
        "{}",
        e.stderr
    );
    assert!(e.stderr.contains("billing, orders"), "{}", e.stderr);
    let out = cmd()
        .env("SPIFFILE_DIR", &root)
        .args(["token", "--audience", BILLING])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/services/NAME"));
}

#[test]
fn verify_explains_what_a_person_gets_wrong() {
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
    let token = token.trim();
    // `Bearer ` pasted from a header: recognised, dropped, said.
    let out = run(["verify", "--dir", s(&billing), &format!("Bearer {token}")]).code(0);
    assert_eq!(out.stdout.trim(), "spiffe://example.org/orders");
    assert!(
        out.stderr.contains("dropped the `Bearer ` prefix"),
        "{}",
        out.stderr
    );
    // No token on a terminal: says it is reading standard input.
    let t = run_on_terminal(
        &["verify", "--dir", s(&billing)],
        &format!("{token}\n\u{4}"),
    );
    assert!(
        t.stdout.contains("reading the token from standard input"),
        "{}",
        t.stdout
    );
    assert!(
        t.stdout.contains("spiffe://example.org/orders"),
        "{}",
        t.stdout
    );
    // Expired: dates, not epochs.
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
    let old = old_token(&fixtures);
    let e = run(["verify", "--dir", s(dir.path()), &old]).code(1);
    assert!(e.stderr.contains("rejected (expired)"), "{}", e.stderr);
    assert!(
        e.stderr.contains("2025-06-15 15:06:40 UTC") || e.stderr.contains(" UTC ("),
        "{}",
        e.stderr
    );
    // A key rotated out: named, and said.
    run(["rotate", s(&root), "orders", "--revoke-old", "--yes"]).ok();
    let e = run(["verify", "--dir", s(&billing), token]).code(1);
    assert!(e.stderr.contains("revoked or rotated out"), "{}", e.stderr);
    // Another trust domain: said.
    let other = tempfile::tempdir().unwrap();
    let o = other.path().join("r");
    run(["init", s(&o), "--trust-domain", "other.org"]).ok();
    run(["add", s(&o), "orders"]).ok();
    let foreign = run([
        "token",
        "--dir",
        s(&o.join("services/orders")),
        "--audience",
        BILLING,
    ])
    .ok();
    let e = run(["verify", "--dir", s(&billing), foreign.trim()]).code(1);
    assert!(
        e.stderr
            .contains("of the trust domain `other.org`, which none of this identity's bundles holds (its own trust domain is `example.org`)"),
        "{}",
        e.stderr
    );
}

/// A fixture-key token that expired in 2025 (signed here with the fixture's
/// orders key through the library's `danger` module).
fn old_token(fixtures: &serde_json::Value) -> String {
    use spiffile::svid::{Signer, UnixTime, danger};
    let signer = Signer::from_pkcs8_pem(
        "spiffe://example.org/orders".parse().unwrap(),
        fixtures["orders_private_key_pem"]
            .as_str()
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    danger::mint_at(
        &signer,
        &BILLING.parse().unwrap(),
        UnixTime::from_secs(1_750_000_000 - 60),
        UnixTime::from_secs(1_750_000_000),
    )
    .unwrap()
}

#[test]
fn sec1_keys_with_ec_parameters_and_ed25519_keys_get_their_fix() {
    let (_dir, root) = root_with(&["billing"]);
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("id"), "spiffe://example.org/orders\n").unwrap();
    fs::copy(root.join("bundle.json"), dir.path().join("bundle.json")).unwrap();
    // What `openssl ecparam -genkey -name prime256v1` writes.
    fs::write(
        dir.path().join("key.pem"),
        "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIM2Ywaw807BoGJjjLFybkWQxbIKB+3NHMePXmlygaVRQoAoGCCqGSM49\nAwEHoUQDQgAEKVWQvVFPnO3xt6NUvGNQZ8k0j1xD3Zb1h1jNXjzEcV8oPdUSqVQa\nzDdeT0kJYnZWLHwMIDKx9TQYqXMvNCQhdQ==\n-----END EC PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = run(["token", "--dir", s(dir.path()), "--audience", BILLING]).code(3);
    assert!(e.stderr.contains("openssl pkcs8 -topk8"), "{}", e.stderr);
    // Ed25519 (openssl genpkey -algorithm ed25519).
    fs::write(
        dir.path().join("key.pem"),
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIOQe3oa7ZkWLjL8xddKowS06f13t5Vl3LlWJEtsBaA70\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = run(["token", "--dir", s(dir.path()), "--audience", BILLING]).code(3);
    assert!(
        e.stderr.contains("Ed25519") && e.stderr.contains("openssl genpkey -algorithm EC"),
        "{}",
        e.stderr
    );
}

#[test]
fn list_stays_aligned_exits_1_on_problems_and_gives_codes_in_json() {
    let (_dir, root) = root_with(&["orders", "billing", "team/inventory"]);
    fs::write(
        root.join("services/orders/key.pem"),
        "not a key at all, and a long line too ".repeat(5),
    )
    .unwrap();
    let out = run(["list", s(&root)]).code(1);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    // KEYS, CURRENT KID and PROBLEM start in the same column on every line.
    let header = lines[0];
    let keys_end = header.find("KEYS").unwrap() + 4;
    for l in &lines[1..] {
        assert_eq!(&l[keys_end - 1..keys_end], "1", "{l:?} in\n{}", out.stdout);
        assert!(l.len() < 250, "{l}");
    }
    assert!(out.stderr.contains("need attention"), "{}", out.stderr);
    let json = run(["list", s(&root), "--json"]).code(1);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let orders = v
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "orders")
        .unwrap();
    assert_eq!(orders["status"], "key_unreadable");
    assert!(
        orders["problem"]
            .as_str()
            .unwrap()
            .contains("not a PEM file")
    );
    let billing = v
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "billing")
        .unwrap();
    assert_eq!(billing["status"], "ok");
    assert!(billing["problem"].is_null());
}

#[test]
fn bundle_check_of_a_directory_and_of_a_private_key() {
    let (_dir, root) = root_with(&["orders"]);
    // A root is a directory of bundles like any other: its bundle.json is
    // what gets checked (and named).
    let e = run(["bundle", "check", s(&root)]).code(0);
    assert!(
        e.stdout.contains(&format!(
            "{}: spiffile bundle",
            root.join("bundle.json").display()
        )),
        "{}",
        e.stdout
    );
    let bundle = root.join("bundle.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&bundle).unwrap()).unwrap();
    doc["identities"]["spiffe://example.org/orders"]["keys"][0]["d"] = "c2VjcmV0".into();
    fs::write(&bundle, doc.to_string()).unwrap();
    let e = run(["bundle", "check", s(&bundle)]).code(1);
    assert!(
        e.stdout.contains("compromised") && e.stdout.contains("rotate"),
        "{}",
        e.stdout
    );
    assert!(!e.stdout.contains("c2VjcmV0"), "{}", e.stdout);
}

#[test]
fn spiffile_root_is_the_default_root() {
    let (_dir, root) = root_with(&["orders"]);
    let out = run_with_root(&root, &["add", "billing", "team/x"]).code(0);
    assert!(
        out.stdout.contains("spiffe://example.org/billing added"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("spiffe://example.org/team/x added"),
        "{}",
        out.stdout
    );
    let env = run_with_root(&root, &["env", "billing"]).ok();
    assert!(env.contains("/services/billing/key.pem"), "{env}");
    run_with_root(&root, &["list"]).ok();
    run_with_root(&root, &["rotate", "billing"]).ok();
    let t = run_with_root(
        &root,
        &["token", "--service", "orders", "--audience", BILLING],
    )
    .ok();
    let out = run_with_root(&root, &["verify", "--service", "billing", t.trim()]).ok();
    assert_eq!(out.trim(), "spiffe://example.org/orders");
    // An explicit root still wins.
    let other = tempfile::tempdir().unwrap();
    let o = other.path().join("r");
    run(["init", s(&o), "--trust-domain", "example.org"]).ok();
    run_with_root(&root, &["add", s(&o), "shipping"]).ok();
    assert!(o.join("services/shipping/key.pem").exists());
    assert!(!root.join("services/shipping").exists());
    // No root at all: says how to give one.
    let e = run(["rotate", "orders"]).code(2);
    assert!(e.stderr.contains("SPIFFILE_ROOT"), "{}", e.stderr);
}

#[test]
fn revoking_commands_dry_run_and_ask_on_a_terminal() {
    let (_dir, root) = root_with(&["orders", "billing"]);
    let r = s(&root);
    let before = fs::read_to_string(root.join("bundle.json")).unwrap();
    let out = run(["remove", r, "orders", "--dry-run"]).ok();
    assert!(
        out.contains("would revoke: ") && out.contains("nothing was changed"),
        "{out}"
    );
    let out = run(["rotate", r, "orders", "--revoke-old", "--dry-run"]).ok();
    assert!(out.contains("would revoke: "), "{out}");
    let out = run(["revoke-old", r, "orders", "--dry-run", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["would_revoke"].as_array().unwrap().len(), 0);
    assert_eq!(
        fs::read_to_string(root.join("bundle.json")).unwrap(),
        before
    );
    // On a terminal: asked; "n" changes nothing (exit 1), "y" goes ahead.
    let t = run_on_terminal(&["remove", r, "orders"], "n\n");
    assert_eq!(t.code, 1, "{}", t.stdout);
    assert!(
        t.stdout.contains("[y/N]") && t.stdout.contains("aborted"),
        "{}",
        t.stdout
    );
    assert!(root.join("services/orders/key.pem").exists());
    let t = run_on_terminal(&["remove", r, "orders"], "y\n");
    assert_eq!(t.code, 0, "{}", t.stdout);
    assert!(!root.join("services/orders/key.pem").exists());
    // --yes: no question even on a terminal.
    let t = run_on_terminal(&["rotate", r, "billing", "--revoke-old", "--yes"], "");
    assert_eq!(t.code, 0, "{}", t.stdout);
    assert!(!t.stdout.contains("[y/N]"), "{}", t.stdout);
    // Not a terminal (a script): no question.
    run(["remove", r, "billing"]).ok();
}
