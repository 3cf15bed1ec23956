//! The command line: arguments and the commands that are not big enough for
//! a module of their own.

use std::ffi::OsString;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};
use spiffile::bundle::{Bundle, MAX_BUNDLE_BYTES, WarningKind};
use spiffile::provision;
use spiffile::{Identity, SpiffeId};

use crate::output::{Failure, err, out, warn};

const ABOUT: &str = "SPIFFE workload identities as plain files: provision a trust domain, mint and verify JWT-SVIDs";

const EXAMPLES: &str = "\
Examples:
  spiffile demo                                     see the whole story in a few seconds
  spiffile init ./idroot --trust-domain example.org
  spiffile add ./idroot orders billing
  eval \"$(spiffile env ./idroot orders)\"            SPIFFILE_* for the orders service
  curl -H \"Authorization: Bearer $(spiffile token --audience spiffe://example.org/billing)\" …
  spiffile verify --dir ./billing-files < token.txt   (prints the caller's SPIFFE ID)
  spiffile rotate ./idroot orders                   new key first, old key kept
  spiffile revoke-old ./idroot orders               end the overlap: drop the old key

Exit codes: 0 success, 1 the operation failed (token rejected, bundle problems),
2 usage or configuration error.";

/// The `spiffile` command.
#[derive(Debug, Parser)]
#[command(name = "spiffile", version, about = ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a root for a trust domain: ROOT/bundle.json and ROOT/services/.
    #[command(after_help = "Example:\n  spiffile init ./idroot --trust-domain example.org")]
    Init {
        /// The directory to initialize (created if needed).
        root: PathBuf,
        /// The trust domain, such as example.org.
        #[arg(long, value_name = "TD")]
        trust_domain: String,
    },
    /// Provision services: a key (ROOT/services/NAME/key.pem, mode 0600), an
    /// id file, and a bundle entry. Re-adding keeps the existing key.
    #[command(
        after_help = "Examples:\n  spiffile add ./idroot orders billing\n  spiffile add ./idroot team/orders"
    )]
    Add {
        /// The root.
        root: PathBuf,
        /// Service names (SPIFFE ID paths such as `orders` or `team/orders`).
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Give a service a new key, first in its bundle entry. The old keys stay
    /// bound until `revoke-old` (or use --revoke-old to drop them now).
    #[command(
        after_help = "Examples:\n  spiffile rotate ./idroot orders\n  spiffile rotate ./idroot orders --revoke-old"
    )]
    Rotate {
        /// The root.
        root: PathBuf,
        /// The service.
        name: String,
        /// Drop the old keys from the bundle right away: tokens signed with
        /// them are refused as soon as peers read the new bundle.
        #[arg(long)]
        revoke_old: bool,
    },
    /// Drop every key of a service except its current one (the end of a
    /// rotation overlap).
    #[command(after_help = "Example:\n  spiffile revoke-old ./idroot orders")]
    RevokeOld {
        /// The root.
        root: PathBuf,
        /// The service.
        name: String,
    },
    /// Remove a service: its key, its bundle entry (revocation), its files.
    #[command(after_help = "Example:\n  spiffile remove ./idroot orders")]
    Remove {
        /// The root.
        root: PathBuf,
        /// The service.
        name: String,
    },
    /// List the services of a root and whether key and bundle agree.
    #[command(after_help = "Example:\n  spiffile list ./idroot")]
    List {
        /// The root.
        root: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the SPIFFILE_* variables of a service.
    #[command(
        after_help = "Examples:\n  eval \"$(spiffile env ./idroot orders)\"\n  spiffile env ./idroot orders --format dotenv > orders.env"
    )]
    Env {
        /// The root.
        root: PathBuf,
        /// The service.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = EnvFormat::Shell)]
        format: EnvFormat,
    },
    /// Mint a token for AUDIENCE with the identity of the SPIFFILE_*
    /// environment (or --dir, or --root with --service) and print it.
    #[command(
        after_help = "Example:\n  curl -H \"Authorization: Bearer $(spiffile token --audience spiffe://example.org/billing)\" https://billing/"
    )]
    Token {
        /// The SPIFFE ID of the service the token is for.
        #[arg(long, value_name = "SPIFFE_ID")]
        audience: String,
        /// Lifetime in seconds (1 to 86400; more than 300 is discouraged).
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        ttl: u64,
        #[command(flatten)]
        source: IdentitySource,
    },
    /// Verify a token as the identity of the SPIFFILE_* environment (or
    /// --dir, or --root with --service). Prints the caller's SPIFFE ID; exit 1 when rejected.
    #[command(
        after_help = "The token is read from standard input when TOKEN is `-` or absent.\n\nExit codes: 0 accepted (caller on the first line of stdout), 1 rejected (reason on\nstderr), 2 usage or configuration error.\n\nExamples:\n  spiffile verify \"$TOKEN\"\n  spiffile verify --json < token.txt"
    )]
    Verify {
        /// The token, or `-` for standard input (the default).
        token: Option<OsString>,
        /// The audience to expect, instead of this identity's own SPIFFE ID.
        #[arg(long, value_name = "SPIFFE_ID")]
        audience: Option<String>,
        /// Print the caller and the claims as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        source: IdentitySource,
    },
    /// Decode a token WITHOUT verifying it: header, claims, dates, remaining
    /// lifetime.
    #[command(
        after_help = "The output is labelled UNVERIFIED: anyone can write these values.\n\nExample:\n  spiffile inspect \"$TOKEN\""
    )]
    Inspect {
        /// The token, or `-` for standard input (the default).
        token: Option<OsString>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check or reformat a bundle file.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Provision a throw-away trust domain and show minting, impersonation
    /// and audience refusals, rotation and revocation, checking each outcome.
    Demo,
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  spiffile completions bash > ~/.local/share/bash-completion/completions/spiffile"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum BundleCommand {
    /// Validate a bundle and summarize it (identities, keys, kids, warnings);
    /// exit 1 on problems.
    #[command(after_help = "Example:\n  spiffile bundle check ./idroot/bundle.json")]
    Check {
        /// The bundle file.
        file: PathBuf,
    },
    /// Rewrite a bundle in the canonical form (sorted, 2-space indent),
    /// atomically.
    #[command(after_help = "Example:\n  spiffile bundle fmt ./idroot/bundle.json")]
    Fmt {
        /// The bundle file.
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EnvFormat {
    /// `export NAME='value'` lines, for `eval`.
    Shell,
    /// `NAME=value` lines, for .env files and systemd EnvironmentFile.
    Dotenv,
    /// A JSON object.
    Json,
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Init { root, trust_domain } => {
            let td = provision::init_root(&root, &trust_domain).map_err(provision_failure)?;
            out(&format!(
                "initialized {} for the trust domain {td}",
                root.display()
            ));
            Ok(())
        }
        Command::Add { root, names } => add(&root, &names),
        Command::Rotate {
            root,
            name,
            revoke_old,
        } => {
            let r =
                provision::rotate_service(&root, &name, !revoke_old).map_err(provision_failure)?;
            print_notices(&r.notices);
            out(&format!("rotated {}: new kid {}", r.id, r.kid));
            out(&format!(
                "bound keys (current first): {}",
                r.kids.join(", ")
            ));
            if !r.revoked.is_empty() {
                out(&format!("revoked: {}", r.revoked.join(", ")));
            }
            Ok(())
        }
        Command::RevokeOld { root, name } => {
            let r = provision::revoke_old_keys(&root, &name).map_err(provision_failure)?;
            print_notices(&r.notices);
            if r.revoked.is_empty() {
                out(&format!(
                    "{}: only the current key {} is bound",
                    r.id, r.kid
                ));
            } else {
                out(&format!(
                    "{}: kept {}, revoked {}",
                    r.id,
                    r.kid,
                    r.revoked.join(", ")
                ));
            }
            Ok(())
        }
        Command::Remove { root, name } => {
            let r = provision::remove_service(&root, &name).map_err(provision_failure)?;
            print_notices(&r.notices);
            if r.revoked.is_empty() {
                out(&format!("removed {} (it had no bundle entry)", r.id));
            } else {
                out(&format!(
                    "removed {}; revoked {}",
                    r.id,
                    r.revoked.join(", ")
                ));
            }
            Ok(())
        }
        Command::List { root, json } => list(&root, json),
        Command::Env { root, name, format } => env(&root, &name, format),
        Command::Token {
            audience,
            ttl,
            source,
        } => token(&audience, ttl, &source),
        Command::Verify {
            token,
            audience,
            json,
            source,
        } => verify(token, audience.as_deref(), json, &source),
        Command::Inspect { token, json } => {
            let token = read_token(token)?;
            crate::inspect::inspect(&token, json)
        }
        Command::Bundle(BundleCommand::Check { file }) => bundle_check(&file),
        Command::Bundle(BundleCommand::Fmt { file }) => bundle_fmt(&file),
        Command::Demo => crate::demo::run(),
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "spiffile", &mut buf);
            out(String::from_utf8_lossy(&buf).trim_end());
            Ok(())
        }
    }
}

