//! A second DynamoDB for the catalog's tests: dynalite, as SeaweedFS is a second S3.
//!
//! moto's DynamoDB is Python and answers a `Query` by looping over every item of the table, so
//! the catalog's scale cannot be measured on it, and a test that passes only on moto may pass
//! because of moto. dynalite (npm `dynalite` 4, installed into `tests/dynalite/` by
//! `scripts/bootstrap.sh`) implements DynamoDB on LevelDB, written to mirror DynamoDB's
//! validation and error messages. The catalog's suites run on both ([`DynamoServer`]).
//!
//! What it lacks, named wherever a test depends on it ([`DYNALITE_LACKS`]): transactions
//! (`TransactWriteItems`, `TransactGetItems`) — every pipeline write of the catalog is one — and
//! the TTL, PartiQL and backup operations the catalog does not use. A test that needs a
//! transaction runs its dynalite variant as a check that the catalog's error names the missing
//! operation, so the day dynalite gains it the test fails and says to run the whole test there.
//!
//! One `node tests/dynalite/serve.js` per test binary (in memory, on a port of 127.0.0.1 the
//! kernel picks, bounded to two hours), killed on drop and with the test process.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::{
    kill_with_parent, log_tail, repo_root, spawn_from_lasting_thread, start_timeout, Emulator,
    LocalServer,
};

/// DynamoDB operations dynalite 4 does not implement (it answers `UnknownOperationException`).
/// The catalog uses the first: every status change and output record is one transaction.
pub const DYNALITE_LACKS: &[&str] = &[
    "TransactWriteItems",
    "TransactGetItems",
    "UpdateTimeToLive",
    "ExecuteStatement",
    "BatchExecuteStatement",
    "CreateBackup",
];

/// The server's longest life: a test binary that hangs cannot leave it running for ever.
const MAX_SECONDS: u32 = 7200;

/// The folder of the npm project that installs dynalite (`package.json`, `serve.js`).
pub fn dynalite_dir() -> PathBuf {
    repo_root().join("tests/dynalite")
}

/// A running dynalite on 127.0.0.1, owned by one test suite (or a benchmark); endpoint, clients
/// and log through [`LocalServer`].
pub struct Dynalite {
    server: LocalServer,
}

impl std::ops::Deref for Dynalite {
    type Target = LocalServer;
    fn deref(&self) -> &LocalServer {
        &self.server
    }
}

impl Dynalite {
    /// Starts a fresh in-memory server and waits until it listens.
    ///
    /// Panics with an actionable message if node or dynalite is missing or it does not start in
    /// time (`LABPIPE_EMULATOR_TIMEOUT_SECS`, as for the emulator).
    pub fn start() -> Self {
        match Self::try_start() {
            Ok(d) => d,
            Err(e) => panic!("{e:#}"),
        }
    }

    /// One server for the whole test binary, started on first use; it dies with the test
    /// process. Tests sharing it run in parallel: give tables names from [`crate::unique_name`].
    pub fn shared() -> &'static Dynalite {
        static SHARED: OnceLock<Dynalite> = OnceLock::new();
        SHARED.get_or_init(Dynalite::start)
    }

    /// Like [`Dynalite::start`], returning the failure instead of panicking.
    pub fn try_start() -> anyhow::Result<Self> {
        let dir = dynalite_dir();
        if !dir.join("node_modules/dynalite/package.json").is_file() {
            bail!(
                "dynalite not installed in {}: run scripts/bootstrap.sh (or `npm ci` there)",
                dir.display()
            );
        }
        let timeout = start_timeout()?;
        let tmp = tempfile::Builder::new()
            .prefix("labpipe-dynalite-")
            .tempdir()
            .context("cannot create a temp dir for the dynalite log")?;
        let log = tmp.path().join("dynalite.log");
        let (child, port) = spawn_dynalite(&dir, &log, timeout)?;
        Ok(Dynalite {
            server: LocalServer::new("dynalite", child, port, log, tmp),
        })
    }

    /// Environment for a child process whose DynamoDB calls come here and everything else goes
    /// to `emulator` (S3, SQS), through DynamoDB's own endpoint variable.
    pub fn env_with(&self, emulator: &Emulator) -> Vec<(&'static str, String)> {
        let mut env = emulator.env();
        env.push(("AWS_ENDPOINT_URL_DYNAMODB", self.endpoint()));
        env
    }
}

/// Starts `node serve.js --port 0` and reads the port it prints; stderr goes to `log`.
fn spawn_dynalite(dir: &Path, log: &Path, timeout: Duration) -> anyhow::Result<(Child, u16)> {
    let err = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut cmd = Command::new("node");
    cmd.arg("serve.js")
        .args(["--port", "0", "--max-seconds", &MAX_SECONDS.to_string()])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err);
    kill_with_parent(&mut cmd);
    let mut child = spawn_from_lasting_thread(cmd)
        .context("cannot start node: run scripts/bootstrap.sh (it installs Node 20)")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    // The first line, read on a thread so the wait is bounded.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line).map(|_| ());
        let _ = tx.send(line);
    });
    let started = Instant::now();
    let line = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => break line,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break String::new(),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if started.elapsed() >= timeout {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "dynalite did not listen within {}s (raise LABPIPE_EMULATOR_TIMEOUT_SECS \
                         on a slow machine); log {}:\n{}",
                        timeout.as_secs(),
                        log.display(),
                        log_tail(log, 20)
                    );
                }
            }
        }
    };
    match line
        .trim()
        .strip_prefix("listening ")
        .map(str::parse::<u16>)
    {
        Some(Ok(port)) => Ok((child, port)),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "dynalite did not start (it printed {:?}); log {}:\n{}",
                line.trim(),
                log.display(),
                log_tail(log, 20)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn dynalite_answers_lacks_transactions_then_stops_on_drop() {
        let server = Dynalite::start();
        let addr = std::net::SocketAddr::from((crate::HOST, server.port()));
        let db = server.dynamodb_client().await;
        let tables = db.list_tables().send().await.unwrap();
        assert!(tables.table_names().is_empty());
        let err = db
            .transact_write_items()
            .transact_items(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .condition_check(
                        aws_sdk_dynamodb::types::ConditionCheck::builder()
                            .table_name("t")
                            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("a".into()))
                            .condition_expression("attribute_exists(pk)")
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert!(
            format!("{err:?}").contains("UnknownOperation"),
            "dynalite now answers TransactWriteItems: update DYNALITE_LACKS, \
             docs/catalog.md and the catalog tests' dynalite variants: {err:?}"
        );
        drop(server);
        assert!(
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
            "dynalite port {addr} still open after drop"
        );
    }
}
