//! The desktop app end to end: the built binary, a real lab folder, the local AWS emulator,
//! driven through WebDriver like a person would. Saves the README screenshots.

use anyhow::{ensure, Context, Result};
use chrono::NaiveDate;
use labpipe_catalog::{Catalog, SessionItem, Status};
use labpipe_core::{LabSchema, MetaValue};
use labpipe_e2e_app::{step, within, App, Dirs};
use labpipe_sample::{generate, GenerateOptions};
use labpipe_tests::{unique_name, Emulator};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A lab folder with good and broken sessions and a schema for their (small) size.
fn make_lab(
    dir: &Path,
    good: usize,
    broken: bool,
) -> Result<Vec<labpipe_sample::GeneratedSession>> {
    let mut opts = GenerateOptions::new(dir);
    opts.count = good;
    opts.size_bytes = 2_000_000;
    opts.broken = broken;
    opts.seed = 7;
    let sessions = generate(&opts, |_, _| {})?;
    std::fs::write(
        dir.join("labpipe.toml"),
        "[session]\nexpected_size_mb = 2\n",
    )?;
    Ok(sessions)
}

fn base_settings(lab: Option<&Path>) -> serde_json::Value {
    json!({
        "lab_folder": lab.map(|p| p.display().to_string()),
        "region": "us-east-1",
        "setup_done": true,
        "quiet_period_secs": 1,
    })
}

async fn attr(app: &App, el: &fantoccini::elements::Element, name: &str) -> Result<String> {
    let _ = app;
    Ok(el.attr(name).await?.unwrap_or_default())
}

#[tokio::test]
async fn pending_shows_each_sessions_verdict_and_reasons() -> Result<()> {
    within(Duration::from_secs(240), async {
        step("pending shows each sessions verdict and reasons");
        let dirs = Dirs::new()?;
        let lab = dirs.root.path().join("lab");
        let sessions = make_lab(&lab, 3, true)?;
        dirs.write_settings(base_settings(Some(&lab)))?;

        // What the library says about each folder: the app must show the same.
        let schema = LabSchema::load(&lab.join("labpipe.toml"))?;
        let mut expected = std::collections::BTreeMap::new();
        for s in &sessions {
            let r = labpipe_core::check::check_folder(&s.path, &schema)?;
            expected.insert(s.name.clone(), r);
        }
        ensure!(
            expected
                .values()
                .any(|r| r.verdict == labpipe_core::Verdict::Pass),
            "sample has a passing session"
        );
        ensure!(
            expected
                .values()
                .any(|r| r.verdict == labpipe_core::Verdict::Fail),
            "sample has a failing session"
        );

        let app = App::start(&dirs, &[]).await?;
        app.until("every session row", WAIT, || async {
            Ok((app.find_all(".row[data-session]").await?.len() == sessions.len()).then_some(()))
        })
        .await?;
        for (name, report) in &expected {
            let row = app.find(&format!(".row[data-session='{name}']")).await?;
            let shown = attr(&app, &row, "data-verdict").await?;
            // `wait` folders (still being written) may settle while we look; all others must match.
            if report.verdict != labpipe_core::Verdict::Wait {
                assert_eq!(shown, report.verdict.as_str(), "verdict of {name}");
            }
        }

        // Expanding a blocked session lists each finding in words.
        // The newest one, so it is near the top of the list (and of the screenshot).
        let (name, report) = expected
            .iter()
            .filter(|(_, r)| r.verdict == labpipe_core::Verdict::Fail && r.recorded_at.is_some())
            .max_by_key(|(_, r)| r.recorded_at)
            .context("a failing session")?;
        let row = app.find(&format!(".row[data-session='{name}']")).await?;
        row.find(fantoccini::Locator::Css("button.expand"))
            .await?
            .click()
            .await?;
        let text = app
            .wait_for(&format!(".row[data-session='{name}'] .details"), WAIT)
            .await?
            .text()
            .await?;
        for f in report
            .findings
            .iter()
            .filter(|f| f.severity == labpipe_core::Severity::Error)
        {
            assert!(
                text.contains(&f.message),
                "details of {name} show '{}':\n{text}",
                f.message
            );
        }
        assert!(text.contains("Blocks upload"), "{text}");
        // Upload is offered for passing sessions only.
        let good = expected
            .iter()
            .find(|(_, r)| r.verdict == labpipe_core::Verdict::Pass)
            .unwrap()
            .0;
        let up = app
            .find(&format!(
                ".row[data-session='{good}'] [data-testid='upload']"
            ))
            .await?;
        assert!(up.is_enabled().await?);
        let blocked = app
            .find(&format!(
                ".row[data-session='{name}'] [data-testid='upload']"
            ))
            .await?;
        assert!(!blocked.is_enabled().await?);
        app.screenshot("pending").await?;

        // A session recorded while the app runs shows up without a refresh.
        let mut more = GenerateOptions::new(&lab);
        more.count = 1;
        more.size_bytes = 2_000_000;
        more.seed = 99;
        more.start = NaiveDate::from_ymd_opt(2022, 6, 1)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap();
        let new = generate(&more, |_, _| {})?;
        let new_name = &new[0].name;
        app.until("the new session", WAIT, || async {
            let rows = app
                .find_all(&format!(".row[data-session='{new_name}']"))
                .await?;
            Ok((!rows.is_empty()).then_some(()))
        })
        .await?;
        app.quit().await
    })
    .await
}