fn provision_failure(e: provision::Error) -> Failure {
    Failure::failed(e)
}

fn print_notices(notices: &[provision::Notice]) {
    for n in notices {
        warn(n);
    }
}

fn add(root: &Path, names: &[String]) -> Result<(), Failure> {
    let mut failed = 0;
    let mut last_notices = Vec::new();
    for name in names {
        match provision::add_service(root, name) {
            Ok(a) => {
                let what = match a.action {
                    provision::AddAction::Created => "added",
                    provision::AddAction::Unchanged => "unchanged",
                    provision::AddAction::Repaired => {
                        "repaired (bound its existing key to the bundle)"
                    }
                    _ => "done",
                };
                out(&format!("{} {what}, kid {}", a.id, a.kid));
                // Report what the last operation saw, once.
                last_notices = a.notices;
            }
            Err(e) => {
                failed += 1;
                err(&format!("spiffile: {name}: {e}"));
            }
        }
    }
    print_notices(&last_notices);
    if failed > 0 {
        return Err(Failure {
            message: String::new(),
            code: 1,
        });
    }
    Ok(())
}

fn list(root: &Path, json: bool) -> Result<(), Failure> {
    let services = provision::list_services(root).map_err(provision_failure)?;
    if json {
        let items: Vec<serde_json::Value> = services
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "id": s.id.as_str(),
                    "status": s.status.to_string(),
                    "kids": s.kids,
                    "key_kid": s.key_kid,
                })
            })
            .collect();
        out(&serde_json::Value::Array(items).to_string());
        return Ok(());
    }
    if services.is_empty() {
        out("no services (add one with `spiffile add ROOT NAME`)");
        return Ok(());
    }
    let width = services
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    out(&format!(
        "{:width$}  {:<16}  {:>4}  CURRENT KID",
        "NAME", "STATUS", "KEYS"
    ));
    for s in &services {
        let status = s.status.to_string();
        let status: String = status.chars().take(60).collect();
        out(&format!(
            "{:width$}  {:<16}  {:>4}  {}",
            s.name,
            status,
            s.kids.len(),
            s.key_kid.as_deref().unwrap_or("-")
        ));
    }
    let problems = services
        .iter()
        .filter(|s| s.status != provision::ServiceStatus::Ok)
        .count();
    if problems > 0 {
        warn(format!(
            "{problems} service(s) need attention: `key missing` means the bundle binds keys nobody here holds (remove the service, or rotate it with --revoke-old); `not in bundle`/`key not bound` are fixed by `spiffile add ROOT NAME`; a pending rotation is finished by the next provisioning command"
        ));
    }
    Ok(())
}

