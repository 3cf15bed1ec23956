//! `spiffile x509 init|issue|renew|rotate-ca`: a root's own X.509 CA and
//! its services' X.509-SVIDs, without SPIRE.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::json;
use spiffile::provision::{self, x509};

use crate::exit::provision_failure;
use crate::output::{Failure, out, out_json};
use crate::root_arg::{optional_root, root_and_names};

/// X.509-SVIDs for mTLS, issued by the root's own CA.
#[derive(Debug, clap::Subcommand)]
pub enum X509Command {
    Init(InitArgs),
    Issue(IssueArgs),
    Renew(RenewArgs),
    RotateCa(RotateCaArgs),
}

impl X509Command {
    /// Runs the subcommand.
    pub fn run(self) -> Result<(), Failure> {
        match self {
            X509Command::Init(a) => a.run(),
            X509Command::Issue(a) => a.run(),
            X509Command::Renew(a) => a.run(),
            X509Command::RotateCa(a) => a.run(),
        }
    }

    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        match self {
            X509Command::Init(a) => a.json,
            X509Command::Issue(a) => a.json,
            X509Command::Renew(a) => a.json,
            X509Command::RotateCa(a) => a.json,
        }
    }
}

/// The root of a command that takes only a root: the argument, else
/// `SPIFFILE_ROOT`.
fn root_of(command: &str, root: Option<PathBuf>) -> Result<PathBuf, Failure> {
    optional_root(root).ok_or_else(|| {
        Failure::usage(format!(
            "spiffile x509 {command} needs a root: `spiffile x509 {command} ROOT` (or set SPIFFILE_ROOT)"
        ))
    })
}

fn issued_json(issued: &x509::Issued) -> serde_json::Value {
    json!({
        "name": issued.name,
        "id": issued.id.as_str(),
        "svid_file": issued.svid_file.display().to_string(),
        "key_file": issued.key_file.display().to_string(),
        "bundle_file": issued.bundle_file.display().to_string(),
        "not_before": when(issued.not_before),
        "not_after": when(issued.not_after),
    })
}

fn ca_json(ca: &x509::CaInfo) -> serde_json::Value {
    json!({
        "trust_domain": ca.trust_domain.as_str(),
        "subject": ca.subject,
        "ca_file": ca.ca_file.display().to_string(),
        "bundle_file": ca.bundle_file.display().to_string(),
        "not_after": when(ca.not_after),
        "bundle_cas": ca.bundle_cas,
    })
}

/// A duration such as `90s`, `30m`, `1h`, `7d` (a bare number is seconds).
fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 90s, 30m, 1h, 7d"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit is s, m, h or d")),
    };
    let secs = n
        .checked_mul(unit)
        .filter(|&secs| secs > 0)
        .ok_or_else(|| format!("{s:?} is zero or too long"))?;
    Ok(Duration::from_secs(secs))
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!(
            "{s:?} is not a fraction from 0 to 1 (0.5: past half the lifetime)"
        )),
    }
}

fn when(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub(crate) fn timestamp(t: SystemTime) -> String {
    when(t)
}

/// Create the root's X.509 CA (x509/ca.pem, 0600) and its bundle (bundle.pem).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "ROOT defaults to $SPIFFILE_ROOT.\n\nExamples:\n  spiffile x509 init ./idroot\n  spiffile x509 init ./idroot --trust-domain example.org   (also creates the root)"
)]
pub struct InitArgs {
    /// The root (default: $SPIFFILE_ROOT).
    root: Option<PathBuf>,
    /// Create the root first for this trust domain, if it has no bundle.json.
    #[arg(long, value_name = "TD")]
    trust_domain: Option<String>,
    /// The CA's lifetime.
    #[arg(long, value_name = "DURATION", default_value = "365d", value_parser = duration)]
    ttl: Duration,
    /// Print the CA as JSON.
    #[arg(long)]
    json: bool,
}

impl InitArgs {
    fn run(self) -> Result<(), Failure> {
        let root = root_of("init", self.root)?;
        if let Some(td) = &self.trust_domain
            && !root.join(provision::BUNDLE_FILE).exists()
        {
            provision::init_root(&root, td).map_err(provision_failure)?;
        }
        let ca = x509::init_ca(&root, x509::CaOptions::ttl(self.ttl)).map_err(provision_failure)?;
        if self.json {
            out_json(&json!({"root": root.display().to_string(), "ca": ca_json(&ca)}));
            return Ok(());
        }
        out(&format!(
            "created the X.509 CA of {} ({}), valid until {}",
            ca.trust_domain,
            ca.subject,
            when(ca.not_after)
        ));
        out(&format!("bundle: {}", ca.bundle_file.display()));
        Ok(())
    }
}

/// Issue X.509-SVIDs: services/NAME/svid.pem and svid_key.pem (0600).
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "spiffile x509 issue [ROOT] <NAME>... [OPTIONS]",
    after_help = "ROOT defaults to $SPIFFILE_ROOT.\n\nExamples:\n  spiffile x509 issue ./idroot orders billing\n  spiffile x509 issue ./idroot billing --ttl 24h --dns billing.internal"
)]
pub struct IssueArgs {
    /// The root (omit it when SPIFFILE_ROOT is set), then the services
    /// (SPIFFE ID paths, or full SPIFFE IDs of the root's trust domain).
    #[arg(required = true, value_name = "ROOT|NAME")]
    args: Vec<String>,
    /// The SVIDs' lifetime.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = duration)]
    ttl: Duration,
    /// Add a DNS SAN (for peers that check a host name: curl, browsers).
    #[arg(long = "dns", value_name = "NAME")]
    dns_names: Vec<String>,
    /// Print the issued SVIDs as JSON.
    #[arg(long)]
    json: bool,
}

