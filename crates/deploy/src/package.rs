//! The Lambda zips: `ingest.zip` and `preprocess.zip`, each holding a `bootstrap` executable at
//! its root, as the `provided.al2023` runtime starts it.
//!
//! They are built by cargo-lambda, run by `scripts/package-lambdas.sh` (which [`build_package`]
//! calls), which names its output `<lambda-dir>/<bin>/bootstrap.zip`; a package folder holds
//! them under the function's name so the two cannot be swapped.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{DeployError, Result};

/// Instruction set of the bootstrap binaries (the template's `LambdaArchitecture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "x86_64" | "x86-64" => Ok(Arch::X86_64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            _ => Err(DeployError::Invalid {
                what: "lambda architecture".into(),
                reason: format!("'{s}' is not x86_64 or arm64"),
            }),
        }
    }

    pub fn template_value(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// ELF `e_machine` of a binary for this architecture.
    fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => 62,
            Arch::Arm64 => 183,
        }
    }
}

/// The two zips of one build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaPackage {
    pub ingest: PathBuf,
    pub preprocess: PathBuf,
}

impl LambdaPackage {
    /// `dir/ingest.zip` and `dir/preprocess.zip` (as `scripts/package-lambdas.sh` writes them).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let package = LambdaPackage {
            ingest: dir.join("ingest.zip"),
            preprocess: dir.join("preprocess.zip"),
        };
        package.validate()?;
        Ok(package)
    }

    /// Each zip exists, opens as a zip archive, and holds an executable file named `bootstrap`
    /// at its root (what the `provided.al2023` runtime starts).
    pub fn validate(&self) -> Result<()> {
        for path in [&self.ingest, &self.preprocess] {
            let file = std::fs::File::open(path).map_err(|e| DeployError::Package {
                path: path.clone(),
                reason: format!("cannot read it ({e}); build it with scripts/package-lambdas.sh or pass --build"),
            })?;
            let mut archive = zip::ZipArchive::new(file).map_err(|e| DeployError::Package {
                path: path.clone(),
                reason: format!("is not a zip file ({e}); build it with scripts/package-lambdas.sh or pass --build"),
            })?;
            let entry = archive.by_name("bootstrap").map_err(|_| DeployError::Package {
                path: path.clone(),
                reason: "holds no `bootstrap` executable at its root (the provided.al2023 runtime starts ./bootstrap)".into(),
            })?;
            if !entry.is_file() {
                return Err(DeployError::Package {
                    path: path.clone(),
                    reason: "its `bootstrap` entry is not a file".into(),
                });
            }
            // A zip made on Unix records the mode; Lambda runs ./bootstrap, so it must be executable.
            if entry.unix_mode().is_some_and(|mode| mode & 0o111 == 0) {
                return Err(DeployError::Package {
                    path: path.clone(),
                    reason: "its `bootstrap` is not executable (chmod +x before zipping, or rebuild with scripts/package-lambdas.sh)".into(),
                });
            }
        }
        Ok(())
    }
}

/// How to build the zips with cargo-lambda.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The LabPipe source tree (holds `scripts/package-lambdas.sh` and `backend/`).
    pub repo: PathBuf,
    pub release: bool,
    pub arch: Arch,
    /// Where `ingest.zip` and `preprocess.zip` go.
    pub out_dir: PathBuf,
}

/// Builds both functions into `out_dir` with the source tree's `scripts/package-lambdas.sh`,
/// the one place that runs cargo-lambda: it knows its flags (x86_64 natively with cargo, arm64
/// cross-compiled with zig) and refuses a `bootstrap` that needs a newer glibc than the runtime
/// has. Its output goes to stderr, so a `--json` caller's stdout stays JSON.
pub fn build_package(opts: &BuildOptions) -> Result<LambdaPackage> {
    let script = opts.repo.join("scripts/package-lambdas.sh");
    if !script.is_file() {
        return Err(DeployError::Build(format!(
            "{} is not the LabPipe source tree (no scripts/package-lambdas.sh); run from the repository or pass --package DIR",
            opts.repo.display()
        )));
    }
    let mut cmd = Command::new("bash");
    cmd.current_dir(&opts.repo)
        .arg(&script)
        .arg("--out")
        .arg(&opts.out_dir)
        .stdout(std::io::stderr());
    if opts.release {
        cmd.arg("--release");
    }
    if opts.arch == Arch::Arm64 {
        cmd.arg("--arm64");
    }
    let status = cmd.status().map_err(|e| {
        DeployError::Build(format!("cannot run {} with bash ({e})", script.display()))
    })?;
    if !status.success() {
        return Err(DeployError::Build(format!(
            "{} failed ({status}); see its output above",
            script.display()
        )));
    }
    LambdaPackage::from_dir(&opts.out_dir)
}