/// Quotes a value for POSIX shells: single quotes, with `'` written `'\''`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn env(root: &Path, name: &str, format: EnvFormat) -> Result<(), Failure> {
    let env = provision::service_env(root, name).map_err(provision_failure)?;
    let mut vars = Vec::new();
    for (k, v) in env.vars() {
        let v = v.to_str().ok_or_else(|| {
            Failure::failed(format!("{} is not valid UTF-8; move the root", v.display()))
        })?;
        vars.push((k, v.to_owned()));
    }
    match format {
        EnvFormat::Shell => {
            for (k, v) in vars {
                out(&format!("export {k}={}", shell_quote(&v)));
            }
        }
        EnvFormat::Dotenv => {
            for (k, v) in vars {
                if v.chars()
                    .any(|c| c.is_whitespace() || "\"'#$\\`".contains(c))
                {
                    out(&format!("{k}={}", serde_json::Value::from(v)));
                } else {
                    out(&format!("{k}={v}"));
                }
            }
        }
        EnvFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> = vars
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.into()))
                .collect();
            out(&serde_json::Value::Object(map).to_string());
        }
    }
    Ok(())
}

/// Where `token` and `verify` find the identity: the SPIFFILE_* environment
/// by default.
#[derive(Debug, clap::Args)]
struct IdentitySource {
    /// A directory holding id, key.pem and bundle.json, instead of the
    /// SPIFFILE_* environment.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["root", "service"])]
    dir: Option<PathBuf>,
    /// A provisioned root (with --service): use that service's identity.
    #[arg(long, value_name = "ROOT", requires = "service")]
    root: Option<PathBuf>,
    /// The service of --root whose identity to use.
    #[arg(long, value_name = "NAME", requires = "root")]
    service: Option<String>,
}

