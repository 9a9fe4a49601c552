//! One local server's life, the same for the AWS emulator (moto), SeaweedFS and dynalite: the
//! process, its port on 127.0.0.1 and its log in a temp dir; SDK clients pointed at it; on drop,
//! the log's tail printed when a test is failing, then the process killed. Each server type
//! (`Emulator`, `SeaweedFs`, `Dynalite`) only knows how to start its program and when it is ready,
//! and reaches the rest through `Deref` to this.

use std::path::{Path, PathBuf};
use std::process::Child;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;

use super::{log_tail, ACCESS_KEY_ID, HOST, REGION, SECRET_ACCESS_KEY};

/// A running server process owned by one test suite (or a benchmark).
pub struct LocalServer {
    /// What the failure messages call it ("emulator", "SeaweedFS", "dynalite").
    name: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
    // Holds the log (and any data); removed on drop.
    _dir: tempfile::TempDir,
}

impl LocalServer {
    /// Takes ownership of a started, ready server listening on `port` of 127.0.0.1.
    pub(crate) fn new(
        name: &'static str,
        child: Child,
        port: u16,
        log: PathBuf,
        dir: tempfile::TempDir,
    ) -> Self {
        LocalServer {
            name,
            child,
            port,
            log,
            _dir: dir,
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://{HOST}:{}", self.port)
    }

    /// The port it listens on (for S3 servers, the S3 API's).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log; gone after drop.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the server's log, for a failure message.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// SDK configuration pointing at this server: its endpoint, the tests' region and static keys.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "labpipe-tests",
            ))
            .load()
            .await
    }

    /// S3 client for this server. Path-style addressing: virtual-host style would need
    /// `<bucket>.127.0.0.1` to resolve.
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk_config().await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// DynamoDB client for this server.
    pub async fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk_config().await)
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "{} log ({}), last lines:\n{}",
                self.name,
                self.log.display(),
                log_tail(&self.log, 40)
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
