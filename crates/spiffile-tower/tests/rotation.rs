//! Rotation under load: keep-alive connections and a stream of new
//! connections run while the SVIDs are renewed, the CA rotated, the SVIDs
//! renewed under the new CA and the old CA retired. Zero failed handshakes,
//! zero dropped connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use spiffile::SpiffeId;
use spiffile_provision::{self as provision, x509};
use spiffile_tls::{Allow, X509Files, X509Source};
use spiffile_tower::Caller;

const TD: &str = "example.org";
const HOUR: Duration = Duration::from_secs(3600);

fn id(name: &str) -> SpiffeId {
    format!("spiffe://{TD}/{name}").parse().unwrap()
}

#[derive(Default)]
struct Counts {
    handshakes: AtomicU64,
    failed_handshakes: AtomicU64,
    requests: AtomicU64,
    failed_requests: AtomicU64,
    dropped_connections: AtomicU64,
}

type Conn = hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>;

async fn connect(config: Arc<rustls::ClientConfig>, port: u16) -> Result<Conn, String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(send)
}

async fn request(send: &mut Conn) -> Result<String, String> {
    send.ready().await.map_err(|e| e.to_string())?;
    let req = http::Request::get("/whoami")
        .header("host", "billing")
        .body(Empty::new())
        .unwrap();
    let res = send.send_request(req).await.map_err(|e| e.to_string())?;
    if res.status() != 200 {
        return Err(format!("status {}", res.status()));
    }
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_under_load_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    provision::init_root(&root, TD).unwrap();
    x509::init_ca(&root, x509::CaOptions::default()).unwrap();
    x509::issue_svid(&root, "orders", HOUR).unwrap();
    x509::issue_svid(&root, "billing", HOUR).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    // Both ends follow their files with the file watcher (events, 1 s poll).
    let options = spiffile_watch::WatchOptions::default();
    let server_source =
        X509Source::watch(X509Files::root(&root, "billing"), options.clone()).unwrap();
    let client_source = X509Source::watch(X509Files::root(&root, "orders"), options).unwrap();

    let config = spiffile_tls::server_config(&server_source, Allow::ids([id("orders")])).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new().route(
        "/whoami",
        get(|c: Caller| async move { c.id().to_string() }),
    );
    tokio::spawn(spiffile_tower::serve_mtls(listener, config, app));
    let client = Arc::new(spiffile_tls::client_config(&client_source, id("billing")).unwrap());

    let counts = Arc::new(Counts::default());
    let mut tasks = Vec::new();
    // Four keep-alive connections, each opened once and used throughout.
    for _ in 0..4 {
        let (client, counts, stop) = (client.clone(), counts.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut send = connect(client, port).await.expect("keep-alive handshake");
            counts.handshakes.fetch_add(1, Ordering::Relaxed);
            while !stop.load(Ordering::Relaxed) {
                match request(&mut send).await {
                    Ok(body) => {
                        assert_eq!(body, "spiffe://example.org/orders");
                        counts.requests.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("keep-alive connection dropped: {e}");
                        counts.dropped_connections.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }));
    }
    // Two streams of new connections: a full handshake per request.
    for _ in 0..2 {
        let (client, counts, stop) = (client.clone(), counts.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match connect(client.clone(), port).await {
                    Ok(mut send) => {
                        counts.handshakes.fetch_add(1, Ordering::Relaxed);
                        match request(&mut send).await {
                            Ok(_) => counts.requests.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                eprintln!("request failed: {e}");
                                counts.failed_requests.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                    Err(e) => {
                        eprintln!("handshake failed: {e}");
                        counts.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    // The rotations, on a blocking thread (they fsync).
    let steps = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || {
            let settle = || std::thread::sleep(Duration::from_millis(300));
            let mut log = Vec::new();
            settle();
            for _ in 0..3 {
                let r = x509::renew_svids(&root, 0.0, HOUR).unwrap();
                log.push(format!("renewed {}", r.renewed.len()));
                settle();
            }
            x509::rotate_ca(&root, x509::CaOptions::default()).unwrap();
            log.push("rotated the CA".to_owned());
            settle(); // the new bundle reaches both ends
            let r = x509::renew_svids(&root, 1.0, HOUR).unwrap();
            log.push(format!("renewed {} under the new CA", r.renewed.len()));
            settle(); // the new SVIDs reach both ends
            x509::retire_old_cas(&root).unwrap();
            log.push("retired the old CA".to_owned());
            settle();
            x509::renew_svids(&root, 0.0, HOUR).unwrap();
            log.push("renewed again".to_owned());
            settle();
            log
        })
    };
    let log = steps.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let c = &*counts;
    let (handshakes, failed, requests, failed_requests, dropped) = (
        c.handshakes.load(Ordering::Relaxed),
        c.failed_handshakes.load(Ordering::Relaxed),
        c.requests.load(Ordering::Relaxed),
        c.failed_requests.load(Ordering::Relaxed),
        c.dropped_connections.load(Ordering::Relaxed),
    );
    println!(
        "rotation under load: {} | handshakes {handshakes}, failed handshakes {failed}, \
         requests {requests}, failed requests {failed_requests}, dropped keep-alive connections {dropped}",
        log.join(", ")
    );
    assert_eq!((failed, failed_requests, dropped), (0, 0, 0));
    assert!(handshakes > 20, "the load ran ({handshakes} handshakes)");
    // And both ends really moved to the new CA's SVIDs.
    let bundle_now = std::fs::read(root.join("bundle.pem")).unwrap();
    assert_eq!(
        bundle_now
            .windows(11)
            .filter(|w| w == b"-----BEGIN ")
            .count(),
        1
    );
    assert!(server_source.status().svid_error.is_none());
    let on_disk = std::fs::read(root.join("services/billing/svid.pem")).unwrap();
    let served = spiffile_tls::certificates_from_pem(&on_disk).unwrap();
    assert_eq!(
        server_source.svid().chain(),
        served.as_slice(),
        "the watcher followed the last renewal"
    );
}