/// Loads the identity for a one-shot command: read once, no file watcher.
fn load_identity(source: &IdentitySource) -> Result<Identity, Failure> {
    let builder = Identity::builder().hot_reload(false);
    let loaded = match (&source.dir, &source.root, &source.service) {
        (Some(d), _, _) => builder.from_dir(d),
        (None, Some(root), Some(name)) => provision::load_identity_with(root, name, builder),
        _ => builder.from_env(),
    };
    loaded.map_err(Failure::usage)
}

fn parse_id(value: &str, what: &str) -> Result<SpiffeId, Failure> {
    SpiffeId::new(value).map_err(|e| {
        let shown: String = value.chars().take(100).collect();
        Failure::usage(format!("{what} {shown:?} is not a SPIFFE ID: it {e}"))
    })
}

fn token(audience: &str, ttl: u64, source: &IdentitySource) -> Result<(), Failure> {
    let audience = parse_id(audience, "--audience")?;
    let identity = load_identity(source)?;
    let token = identity
        .token_with_ttl(&audience, Duration::from_secs(ttl))
        .map_err(Failure::usage)?;
    out(&token);
    Ok(())
}

/// The largest token read from standard input. Verification refuses far
/// smaller tokens; this only bounds what is read.
const MAX_STDIN_TOKEN: u64 = 1024 * 1024;

/// A token as given: from the argument, or from stdin for `-` or none.
pub enum TokenInput {
    /// Valid UTF-8, surrounding whitespace removed.
    Text(String),
    /// Not something that can be a token (with why).
    Unusable(String),
}

fn read_token(arg: Option<OsString>) -> Result<TokenInput, Failure> {
    let bytes: Vec<u8> = match arg {
        Some(a) if a != "-" => a.into_encoded_bytes(),
        _ => {
            let mut buf = Vec::new();
            std::io::stdin()
                .lock()
                .take(MAX_STDIN_TOKEN + 1)
                .read_to_end(&mut buf)
                .map_err(|e| Failure::usage(format!("cannot read the token from stdin: {e}")))?;
            if buf.len() as u64 > MAX_STDIN_TOKEN {
                return Ok(TokenInput::Unusable(format!(
                    "token on stdin is larger than {MAX_STDIN_TOKEN} bytes"
                )));
            }
            buf
        }
    };
    match String::from_utf8(bytes) {
        Ok(s) => {
            let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
            if t.is_empty() {
                Ok(TokenInput::Unusable("the token is empty".into()))
            } else {
                Ok(TokenInput::Text(t.to_owned()))
            }
        }
        Err(_) => Ok(TokenInput::Unusable(
            "the token is not UTF-8 text (a JWT is ASCII)".into(),
        )),
    }
}