/// Seeds `n` cataloged sessions with varied metadata and statuses; returns them.
async fn seed_catalog(emu: &Emulator, table: &str, n: usize) -> Result<Vec<SessionItem>> {
    let db = emu.dynamodb_client().await;
    labpipe_catalog::create_table(&db, table).await?;
    let catalog = Catalog::new(db, table);
    let models = ["X200", "X100", "Q8"];
    let start = NaiveDate::from_ymd_opt(2021, 3, 1)
        .unwrap()
        .and_hms_opt(9, 0, 0)
        .unwrap();
    let mut items = Vec::new();
    for i in 0..n {
        let at = start + chrono::Duration::hours(7 * i as i64 + 1);
        let session = at.format("%Y%m%d_%H%M%S").to_string();
        let mut item =
            SessionItem::placeholder(&session, at, Status::Cataloged, chrono::Utc::now());
        item.manifest_sha256 = Some(format!("{i:064x}"));
        item.raw_prefix = Some(format!("s3://raw/raw/{session}/"));
        item.total_bytes = 600_000_000 + (i as u64 * 7_919 % 50_000_000);
        item.file_count = 5;
        item.metadata
            .insert("fatigue".into(), MetaValue::Number((i * 7 % 11) as f64));
        item.metadata.insert(
            "hardware_model".into(),
            MetaValue::Text(models[i % 3].into()),
        );
        item.metadata.insert(
            "subject_id".into(),
            MetaValue::Text(format!("S{:03}", i % 17)),
        );
        item.metadata.insert(
            "sample_rate_hz".into(),
            MetaValue::Number(if i % 4 == 0 { 2000.0 } else { 1000.0 }),
        );
        catalog.put_new_session(&item).await?;
        if i % 9 == 4 {
            catalog
                .record_failure(
                    &session,
                    at,
                    "preprocess",
                    "channel 3 is flat for the whole recording; check the electrode and re-run",
                )
                .await?;
        } else if i % 3 != 0 {
            catalog
                .transition(
                    &session,
                    Status::Processing,
                    "preprocess",
                    "pipeline v1 started",
                )
                .await?;
            catalog
                .transition(
                    &session,
                    Status::Processed,
                    "preprocess",
                    "pipeline v1 wrote 3 files",
                )
                .await?;
        }
        items.push(catalog.get(&session).await?.context("seeded item")?);
    }
    Ok(items)
}

