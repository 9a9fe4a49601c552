//! Shared end-to-end harness for LabPipe's tests.
//!
//! LabPipe talks to S3 and DynamoDB, and its tests must run with no AWS
//! account. Each suite therefore starts its own local AWS emulator (moto
//! server from the repo's `.venv`, installed by `scripts/bootstrap.sh`) on a
//! free port of 127.0.0.1: suites never share state with each other or with a
//! developer's `scripts/stack.sh` instance, and the emulator is killed when
//! the [`Emulator`] is dropped (or, for [`Emulator::shared`], when the test
//! process exits).
//!
//! Clients are built with the real AWS SDK, configured the way LabPipe's own
//! code is meant to be pointed at the emulator: explicit endpoint, region,
//! static credentials and path-style S3 addressing.
//!
//! ```ignore
//! let emulator = Emulator::start();
//! let s3 = emulator.s3_client().await;
//! let out = std::process::Command::new(labpipe_bin())
//!     .envs(emulator.env())
//!     .arg("status")
//!     .output()?;
//! ```

pub mod catalog_table;
pub mod dynalite;
pub mod engines;
pub mod lambda;
pub mod queue_stack;
pub mod runtime_api;
pub mod seaweedfs;
pub mod server;

pub use catalog_table::create_catalog_table;
pub use dynalite::{Dynalite, DYNALITE_LACKS};
pub use engines::{DynamoServer, Engines, S3Server};
pub use queue_stack::QueueStack;
pub use seaweedfs::SeaweedFs;
pub use server::LocalServer;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// Region every client and child process is pointed at.
pub const REGION: &str = "us-east-1";
/// Static access key the emulator accepts (it never checks signatures).
pub const ACCESS_KEY_ID: &str = "test";
/// Static secret key the emulator accepts.
pub const SECRET_ACCESS_KEY: &str = "test";

/// How long to wait for the emulator to answer, unless
/// `LABPIPE_EMULATOR_TIMEOUT_SECS` says otherwise. It answers in about a
/// second on an idle machine; the margin is for a machine busy compiling.
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Another process can take the port between choosing and binding it.
const PORT_ATTEMPTS: usize = 3;
const HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The repository root: the nearest ancestor with a `Cargo.lock` of the package under test.
///
/// Found at run time from the `CARGO_MANIFEST_DIR` that `cargo test` sets, not from the path this
/// crate was compiled at: clones of the repository that share one `CARGO_TARGET_DIR` (CI runs in a
/// fresh clone) may reuse a build made elsewhere.
pub fn repo_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    start
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("parent")
        })
        .to_path_buf()
}

/// The moto server executable: `LABPIPE_MOTO_SERVER`, or `.venv/bin/moto_server`
/// in the repository.
pub fn moto_server_path() -> PathBuf {
    match std::env::var_os("LABPIPE_MOTO_SERVER") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join(".venv/bin/moto_server"),
    }
}

/// Path of the built `labpipe` binary, next to the running test executable
/// (`target/<profile>/labpipe`), or `LABPIPE_BIN` if set.
///
/// Panics with the command to run when the binary has not been built:
/// `cargo test` builds test executables but not other packages' binaries.
pub fn labpipe_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LABPIPE_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "LABPIPE_BIN={} is not a file", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("cannot read the test executable's path");
    let mut dir = exe
        .parent()
        .expect("test executable has a parent directory")
        .to_path_buf();
    // Integration tests live in target/<profile>/deps/.
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let bin = dir.join(format!("labpipe{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "labpipe binary not found at {}: run `cargo build --workspace --bins` first \
         (with the same CARGO_TARGET_DIR and profile as the tests)",
        bin.display()
    );
    bin
}

/// A name unique within this test process, valid as an S3 bucket or
/// DynamoDB table name when `prefix` is lowercase letters, digits and `-`.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// The whole body of `s3://{bucket}/{key}`; panics naming the object if it cannot be read.
pub async fn object_bytes(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot get s3://{bucket}/{key}: {e:?}"));
    object
        .body
        .collect()
        .await
        .unwrap_or_else(|e| panic!("cannot read the body of s3://{bucket}/{key}: {e:?}"))
        .to_vec()
}

/// One multi-threaded runtime (two workers) for the whole test binary, built on first use, for
/// plain `#[test]`s that `block_on` async code.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("cannot build the tests' tokio runtime")
    })
}