impl IssueArgs {
    fn run(self) -> Result<(), Failure> {
        let (root, names) = root_and_names("x509 issue", self.args, None)?;
        let mut options = x509::IssueOptions::ttl(self.ttl);
        for dns in &self.dns_names {
            options = options.dns_name(dns.clone());
        }
        let mut issued_all = Vec::new();
        for name in &names {
            let issued = match x509::issue_svid_with(&root, name, &options) {
                Ok(issued) => issued,
                Err(e) => {
                    if self.json && !issued_all.is_empty() {
                        // What was issued before the failure is on disk:
                        // say so, then fail.
                        out_json(
                            &json!({"root": root.display().to_string(), "issued": issued_all}),
                        );
                    }
                    return Err(provision_failure(e));
                }
            };
            if self.json {
                issued_all.push(issued_json(&issued));
                continue;
            }
            out(&format!(
                "issued {} until {}: {} {}",
                issued.id,
                when(issued.not_after),
                issued.svid_file.display(),
                issued.key_file.display()
            ));
        }
        if self.json {
            out_json(&json!({"root": root.display().to_string(), "issued": issued_all}));
        }
        Ok(())
    }
}

/// Renew every X.509-SVID past a fraction of its lifetime, or signed by an old CA.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "ROOT defaults to $SPIFFILE_ROOT.\n\nExamples:\n  spiffile x509 renew ./idroot                (past half their life)\n  spiffile x509 renew ./idroot --within 0     (all of them)\n  spiffile x509 renew ./idroot --json         (for a timer: what was renewed, what was kept)"
)]
pub struct RenewArgs {
    /// The root (default: $SPIFFILE_ROOT).
    root: Option<PathBuf>,
    /// Renew SVIDs that lived at least this fraction of their lifetime.
    #[arg(long, value_name = "FRACTION", default_value = "0.5", value_parser = fraction)]
    within: f64,
    /// The renewed SVIDs' lifetime.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = duration)]
    ttl: Duration,
    /// Print what was renewed and what was kept as JSON.
    #[arg(long)]
    json: bool,
}

impl RenewArgs {
    fn run(self) -> Result<(), Failure> {
        let root = root_of("renew", self.root)?;
        let r = x509::renew_svids(&root, self.within, self.ttl).map_err(provision_failure)?;
        if self.json {
            out_json(&json!({
                "root": root.display().to_string(),
                "renewed": r.renewed.iter().map(issued_json).collect::<Vec<_>>(),
                "kept": r.kept.iter().map(|(name, not_after)| json!({
                    "name": name, "not_after": when(*not_after),
                })).collect::<Vec<_>>(),
            }));
            return Ok(());
        }
        for issued in &r.renewed {
            out(&format!(
                "renewed {} until {}",
                issued.id,
                when(issued.not_after)
            ));
        }
        for (name, not_after) in &r.kept {
            out(&format!("kept {name} (valid until {})", when(*not_after)));
        }
        Ok(())
    }
}

/// Add a new CA beside the old one (bundle overlap); with --retire, end the overlap.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "ROOT defaults to $SPIFFILE_ROOT.\n\nA rotation in three steps:\n  spiffile x509 rotate-ca ./idroot            new CA in bundle.pem, signs from now on\n  spiffile x509 renew ./idroot                once the bundle reached every workload\n  spiffile x509 rotate-ca ./idroot --retire   old CA out of bundle.pem"
)]
pub struct RotateCaArgs {
    /// The root (default: $SPIFFILE_ROOT).
    root: Option<PathBuf>,
    /// Remove the old CAs from the bundle (refused while an SVID still chains to one).
    #[arg(long)]
    retire: bool,
    /// The new CA's lifetime.
    #[arg(long, value_name = "DURATION", default_value = "365d", value_parser = duration)]
    ttl: Duration,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl RotateCaArgs {
    fn run(self) -> Result<(), Failure> {
        let root = root_of("rotate-ca", self.root)?;
        if self.retire {
            let r = x509::retire_old_cas(&root).map_err(provision_failure)?;
            if self.json {
                out_json(&json!({
                    "root": root.display().to_string(),
                    "retired": r.removed,
                    "ca": ca_json(&r.ca),
                }));
                return Ok(());
            }
            out(&format!(
                "retired {} old CA certificate(s); bundle.pem holds {}",
                r.removed, r.ca.subject
            ));
            return Ok(());
        }
        let ca =
            x509::rotate_ca(&root, x509::CaOptions::ttl(self.ttl)).map_err(provision_failure)?;
        if self.json {
            out_json(&json!({"root": root.display().to_string(), "ca": ca_json(&ca)}));
            return Ok(());
        }
        out(&format!(
            "new CA {} valid until {}; bundle.pem now holds {} CA certificates",
            ca.subject,
            when(ca.not_after),
            ca.bundle_cas
        ));
        out(
            "next: let the bundle reach every workload, then `spiffile x509 renew ROOT`, then `spiffile x509 rotate-ca ROOT --retire`",
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_fractions() {
        assert_eq!(duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(duration("0s").is_err());
        assert!(duration("1w").is_err());
        assert!(duration("h").is_err());
        assert_eq!(fraction("0.5"), Ok(0.5));
        assert!(fraction("1.5").is_err());
        assert_eq!(
            when(SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_597_000)),
            "2025-12-01T13:50:00Z"
        );
    }
}