fn verify(
    token: Option<OsString>,
    audience: Option<&str>,
    json: bool,
    source: &IdentitySource,
) -> Result<(), Failure> {
    let audience = audience.map(|a| parse_id(a, "--audience")).transpose()?;
    let identity = load_identity(source)?;
    let token = match read_token(token)? {
        TokenInput::Text(t) => t,
        TokenInput::Unusable(why) => {
            return Err(Failure::failed(format!("rejected (malformed): {why}")));
        }
    };
    let result = match &audience {
        Some(a) => identity.verify_for(&token, a),
        None => identity.verify(&token),
    };
    match result {
        Ok(caller) => {
            if json {
                let doc = serde_json::json!({
                    "caller": caller.id().as_str(),
                    "claims": caller.claims().to_json(),
                });
                out(&doc.to_string());
            } else {
                out(caller.id().as_str());
            }
            Ok(())
        }
        Err(e) if e.is_unauthenticated() => {
            let reason = e.reason().map(|r| r.as_str()).unwrap_or("unknown_identity");
            Err(Failure::failed(format!("rejected ({reason}): {e}")))
        }
        Err(e) => Err(Failure::usage(e)),
    }
}

fn read_bundle_file(file: &Path) -> Result<Vec<u8>, Failure> {
    let meta = std::fs::metadata(file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    if !meta.is_file() {
        return Err(Failure::usage(format!(
            "{} is not a regular file",
            file.display()
        )));
    }
    let f = std::fs::File::open(file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    let mut buf = Vec::new();
    f.take(MAX_BUNDLE_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    Ok(buf)
}

fn bundle_check(file: &Path) -> Result<(), Failure> {
    let bytes = read_bundle_file(file)?;
    let bundle = Bundle::from_json_quiet(&bytes)
        .map_err(|e| Failure::failed(format!("{}: {e}", file.display())))?;
    let keys: usize = bundle.identities().map(|(_, k)| k.len()).sum();
    out(&format!(
        "{}: trust domain {}, {} identit{}, {keys} key{}",
        file.display(),
        bundle.trust_domain(),
        bundle.len(),
        if bundle.len() == 1 { "y" } else { "ies" },
        if keys == 1 { "" } else { "s" },
    ));
    for (id, keys) in bundle.identities() {
        out(&format!("  {id}"));
        for k in keys {
            out(&format!("    kid {}", k.kid()));
        }
    }
    let mut problems = 0;
    for w in bundle.warnings().iter().chain(&bundle.lint()) {
        let serious = w.kind != WarningKind::Advice;
        problems += usize::from(serious);
        out(&format!(
            "  {}: {w}",
            if serious { "problem" } else { "advice" }
        ));
    }
    if bundle.to_json().as_bytes() != bytes.as_slice() && problems == 0 {
        out(&format!(
            "  note: not in the canonical form (`spiffile bundle fmt {}` rewrites it)",
            file.display()
        ));
    }
    if problems > 0 {
        return Err(Failure::failed(format!(
            "{}: {problems} entr{} skipped; verifiers will refuse tokens of the identities concerned",
            file.display(),
            if problems == 1 { "y" } else { "ies" }
        )));
    }
    Ok(())
}

fn bundle_fmt(file: &Path) -> Result<(), Failure> {
    let bytes = read_bundle_file(file)?;
    let bundle = Bundle::from_json_quiet(&bytes)
        .map_err(|e| Failure::failed(format!("{}: {e}", file.display())))?;
    let skipped: Vec<String> = bundle
        .warnings()
        .iter()
        .filter(|w| w.kind != WarningKind::Advice)
        .map(|w| w.to_string())
        .collect();
    if !skipped.is_empty() {
        return Err(Failure::failed(format!(
            "{}: not rewritten: these entries cannot be read and would be lost:\n  {}",
            file.display(),
            skipped.join("\n  ")
        )));
    }
    let json = bundle.to_json();
    if json.as_bytes() == bytes.as_slice() {
        out(&format!("{}: already canonical", file.display()));
        return Ok(());
    }
    provision::replace_file_atomically(file, json.as_bytes())
        .map_err(|e| Failure::failed(format!("{}: {e}", file.display())))?;
    out(&format!(
        "{}: rewritten in the canonical form",
        file.display()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
