//! `spiffile completions`: a shell completion script.

use clap::CommandFactory as _;

use crate::cli::Cli;
use crate::output::{Failure, out};

/// Print a shell completion script.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  spiffile completions bash > ~/.local/share/bash-completion/completions/spiffile"
)]
pub struct CompletionsArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

impl CompletionsArgs {
    /// Runs `spiffile completions`.
    pub fn run(self) -> Result<(), Failure> {
        let mut buf = Vec::new();
        clap_complete::generate(self.shell, &mut Cli::command(), "spiffile", &mut buf);
        out(String::from_utf8_lossy(&buf).trim_end());
        Ok(())
    }
}
