//! Full mutual-TLS handshakes through spiffile-tls's configurations against
//! the same rustls handshake with its stock `WebPkiClientVerifier` /
//! `WebPkiServerVerifier`, over the same certificates (X.509-SVIDs from a
//! spiffile root, with a DNS SAN so the stock verifier's name check
//! passes), in memory (no sockets), rustls' default protocol versions (TLS 1.3 is
//! negotiated), ring on both sides. Session resumption is off on both (ours
//! never resume; a resumed handshake skips the verifiers), and every
//! handshake is checked to be a full one.
//!
//! Also the per-handshake parts spiffile adds: the snapshot loads of the
//! certificate resolver and the verifier, and reading the SPIFFE ID.
//!
//! With `SPIFFILE_PAIRED=<rounds>`: interleaved rounds, each a block of
//! stock handshakes and a block of ours back to back (alternating order);
//! prints `paired mtls/handshake_spiffile <median> <p25> <p75>` (ratio to
//! stock within each round), which `cargo xtask bench` puts in its table.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use spiffile_provision::{self as provision, x509};
use spiffile_tls::{Allow, X509Files, X509Source};

struct Fixture {
    _dir: tempfile::TempDir,
    stock: (Arc<ServerConfig>, Arc<ClientConfig>),
    ours: (Arc<ServerConfig>, Arc<ClientConfig>),
    server_source: X509Source,
    leaf: Vec<u8>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    provision::init_root(root, "example.org").expect("root");
    x509::init_ca(root, x509::CaOptions::default()).expect("ca");
    let hour = Duration::from_secs(3600);
    x509::issue_svid_with(
        root,
        "billing",
        &x509::IssueOptions::ttl(hour).dns_name("billing.test"),
    )
    .expect("billing");
    x509::issue_svid_with(
        root,
        "orders",
        &x509::IssueOptions::ttl(hour).dns_name("orders.test"),
    )
    .expect("orders");
    let server_source = X509Source::from_files(X509Files::root(root, "billing")).expect("billing");
    let client_source = X509Source::from_files(X509Files::root(root, "orders")).expect("orders");
    let orders: spiffile_id::SpiffeId = "spiffe://example.org/orders".parse().expect("id");
    let billing: spiffile_id::SpiffeId = "spiffe://example.org/billing".parse().expect("id");

    let provider = spiffile_tls::provider().clone();
    let mut roots = RootCertStore::empty();
    for cert in server_source
        .bundles()
        .iter()
        .flat_map(|b| b.roots().to_vec())
    {
        roots.add(cert).expect("root");
    }
    let roots = Arc::new(roots);
    let key = |svid: &spiffile_tls::X509Svid| svid.certified_key().clone();
    let stock_server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.clone(),
                provider.clone(),
            )
            .build()
            .expect("verifier"),
        )
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key(
            &server_source.svid(),
        ))));
    let stock_client = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_webpki_verifier(
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .expect("verifier"),
        )
        .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key(
            &client_source.svid(),
        ))));
    // Like ours: no resumption, so both sides measure full handshakes.
    let mut stock_server = stock_server;
    stock_server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    stock_server.send_tls13_tickets = 0;
    let mut stock_client = stock_client;
    stock_client.resumption = rustls::client::Resumption::disabled();
    let our_server =
        spiffile_tls::server_config(&server_source, Allow::ids([orders])).expect("server");
    let our_client = spiffile_tls::client_config(&client_source, billing).expect("client");
    let leaf = server_source.svid().chain()[0].to_vec();
    Fixture {
        _dir: dir,
        stock: (Arc::new(stock_server), Arc::new(stock_client)),
        ours: (Arc::new(our_server), Arc::new(our_client)),
        server_source,
        leaf,
    }
}

/// One full handshake in memory, then one application byte each way.
fn handshake(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) {
    let name = ServerName::try_from("billing.test").expect("name");
    let mut c = ClientConnection::new(client.clone(), name).expect("client");
    let mut s = ServerConnection::new(server.clone()).expect("server");
    let mut buf = Vec::with_capacity(8192);
    while c.is_handshaking() || s.is_handshaking() {
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).expect("write");
        }
        if !buf.is_empty() {
            s.read_tls(&mut buf.as_slice()).expect("read");
            s.process_new_packets().expect("server handshake");
        }
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).expect("write");
        }
        if !buf.is_empty() {
            c.read_tls(&mut buf.as_slice()).expect("read");
            c.process_new_packets().expect("client handshake");
        }
    }
    assert!(s.peer_certificates().is_some());
    assert_eq!(s.handshake_kind(), Some(rustls::HandshakeKind::Full));
    black_box((c, s));
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("mtls");
    g.sample_size(30).measurement_time(Duration::from_secs(4));
    g.bench_function("handshake_stock_webpki", |b| {
        b.iter(|| handshake(&f.stock.0, &f.stock.1))
    });
    g.bench_function("handshake_spiffile", |b| {
        b.iter(|| handshake(&f.ours.0, &f.ours.1))
    });
    g.finish();
    let mut g = c.benchmark_group("mtls_parts");
    g.bench_function("snapshot_loads", |b| {
        b.iter(|| {
            // What a handshake loads: the certificate (resolver) and the bundles (verifier).
            let key = f.server_source.svid().certified_key().clone();
            let bundles = f.server_source.bundles();
            black_box((key, bundles.len()))
        })
    });
    g.bench_function("spiffe_id_extraction", |b| {
        b.iter(|| spiffile_tls::spiffe_id_of(black_box(&f.leaf)).expect("id"))
    });
    g.finish();
}

fn paired_run(rounds: usize) {
    let f = fixture();
    const BLOCK: usize = 8;
    let time = |cfg: &(Arc<ServerConfig>, Arc<ClientConfig>)| {
        let start = Instant::now();
        for _ in 0..BLOCK {
            handshake(&cfg.0, &cfg.1);
        }
        start.elapsed().as_secs_f64()
    };
    for _ in 0..4 {
        time(&f.stock);
        time(&f.ours);
    }
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (stock, ours) = if round % 2 == 0 {
            let s = time(&f.stock);
            (s, time(&f.ours))
        } else {
            let o = time(&f.ours);
            (time(&f.stock), o)
        };
        ratios.push(ours / stock);
    }
    ratios.sort_by(f64::total_cmp);
    let q = |p: f64| ratios[((ratios.len() - 1) as f64 * p).round() as usize];
    println!(
        "paired mtls/handshake_spiffile {:.4} {:.4} {:.4}",
        q(0.5),
        q(0.25),
        q(0.75)
    );
}

criterion_group!(mtls, benches);

fn main() {
    if let Ok(rounds) = std::env::var("SPIFFILE_PAIRED") {
        // The JWT benchmark's rounds are cheap; a handshake block is ~100× dearer.
        let rounds: usize = rounds.parse().expect("SPIFFILE_PAIRED=<rounds>");
        paired_run((rounds / 10).max(50));
        return;
    }
    mtls();
    Criterion::default().configure_from_args().final_summary();
}
