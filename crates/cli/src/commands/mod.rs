//! One module per subcommand; each returns the process exit code.

pub mod admin;
mod check;
mod clean;
mod client_log;
mod dev;
mod doctor;
mod manual;
mod query;
mod redrive;
mod reprocess;
mod status;
mod sync;
mod upload;

use crate::cli::{Cli, Command, DevCommand, SchemaArg};
use crate::UsageError;
use anyhow::Result;
use labpipe_core::LabSchema;
use std::path::Path;
use std::process::ExitCode;

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Dev(DevCommand::Generate(args)) => dev::generate(args),
        Command::Upload(args) => upload::run(args),
        Command::Status(args) => status::run(args),
        Command::Query(args) => query::run(args),
        Command::Sync(args) => sync::run(args),
        Command::Clean(args) => clean::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Reprocess(args) => reprocess::run(args),
        Command::Redrive(args) => redrive::run(args),
        Command::Completions(args) => manual::completions(args),
        Command::Man(args) => manual::man_pages(args),
        Command::Admin(cmd) => admin::run(cmd),
    }
}

/// The schema for the sessions at `path`: `--schema FILE` / `$LABPIPE_SCHEMA` when given, else
/// the lab's `labpipe.toml` found by [`LabSchema::discover`], else the built-in default.
pub fn load_schema(arg: &SchemaArg, path: &Path) -> Result<LabSchema> {
    labpipe_lab::stack::lab_schema(arg.schema.as_deref(), path)
        .map_err(|e| UsageError(e.to_string()).into())
}
