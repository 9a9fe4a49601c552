//! Stamps the build's commit into `labpipe --version` (`0.1.0 (1b10e73599a3)`; `unknown` outside a git checkout, e.g. a source archive). `LABPIPE_BUILD_COMMIT`
//! set in the environment wins, for packagers building from an archive.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=LABPIPE_BUILD_COMMIT");
    let commit = std::env::var("LABPIPE_BUILD_COMMIT")
        .ok()
        .unwrap_or_else(|| {
            // Rebuild when HEAD moves (a commit, a checkout); the paths work in worktrees too.
            for path in [
                git(&["rev-parse", "--git-path", "HEAD"]),
                git(&["rev-parse", "--symbolic-full-name", "HEAD"])
                    .and_then(|r| git(&["rev-parse", "--git-path", &r])),
            ]
            .into_iter()
            .flatten()
            {
                println!("cargo:rerun-if-changed={path}");
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
        });
    println!("cargo:rustc-env=LABPIPE_BUILD_COMMIT={commit}");
}
