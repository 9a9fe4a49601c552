//! `labpipe completions` and `labpipe man`: generated from the clap definitions in `cli.rs`, so
//! the shell completions and the man pages can never disagree with `--help`.

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use anyhow::{Context, Result};
use clap::CommandFactory;
use std::process::ExitCode;

pub fn completions(args: CompletionsArgs) -> Result<ExitCode> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "labpipe", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Writes `labpipe.1` and `labpipe-<sub>.1` (and `labpipe-dev-generate.1`, …) for every
/// subcommand, so `man labpipe-sync` works like `man git-commit`.
pub fn man_pages(args: ManArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.out).with_context(|| {
        format!(
            "cannot create {}; choose a folder you can write to",
            args.out.display()
        )
    })?;
    let mut cmd = Cli::command();
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, &args.out, &mut written)?;
    for page in &written {
        println!("{}", page.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn write_pages(
    cmd: &clap::Command,
    out: &std::path::Path,
    written: &mut Vec<std::path::PathBuf>,
) -> Result<()> {
    let name = cmd.get_name().to_string();
    let path = out.join(format!("{name}.1"));
    let mut bytes = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut bytes)
        .with_context(|| format!("cannot render the man page of {name}"))?;
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        // `labpipe dev generate` → labpipe-dev-generate.1, the way git names its pages.
        let full = sub.clone().name(format!("{name}-{}", sub.get_name()));
        write_pages(&full, out, written)?;
    }
    Ok(())
}
