//! Harness for end-to-end tests of the desktop app: the real `labpipe-app` binary, started by
//! `tauri-driver` (WebDriver over WebKitWebDriver) under Xvfb, driven with `fantoccini`.
//!
//! Each [`App`] gets its own tauri-driver on free loopback ports and its own directories
//! (config, data, logs, HOME) passed through the environment, so tests never see the developer's
//! settings and several apps can run one after another against the same directories (restart).
//!
//! Run with `xvfb-run -a dbus-run-session -- cargo test --workspace --test app -- --test-threads=1`
//! after `cargo build -p labpipe-app`.

pub mod seed;

use anyhow::{bail, Context, Result};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// `LABPIPE_APP_BIN`, else `labpipe-app` next to the test executable (`target/<profile>/`).
pub fn app_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LABPIPE_APP_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let mut dir = exe.parent().expect("parent").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let bin = dir.join(format!("labpipe-app{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "labpipe-app not found at {}: run `cargo build -p labpipe-app` first (same CARGO_TARGET_DIR)",
        bin.display()
    );
    bin
}

/// `tauri-driver` from PATH or `~/.cargo/bin`.
pub fn tauri_driver() -> PathBuf {
    if let Some(p) = std::env::var_os("TAURI_DRIVER").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        });
    let candidate = home.join("bin/tauri-driver");
    if candidate.is_file() {
        candidate
    } else {
        PathBuf::from("tauri-driver")
    }
}

/// Runs one test body with an overall time limit, so a stuck WebDriver call fails the test
/// instead of hanging the suite.
pub async fn within<T>(
    limit: Duration,
    body: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, body).await {
        Ok(r) => r,
        Err(_) => bail!("test did not finish within {limit:?}"),
    }
}

/// Prints a test step (shown with --nocapture, and in the output of a failed test).
pub fn step(what: &str) {
    eprintln!("e2e step: {what}");
}

/// Where screenshots for the README go.
pub fn screenshot_dir() -> PathBuf {
    repo_root().join("docs/screenshots")
}

/// The directories one app instance uses; keep it to restart the app with the same state.
pub struct Dirs {
    pub root: tempfile::TempDir,
}

impl Dirs {
    pub fn new() -> Result<Dirs> {
        Ok(Dirs {
            root: tempfile::Builder::new()
                .prefix("labpipe-app-e2e")
                .tempdir()?,
        })
    }
    pub fn config(&self) -> PathBuf {
        self.root.path().join("config")
    }
    pub fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.path().join("logs")
    }
    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }
    /// Writes `settings.json` before the app starts.
    pub fn write_settings(&self, settings: serde_json::Value) -> Result<()> {
        std::fs::create_dir_all(self.config())?;
        std::fs::write(
            self.config().join("settings.json"),
            serde_json::to_vec_pretty(&settings)?,
        )?;
        Ok(())
    }
}

/// A running app, driven over WebDriver.
pub struct App {
    pub client: Client,
    driver: Child,
}

