//! A Lambda Runtime API on 127.0.0.1, to run the *packaged* `bootstrap` executables as the
//! `provided.al2023` runtime does.
//!
//! The local emulator cannot run Lambda functions (that needs Docker), and cargo-lambda's
//! `watch` builds and runs the functions from source, so neither exercises the zips a lab
//! deploys. This is the other half of the contract those zips are written against, following
//! AWS's "Using the Lambda runtime API for custom runtimes"
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>):
//!
//! - `GET /2018-06-01/runtime/invocation/next` blocks until there is an event, then answers it
//!   with the headers `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`,
//!   `Lambda-Runtime-Invoked-Function-Arn` and `Lambda-Runtime-Trace-Id`;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error` → 202;
//! - `POST /2018-06-01/runtime/init/error` → 202 (the runtime then exits).
//!
//! [`LambdaFunction`] starts a bootstrap with `AWS_LAMBDA_RUNTIME_API` pointing here and the
//! reserved variables the runtime sets (function name, memory, version, log group), and
//! [`LambdaFunction::invoke`] hands it one event and waits for its answer.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `.../response`: the handler's JSON.
    Response(serde_json::Value),
    /// `.../error`: the error type header and body.
    Error { error_type: String, body: String },
}

struct Pending {
    id: String,
    payload: Vec<u8>,
    deadline_ms: u128,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Pending>,
    waiting: HashMap<String, oneshot::Sender<Outcome>>,
    init_error: Option<String>,
    /// Requests served, by path shape, for assertions.
    served: Vec<String>,
}

/// The Runtime API of one function instance.
pub struct RuntimeApi {
    port: u16,
    state: Arc<Mutex<State>>,
    ready: Arc<Notify>,
    arn: String,
    task: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    /// Listens on a free port of 127.0.0.1. `arn` is the invoked function ARN it reports.
    pub async fn start(arn: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot listen on 127.0.0.1 for the runtime API")?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State::default()));
        let ready = Arc::new(Notify::new());
        let (s, r, a) = (state.clone(), ready.clone(), arn.to_string());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (s, r, a) = (s.clone(), r.clone(), a.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, s, r, a).await;
                });
            }
        });
        Ok(RuntimeApi {
            port,
            state,
            ready,
            arn: arn.to_string(),
            task,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The invoked function ARN this API reports.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// Queues one event; the receiver gets the runtime's answer.
    fn submit(&self, payload: Vec<u8>, timeout: Duration) -> (String, oneshot::Receiver<Outcome>) {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = format!(
            "{:08x}-0000-4000-8000-{:012x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let (tx, rx) = oneshot::channel();
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            + timeout.as_millis();
        {
            let mut st = self.state.lock().expect("runtime api state");
            st.waiting.insert(id.clone(), tx);
            st.queue.push_back(Pending {
                id: id.clone(),
                payload,
                deadline_ms,
            });
        }
        self.ready.notify_waiters();
        self.ready.notify_one();
        (id, rx)
    }

    /// The init error the runtime reported, if any.
    pub fn init_error(&self) -> Option<String> {
        self.state.lock().expect("state").init_error.clone()
    }

    /// Paths served so far (`next`, `response`, `error`, `init/error`).
    pub fn served(&self) -> Vec<String> {
        self.state.lock().expect("state").served.clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    stream: TcpStream,
    state: Arc<Mutex<State>>,
    ready: Arc<Notify>,
    arn: String,
) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    // HTTP/1.1 with keep-alive: the runtime client reuses its connection.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let body = read_body(&mut reader, &headers).await?;
        let (kind, id) = route(&method, &path);
        state.lock().expect("state").served.push(kind.to_string());
        match (kind, id) {
            ("next", _) => {
                let next = loop {
                    let notified = ready.notified();
                    if let Some(p) = state.lock().expect("state").queue.pop_front() {
                        break p;
                    }
                    notified.await;
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Lambda-Runtime-Aws-Request-Id: {}\r\nLambda-Runtime-Deadline-Ms: {}\r\n\
                     Lambda-Runtime-Invoked-Function-Arn: {arn}\r\n\
                     Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0\r\n\r\n",
                    next.payload.len(),
                    next.id,
                    next.deadline_ms
                );
                write.write_all(head.as_bytes()).await?;
                write.write_all(&next.payload).await?;
            }
            ("response", Some(id)) | ("error", Some(id)) => {
                let outcome = if kind == "response" {
                    Outcome::Response(serde_json::from_slice(&body).unwrap_or_else(|_| {
                        serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
                    }))
                } else {
                    Outcome::Error {
                        error_type: headers
                            .get("lambda-runtime-function-error-type")
                            .cloned()
                            .unwrap_or_default(),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    }
                };
                let waiter = state.lock().expect("state").waiting.remove(&id);
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(outcome);
                        reply(&mut write, "202 Accepted", r#"{"status":"OK"}"#).await?;
                    }
                    None => reply(
                        &mut write,
                        "400 Bad Request",
                        r#"{"errorMessage":"unknown request id","errorType":"InvalidRequestID"}"#,
                    )
                    .await?,
                }
            }
            ("init/error", _) => {
                state.lock().expect("state").init_error =
                    Some(String::from_utf8_lossy(&body).into_owned());
                reply(&mut write, "202 Accepted", r#"{"status":"OK"}"#).await?;
            }
            _ => {
                reply(
                    &mut write,
                    "404 Not Found",
                    r#"{"errorMessage":"unknown path"}"#,
                )
                .await?
            }
        }
    }
}

fn route(method: &str, path: &str) -> (&'static str, Option<String>) {
    let rest = path.strip_prefix("/2018-06-01/runtime/").unwrap_or("");
    match (method, rest.split('/').collect::<Vec<_>>().as_slice()) {
        ("GET", ["invocation", "next"]) => ("next", None),
        ("POST", ["invocation", id, "response"]) => ("response", Some(id.to_string())),
        ("POST", ["invocation", id, "error"]) => ("error", Some(id.to_string())),
        ("POST", ["init", "error"]) => ("init/error", None),
        _ => ("unknown", None),
    }
}

async fn read_body<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    headers: &HashMap<String, String>,
) -> anyhow::Result<Vec<u8>> {
    if let Some(len) = headers.get("content-length") {
        let mut body = vec![0; len.parse().context("content-length")?];
        reader.read_exact(&mut body).await?;
        return Ok(body);
    }
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .context("chunk size")?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).await?;
            if size == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    Ok(Vec::new())
}

