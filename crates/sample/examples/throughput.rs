//! Measures how fast one session is generated, so changes to the sample synthesis can be
//! checked against the goal of writing at disk speed (well over 300 MB/s).
//!
//! `cargo run --release -p labpipe-sample --example throughput -- [SIZE_MB] [SEED] [OUT]`
//!
//! Without OUT the session goes to a temporary folder that is removed afterwards.

use std::error::Error;
use std::time::Instant;

use labpipe_sample::{generate, GenerateOptions, METADATA_FILE};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let size_mb: u64 = args.next().map_or(Ok(600), |a| a.parse())?;
    let seed: u64 = args.next().map_or(Ok(0), |a| a.parse())?;
    let temp = tempfile::tempdir()?;
    let out = args
        .next()
        .map_or_else(|| temp.path().to_path_buf(), Into::into);

    let opts = GenerateOptions {
        count: 1,
        size_bytes: size_mb * 1_000_000,
        seed,
        ..GenerateOptions::new(out)
    };
    let started = Instant::now();
    let sessions = generate(&opts, |_, _| {})?;
    let seconds = started.elapsed().as_secs_f64();
    let bytes: u64 = sessions.iter().map(|s| s.bytes).sum();
    for session in &sessions {
        let metadata = std::fs::read_to_string(session.path.join(METADATA_FILE))?;
        let format = metadata
            .lines()
            .filter(|l| l.starts_with("sample_format:") || l.starts_with("channels:"))
            .collect::<Vec<_>>()
            .join(", ");
        println!("{} ({format})", session.path.display());
    }
    println!(
        "{bytes} bytes in {seconds:.2} s: {:.0} MB/s",
        bytes as f64 / 1e6 / seconds
    );
    Ok(())
}