fn emulator_env(emu: &Emulator) -> Vec<(&'static str, String)> {
    emu.env()
}

async fn match_count(app: &App) -> Result<usize> {
    let t = app
        .find("[data-testid='match-count']")
        .await?
        .text()
        .await?;
    Ok(t.replace(',', "").parse()?)
}

#[tokio::test]
async fn sessions_filter_narrows_the_table_and_explains_bad_filters() -> Result<()> {
    within(Duration::from_secs(240), async {
        step("sessions filter narrows the table and explains bad filters");
        let emu = Emulator::start();
        let table = unique_name("catalog");
        let items = seed_catalog(&emu, &table, 60).await?;
        let dirs = Dirs::new()?;
        let mut settings = base_settings(None);
        settings["endpoint_url"] = json!(emu.endpoint());
        settings["catalog_table"] = json!(table);
        settings["raw_bucket"] = json!("labpipe-raw-e2e");
        dirs.write_settings(settings)?;

        let app = App::start(&dirs, &emulator_env(&emu)).await?;
        app.goto("sessions").await?;
        app.until("all sessions", WAIT, || async {
            Ok((match_count(&app).await.ok() == Some(items.len())).then_some(()))
        })
        .await?;

        let want = items
            .iter()
            .filter(|i| {
                i.metadata["fatigue"].as_number().unwrap() > 5.0 && i.status == Status::Processed
            })
            .count();
        assert!(want > 0 && want < items.len());
        app.type_into(
            "[data-testid='filter']",
            "fatigue > 5 and status = processed",
        )
        .await?;
        app.until("the filtered count", WAIT, || async {
            Ok((match_count(&app).await.ok() == Some(want)).then_some(()))
        })
        .await?;
        let shown = app.find_all("[data-testid='session-row']").await?.len();
        assert_eq!(
            shown,
            want.min(shown),
            "the table draws at most the matching rows"
        );

        // A bad filter says what is wrong, at the column, and keeps the last good result.
        app.type_into("[data-testid='filter']", "fatige > 5")
            .await?;
        let err = app
            .wait_for("[data-testid='filter-error']", WAIT)
            .await?
            .text()
            .await?;
        assert!(err.contains("fatigue"), "suggests the right field: {err}");
        assert!(err.contains("^^^^^^"), "underlines the bad word: {err}");
        app.screenshot("sessions-filter-error").await?;

        // A good filter again, and the detail pane of a failed session with its cloud error.
        app.type_into("[data-testid='filter']", "status = failed or fatigue >= 8")
            .await?;
        app.until("no filter error", WAIT, || async {
            Ok(app
                .find_all("[data-testid='filter-error']")
                .await?
                .is_empty()
                .then_some(()))
        })
        .await?;
        let failed = items.iter().filter(|i| i.status == Status::Failed).count();
        ensure!(failed > 0);
        // Status ascending puts the few cataloged rows first, then the failed ones.
        app.find(".th:nth-child(3)").await?.click().await?;
        let mut clicked = false;
        for row in app.find_all("[data-testid='session-row']").await? {
            if row.text().await?.to_lowercase().contains("failed") {
                row.click().await?;
                clicked = true;
                break;
            }
        }
        ensure!(clicked, "a failed session is in view");
        let detail = app
            .wait_for("[data-testid='detail'] .timeline li", WAIT)
            .await?;
        let _ = detail;
        let text = app.find("[data-testid='detail']").await?.text().await?;
        assert!(
            text.contains("channel 3 is flat"),
            "detail shows the cloud error:\n{text}"
        );
        app.screenshot("sessions").await?;
        app.quit().await
    })
    .await
}

