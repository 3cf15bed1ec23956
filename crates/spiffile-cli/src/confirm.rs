//! `--dry-run` and `--yes` for the commands that revoke: what would change,
//! and a question on a terminal before changing it.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use crate::exit;
use crate::output::Failure;

/// The safety options of a command that revokes keys.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Safety {
    /// Show what would be changed and revoked, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (asked only when stdin is a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

impl Safety {
    /// Asks `question` when stdin and stderr are a terminal and `--yes` was
    /// not given; anything but `y`/`yes` aborts (exit 1, nothing changed).
    pub fn confirm(&self, question: &str) -> Result<(), Failure> {
        if self.yes || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            return Ok(());
        }
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "{question} [y/N] ");
        let _ = stderr.flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| Failure::failed(format!("cannot read the answer: {e}")))?;
        if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            Ok(())
        } else {
            Err(Failure {
                message: "aborted; nothing was changed (--yes skips the question)".into(),
                code: exit::FAILED,
            })
        }
    }
}
