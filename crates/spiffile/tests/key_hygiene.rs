//! Key hygiene: no log line, `Debug`, `Display` or error string ever shows
//! private key material, across the error paths; and a key file readable by
//! group or others is warned about, naming the file and its mode.

use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use spiffile::{Error, Identity};
use spiffile_testkit::{LogCapture, Root};

/// Runs `f` with every `tracing` event of this thread captured.
///
/// Captures are serialized, and call-site interest is rebuilt once the
/// subscriber is in place: a thread-local subscriber can otherwise miss an
/// event whose call site another test thread registered at the same moment.
fn captured<T>(f: impl FnOnce() -> T) -> (T, String) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let capture = LogCapture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        f()
    });
    (out, capture.text())
}

/// Every form in which the private key of `pem` could leak: PEM body lines
/// and the private scalar in hex, base64 and base64url.
fn secret_forms(pem: &str) -> Vec<String> {
    let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body.concat()).unwrap();
    // ring's PKCS#8 P-256 template: the 32-byte scalar follows a 36-byte
    // prefix ending in OCTET STRING (04 20).
    assert_eq!(&der[34..36], &[0x04, 0x20]);
    let scalar = &der[36..68];
    let hex: String = scalar.iter().map(|b| format!("{b:02x}")).collect();
    let mut forms = vec![
        hex.clone(),
        hex.to_uppercase(),
        STANDARD.encode(scalar),
        URL_SAFE_NO_PAD.encode(scalar),
        format!("{scalar:?}"),
    ];
    // Any 16-character piece of the PEM body that holds private bytes (the
    // public key is at the end and may legitimately appear, as x and y).
    let joined = body.concat();
    for start in (48..92).step_by(8) {
        forms.push(joined[start..start + 16].to_owned());
    }
    forms
}

fn assert_clean(what: &str, text: &str, forms: &[String]) {
    for f in forms {
        assert!(
            !text.contains(f.as_str()),
            "{what} shows key material ({f}):\n{text}"
        );
    }
}

#[cfg(unix)]
fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn no_key_material_in_logs_debug_display_or_errors() {
    let mut root = Root::new("example.org");
    let dir = root.add("orders");
    root.add("billing");
    let key_path = dir.join("key.pem");
    let pem = std::fs::read_to_string(&key_path).unwrap();
    let forms = secret_forms(&pem);
    // The check can fail: the key file itself shows its material.
    assert!(
        forms
            .iter()
            .any(|f| pem.replace('\n', "").contains(f.as_str()))
    );
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let scalar_b64url = URL_SAFE_NO_PAD.encode(&STANDARD.decode(&body).unwrap()[36..68]);

    // Manual reload everywhere in this test: the captured subscriber is this
    // thread's, and a watcher would parse (and first hit the bundle's warning
    // call site) on its own thread, racing the capture (spiffile-watch tests
    // its own logs).
    let load = || {
        Identity::builder().hot_reload(false).from_files(
            dir.join("id"),
            &key_path,
            root.bundle_path(),
        )
    };
    let mut shown = Vec::new();
    let (_, logs) = captured(|| {
        let identity = load().unwrap();
        let billing = root.manual_identity("billing");
        shown.push(format!("{identity:?}"));
        let token = identity.token(billing.id()).unwrap();
        let caller = billing.verify(&token).unwrap();
        shown.push(format!("{caller:?} {:?}", caller.claims()));
        // Each broken form of the key file, at load and at reload.
        let broken = [
            pem.replacen(&body[40..48], "AAAAAAAA", 1),
            pem.replace("PRIVATE KEY", "EC PRIVATE KEY"),
            pem.replace("PRIVATE KEY", "PUBLIC KEY"),
            pem.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"),
            pem[..pem.len() / 2].to_owned(),
            pem.replace("-----END", "garbage-----END"),
            format!(
                "junk before\n{}",
                pem.replace('\n', "\r\n").replace("M", "!")
            ),
            body.clone(),
        ];
        for text in &broken {
            std::fs::write(&key_path, text).unwrap();
            for e in [load().unwrap_err(), identity.reload().unwrap_err()] {
                shown.push(format!("{e} | {e:?}"));
                if let Some(source) = std::error::Error::source(&e) {
                    shown.push(format!("{source} | {source:?}"));
                }
            }
        }
        std::fs::write(&key_path, &pem).unwrap();
        // The private scalar pasted into the bundle, as `d` and as a
        // coordinate: skipped, and the warnings do not repeat it.
        let mut doc: serde_json::Value = serde_json::from_str(&root.bundle.to_json()).unwrap();
        let mut jwk = identity_jwk(&root);
        jwk["d"] = json!(scalar_b64url);
        doc["identities"]["spiffe://example.org/leaky"] = json!({"keys": [jwk.clone()]});
        jwk.as_object_mut().unwrap().remove("d");
        jwk["x"] = json!(scalar_b64url);
        doc["identities"]["spiffe://example.org/leaky2"] = json!({"keys": [jwk]});
        std::fs::write(root.bundle_path(), serde_json::to_vec(&doc).unwrap()).unwrap();
        identity.reload().unwrap();
        let bundle =
            spiffile::bundle::Bundle::from_json(&serde_json::to_vec(&doc).unwrap()).unwrap();
        for w in bundle.warnings() {
            shown.push(format!("{w} | {w:?}"));
        }
        shown.push(format!("{bundle:?}"));
        // Token errors.
        for bad in [token.clone() + "x", format!("x{token}"), String::new()] {
            let e = billing.verify(&bad).unwrap_err();
            shown.push(format!("{e} | {e:?}"));
        }
    });
    assert!(
        logs.contains("leaky"),
        "bundle warnings are logged:\n{logs}"
    );
    assert_clean("logs", &logs, &forms);
    for s in &shown {
        assert_clean("output", s, &forms);
    }
    assert!(shown.len() > 20);
}

