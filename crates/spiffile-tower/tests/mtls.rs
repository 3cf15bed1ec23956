//! mTLS with X.509-SVIDs from `spiffile x509 issue`: our axum server and our
//! client against each other and against real peers, OpenSSL's `s_client`
//! and `s_server` and curl. Refusals are either a handshake alert (the
//! server's `Allow`, or a certificate that is no valid X.509-SVID) or a
//! `403` (a route's `AuthorizeLayer`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use spiffile::SpiffeId;
use spiffile_provision::{self as provision, x509};
use spiffile_tls::{Allow, Reason, X509Bundle, X509BundleSet, X509Source, X509Svid};
use spiffile_tower::{AuthorizeLayer, Caller};

const TD: &str = "example.org";

fn id(name: &str) -> SpiffeId {
    format!("spiffe://{TD}/{name}").parse().unwrap()
}

/// A root with a CA and SVIDs for orders, billing (DNS name billing.test,
/// for curl) and mallory.
fn root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    provision::init_root(dir.path(), TD).unwrap();
    x509::init_ca(dir.path(), x509::CaOptions::default()).unwrap();
    x509::issue_svid(dir.path(), "orders", Duration::from_secs(3600)).unwrap();
    x509::issue_svid(dir.path(), "mallory", Duration::from_secs(3600)).unwrap();
    let billing = x509::IssueOptions::ttl(Duration::from_secs(3600)).dns_name("billing.test");
    x509::issue_svid_with(dir.path(), "billing", &billing).unwrap();
    dir
}

fn files(root: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = root.join("services").join(name);
    (
        dir.join("svid.pem"),
        dir.join("svid_key.pem"),
        root.join("bundle.pem"),
    )
}

fn source(root: &Path, name: &str) -> X509Source {
    let (cert, key, bundle) = files(root, name);
    let svid =
        X509Svid::from_pem(&std::fs::read(cert).unwrap(), &std::fs::read(key).unwrap()).unwrap();
    let bundle =
        X509Bundle::from_pem(TD.parse().unwrap(), &std::fs::read(bundle).unwrap()).unwrap();
    X509Source::new(svid, X509BundleSet::new().with(bundle))
}

fn app() -> Router {
    async fn whoami(caller: Caller) -> String {
        format!(
            "{} via {}",
            caller.id(),
            if caller.x509().is_some() {
                "x509"
            } else {
                "jwt"
            }
        )
    }
    Router::new().route("/whoami", get(whoami)).route(
        "/charge",
        get(whoami).route_layer(AuthorizeLayer::ids([id("orders")])),
    )
}

/// billing's server on a free loopback port; the handshake admits `allow`.
async fn serve(root: &Path, allow: Allow) -> SocketAddr {
    let config = spiffile_tls::server_config(&source(root, "billing"), allow).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(spiffile_tower::serve_mtls(listener, config, app()));
    addr
}

