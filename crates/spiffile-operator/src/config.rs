//! The operator's configuration: flags, each with the environment variable
//! the upstream operator's manifests already set where there is one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

fn duration(s: &str) -> Result<Duration, String> {
    crate::duration::parse(s).map_err(|e| e.to_string())
}

/// `spiffile-operator run` (the default command).
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// The operator's namespace: where its Lease lives and the default shared-bundle namespace.
    #[arg(long, env = "POD_NAMESPACE", default_value = "spiffile-system")]
    pub namespace: String,
    /// The only namespace a claim's bundleFrom may name besides its own.
    #[arg(long, env = "SHARED_BUNDLE_NAMESPACE")]
    pub shared_bundle_namespace: Option<String>,
    /// Where /healthz, /readyz and /metrics are served.
    #[arg(long, env = "PROBE_ADDR", default_value = "0.0.0.0:8081")]
    pub probe_addr: SocketAddr,
    /// Serve the pod-injection webhook (upstream's WEBHOOK_ENABLED=true).
    #[arg(long, env = "WEBHOOK_ENABLED", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub webhook: bool,
    /// Where the webhook listens (TLS).
    #[arg(long, env = "WEBHOOK_ADDR", default_value = "0.0.0.0:9443")]
    pub webhook_addr: SocketAddr,
    /// Directory holding the webhook's tls.crt and tls.key (hot-reloaded; a cert-manager Secret mount).
    #[arg(
        long,
        env = "WEBHOOK_CERT_DIR",
        default_value = "/tmp/k8s-webhook-server/serving-certs"
    )]
    pub webhook_cert_dir: PathBuf,
    /// Take part in leader election (one active replica; the others wait).
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// How long a lease holds without renewal.
    #[arg(long, value_parser = duration, default_value = "15s")]
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up and exits.
    #[arg(long, value_parser = duration, default_value = "10s")]
    pub renew_deadline: Duration,
    /// How often candidates try to acquire, and the leader renews.
    #[arg(long, value_parser = duration, default_value = "2s")]
    pub retry_period: Duration,
    /// Quiet period before the bundle writer acts on a burst of changes.
    #[arg(long, value_parser = duration, default_value = "100ms")]
    pub bundle_debounce: Duration,
    /// Longest the bundle writer waits after the first change of a burst.
    #[arg(long, value_parser = duration, default_value = "1s")]
    pub bundle_max_delay: Duration,
    /// Reconciles run at once per kind.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
    /// This replica's name in the Lease (default: host name and a random suffix).
    #[arg(long, env = "POD_NAME", default_value_t = default_identity())]
    pub identity: String,
    /// Log format: json or text.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

impl Config {
    /// The shared-bundle namespace, defaulted to the operator's own.
    pub fn shared_namespace(&self) -> &str {
        self.shared_bundle_namespace
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.namespace)
    }
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "spiffile-operator".into());
    let mut buf = [0u8; 6];
    // A unique suffix, as client-go's leader election adds one.
    let suffix = match getrandom(&mut buf) {
        Ok(()) => buf.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        Err(_) => format!("{}", std::process::id()),
    };
    format!("{host}_{suffix}")
}

fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}