#[tokio::test]
async fn settings_persist_across_a_restart() -> Result<()> {
    within(Duration::from_secs(240), async {
        step("settings persist across a restart");
        let dirs = Dirs::new()?;
        // First run: the guided setup opens.
        let app = App::start(&dirs, &[]).await?;
        app.wait_for("[data-testid='setup']", WAIT).await?;
        app.screenshot("first-run").await?;
        app.find("[data-testid='setup'] button.link")
            .await?
            .click()
            .await?; // skip for now
        app.goto("settings").await?;
        app.set_value("[data-testid='concurrency']", "3").await?;
        app.set_value("[data-testid='quiet-period']", "7").await?;
        app.type_into(
            "[data-testid='lab-folder']",
            &dirs.root.path().display().to_string(),
        )
        .await?;
        app.find("[data-testid='save-settings']")
            .await?
            .click()
            .await?;
        app.until("settings.json", WAIT, || async {
            let text =
                std::fs::read_to_string(dirs.config().join("settings.json")).unwrap_or_default();
            Ok(text.contains("\"concurrency\": 3").then_some(()))
        })
        .await?;
        app.screenshot("settings").await?;
        app.quit().await?;

        let app = App::start(&dirs, &[]).await?;
        assert!(
            app.find_all("[data-testid='setup']").await?.is_empty(),
            "setup is not shown again"
        );
        app.goto("settings").await?;
        let value = |css: &'static str| {
            let app = &app;
            async move {
                Ok::<_, anyhow::Error>(
                    app.find(css)
                        .await?
                        .prop("value")
                        .await?
                        .unwrap_or_default(),
                )
            }
        };
        assert_eq!(value("[data-testid='concurrency']").await?, "3");
        assert_eq!(value("[data-testid='quiet-period']").await?, "7");
        assert_eq!(
            value("[data-testid='lab-folder']").await?,
            dirs.root.path().display().to_string()
        );
        app.quit().await
    })
    .await
}

#[tokio::test]
async fn logs_view_shows_the_apps_log_lines() -> Result<()> {
    within(Duration::from_secs(240), async {
        step("logs view shows the apps log lines");
        let dirs = Dirs::new()?;
        let lab = dirs.root.path().join("lab");
        make_lab(&lab, 2, false)?;
        dirs.write_settings(base_settings(Some(&lab)))?;
        let app = App::start(&dirs, &[]).await?;
        app.goto("logs").await?;
        let text = app
            .until("log lines", WAIT, || async {
                let t = app.find("[data-testid='log-lines']").await?.text().await?;
                Ok(
                    (t.contains("LabPipe app starting") && t.contains("watching lab folder"))
                        .then_some(t),
                )
            })
            .await?;
        assert!(text.contains("INFO"), "{text}");
        // The level filter hides info lines.
        app.find("[data-testid='log-level'] option[value='ERROR']")
            .await?
            .click()
            .await?;
        app.until("filtered log", WAIT, || async {
            let t = app.find("[data-testid='log-lines']").await?.text().await?;
            Ok((!t.contains("LabPipe app starting")).then_some(()))
        })
        .await?;
        app.find("[data-testid='log-level'] option[value='INFO']")
            .await?
            .click()
            .await?;
        app.screenshot("logs").await?;
        app.quit().await
    })
    .await
}