async fn get_as(
    root: &Path,
    name: &str,
    expect: impl Into<spiffile_tls::ServerIds>,
    url: &str,
) -> Result<(u16, String), spiffile_tower::BoxError> {
    let config = spiffile_tls::client_config(&source(root, name), expect).unwrap();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let client = Client::builder(TokioExecutor::new()).build::<_, Empty<bytes::Bytes>>(https);
    let response = client.get(url.parse()?).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn our_client_and_server_authorize_on_the_spiffe_id() {
    let dir = root();
    let addr = serve(dir.path(), Allow::trust_domain(TD.parse().unwrap())).await;
    let url = |path: &str| format!("https://127.0.0.1:{}{path}", addr.port());

    let (status, body) = get_as(dir.path(), "orders", id("billing"), &url("/whoami"))
        .await
        .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "spiffe://example.org/orders via x509")
    );
    let (status, _) = get_as(dir.path(), "orders", id("billing"), &url("/charge"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    // mallory is in the trust domain: the handshake passes, the route says 403.
    let (status, body) = get_as(dir.path(), "mallory", id("billing"), &url("/charge"))
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (403, r#"{"error":"forbidden"}"#));
    // A client expecting another server refuses billing in the handshake.
    let error = get_as(dir.path(), "orders", id("ledger"), &url("/whoami"))
        .await
        .unwrap_err();
    assert_eq!(Reason::of(&*error), Some(Reason::NotAllowed), "{error:?}");

    // With the rule in the handshake, mallory does not even get a connection.
    let addr = serve(dir.path(), Allow::ids([id("orders")])).await;
    let url = format!("https://127.0.0.1:{}/whoami", addr.port());
    let error = get_as(dir.path(), "mallory", id("billing"), &url)
        .await
        .unwrap_err();
    assert!(format!("{error:?}").contains("AccessDenied"), "{error:?}");
    let (status, _) = get_as(dir.path(), "orders", id("billing"), &url)
        .await
        .unwrap();
    assert_eq!(status, 200);
}

// ---------------------------------------------------------------------------
// Real peers

fn tool(name: &str) -> Command {
    let probe = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if name == "openssl" {
        let probe = Command::new(name).arg("version").output();
        assert!(
            probe.is_ok_and(|o| o.status.success()),
            "`openssl` is needed by this test (apt-get install openssl)"
        );
    } else {
        assert!(
            probe.is_ok_and(|s| s.success()),
            "`{name}` is needed by this test (apt-get install {name})"
        );
    }
    Command::new(name)
}

/// curl as `name` against billing's server; returns (exit code, stdout, stderr).
fn curl(root: &Path, name: &str, port: u16, path: &str) -> (i32, String, String) {
    curl_with(root, name, port, path, &[])
}

fn curl_with(
    root: &Path,
    name: &str,
    port: u16,
    path: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let (cert, key, bundle) = files(root, name);
    let out = tool("curl")
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "10",
            "--write-out",
            " %{http_code}",
        ])
        .args(extra)
        .arg("--resolve")
        .arg(format!("billing.test:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(&bundle)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .arg(format!("https://billing.test:{port}{path}"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_against_our_server() {
    let dir = root();
    let root = dir.path().to_owned();
    let addr = serve(&root, Allow::trust_domain(TD.parse().unwrap())).await;
    let port = addr.port();
    let r = tokio::task::spawn_blocking({
        let root = root.clone();
        move || {
            (
                curl(&root, "orders", port, "/charge"),
                curl(&root, "mallory", port, "/charge"),
            )
        }
    })
    .await
    .unwrap();
    let ((code, out, err), (mcode, mout, merr)) = r;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "spiffe://example.org/orders via x509 200");
    // Refused by the route: HTTP 403 (the handshake was fine).
    assert_eq!(mcode, 0, "{merr}");
    assert_eq!(mout, r#"{"error":"forbidden"} 403"#);

    // Refused by the handshake: no HTTP at all. In TLS 1.2 curl sees the
    // `access_denied` alert during the handshake; in TLS 1.3 the client
    // finishes first and the refusal arrives as the connection closing.
    let addr = serve(&root, Allow::ids([id("orders")])).await;
    let port = addr.port();
    let (tls13, tls12) = tokio::task::spawn_blocking(move || {
        (
            curl(&root, "mallory", port, "/whoami"),
            curl_with(
                &root,
                "mallory",
                port,
                "/whoami",
                &["--tlsv1.2", "--tls-max", "1.2"],
            ),
        )
    })
    .await
    .unwrap();
    assert_ne!(tls13.0, 0, "{tls13:?}");
    assert!(!tls13.1.contains("spiffe://"), "{tls13:?}");
    assert_ne!(tls12.0, 0, "{tls12:?}");
    assert!(tls12.2.contains("alert access denied"), "{tls12:?}");
}

fn s_client(root: &Path, name: Option<&str>, port: u16) -> (bool, String) {
    let (cert, key, bundle) = files(root, name.unwrap_or("orders"));
    let mut cmd = tool("openssl");
    cmd.args(["s_client", "-quiet", "-verify_return_error", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-CAfile")
        .arg(&bundle);
    if name.is_some() {
        cmd.arg("-cert").arg(&cert).arg("-key").arg(&key);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /whoami HTTP/1.1\r\nHost: billing\r\nConnection: close\r\n\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (text.contains("HTTP/1.1 200"), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_against_our_server() {
    let dir = root();
    let root = dir.path().to_owned();
    let addr = serve(&root, Allow::ids([id("orders")])).await;
    let port = addr.port();
    let (ok, out, mallory, anonymous) = tokio::task::spawn_blocking(move || {
        let (ok, out) = s_client(&root, Some("orders"), port);
        let (mallory, _) = s_client(&root, Some("mallory"), port);
        let (anonymous, anon_out) = s_client(&root, None, port);
        (ok, out, mallory, (anonymous, anon_out))
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("spiffe://example.org/orders via x509"),
        "{out}"
    );
    assert!(!mallory, "mallory is refused in the handshake");
    assert!(
        !anonymous.0,
        "no client certificate, no connection: {}",
        anonymous.1
    );
}

/// `openssl s_server` presenting `name`'s SVID and requiring a client
/// certificate from the bundle; returns it and its port once it listens.
fn s_server(root: &Path, name: &str) -> (Kill, u16) {
    let (cert, key, bundle) = files(root, name);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tool("openssl")
        .args([
            "s_server",
            "-www",
            "-Verify",
            "2",
            "-verify_return_error",
            "-accept",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .arg("-CAfile")
        .arg(&bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Kill(child);
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (child, port);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.0.kill();
    panic!("openssl s_server did not start");
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn our_client_against_openssl_s_server() {
    let dir = root();
    let (_server, port) = s_server(dir.path(), "billing");
    let url = format!("https://127.0.0.1:{port}/");
    // s_server -www answers 200 with a status page once it verified us.
    let (status, body) = get_as(dir.path(), "orders", id("billing"), &url)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    // Expecting ledger, our client refuses billing inside the handshake.
    let error = get_as(dir.path(), "orders", id("ledger"), &url)
        .await
        .unwrap_err();
    assert_eq!(Reason::of(&*error), Some(Reason::NotAllowed), "{error:?}");
    // A server whose CA we do not trust.
    let other = root();
    let source_dir = other.path();
    let (_other_server, port) = s_server(source_dir, "billing");
    let url = format!("https://127.0.0.1:{port}/");
    let error = get_as(dir.path(), "orders", id("billing"), &url)
        .await
        .unwrap_err();
    assert_eq!(
        Reason::of(&*error),
        Some(Reason::UntrustedChain),
        "{error:?}"
    );
}
