//! Fills a catalog table on the local emulator with the demo sessions of
//! `labpipe_e2e_app::seed` (complete records, imported with batch writes): for the demo script
//! and benchmarks.
//!
//!   usage: seed-catalog --endpoint http://127.0.0.1:PORT --table NAME [--count N] [--create]
//!
//! Refuses endpoints that are not on this machine.

use anyhow::{bail, Context, Result};
use aws_config::BehaviorVersion;
use labpipe_catalog::Catalog;
use labpipe_e2e_app::seed::seed_demo_catalog;

#[tokio::main]
async fn main() -> Result<()> {
    let mut endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    let mut table = String::new();
    let mut count = 200usize;
    let mut create = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--endpoint" => endpoint = args.next().context("--endpoint needs a URL")?,
            "--table" => table = args.next().context("--table needs a name")?,
            "--count" => count = args.next().context("--count needs a number")?.parse()?,
            "--create" => create = true,
            other => bail!("unknown argument {other} (see the header of seed-catalog.rs)"),
        }
    }
    if !(endpoint.starts_with("http://127.") || endpoint.starts_with("http://localhost")) {
        bail!("refusing endpoint '{endpoint}': seed-catalog only writes to a local emulator");
    }
    if table.is_empty() {
        bail!("--table is required");
    }
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new(region))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "seed",
        ))
        .load()
        .await;
    let db = aws_sdk_dynamodb::Client::new(&sdk);
    if create {
        labpipe_tests::create_catalog_table(&db, &table).await?;
    }
    let catalog = Catalog::new(db, table.clone());
    let t0 = std::time::Instant::now();
    let summary = seed_demo_catalog(&catalog, count).await?;
    eprintln!(
        "seeded {count} sessions ({} items, {} requests) into {table} in {:.1} s",
        summary.items,
        summary.requests,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
