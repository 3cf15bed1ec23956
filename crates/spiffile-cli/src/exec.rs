//! `spiffile exec`: run a program as a service, with its `SPIFFILE_*`
//! variables set, instead of `eval "$(spiffile env …)"`.

use std::ffi::OsString;
use std::process::Command;

use spiffile::{Identity, provision};

use crate::exit::{identity_failure, provision_failure};
use crate::output::Failure;
use crate::root_arg::{env_root, root_and_names};

/// Run a program with a service's SPIFFILE_* variables set (no eval). The
/// program replaces spiffile: signals reach it directly and its exit code
/// is the command's.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "spiffile exec [ROOT] NAME -- PROGRAM [ARGS]...\n       spiffile exec -- PROGRAM [ARGS]...   (the SPIFFILE_* environment as it is)",
    after_help = "ROOT defaults to $SPIFFILE_ROOT. Without NAME, the identity already configured in the\nenvironment is checked and the program started with it. The identity is loaded once\nfirst, so a broken one fails here (exit 3) rather than in the program.\n\nExit code: the program's own; 126 when it cannot be run, 127 when it is not found.\n\nExample:\n  spiffile exec ./idroot orders -- ./orders-server --port 8080"
)]
pub struct ExecArgs {
    /// The root (omit it when SPIFFILE_ROOT is set), then the service.
    #[arg(num_args = 0..=2, value_name = "ROOT|NAME")]
    target: Vec<String>,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    program: Vec<OsString>,
}

impl ExecArgs {
    /// Runs `spiffile exec`.
    pub fn run(self) -> Result<(), Failure> {
        let ExecArgs { target, program } = self;
        let mut command = match program.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args);
                c
            }
            None => return Err(Failure::usage("spiffile exec needs a program after `--`")),
        };
        if target.is_empty() && env_root().is_none() {
            Identity::builder()
                .hot_reload(false)
                .from_env()
                .map_err(identity_failure)?;
        } else {
            if target.is_empty() {
                return Err(Failure::usage(
                    "spiffile exec needs the service to run as: `spiffile exec [ROOT] NAME -- PROGRAM`",
                ));
            }
            let (root, names) = root_and_names("exec", target, Some(1))?;
            let env = provision::service_env(&root, &names[0]).map_err(provision_failure)?;
            provision::load_identity_with(&root, &names[0], Identity::builder().hot_reload(false))
                .map_err(identity_failure)?;
            // The explicit file variables, and no directory form that could
            // point elsewhere.
            command.env_remove(spiffile::ENV_DIR);
            for (k, v) in env.vars() {
                command.env(k, v);
            }
        }
        let shown = program
            .first()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        run(command, &shown)
    }
}

/// Replaces this process with the program (Unix): signals and the exit
/// status are the program's own, with nothing in between.
#[cfg(unix)]
fn run(mut command: Command, shown: &str) -> Result<(), Failure> {
    use std::os::unix::process::CommandExt as _;
    let e = command.exec();
    Err(start_failure(&e, shown))
}

/// Runs the program and passes its exit code on (no `exec` here).
#[cfg(not(unix))]
fn run(mut command: Command, shown: &str) -> Result<(), Failure> {
    let status = command.status().map_err(|e| start_failure(&e, shown))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(Failure::reported(u8::try_from(code).unwrap_or(1))),
        None => Err(Failure::reported(crate::exit::FAILED)),
    }
}

fn start_failure(e: &std::io::Error, shown: &str) -> Failure {
    let code = match e.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    };
    Failure {
        message: format!("cannot run {shown:?}: {e}"),
        code,
    }
}