/// The architecture of an ELF executable's bytes, if it is one we know.
pub fn elf_arch(bytes: &[u8]) -> Option<Arch> {
    if bytes.len() < 20 || !bytes.starts_with(b"\x7fELF") {
        return None;
    }
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    [Arch::X86_64, Arch::Arm64]
        .into_iter()
        .find(|a| a.elf_machine() == machine)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zip of `(name, unix mode, bytes)` entries, stored uncompressed.
    fn zip_of(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
        use std::io::Write;
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, mode, bytes) in entries {
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .unix_permissions(*mode);
            writer.start_file(*name, options).unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn a_package_needs_two_zips_with_an_executable_bootstrap() {
        let dir = tempfile::tempdir().unwrap();
        let ingest = dir.path().join("ingest.zip");
        let preprocess = dir.path().join("preprocess.zip");
        let refused = |why: &str| {
            let err = LambdaPackage::from_dir(dir.path()).unwrap_err().to_string();
            assert!(err.contains(why), "expected {why:?} in: {err}");
            err
        };
        let err = refused("ingest.zip");
        assert!(err.contains("package-lambdas.sh"), "{err}");

        std::fs::write(&ingest, zip_of(&[("bootstrap", 0o755, b"\x7fELF")])).unwrap();
        // Bytes that merely begin like a zip and mention bootstrap are not a package.
        std::fs::write(&preprocess, b"PK\x03\x04....bootstrap....").unwrap();
        let err = refused("not a zip");
        assert!(err.contains("preprocess.zip"), "{err}");

        // The name inside a file's contents or a folder is not an entry named bootstrap.
        std::fs::write(
            &preprocess,
            zip_of(&[
                ("main", 0o755, b"exec ./bootstrap"),
                ("bin/bootstrap", 0o755, b"x"),
            ]),
        )
        .unwrap();
        refused("no `bootstrap`");

        std::fs::write(&preprocess, zip_of(&[("bootstrap", 0o644, b"\x7fELF")])).unwrap();
        refused("not executable");

        std::fs::write(&preprocess, zip_of(&[("bootstrap", 0o755, b"\x7fELF")])).unwrap();
        LambdaPackage::from_dir(dir.path()).unwrap();
    }

    /// `build_package` runs the source tree's `scripts/package-lambdas.sh` with the profile and
    /// the architecture asked for, and takes the zips it leaves in the folder it names.
    #[test]
    fn the_build_runs_the_packaging_script_of_the_source_tree() {
        let repo = tempfile::tempdir().unwrap();
        let zip = repo.path().join("bootstrap.zip");
        std::fs::write(&zip, zip_of(&[("bootstrap", 0o755, b"\x7fELF")])).unwrap();
        std::fs::create_dir_all(repo.path().join("scripts")).unwrap();
        std::fs::write(
            repo.path().join("scripts/package-lambdas.sh"),
            r#"printf '%s\n' "$@" > args
while [ $# -gt 0 ]; do [ "$1" = --out ] && out="$2"; shift; done
mkdir -p "$out" && cp bootstrap.zip "$out/ingest.zip" && cp bootstrap.zip "$out/preprocess.zip"
"#,
        )
        .unwrap();
        let out_dir = repo.path().join("out");
        let package = build_package(&BuildOptions {
            repo: repo.path().to_path_buf(),
            release: true,
            arch: Arch::Arm64,
            out_dir: out_dir.clone(),
        })
        .unwrap();
        assert_eq!(package.ingest, out_dir.join("ingest.zip"));
        let args = std::fs::read_to_string(repo.path().join("args")).unwrap();
        let args: Vec<&str> = args.lines().collect();
        assert_eq!(
            args,
            ["--out", out_dir.to_str().unwrap(), "--release", "--arm64"]
        );

        let elsewhere = tempfile::tempdir().unwrap();
        let err = build_package(&BuildOptions {
            repo: elsewhere.path().to_path_buf(),
            release: false,
            arch: Arch::X86_64,
            out_dir,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("not the LabPipe source tree"), "{err}");
    }

    #[test]
    fn architectures_parse_and_read_from_elf() {
        assert_eq!(Arch::parse("x86_64").unwrap(), Arch::X86_64);
        assert_eq!(Arch::parse("arm64").unwrap().template_value(), "arm64");
        assert!(Arch::parse("mips").is_err());
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let expected = if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Arm64)
        } else {
            None
        };
        assert_eq!(elf_arch(&me), expected);
        assert_eq!(elf_arch(b"PK\x03\x04"), None);
    }
}