#[tokio::test]
async fn upload_puts_ready_sessions_in_the_raw_bucket() -> Result<()> {
    within(Duration::from_secs(240), async {
        step("upload puts ready sessions in the raw bucket");
        let emu = Emulator::start();
        let bucket = unique_name("raw");
        let s3 = emu.s3_client().await;
        s3.create_bucket().bucket(&bucket).send().await?;
        let dirs = Dirs::new()?;
        let lab = dirs.root.path().join("lab");
        let sessions = make_lab(&lab, 3, false)?;
        let mut settings = base_settings(Some(&lab));
        settings["endpoint_url"] = json!(emu.endpoint());
        settings["raw_bucket"] = json!(bucket);
        settings["concurrency"] = json!(2);
        dirs.write_settings(settings)?;

        let app = App::start(&dirs, &emulator_env(&emu)).await?;
        app.until("ready sessions", WAIT, || async {
            Ok(
                (app.find_all(".row[data-verdict='pass']").await?.len() == sessions.len())
                    .then_some(()),
            )
        })
        .await?;
        app.find("[data-testid='upload-all']")
            .await?
            .click()
            .await?;
        app.goto("transfers").await?;
        app.until("every upload done", Duration::from_secs(120), || async {
            Ok((app
                .find_all("section.transfer[data-state='done']")
                .await?
                .len()
                == sessions.len())
            .then_some(()))
        })
        .await?;
        app.find("section.transfer .expand").await?.click().await?;
        app.screenshot("transfers").await?;
        for s in &sessions {
            let key = labpipe_upload_manifest_key(&s.name);
            s3.head_object()
                .bucket(&bucket)
                .key(&key)
                .send()
                .await
                .with_context(|| format!("manifest {key} in S3"))?;
        }
        app.quit().await
    })
    .await
}

fn labpipe_upload_manifest_key(session: &str) -> String {
    format!("raw/{session}/manifest.json")
}

/// A Secret Service for this test: gnome-keyring on the session bus of `dbus-run-session`,
/// with its files in a temporary HOME. `None` when there is no session bus.
struct Keyring {
    child: std::process::Child,
    _home: tempfile::TempDir,
}

impl Keyring {
    fn start() -> Result<Option<Keyring>> {
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
            return Ok(None);
        }
        use std::io::Write;
        let home = tempfile::tempdir()?;
        let mut child = std::process::Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("XDG_RUNTIME_DIR", home.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("gnome-keyring-daemon (apt package gnome-keyring)")?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(b"e2e-password")?;
        std::thread::sleep(Duration::from_millis(800));
        Ok(Some(Keyring { child, _home: home }))
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn credentials_live_in_the_os_keyring() -> Result<()> {
    within(Duration::from_secs(240), async {
        step("credentials live in the os keyring");
        let Some(_keyring) = Keyring::start()? else {
            eprintln!("skipped: no D-Bus session bus (run under dbus-run-session)");
            return Ok(());
        };
        let dirs = Dirs::new()?;
        dirs.write_settings(base_settings(None))?;
        let env = [("LABPIPE_APP_KEYRING_ACCOUNT", unique_name("e2e-keys"))];
        let app = App::start(&dirs, &env).await?;
        app.goto("settings").await?;
        app.type_into("[data-testid='access-key']", "AKIAIOSFODNN7EXAMPLE")
            .await?;
        app.type_into(
            "[data-testid='secret-key']",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        .await?;
        app.find("[data-testid='store-credentials']")
            .await?
            .click()
            .await?;
        let shown = app
            .until("the stored key", WAIT, || async {
                let t = app
                    .find("[data-testid='credentials-state']")
                    .await?
                    .text()
                    .await?;
                Ok(t.contains("AKIA…MPLE").then_some(t))
            })
            .await?;
        assert!(
            !shown.contains("EXAMPLEKEY"),
            "the secret is never shown: {shown}"
        );
        let on_disk =
            std::fs::read_to_string(dirs.config().join("settings.json")).unwrap_or_default();
        assert!(
            !on_disk.contains("AKIA"),
            "credentials are not in settings.json"
        );
        app.quit().await?;

        let app = App::start(&dirs, &env).await?;
        app.goto("settings").await?;
        app.until("the key after a restart", WAIT, || async {
            let t = app
                .find("[data-testid='credentials-state']")
                .await?
                .text()
                .await?;
            Ok(t.contains("AKIA…MPLE").then_some(()))
        })
        .await?;
        app.find("[data-testid='forget-credentials']")
            .await?
            .click()
            .await?;
        app.until("forgotten", WAIT, || async {
            let t = app
                .find("[data-testid='credentials-state']")
                .await?
                .text()
                .await?;
            Ok(t.contains("Nothing stored").then_some(()))
        })
        .await?;
        app.quit().await
    })
    .await
}
