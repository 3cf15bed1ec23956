//! Starting SPIRE: a spire-server (sqlite datastore, join-token node
//! attestation, trust domain [`TRUST_DOMAIN`], short TTLs) and a spire-agent
//! (unix workload attestor with `discover_workload_path`, so that two
//! workloads are told apart by the path of the binary they run). The
//! server's API and the agent's Workload API are unix sockets under the run
//! directory; the server's agent listener is on a dynamic 127.0.0.1 port.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::deploy::components::Component;
use crate::deploy::ports::free_ports;
use crate::deploy::state::{Owner, State};
use crate::deploy::{StartContext, WaitError, wait_ready, write_file};
use crate::error::{io, step};

/// The trust domain of the test deployment.
pub const TRUST_DOMAIN: &str = "spire.test";
/// The agent's SPIFFE ID (alias of its join-token ID): parent of every
/// workload entry.
pub const AGENT_ID: &str = "spiffe://spire.test/agent/local";
/// Default X.509-SVID lifetime.
pub const X509_SVID_TTL: &str = "2m";
/// Default JWT-SVID lifetime.
pub const JWT_SVID_TTL: &str = "2m";
/// CA and JWT signing key lifetime: SPIRE prepares the next authority at
/// half of it, so a run of tests longer than ~15 min sees a rotation.
pub const CA_TTL: &str = "30m";

/// Unix socket paths are limited to 108 bytes (`sun_path`).
const MAX_SOCKET_PATH: usize = 100;

pub(crate) fn start(ctx: &mut StartContext<'_>) -> std::result::Result<State, WaitError> {
    let run = ctx.run_dir.to_path_buf();
    let progress = ctx.progress.clone();
    let server_bin = Component::Spire.binary("spire-server")?;
    let agent_bin = Component::Spire.binary("spire-agent")?;
    let helper_bin = Component::SpiffeHelper.binary("spiffe-helper")?;

    let sockets = run.join("sockets");
    let server_socket = sockets.join("server.sock");
    let agent_socket = sockets.join("agent.sock");
    for s in [&server_socket, &agent_socket] {
        if s.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(step(
                "lay out the SPIRE run directory",
                format!(
                    "{} is longer than a unix socket path may be; set SPIFFILE_INFRA_DIR to a shorter directory",
                    s.display()
                ),
            )
            .into());
        }
    }
    for d in [
        &sockets,
        &run.join("server/data"),
        &run.join("server/keys"),
        &run.join("agent/data"),
        &run.join("workloads"),
    ] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    let [server_port] = <[u16; 1]>::try_from(free_ports(1)?)
        .map_err(|_| step("choose ports", "wrong number of ports"))?;

    let server_conf = run.join("server/server.conf");
    write_file(
        &server_conf,
        server_config(&run, &server_socket, server_port).as_bytes(),
        0o644,
    )?;
    let server = ctx.spawn(
        "spire-server",
        &server_bin,
        &[
            "run".into(),
            "-config".into(),
            server_conf.display().to_string(),
        ],
        &[],
    )?;
    wait_ready(
        "spire-server healthcheck",
        &server,
        ctx.timeout,
        &progress,
        || healthcheck(&server_bin, &server_socket),
    )?;

    // The agent trusts the server's CA from the start (no insecure bootstrap).
    let bundle = run.join("agent/bootstrap-bundle.pem");
    let pem = cli(
        &server_bin,
        &[
            "bundle",
            "show",
            "-socketPath",
            &server_socket.display().to_string(),
            "-format",
            "pem",
        ],
        Duration::from_secs(30),
    )
    .map_err(|e| step("spire-server bundle show", e))?;
    write_file(&bundle, pem.as_bytes(), 0o644)?;

    let token_out = cli(
        &server_bin,
        &[
            "token",
            "generate",
            "-socketPath",
            &server_socket.display().to_string(),
            "-spiffeID",
            AGENT_ID,
            "-ttl",
            "600",
            "-output",
            "json",
        ],
        Duration::from_secs(30),
    )
    .map_err(|e| step("spire-server token generate", e))?;
    let token = serde_json::from_str::<serde_json::Value>(&token_out)
        .ok()
        .and_then(|v| v.get("value").and_then(|t| t.as_str()).map(str::to_owned))
        .ok_or_else(|| {
            step(
                "spire-server token generate",
                format!("no token in {token_out}"),
            )
        })?;
    progress.step("generated a join token for the agent");

    let agent_conf = run.join("agent/agent.conf");
    write_file(
        &agent_conf,
        agent_config(&run, &agent_socket, server_port, &bundle).as_bytes(),
        0o644,
    )?;
    let agent = ctx.spawn(
        "spire-agent",
        &agent_bin,
        &[
            "run".into(),
            "-config".into(),
            agent_conf.display().to_string(),
            "-joinToken".into(),
            token,
        ],
        &[],
    )?;
    wait_ready(
        "spire-agent healthcheck",
        &agent,
        ctx.timeout,
        &progress,
        || healthcheck(&agent_bin, &agent_socket),
    )?;

    let versions = [Component::Spire, Component::SpiffeHelper]
        .iter()
        .map(|c| (c.name().to_owned(), c.version().to_owned()))
        .collect();
    let paths = BTreeMap::from([
        ("server-socket".to_owned(), server_socket),
        ("agent-socket".to_owned(), agent_socket),
        ("server-conf".to_owned(), server_conf),
        ("agent-conf".to_owned(), agent_conf),
        ("workloads".to_owned(), run.join("workloads")),
        ("spire-server".to_owned(), server_bin),
        ("spire-agent".to_owned(), agent_bin),
        ("spiffe-helper".to_owned(), helper_bin),
        ("logs".to_owned(), run.join("logs")),
    ]);
    let values = BTreeMap::from([
        ("trust-domain".to_owned(), TRUST_DOMAIN.to_owned()),
        ("agent-id".to_owned(), AGENT_ID.to_owned()),
        ("x509-svid-ttl".to_owned(), X509_SVID_TTL.to_owned()),
        ("jwt-svid-ttl".to_owned(), JWT_SVID_TTL.to_owned()),
        ("ca-ttl".to_owned(), CA_TTL.to_owned()),
    ]);
    Ok(State {
        deployment: "spire".into(),
        versions,
        owner: Owner::Persistent,
        ready_at_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        startup_seconds: 0.0,
        processes: ctx.started.clone(),
        ports: BTreeMap::from([("server".to_owned(), server_port)]),
        paths,
        values,
    })
}