/// Removes every `<temp>/<prefix>…` entry that `stale` (given the entry and the rest of its name
/// after the prefix) says belongs to a test run that has ended.
pub(crate) fn sweep_temp_dirs(prefix: &str, stale: impl Fn(&std::fs::DirEntry, &str) -> bool) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        if stale(&entry, rest) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether the process `pid` runs (Linux: its `/proc` entry); where that cannot be told, assume
/// it does and keep its data.
pub(crate) fn process_runs(pid: &str) -> bool {
    if cfg!(target_os = "linux") {
        pid.parse::<u32>()
            .map_or(true, |p| Path::new(&format!("/proc/{p}")).exists())
    } else {
        true
    }
}

/// A running moto server on 127.0.0.1, owned by one test suite; endpoint, clients and log
/// through [`LocalServer`].
pub struct Emulator {
    server: LocalServer,
}

impl std::ops::Deref for Emulator {
    type Target = LocalServer;
    fn deref(&self) -> &LocalServer {
        &self.server
    }
}

impl Emulator {
    /// Starts a fresh emulator and waits until it answers.
    ///
    /// Panics with an actionable message if moto is not installed, does not
    /// start, or does not answer in time.
    pub fn start() -> Self {
        match Self::try_start() {
            Ok(e) => e,
            Err(e) => panic!("{e:#}"),
        }
    }

    /// One emulator for the whole test binary, started on first use.
    ///
    /// Tests sharing it run in parallel: give buckets and tables names from
    /// [`unique_name`]. It is never dropped; it dies with the test process.
    pub fn shared() -> &'static Emulator {
        static SHARED: OnceLock<Emulator> = OnceLock::new();
        SHARED.get_or_init(Emulator::start)
    }

    /// Like [`Emulator::start`], returning the failure instead of panicking.
    pub fn try_start() -> anyhow::Result<Self> {
        Self::try_start_with(None)
    }

    /// A fresh emulator that checks IAM: it answers the first `unchecked_requests` requests
    /// without checks (to create an administrator), then checks every request against the
    /// identity policies of the caller's access key or assumed role. It evaluates actions and
    /// resources, not every condition key (see `infra/tests/test_iam_matrix.py`).
    pub fn start_with_authorization(unchecked_requests: u32) -> Self {
        match Self::try_start_with(Some(unchecked_requests)) {
            Ok(e) => e,
            Err(e) => panic!("{e:#}"),
        }
    }

    fn try_start_with(unchecked_requests: Option<u32>) -> anyhow::Result<Self> {
        let moto = moto_server_path();
        if !moto.is_file() {
            bail!(
                "moto server not found at {}: run scripts/bootstrap.sh (as root) to install it",
                moto.display()
            );
        }
        let timeout = start_timeout()?;
        let dir = tempfile::Builder::new()
            .prefix("labpipe-emulator-")
            .tempdir()
            .context("cannot create a temp dir for the emulator log")?;
        let log = dir.path().join("moto.log");

        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let child = spawn_moto(&moto, port, &log, unchecked_requests)?;
            match wait_ready(child, port, &log, timeout) {
                Ok(child) => {
                    return Ok(Emulator {
                        server: LocalServer::new("emulator", child, port, log, dir),
                    })
                }
                Err(StartError::PortTaken(e)) => last_err = Some(e),
                Err(StartError::Fatal(e)) => return Err(e),
            }
        }
        Err(last_err
            .unwrap_or_else(|| anyhow::anyhow!("no port tried"))
            .context(format!(
                "emulator port was taken {PORT_ATTEMPTS} times in a row"
            )))
    }

    /// Environment a child process (such as `labpipe`) needs to use this
    /// emulator: `Command::new(labpipe_bin()).envs(emulator.env())`.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
        ]
    }
}

enum StartError {
    /// Someone else bound the port first: worth another try on a new port.
    PortTaken(anyhow::Error),
    Fatal(anyhow::Error),
}

