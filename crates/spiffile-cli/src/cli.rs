//! The command line: the list of commands, and the dispatch to the module
//! of each (where its arguments are defined beside what it does).

use clap::{Parser, Subcommand};

use crate::output::Failure;
use crate::{
    add, bundle, completions, demo, env, exec, exit, init, inspect, list, man, remove, rotate,
    status, token, verify, x509,
};

const ABOUT: &str = "SPIFFE workload identities as plain files: provision a trust domain, mint and verify JWT-SVIDs";

const EXAMPLES: &str = "\
Examples:
  spiffile demo                                     see the whole story in a few seconds
  spiffile init ./idroot --trust-domain example.org
  spiffile add ./idroot orders billing
  spiffile exec ./idroot orders -- ./orders-server  run a program as orders (no eval)
  eval \"$(spiffile env ./idroot orders)\"            SPIFFILE_* for the orders service
  curl -H \"Authorization: Bearer $(spiffile token --audience spiffe://example.org/billing)\" …
  spiffile verify --dir ./idroot/services/billing < token.txt   (prints the caller's SPIFFE ID)
  spiffile rotate ./idroot orders                   new key first, old key kept
  spiffile revoke-old ./idroot orders               end the overlap: drop the old key
  spiffile status ./idroot                          health of every service (exit 1: a problem)
  spiffile x509 init ./idroot && spiffile x509 issue ./idroot orders   X.509-SVIDs for mTLS

SPIFFILE_ROOT=./idroot lets every ROOT argument be left out.";

/// The `spiffile` command.
#[derive(Debug, Parser)]
#[command(name = "spiffile", version, about = ABOUT, after_help = const_format_help())]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The commands, in the order `--help` lists them. Each one's description
/// and examples are on its arguments' type.
#[derive(Debug, Subcommand)]
enum Command {
    Init(init::InitArgs),
    Add(add::AddArgs),
    Rotate(rotate::RotateArgs),
    RevokeOld(rotate::RevokeOldArgs),
    Remove(remove::RemoveArgs),
    List(list::ListArgs),
    Env(env::EnvArgs),
    Token(token::TokenArgs),
    Verify(verify::VerifyArgs),
    Inspect(inspect::InspectArgs),
    Status(status::StatusArgs),
    Exec(exec::ExecArgs),
    /// Check or reformat a bundle file.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// X.509-SVIDs for mTLS from the root's own CA: init, issue, renew, rotate-ca.
    #[command(subcommand)]
    X509(x509::X509Command),
    /// Provision a throw-away trust domain and show minting, impersonation
    /// and audience refusals, rotation and revocation, checking each outcome.
    Demo,
    Completions(completions::CompletionsArgs),
    Man(man::ManArgs),
    /// Work with a Kubernetes cluster running spiffile-operator (also
    /// installable as the kubectl plugin `kubectl-spiffile`).
    #[cfg(feature = "k8s")]
    #[command(subcommand)]
    K8s(crate::k8s::K8sCommand),
}

/// Parses the command line; as `kubectl-spiffile` (the kubectl plugin), the
/// arguments are those of `spiffile k8s`.
pub fn parse() -> Result<Cli, clap::Error> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_stem().map(|s| s.to_owned()));
    if cfg!(feature = "k8s") && invoked_as.is_some_and(|n| n == "kubectl-spiffile") {
        args[0] = "spiffile".into();
        args.insert(1, "k8s".into());
    }
    Cli::try_parse_from(args)
}

/// The examples, then the exit-code table.
fn const_format_help() -> String {
    format!("{EXAMPLES}\n\n{}", exit::TABLE)
}

impl Cli {
    /// Whether the command prints JSON (so a failure is reported as JSON
    /// on stdout too).
    pub fn json(&self) -> bool {
        match &self.command {
            Command::Init(a) => a.json(),
            Command::Add(a) => a.json(),
            Command::Rotate(a) => a.json(),
            Command::RevokeOld(a) => a.json(),
            Command::Remove(a) => a.json(),
            Command::List(a) => a.json(),
            Command::Env(a) => a.json(),
            Command::Token(a) => a.json(),
            Command::Verify(a) => a.json(),
            Command::Inspect(a) => a.json(),
            Command::Status(a) => a.json(),
            Command::Bundle(c) => c.json(),
            Command::X509(c) => c.json(),
            Command::Demo | Command::Exec(_) | Command::Completions(_) | Command::Man(_) => false,
            #[cfg(feature = "k8s")]
            Command::K8s(_) => false,
        }
    }
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Init(args) => args.run(),
        Command::Add(args) => args.run(),
        Command::Rotate(args) => args.run(),
        Command::RevokeOld(args) => args.run(),
        Command::Remove(args) => args.run(),
        Command::List(args) => args.run(),
        Command::Env(args) => args.run(),
        Command::Token(args) => args.run(),
        Command::Verify(args) => args.run(),
        Command::Inspect(args) => args.run(),
        Command::Status(args) => args.run(),
        Command::Exec(args) => args.run(),
        Command::Bundle(command) => command.run(),
        Command::X509(command) => command.run(),
        Command::Demo => demo::run(),
        Command::Completions(args) => args.run(),
        Command::Man(args) => args.run(),
        #[cfg(feature = "k8s")]
        Command::K8s(command) => command.run(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[cfg(feature = "k8s")]
    #[test]
    fn k8s_extract_parses_with_kubectl_flags() {
        let cli = Cli::try_parse_from([
            "spiffile",
            "k8s",
            "extract",
            "example.org",
            "./out",
            "--context",
            "prod",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::K8s(_)));
    }
}