/// Waits until something listens on `port`; stops `driver` and says why if it exits or
/// `limit` passes first.
async fn until_listening(driver: &mut Child, port: u16, what: &str, limit: Duration) -> Result<()> {
    let t0 = Instant::now();
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if let Some(status) = driver.try_wait()? {
            bail!("tauri-driver exited early: {status}");
        }
        if t0.elapsed() > limit {
            stop(driver);
            bail!(
                "{what} did not listen on {port} within {} s",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

impl App {
    /// Starts the app with `dirs` and extra environment.
    pub async fn start(dirs: &Dirs, env: &[(&str, String)]) -> Result<App> {
        std::fs::create_dir_all(dirs.home())?;
        // Both ports are held while the second is chosen, so they can never be the same one.
        let (port, native) = {
            let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            let b = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            (a.local_addr()?.port(), b.local_addr()?.port())
        };
        let runtime = dirs.root.path().join("run");
        std::fs::create_dir_all(&runtime)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700))?;
        }
        let mut cmd = Command::new(tauri_driver());
        cmd.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native.to_string(),
        ])
        .env("LABPIPE_APP_CONFIG_DIR", dirs.config())
        .env("LABPIPE_APP_DATA_DIR", dirs.data())
        .env("LABPIPE_APP_LOG_DIR", dirs.logs())
        .env("LABPIPE_APP_KEYRING_ACCOUNT", format!("e2e-{port}"))
        .env("XDG_CONFIG_HOME", dirs.home().join(".config"))
        .env("XDG_DATA_HOME", dirs.home().join(".local/share"))
        .env("XDG_CACHE_HOME", dirs.home().join(".cache"))
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut driver = cmd.spawn().with_context(|| {
            format!(
                "cannot start {}: cargo install tauri-driver --locked",
                tauri_driver().display()
            )
        })?;
        until_listening(&mut driver, port, "tauri-driver", Duration::from_secs(20)).await?;
        // tauri-driver listens at once and starts WebKitWebDriver behind it; a session asked
        // for before WebKitWebDriver listens fails.
        until_listening(
            &mut driver,
            native,
            "WebKitWebDriver",
            Duration::from_secs(30),
        )
        .await?;
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "wry".into());
        caps.insert(
            "tauri:options".into(),
            serde_json::json!({ "application": app_bin().display().to_string() }),
        );
        let client = match ClientBuilder::native()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                stop(&mut driver);
                bail!("cannot start a WebDriver session: {e}");
            }
        };
        let app = App { client, driver };
        app.wait_for("nav button[data-view='pending']", Duration::from_secs(30))
            .await?;
        Ok(app)
    }

    /// The process id of this app's tauri-driver: the app and its WebKit processes are its
    /// descendants.
    pub fn driver_pid(&self) -> u32 {
        self.driver.id()
    }

    pub async fn find(&self, css: &str) -> Result<Element> {
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no element {css}"))
    }

    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        Ok(self.client.find_all(Locator::Css(css)).await?)
    }

    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element> {
        let t0 = Instant::now();
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                return Ok(e);
            }
            if t0.elapsed() > timeout {
                bail!("{css} did not appear within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls `probe` until it returns `Some`, or fails with `what`.
    pub async fn until<T, F, Fut>(&self, what: &str, timeout: Duration, mut probe: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        let t0 = Instant::now();
        let mut last_err = None;
        loop {
            match probe().await {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => last_err = Some(e),
            }
            if t0.elapsed() > timeout {
                bail!("timed out after {timeout:?} waiting for {what} (last error: {last_err:?})");
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Runs JavaScript in the page and returns its value.
    pub async fn js(&self, script: &str) -> Result<serde_json::Value> {
        Ok(self.client.execute(script, vec![]).await?)
    }

    pub async fn goto(&self, view: &str) -> Result<()> {
        self.find(&format!("nav button[data-view='{view}']"))
            .await?
            .click()
            .await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(())
    }

    /// Replaces the value of an input the way typing does (Svelte sees `input` events).
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let el = self.find(css).await?;
        el.clear().await?;
        el.send_keys(text).await?;
        Ok(())
    }

    /// Saves a PNG of the screen (the app's window fills the 1280×800 Xvfb screen) under
    /// `docs/screenshots/`, with ImageMagick's `import`; WebDriver's own screenshot is the
    /// fallback when there is no X display.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        // A picture is for the documents, not an assertion: when neither ImageMagick's `import`
        // nor WebDriver can take one, the reason is printed, the committed picture stays and the
        // test goes on.
        let import = if std::env::var_os("DISPLAY").is_some() {
            match Command::new("import")
                .args(["-window", "root"])
                .arg(&path)
                .status()
            {
                Ok(s) if s.success() => return Ok(path),
                Ok(s) => format!("import exited with {s}"),
                Err(e) => format!("import: {e}"),
            }
        } else {
            "no DISPLAY for import".to_string()
        };
        let webdriver =
            match tokio::time::timeout(Duration::from_secs(20), self.client.screenshot()).await {
                Ok(Ok(png)) => {
                    std::fs::write(&path, png)?;
                    return Ok(path);
                }
                Ok(Err(e)) => webdriver_error(&e),
                Err(_) => "timed out after 20 s".to_string(),
            };
        eprintln!("e2e: no screenshot {name}.png ({import}; WebDriver: {webdriver})");
        Ok(path)
    }

    /// Clicks the element `css` selects, as a person would (WebDriver's element click); an
    /// error names the element and WebDriver's error code.
    pub async fn click(&self, css: &str) -> Result<()> {
        let element = self.find(css).await?;
        element
            .click()
            .await
            .map_err(|e| anyhow::anyhow!("click on {css}: {}", webdriver_error(&e)))?;
        Ok(())
    }

    /// Sets the value of a form control from script and fires `input` and `change`, as a person
    /// choosing it would (WebKitWebDriver cannot drive native `<select>` popups or number fields
    /// reliably).
    pub async fn set_value(&self, css: &str, value: &str) -> Result<()> {
        let script = "const el = document.querySelector(arguments[0]); if (!el) return false; \
                      el.value = arguments[1]; \
                      el.dispatchEvent(new Event('input', { bubbles: true })); \
                      el.dispatchEvent(new Event('change', { bubbles: true })); return true;";
        let ok = self
            .client
            .execute(script, vec![css.into(), value.into()])
            .await?;
        anyhow::ensure!(ok == serde_json::Value::Bool(true), "no element {css}");
        Ok(())
    }

    /// Closes the window and stops tauri-driver (SIGTERM, so WebKitWebDriver goes too).
    pub async fn quit(mut self) -> Result<()> {
        let _ = self.client.clone().close().await;
        stop(&mut self.driver);
        Ok(())
    }
}

impl Drop for App {
    fn drop(&mut self) {
        stop(&mut self.driver);
    }
}

fn stop(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    #[cfg(unix)]
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A WebDriver error with its code: fantoccini's own message drops the code, and WebKitWebDriver
/// often sends an empty message ("webdriver returned error: " alone says nothing).
pub fn webdriver_error(e: &fantoccini::error::CmdError) -> String {
    match e {
        fantoccini::error::CmdError::Standard(w) => {
            format!("WebDriver {:?}: {:?} {}", w.error, w.message, w.stacktrace)
                .trim_end()
                .to_string()
        }
        other => other.to_string(),
    }
}