fn identity_jwk(root: &Root) -> serde_json::Value {
    root.bundle
        .keys(&"spiffe://example.org/orders".parse().unwrap())
        .unwrap()[0]
        .to_jwk()
}

#[cfg(unix)]
#[test]
fn a_key_readable_by_group_or_others_is_warned_about_by_name_and_mode() {
    let mut root = Root::new("example.org");
    let dir = root.add("orders");
    let key_path = dir.join("key.pem");
    for (mode, warned) in [
        (0o644, true),
        (0o640, true),
        (0o604, true),
        (0o600, false),
        (0o400, false),
    ] {
        set_mode(&key_path, mode);
        let (identity, logs) = captured(|| {
            // Manual reload, so that the reload below parses on this thread.
            Identity::builder()
                .hot_reload(false)
                .from_files(dir.join("id"), &key_path, root.bundle_path())
                .unwrap()
        });
        let expected = format!(
            "private key file {} has mode {mode:04o}: readable by group or others",
            key_path.display()
        );
        assert_eq!(logs.contains(&expected), warned, "{mode:o}:\n{logs}");
        assert_eq!(logs.contains("WARN"), warned, "{mode:o}:\n{logs}");
        // Not an error: the identity works (Kubernetes Secrets are 0644).
        assert!(identity.token(identity.id()).is_ok());
        // The reload path warns too, for a rotated key (an unchanged file
        // is not parsed again). Writing in place keeps the mode.
        let rotated = spiffile::svid::generate_pkcs8_pem().unwrap();
        std::fs::write(&key_path, rotated.as_bytes()).unwrap();
        let (_, logs) = captured(|| identity.reload().unwrap());
        assert_eq!(logs.contains(&expected), warned, "reload {mode:o}:\n{logs}");
    }
    set_mode(&key_path, 0o600);
}

#[test]
fn errors_are_plain_values_without_secrets() {
    // The facade error for a key names the file and the problem only.
    let mut root = Root::new("example.org");
    let dir = root.add("orders");
    let key_path = dir.join("key.pem");
    let pem = std::fs::read_to_string(&key_path).unwrap();
    std::fs::write(&key_path, pem.replace("PRIVATE KEY", "EC PRIVATE KEY")).unwrap();
    // Inside a capture like every test of this binary: loading hits the same
    // warning call sites, and a thread without a subscriber registering one
    // at the moment another test captures can leave that capture deaf to it.
    let (e, _) = captured(|| {
        Identity::from_files(dir.join("id"), &key_path, root.bundle_path()).unwrap_err()
    });
    assert!(matches!(e, Error::Key { .. }));
    assert!(
        e.to_string()
            .starts_with(&format!("private key {} is a SEC1", key_path.display()))
    );
}
