//! Federated bundles follow their directory: a `federated_bundle.N.M.pem`
//! (or a file of `X509Files::federated_dir`) added after the source
//! started is trusted, one changed is followed, one removed is no longer
//! trusted, whatever way the writer replaces files; and the rules that keep
//! trust domains apart (one trust domain per federated file, never the
//! workload's own, never two files for one trust domain).

#[path = "common/mod.rs"]
mod common;
#[path = "../../spiffile-watch/tests/support/writers.rs"]
mod writers;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::{Ca, Leaf, pem_block};
use spiffile_tls::{Error, Reason, Usage, X509Files, X509Source};
use spiffile_watch::{DirSource, WatchOptions};
use writers::Style;

const ORDERS: &str = "spiffe://example.org/orders";

fn verify(source: &X509Source, leaf: &Leaf) -> Result<(), Reason> {
    spiffile_tls::verify_svid(
        &leaf.chain,
        &source.bundles(),
        Usage::Client,
        SystemTime::now(),
    )
    .map(|_| ())
    .map_err(|r| r.reason())
}

/// Polls until `leaf` verifies (`want` Ok) or is refused with `want`'s
/// reason, checking on every poll that the workload's own trust domain is
/// never lost meanwhile.
fn until(source: &X509Source, leaf: &Leaf, own: &Leaf, want: Result<(), Reason>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(verify(source, own), Ok(()), "{what}: own trust domain lost");
        let got = verify(source, leaf);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {got:?}, want {want:?} ({:?})",
            source.status()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct World {
    ca: Ca,
    partner: Ca,
    partner_next: Ca,
    third: Ca,
    own: Leaf,
}

fn world() -> World {
    let ca = Ca::root("example.org");
    World {
        own: ca.leaf(ORDERS),
        ca,
        partner: Ca::root("partner.org"),
        partner_next: Ca::root("partner.org"),
        third: Ca::root("third.org"),
    }
}

fn pem(ca: &Ca) -> Vec<u8> {
    pem_block("CERTIFICATE", &ca.der).into_bytes()
}

/// SPIRE's `-write` directory, laid out and changed the way `style` writes;
/// every change is the directory's whole next state.
fn spire_dir_follows(style: Style) {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let own: Vec<(&str, Vec<u8>)> = vec![
        ("svid.0.pem", w.own.chain_pem().into_bytes()),
        ("svid.0.key", w.own.key_pem().into_bytes()),
        ("bundle.0.pem", pem(&w.ca)),
    ];
    let mut state: BTreeMap<&str, Vec<u8>> = own.into_iter().collect();
    state.insert("federated_bundle.0.0.pem", pem(&w.partner));
    let write = |state: &BTreeMap<&str, Vec<u8>>, setup: bool| {
        let files: Vec<(&str, &[u8])> = state.iter().map(|(n, c)| (*n, c.as_slice())).collect();
        if setup {
            writers::setup_files(style, dir.path(), &files);
        } else {
            writers::update_files(style, dir.path(), &files, true);
        }
    };
    write(&state, true);

    let source = X509Source::watch(X509Files::spire_agent(dir.path()), WatchOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", style.name()));
    let partner = w.partner.leaf("spiffe://partner.org/pay");
    let partner_next = w.partner_next.leaf("spiffe://partner.org/pay");
    let third = w.third.leaf("spiffe://third.org/ledger");
    let name = style.name();
    assert_eq!(verify(&source, &partner), Ok(()), "{name}");
    assert_eq!(
        verify(&source, &third),
        Err(Reason::UnknownTrustDomain),
        "{name}"
    );

    // A federation added later: its bundle appears in the directory.
    state.insert("federated_bundle.0.1.pem", pem(&w.third));
    write(&state, false);
    until(&source, &third, &w.own, Ok(()), &format!("{name}: added"));

    // The partner rotates its CA (old one out).
    state.insert("federated_bundle.0.0.pem", pem(&w.partner_next));
    write(&state, false);
    until(
        &source,
        &partner_next,
        &w.own,
        Ok(()),
        &format!("{name}: rotated"),
    );
    until(
        &source,
        &partner,
        &w.own,
        Err(Reason::UntrustedChain),
        &format!("{name}: old partner CA out"),
    );

    // The federation with third.org ends: its file goes.
    state.remove("federated_bundle.0.1.pem");
    write(&state, false);
    until(
        &source,
        &third,
        &w.own,
        Err(Reason::UnknownTrustDomain),
        &format!("{name}: removed"),
    );
    assert_eq!(verify(&source, &partner_next), Ok(()), "{name}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while source.status().bundle_error.is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(source.status().bundle_error, None, "{name}");
}

#[test]
fn spire_federated_bundles_follow_the_directory_rename_over() {
    spire_dir_follows(Style::RenameOver);
}

#[test]
fn spire_federated_bundles_follow_the_directory_truncate_rewrite() {
    // spire-agent's and spiffe-helper's own way.
    spire_dir_follows(Style::TruncateRewrite);
}

#[test]
fn spire_federated_bundles_follow_the_directory_delete_recreate() {
    spire_dir_follows(Style::DeleteRecreate);
}

#[test]
fn spire_federated_bundles_follow_the_directory_missing_moment() {
    spire_dir_follows(Style::MissingMoment);
}

#[test]
fn spire_federated_bundles_follow_the_directory_kubernetes_volume() {
    spire_dir_follows(Style::Kubernetes);
}

#[test]
fn a_federated_dir_beside_another_layout_follows_too() {
    let w = world();
    let (own_dir, fed_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fs::write(own_dir.path().join("svid.pem"), w.own.chain_pem()).unwrap();
    fs::write(own_dir.path().join("svid_key.pem"), w.own.key_pem()).unwrap();
    fs::write(own_dir.path().join("svid_bundle.pem"), pem(&w.ca)).unwrap();
    fs::write(fed_dir.path().join("README"), "not a bundle").unwrap();
    let files = X509Files::spiffe_helper(own_dir.path())
        .federated_dir(DirSource::new(fed_dir.path()).pattern("*.pem"));
    let source = X509Source::watch(files.clone(), WatchOptions::default()).unwrap();
    let partner = w.partner.leaf("spiffe://partner.org/pay");
    assert_eq!(verify(&source, &partner), Err(Reason::UnknownTrustDomain));
    fs::write(fed_dir.path().join("partner.pem"), pem(&w.partner)).unwrap();
    until(
        &source,
        &partner,
        &w.own,
        Ok(()),
        "added to the federated dir",
    );
    fs::remove_file(fed_dir.path().join("partner.pem")).unwrap();
    until(
        &source,
        &partner,
        &w.own,
        Err(Reason::UnknownTrustDomain),
        "removed from the federated dir",
    );

    // A source that reads once lists the directory at every reload.
    let once = X509Source::from_files(files).unwrap();
    assert_eq!(verify(&once, &partner), Err(Reason::UnknownTrustDomain));
    fs::write(fed_dir.path().join("partner.pem"), pem(&w.partner)).unwrap();
    once.reload().unwrap();
    assert_eq!(verify(&once, &partner), Ok(()));
}

fn spire_layout(dir: &Path, w: &World) {
    fs::write(dir.join("svid.0.pem"), w.own.chain_pem()).unwrap();
    fs::write(dir.join("svid.0.key"), w.own.key_pem()).unwrap();
    fs::write(dir.join("bundle.0.pem"), pem(&w.ca)).unwrap();
}

fn federated_error(e: &Error) -> String {
    match e {
        Error::FederatedBundle { what, message } => format!("{what}: {message}"),
        Error::Watch(inner) => match &**inner {
            spiffile_watch::WatchError::Parse { source, .. } => federated_error(source),
            other => panic!("not a federated bundle error: {other}"),
        },
        other => panic!("not a federated bundle error: {other}"),
    }
}

#[test]
fn a_federated_bundle_may_not_hold_cas_for_our_own_trust_domain() {
    // partner.org's bundle, served to us by its bundle endpoint, carries a
    // CA that names example.org: it must not sign example.org identities.
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    spire_layout(dir.path(), &w);
    let impostor = Ca::root("example.org");
    let mut bundle = pem(&w.partner);
    bundle.extend(pem(&impostor));
    fs::write(dir.path().join("federated_bundle.0.0.pem"), &bundle).unwrap();
    for e in [
        X509Source::from_files(X509Files::spire_agent(dir.path())).unwrap_err(),
        X509Source::watch(X509Files::spire_agent(dir.path()), WatchOptions::default()).unwrap_err(),
    ] {
        let message = federated_error(&e);
        assert!(message.contains("federated_bundle.0.0.pem"), "{message}");
        assert!(message.contains("one trust domain"), "{message}");
    }
    // A file of example.org CAs alone is refused as our own trust domain.
    fs::write(dir.path().join("federated_bundle.0.0.pem"), pem(&impostor)).unwrap();
    let e = X509Source::from_files(X509Files::spire_agent(dir.path())).unwrap_err();
    assert!(federated_error(&e).contains("own trust domain"), "{e}");

    // Arriving later, it is not used: the impostor signs nothing of ours.
    fs::write(dir.path().join("federated_bundle.0.0.pem"), pem(&w.partner)).unwrap();
    let source =
        X509Source::watch(X509Files::spire_agent(dir.path()), WatchOptions::default()).unwrap();
    fs::write(dir.path().join("federated_bundle.0.1.pem"), pem(&impostor)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // The file is written in place (as spire-agent's `-write` does), so a
    // half-written moment may be reported first; wait for the verdict on
    // the whole file.
    let error = wait_for_bundle_error(&source, "own trust domain", deadline);
    assert!(error.contains("own trust domain"), "{error}");
    let forged = impostor.leaf("spiffe://example.org/billing");
    assert_eq!(verify(&source, &forged), Err(Reason::UntrustedChain));
    assert_eq!(verify(&source, &w.own), Ok(()));
}

#[test]
fn two_files_for_one_federated_trust_domain_are_refused() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    spire_layout(dir.path(), &w);
    fs::write(dir.path().join("federated_bundle.0.0.pem"), pem(&w.partner)).unwrap();
    let source =
        X509Source::watch(X509Files::spire_agent(dir.path()), WatchOptions::default()).unwrap();
    // A second partner.org bundle appears: which one is partner.org's?
    // Neither new one is trusted; the bundles before stay.
    fs::write(
        dir.path().join("federated_bundle.0.1.pem"),
        pem(&w.partner_next),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = wait_for_bundle_error(
        &source,
        "federated_bundle.0.0.pem already holds the CAs of partner.org",
        deadline,
    );
    assert!(
        error.contains("federated_bundle.0.0.pem already holds the CAs of partner.org"),
        "{error}"
    );
    let next = w.partner_next.leaf("spiffe://partner.org/pay");
    assert_eq!(verify(&source, &next), Err(Reason::UntrustedChain));
    assert_eq!(
        verify(&source, &w.partner.leaf("spiffe://partner.org/pay")),
        Ok(())
    );
    // Resolved (the stale file removed): served again, error gone.
    fs::remove_file(dir.path().join("federated_bundle.0.0.pem")).unwrap();
    until(&source, &next, &w.own, Ok(()), "the duplicate resolved");
    let deadline = Instant::now() + Duration::from_secs(5);
    while source.status().bundle_error.is_some() {
        assert!(Instant::now() < deadline, "{:?}", source.status());
        std::thread::sleep(Duration::from_millis(5));
    }
    // And for a source that reads once.
    fs::write(dir.path().join("federated_bundle.0.0.pem"), pem(&w.partner)).unwrap();
    let e = X509Source::from_files(X509Files::spire_agent(dir.path())).unwrap_err();
    assert!(federated_error(&e).contains("already holds"), "{e}");
}

#[test]
fn a_named_federated_file_takes_cas_without_a_san_and_refuses_other_domains() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    spire_layout(dir.path(), &w);
    // A partner CA without a SPIFFE URI SAN (not every CA has one).
    let bare = Ca::root_with("partner.org", |p| p.subject_alt_names.clear());
    let path = dir.path().join("partner.pem");
    fs::write(&path, pem(&bare)).unwrap();
    let td: spiffile_id::TrustDomain = "partner.org".parse().unwrap();
    let files = X509Files::new(
        dir.path().join("svid.0.pem"),
        dir.path().join("svid.0.key"),
        dir.path().join("bundle.0.pem"),
    );
    let source = X509Source::from_files(files.clone().federated(Some(td.clone()), &path)).unwrap();
    assert_eq!(
        verify(&source, &bare.leaf("spiffe://partner.org/pay")),
        Ok(())
    );
    // Unnamed, a CA without a SAN cannot be placed.
    assert!(X509Source::from_files(files.clone().federated(None, &path)).is_err());
    // Named partner.org, a CA that says third.org is refused.
    fs::write(&path, pem(&w.third)).unwrap();
    let e = X509Source::from_files(files.federated(Some(td), &path)).unwrap_err();
    assert!(federated_error(&e).contains("one trust domain"), "{e}");
}

/// The source's bundle error once it mentions `expected` (earlier errors,
/// such as a file caught half-written, are passed over); the last error
/// seen when the deadline passes.
fn wait_for_bundle_error(source: &X509Source, expected: &str, deadline: Instant) -> String {
    loop {
        let error = source.status().bundle_error;
        match error {
            Some(e) if e.contains(expected) => return e,
            other if Instant::now() >= deadline => {
                return other.unwrap_or_else(|| "no bundle error reported".to_owned());
            }
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}