fn server_config(run: &Path, socket: &Path, port: u16) -> String {
    let data = run.join("server/data");
    let keys = run.join("server/keys/keys.json");
    format!(
        r#"server {{
    bind_address = "127.0.0.1"
    bind_port = "{port}"
    socket_path = "{socket}"
    trust_domain = "{TRUST_DOMAIN}"
    data_dir = "{data}"
    log_level = "INFO"
    ca_key_type = "ec-p256"
    jwt_key_type = "ec-p256"
    ca_ttl = "{CA_TTL}"
    default_x509_svid_ttl = "{X509_SVID_TTL}"
    default_jwt_svid_ttl = "{JWT_SVID_TTL}"
}}

plugins {{
    DataStore "sql" {{
        plugin_data {{
            database_type = "sqlite3"
            connection_string = "{data}/datastore.sqlite3"
        }}
    }}
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
    KeyManager "disk" {{
        plugin_data {{
            keys_path = "{keys}"
        }}
    }}
}}
"#,
        socket = socket.display(),
        data = data.display(),
        keys = keys.display(),
    )
}

fn agent_config(run: &Path, socket: &Path, server_port: u16, bundle: &Path) -> String {
    let data = run.join("agent/data");
    format!(
        r#"agent {{
    data_dir = "{data}"
    log_level = "INFO"
    server_address = "127.0.0.1"
    server_port = "{server_port}"
    socket_path = "{socket}"
    trust_domain = "{TRUST_DOMAIN}"
    trust_bundle_path = "{bundle}"
    experimental {{
        # New entries reach the agent within a second instead of five.
        sync_interval = "1s"
    }}
}}

plugins {{
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
    KeyManager "memory" {{
        plugin_data {{}}
    }}
    WorkloadAttestor "unix" {{
        plugin_data {{
            discover_workload_path = true
        }}
    }}
}}
"#,
        data = data.display(),
        socket = socket.display(),
        bundle = bundle.display(),
    )
}

fn healthcheck(bin: &Path, socket: &Path) -> std::result::Result<(), String> {
    cli(
        bin,
        &["healthcheck", "-socketPath", &socket.display().to_string()],
        Duration::from_secs(10),
    )
    .map(|_| ())
}

/// The readiness check of a running SPIRE deployment: both healthchecks.
pub(crate) fn probe(state: &State) -> std::result::Result<(), String> {
    let get = |role: &str| {
        state
            .path(role)
            .map(Path::to_path_buf)
            .map_err(|e| e.to_string())
    };
    healthcheck(&get("spire-server")?, &get("server-socket")?)
        .map_err(|e| format!("spire-server healthcheck: {e}"))?;
    healthcheck(&get("spire-agent")?, &get("agent-socket")?)
        .map_err(|e| format!("spire-agent healthcheck: {e}"))
}

/// Runs a SPIRE CLI command with a timeout; stdout on success, else a
/// message with its exit status and output.
pub(crate) fn cli(
    bin: &Path,
    args: &[&str],
    timeout: Duration,
) -> std::result::Result<String, String> {
    run_with_timeout(Command::new(bin).args(args), timeout)
        .map_err(|e| format!("`{} {}`: {e}", display_name(bin), args.join(" ")))
}

fn display_name(bin: &Path) -> String {
    bin.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| bin.display().to_string())
}

/// Runs a command to completion (or kills it at the timeout); stdout on
/// success.
pub(crate) fn run_with_timeout(
    cmd: &mut Command,
    timeout: Duration,
) -> std::result::Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run: {e}"))?;
    // Drain both pipes on threads so a chatty child cannot block on a full
    // pipe while we wait.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = out.as_mut() {
            let _ = std::io::Read::read_to_string(o, &mut s);
        }
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = std::io::Read::read_to_string(e, &mut s);
        }
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting: {e}")),
        }
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(stdout),
        Some(s) => Err(format!(
            "exit {s}: {}{}",
            stderr.trim(),
            if stdout.trim().is_empty() {
                String::new()
            } else {
                format!(" (stdout: {})", stdout.trim())
            }
        )),
        None => Err(format!(
            "no answer within {}s: {}",
            timeout.as_secs(),
            stderr.trim()
        )),
    }
}