async fn reply(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    status: &str,
    body: &str,
) -> anyhow::Result<()> {
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    write.write_all(msg.as_bytes()).await?;
    Ok(())
}

/// One packaged function: its unzipped `bootstrap` running against its own [`RuntimeApi`].
pub struct LambdaFunction {
    pub name: String,
    api: RuntimeApi,
    child: Child,
    log: PathBuf,
    timeout: Duration,
}

impl LambdaFunction {
    /// Unzips `zip` into `dir` and starts its `bootstrap` with `env` (the function's variables
    /// and credentials) plus what the runtime itself sets.
    pub async fn start(
        name: &str,
        zip: &Path,
        dir: &Path,
        env: &[(String, String)],
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let code = dir.join(name);
        std::fs::create_dir_all(&code)?;
        // Extracted keeping each entry's Unix mode, as Lambda does: a bootstrap zipped without
        // its executable bit fails here as it would on AWS.
        let status = Command::new(crate::repo_root().join(".venv/bin/python"))
            .args([
                "-c",
                "import os, sys, zipfile\n\
                 z = zipfile.ZipFile(sys.argv[1])\n\
                 for i in z.infolist():\n    p = z.extract(i, sys.argv[2])\n    os.chmod(p, (i.external_attr >> 16) & 0o777 or 0o644)",
            ])
            .arg(zip)
            .arg(&code)
            .status()
            .context("cannot run .venv/bin/python to unzip")?;
        if !status.success() {
            bail!("unzipping {} failed", zip.display());
        }
        let bootstrap = code.join("bootstrap");
        if !bootstrap.is_file() {
            bail!("{} holds no bootstrap at its root", zip.display());
        }
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&bootstrap)?.permissions().mode();
            if mode & 0o111 == 0 {
                bail!("{}: bootstrap is not executable in the zip (mode {mode:o}); the runtime could not start it", zip.display());
            }
        }
        let arn = format!(
            "arn:aws:lambda:{}:123456789012:function:{name}",
            crate::REGION
        );
        let api = RuntimeApi::start(&arn).await?;
        let log = dir.join(format!("{name}.log"));
        let mut cmd = Command::new(&bootstrap);
        // The runtime starts the function in /var/task with only its own variables.
        cmd.current_dir(&code)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("LAMBDA_TASK_ROOT", &code)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::options().append(true).open(&log)?);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bootstrap.display()))?;
        Ok(LambdaFunction {
            name: name.to_string(),
            api,
            child,
            log,
            timeout,
        })
    }

    /// Hands the function one event and waits for its answer (at most the function timeout).
    pub async fn invoke(&mut self, payload: &serde_json::Value) -> anyhow::Result<Outcome> {
        let (id, mut rx) = self.api.submit(serde_json::to_vec(payload)?, self.timeout);
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            tokio::select! {
                got = &mut rx => return got.with_context(|| format!("{}: request {id} was dropped", self.name)),
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            if let Some(e) = self.api.init_error() {
                bail!(
                    "{} reported an init error: {e}\nlog:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) during request {id}\nlog:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{} did not answer request {id} within {:?}\nlog:\n{}",
                    self.name,
                    self.timeout,
                    self.log_text()
                );
            }
        }
    }

    /// What the function wrote to stdout/stderr (CloudWatch Logs on AWS).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn api(&self) -> &RuntimeApi {
        &self.api
    }
}

impl Drop for LambdaFunction {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
