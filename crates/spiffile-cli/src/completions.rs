//! `spiffile completions`: a shell completion script.

use clap::CommandFactory as _;

use crate::cli::Cli;
use crate::output::{Failure, out};

/// Where each shell looks for completion scripts of the current user; the
/// README shows the same lines (a test checks).
pub const INSTALL: &str = "\
Install (for the current user):
  bash:  spiffile completions bash > ~/.local/share/bash-completion/completions/spiffile
  zsh:   spiffile completions zsh > ~/.zfunc/_spiffile   (with fpath+=~/.zfunc before compinit)
  fish:  spiffile completions fish > ~/.config/fish/completions/spiffile.fish";

/// Print a shell completion script.
#[derive(Debug, clap::Args)]
#[command(after_help = INSTALL)]
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
