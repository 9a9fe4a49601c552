//! `local-runner`: runs the backend against the local stack (or any account) by polling its
//! queues, since the emulator cannot invoke Lambdas. Ctrl-C finishes the current batch and
//! exits; a second Ctrl-C exits at once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use labpipe_backend::runner::{Runner, RunnerOptions};
use labpipe_backend::{logging, BackendConfig, Clients};

#[derive(Debug, Parser)]
#[command(
    name = "local-runner",
    about = "Feed the ingest and preprocess handlers from the stack's SQS queues (the emulator cannot run Lambdas).",
    after_help = "Settings come from LABPIPE_TABLE, LABPIPE_RAW_BUCKET, LABPIPE_PROCESSED_BUCKET, LABPIPE_INGEST_QUEUE_URL,\n\
LABPIPE_PREPROCESS_QUEUE_URL and LABPIPE_PIPELINE_VERSION, else from the stack outputs file.\n\
The endpoint and credentials come from the usual AWS variables (eval \"$(scripts/stack.sh env)\").\n\n\
Example:\n  scripts/deploy-local.sh && local-runner --until-idle"
)]
struct Args {
    /// Stack outputs written by scripts/deploy-local.sh
    #[arg(
        long,
        value_name = "FILE",
        default_value = ".labpipe/stack/outputs.json"
    )]
    outputs: PathBuf,
    /// Ingest queue URL (overrides the outputs file)
    #[arg(long, env = "LABPIPE_INGEST_QUEUE_URL")]
    ingest_queue_url: Option<String>,
    /// Preprocess queue URL (overrides the outputs file)
    #[arg(long, env = "LABPIPE_PREPROCESS_QUEUE_URL")]
    preprocess_queue_url: Option<String>,
    /// Long-poll wait in seconds (0–20)
    #[arg(long, default_value_t = 10)]
    wait: i32,
    /// Messages per batch (1–10)
    #[arg(long, default_value_t = 10)]
    batch_size: i32,
    /// Seconds before a failed message is retried
    #[arg(long, default_value_t = 10)]
    retry_after: i32,
    /// Stop after handling this many messages
    #[arg(long)]
    max_messages: Option<u64>,
    /// Stop once both queues are empty
    #[arg(long)]
    until_idle: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    logging::init();
    let mut config = BackendConfig::from_env_and_outputs(&args.outputs)?;
    if let Some(url) = args.ingest_queue_url {
        config.ingest_queue_url = url;
    }
    if let Some(url) = args.preprocess_queue_url {
        config.preprocess_queue_url = url;
    }
    let clients = Clients::from_env().await;
    let options = RunnerOptions {
        wait_secs: args.wait,
        batch_size: args.batch_size,
        retry_after_secs: args.retry_after,
    };
    let runner = Runner::new(&clients, &config, options)?;
    let stats = if args.until_idle {
        runner.drain(10_000).await?
    } else {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("local-runner: finishing the current batch (Ctrl-C again to quit now)");
                flag.store(true, Ordering::SeqCst);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        runner
            .run(stop, args.max_messages)
            .await
            .context("local runner stopped")?
    };
    eprintln!(
        "local-runner: handled {} ingest and {} preprocess messages ({} retried)",
        stats.ingest_messages, stats.preprocess_messages, stats.retried
    );
    Ok(())
}