fn start_timeout() -> anyhow::Result<Duration> {
    match std::env::var("LABPIPE_EMULATOR_TIMEOUT_SECS") {
        Ok(s) => {
            let secs: u64 = s.trim().parse().with_context(|| {
                format!("LABPIPE_EMULATOR_TIMEOUT_SECS must be whole seconds, got {s:?}")
            })?;
            Ok(Duration::from_secs(secs))
        }
        Err(_) => Ok(DEFAULT_START_TIMEOUT),
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind((HOST, 0)).context("cannot bind 127.0.0.1 to find a free port")?;
    Ok(listener.local_addr()?.port())
}

fn spawn_moto(
    moto: &Path,
    port: u16,
    log: &Path,
    unchecked_requests: Option<u32>,
) -> anyhow::Result<Child> {
    let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(moto);
    cmd.arg("-H")
        .arg(HOST.to_string())
        .arg("-p")
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if let Some(n) = unchecked_requests {
        cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
    }
    kill_with_parent(&mut cmd);
    spawn_from_lasting_thread(cmd)
        .with_context(|| format!("cannot start {}: run scripts/bootstrap.sh", moto.display()))
}

/// Makes the kernel kill the emulator when the test process dies, so a
/// crashed, killed or timed-out test binary leaves no server behind.
fn kill_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id();
        // SAFETY: only async-signal-safe calls (prctl, getppid) run between
        // fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() as u32 != parent {
                    return Err(io::Error::other("test process exited during spawn"));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// Spawns from one thread that lives as long as the process.
///
/// The kernel's parent-death signal fires when the spawning *thread* exits,
/// and each test runs on its own short-lived thread: spawning there would
/// kill an emulator shared by later tests.
fn spawn_from_lasting_thread(cmd: Command) -> io::Result<Child> {
    type Request = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("labpipe-emulator-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the emulator spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("emulator spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("emulator spawner thread is gone"))?
}

fn wait_ready(
    mut child: Child,
    port: u16,
    log: &Path,
    timeout: Duration,
) -> Result<Child, StartError> {
    let addr = SocketAddr::from((HOST, port));
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let tail = log_tail(log, 20);
                let e = anyhow::anyhow!(
                    "moto server exited during start ({status}); log {}:\n{tail}",
                    log.display()
                );
                return Err(if tail.contains("Address already in use") {
                    StartError::PortTaken(e)
                } else {
                    StartError::Fatal(e.context(
                        "the emulator did not start: check the log, or rerun scripts/bootstrap.sh",
                    ))
                });
            }
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                return Err(StartError::Fatal(
                    anyhow::Error::new(e).context("cannot poll the moto server process"),
                ));
            }
        }
        if answers_http(addr) {
            return Ok(child);
        }
        if started.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(StartError::Fatal(anyhow::anyhow!(
                "moto server on {addr} did not answer within {}s (raise \
                 LABPIPE_EMULATOR_TIMEOUT_SECS on a slow machine); log {}:\n{}",
                timeout.as_secs(),
                log.display(),
                log_tail(log, 20)
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True once the server returns any HTTP response.
fn answers_http(addr: SocketAddr) -> bool {
    let probe = || -> io::Result<bool> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.set_write_timeout(Some(Duration::from_secs(2)))?;
        write!(
            s,
            "GET /moto-api/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut head = [0u8; 8];
        s.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1."))
    };
    probe().unwrap_or(false)
}

fn log_tail(log: &Path, lines: usize) -> String {
    match fs::read_to_string(log) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read log: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_answers_then_stops_on_drop() {
        let emulator = Emulator::start();
        let addr = SocketAddr::from((HOST, emulator.port()));
        assert!(answers_http(addr), "emulator should answer after start");
        assert!(emulator.endpoint().starts_with("http://127.0.0.1:"));
        drop(emulator);
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
            "emulator port {addr} still open after drop"
        );
    }

    #[test]
    fn env_points_children_at_the_emulator() {
        let emulator = Emulator::shared();
        let env: std::collections::HashMap<_, _> = emulator.env().into_iter().collect();
        assert_eq!(env["AWS_ENDPOINT_URL"], emulator.endpoint());
        assert_eq!(env["AWS_REGION"], REGION);
        assert_eq!(env["AWS_ACCESS_KEY_ID"], ACCESS_KEY_ID);
        assert_eq!(env["AWS_SECRET_ACCESS_KEY"], SECRET_ACCESS_KEY);
    }

    #[test]
    fn unique_names_differ_and_fit_bucket_rules() {
        let a = unique_name("lp");
        let b = unique_name("lp");
        assert_ne!(a, b);
        for n in [a, b] {
            assert!((3..=63).contains(&n.len()), "{n}");
            assert!(n
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        }
    }
}

/// Counts the requests an S3 client sends, by operation (every attempt counts, retries too).
///
/// Attach it to a client with [`RequestCount::attach`]; the operation is read from the HTTP
/// method and query, so it needs nothing from the code under test.
#[derive(Debug, Clone, Default)]
pub struct RequestCount {
    counts: std::sync::Arc<Mutex<std::collections::BTreeMap<&'static str, u64>>>,
}

impl RequestCount {
    /// A copy of `client` that reports every request it sends to this count.
    pub fn attach(&self, client: &aws_sdk_s3::Client) -> aws_sdk_s3::Client {
        let conf = client
            .config()
            .to_builder()
            .interceptor(self.clone())
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Requests so far, by operation.
    pub fn by_operation(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Requests so far.
    pub fn total(&self) -> u64 {
        self.by_operation().values().sum()
    }

    /// Starts counting from zero.
    pub fn reset(&self) {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

impl aws_sdk_s3::config::Intercept for RequestCount {
    fn name(&self) -> &'static str {
        "LabpipeTestRequestCount"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_s3::config::RuntimeComponents,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let request = context.request();
        let operation = s3_operation(request.method(), request.uri());
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(operation)
            .or_default() += 1;
        Ok(())
    }
}

/// The S3 operation of a path-style request, from its method and query.
fn s3_operation(method: &str, uri: &str) -> &'static str {
    let query = uri.split_once('?').map(|(_, q)| q).unwrap_or("");
    let has = |name: &str| {
        query
            .split('&')
            .any(|p| p == name || p.starts_with(&format!("{name}=")))
    };
    // Path-style: /bucket or /bucket/key…
    let path = uri
        .split_once("://")
        .map_or(uri, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
    let path = path.split('?').next().unwrap_or("/");
    let has_key = path.trim_start_matches('/').contains('/');
    match method {
        "GET" if has("list-type") => "ListObjectsV2",
        "GET" if has("uploads") => "ListMultipartUploads",
        "GET" if has("uploadId") => "ListParts",
        "GET" if has_key => "GetObject",
        "GET" => "ListObjects",
        "HEAD" if has_key => "HeadObject",
        "HEAD" => "HeadBucket",
        "PUT" if has("partNumber") => "UploadPart",
        "PUT" if has_key => "PutObject",
        "PUT" => "CreateBucket",
        "POST" if has("uploads") => "CreateMultipartUpload",
        "POST" if has("uploadId") => "CompleteMultipartUpload",
        "DELETE" if has("uploadId") => "AbortMultipartUpload",
        "DELETE" => "DeleteObject",
        _ => "Other",
    }
}

#[cfg(test)]
mod request_count_tests {
    use super::s3_operation;

    #[test]
    fn operations_are_told_apart_by_method_and_query() {
        let b = "http://127.0.0.1:1/raw";
        assert_eq!(
            s3_operation("GET", &format!("{b}?list-type=2&prefix=raw%2Fx%2F")),
            "ListObjectsV2"
        );
        assert_eq!(
            s3_operation("GET", &format!("{b}?uploads&prefix=raw")),
            "ListMultipartUploads"
        );
        assert_eq!(
            s3_operation("GET", &format!("{b}/raw/s/a.bin?uploadId=u")),
            "ListParts"
        );
        assert_eq!(
            s3_operation("GET", &format!("{b}/raw/s/a.bin?x-id=GetObject")),
            "GetObject"
        );
        assert_eq!(
            s3_operation("HEAD", &format!("{b}/raw/s/a.bin")),
            "HeadObject"
        );
        assert_eq!(
            s3_operation("PUT", &format!("{b}/raw/s/a.bin?partNumber=1&uploadId=u")),
            "UploadPart"
        );
        assert_eq!(
            s3_operation("PUT", &format!("{b}/raw/s/a.bin?x-id=PutObject")),
            "PutObject"
        );
        assert_eq!(
            s3_operation("POST", &format!("{b}/raw/s/a.bin?uploads")),
            "CreateMultipartUpload"
        );
        assert_eq!(
            s3_operation("POST", &format!("{b}/raw/s/a.bin?uploadId=u")),
            "CompleteMultipartUpload"
        );
        assert_eq!(
            s3_operation("DELETE", &format!("{b}/raw/s/a.bin?uploadId=u")),
            "AbortMultipartUpload"
        );
    }
}
