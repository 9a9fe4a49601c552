//! `labpipe`: the command-line face of LabPipe, a thin layer over the library crates.
//!
//! Each subcommand parses its flags, calls one library entry point and renders the result for a
//! person (tables, colours, progress bars) or for a script (`--json`). No domain rule lives here.
//!
//! Exit codes (stable, documented in `--help`):
//! - 0: everything checked/done is fine;
//! - 1: at least one session failed or is not ready (`check`), or an operation failed;
//! - 2: usage error — bad flags, a path that does not exist, an invalid lab schema.

mod cli;
mod commands;
mod config;
mod render;
mod render_upload;

use clap::Parser;
use std::process::ExitCode;

/// An error the user caused and can fix: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match commands::run(args) {
        Ok(code) => code,
        Err(err) => {
            // A setting the user can give (the stack's names) is theirs to fix too.
            let usage = err.downcast_ref::<UsageError>().is_some()
                || err
                    .downcast_ref::<labpipe_lab::stack::StackError>()
                    .is_some();
            anstream::eprintln!("labpipe: error: {err:#}");
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}
