//! The desktop app end to end: the built binary, a real lab folder, the local AWS emulator,
//! driven through WebDriver like a person would. Saves the README screenshots.

use anyhow::{bail, ensure, Context, Result};
use chrono::NaiveDate;
use labpipe_catalog::{Catalog, SessionItem, Status};
use labpipe_core::LabSchema;
use labpipe_e2e_app::{step, within, App, Dirs};
use labpipe_sample::{generate, GenerateOptions};
use labpipe_tests::{object_bytes, unique_name, Emulator};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// An attribute of `el`, empty when it has none.
async fn attr(el: &fantoccini::elements::Element, name: &str) -> Result<String> {
    Ok(el.attr(name).await?.unwrap_or_default())
}

/// Settings of an app that talks to `emu`: the emulator's endpoint on top of [`base_settings`].
fn cloud_settings(lab: Option<&Path>, emu: &Emulator) -> serde_json::Value {
    let mut settings = base_settings(lab);
    settings["endpoint_url"] = json!(emu.endpoint());
    settings
}

/// A new, empty raw bucket in `emu` and an S3 client to look into it.
async fn empty_raw_bucket(emu: &Emulator) -> Result<(aws_sdk_s3::Client, String)> {
    let bucket = unique_name("raw");
    let s3 = emu.s3_client().await;
    s3.create_bucket().bucket(&bucket).send().await?;
    Ok((s3, bucket))
}

/// What the upload tests start from: a fresh emulator, an empty raw bucket and an S3 client to
/// look into it, the app's folders, and a lab folder (`<root>/lab`) of `good` sessions.
struct CloudLab {
    emu: Emulator,
    s3: aws_sdk_s3::Client,
    bucket: String,
    dirs: Dirs,
    lab: PathBuf,
    sessions: Vec<labpipe_sample::GeneratedSession>,
}

impl CloudLab {
    async fn new(good: usize) -> Result<CloudLab> {
        let emu = Emulator::start();
        let (s3, bucket) = empty_raw_bucket(&emu).await?;
        let dirs = Dirs::new()?;
        let lab = dirs.root.path().join("lab");
        let sessions = make_lab(&lab, good, false)?;
        Ok(CloudLab {
            emu,
            s3,
            bucket,
            dirs,
            lab,
            sessions,
        })
    }

    /// [`cloud_settings`] for the lab folder, uploading to the raw bucket.
    fn settings(&self) -> serde_json::Value {
        let mut settings = cloud_settings(Some(&self.lab), &self.emu);
        settings["raw_bucket"] = json!(self.bucket);
        settings
    }

    /// The app on these folders, talking to the emulator.
    async fn start_app(&self) -> Result<App> {
        App::start(&self.dirs, &self.emu.env()).await
    }
}

/// Waits until Pending shows `n` sessions with a verdict in `verdicts` ("pass", "warn", …).
async fn until_verdicts(app: &App, verdicts: &[&str], n: usize) -> Result<()> {
    let css = verdicts
        .iter()
        .map(|v| format!(".row[data-verdict='{v}']"))
        .collect::<Vec<_>>()
        .join(", ");
    app.until(&format!("{n} sessions {verdicts:?}"), WAIT, || async {
        Ok((app.find_all(&css).await?.len() == n).then_some(()))
    })
    .await
}

/// The Upload button of the Pending row `row`, once its session passed the checks and the button
/// is enabled (`what`: the wait, for the timeout's message).
async fn ready_upload(app: &App, row: &str, what: &str) -> Result<fantoccini::elements::Element> {
    app.until(what, WAIT, || async {
        let Some(b) = app
            .find_all(&format!(
                "{row}[data-verdict='pass'] [data-testid='upload']"
            ))
            .await?
            .first()
            .cloned()
        else {
            return Ok(None);
        };
        Ok(b.is_enabled().await?.then_some(b))
    })
    .await
}

/// Clicks "Upload all ready" (once the app has said which sessions are ready) and moves to the
/// Transfers view.
async fn upload_all_ready(app: &App) -> Result<()> {
    let button = app
        .until("Upload all ready enabled", WAIT, || async {
            let b = app.find("[data-testid='upload-all']").await?;
            Ok(b.is_enabled().await?.then_some(b))
        })
        .await?;
    button.click().await?;
    app.goto("transfers").await
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
            let shown = attr(&row, "data-verdict").await?;
            // `wait` folders (still being written) may settle while we look; all others must match.
            if report.verdict != labpipe_core::Verdict::Wait {
                assert_eq!(shown, report.verdict.as_str(), "verdict of {name}");
            }
        }

        // At 1280×800 every blocked session says why on its own row, in full, without
        // expanding it: the first blocking finding's whole sentence, wrapped, not cut.
        let width = app.js("return window.innerWidth").await?;
        ensure!(
            width.as_f64().is_some_and(|w| w <= 1280.0),
            "the window is at most 1280 px wide: {width}"
        );
        for (name, report) in expected
            .iter()
            .filter(|(_, r)| r.verdict == labpipe_core::Verdict::Fail)
        {
            let first = report
                .findings
                .iter()
                .find(|f| f.severity == labpipe_core::Severity::Error)
                .context("a failing session has an error")?;
            let css = format!(".row[data-session='{name}'] [data-testid='why']");
            let why = app.wait_for(&css, WAIT).await?;
            let text = why.text().await?;
            ensure!(
                text.contains(&first.message) && text.contains("Blocks upload"),
                "the row of {name} says why it is blocked ('{}'): {text}",
                first.message
            );
            let fits = app
                .js(&format!(
                    "const el = document.querySelector(\"{css}\"); \
                     el.scrollIntoView({{block: 'center'}}); \
                     const t = el.querySelector('.why-text'); const r = el.getBoundingClientRect(); \
                     return t.scrollWidth <= t.clientWidth + 1 && r.left >= 0 && r.right <= window.innerWidth \
                       && getComputedStyle(t).textOverflow !== 'ellipsis';"
                ))
                .await?;
            ensure!(
                fits == serde_json::Value::Bool(true),
                "the reason of {name} is shown whole inside the window"
            );
        }
        app.js("document.querySelector('.list').scrollTop = 0; return true")
            .await?;
        let shot = app.screenshot("pending-why-blocked").await?;
        ensure!(
            std::fs::metadata(&shot)?.len() > 10_000,
            "a real screenshot at {}",
            shot.display()
        );

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

/// Seeds `n` cataloged sessions with varied metadata and statuses (the demo generator's
/// first `n`); returns their entries.
async fn seed_catalog(emu: &Emulator, table: &str, n: usize) -> Result<Vec<SessionItem>> {
    let db = emu.dynamodb_client().await;
    labpipe_tests::create_catalog_table(&db, table).await?;
    let catalog = Catalog::new(db, table);
    let records = labpipe_e2e_app::seed::demo_sessions(n);
    catalog.import_sessions(&records).await?;
    Ok(records.into_iter().map(|r| r.item).collect())
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
        let mut settings = cloud_settings(None, &emu);
        settings["catalog_table"] = json!(table);
        settings["raw_bucket"] = json!("labpipe-raw-e2e");
        dirs.write_settings(settings)?;

        let app = App::start(&dirs, &emu.env()).await?;
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
        app.click(".th:nth-child(3)").await?;
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

/// Clicks *Test connection* and returns one line per probe once all of them are shown.
async fn test_connection(app: &App) -> Result<String> {
    app.click("[data-testid='test-connection']").await?;
    app.until("the connection probes", WAIT, || async {
        let mut lines = Vec::new();
        for el in app.find_all("[data-testid='probes'] > div").await? {
            lines.push(el.text().await?);
        }
        Ok((lines.len() >= 5).then(|| lines.join("\n")))
    })
    .await
}

/// *Test connection* runs `labpipe doctor`'s lab-PC checks with calls the uploader role holds
/// (a one-key listing of `raw/`, DescribeTable, a catalog query), and a wrong table is named with
/// what to do.
#[tokio::test]
async fn test_connection_reports_each_lab_pc_check_and_names_a_wrong_table() -> Result<()> {
    within(Duration::from_secs(240), async {
        step("test connection reports each lab PC check and names a wrong table");
        let emu = Emulator::start();
        let (_s3, bucket) = empty_raw_bucket(&emu).await?;
        let table = unique_name("catalog");
        seed_catalog(&emu, &table, 5).await?;
        let dirs = Dirs::new()?;
        let mut settings = cloud_settings(None, &emu);
        settings["raw_bucket"] = json!(bucket);
        settings["catalog_table"] = json!(table);
        dirs.write_settings(settings)?;

        // A lab PC has a working keyring: the picture of Settings shows its state, not an error.
        let keyring = Keyring::for_pictures().await?;
        let mut env = emu.env();
        env.extend(keyring.env());
        let app = App::start(&dirs, &env).await?;
        app.goto("settings").await?;
        let healthy = test_connection(&app).await?;
        for want in [
            "✓ credentials: found (access key".to_string(),
            format!("✓ raw bucket: s3://{bucket}/raw/ can be listed"),
            format!("✓ catalog table: {table} is ACTIVE"),
            "✓ recent failures: ".to_string(),
        ] {
            assert!(healthy.contains(&want), "{want:?} not in:\n{healthy}");
        }
        assert!(
            !healthy.contains('✗'),
            "a check failed on a healthy stack:\n{healthy}"
        );
        no_keyring_error(&app).await?;
        app.screenshot("settings-test-connection").await?;

        app.type_into("[data-testid='catalog-table']", "no-such-table")
            .await?;
        let wrong = test_connection(&app).await?;
        assert!(
            wrong.lines().any(|l| l.starts_with('✗')
                && l.contains("no-such-table")
                && l.contains("does not exist")),
            "the wrong table is not named:\n{wrong}"
        );

        // With the stack's uploader role set, the lab PC's key only asks for the role's
        // short-lived credentials: the credentials check shows them expiring.
        app.type_into("[data-testid='catalog-table']", &table)
            .await?;
        app.type_into(
            "[data-testid='uploader-role']",
            "arn:aws:iam::123456789012:role/lab-UploaderRole",
        )
        .await?;
        let assumed = test_connection(&app).await?;
        assert!(
            assumed
                .lines()
                .any(|l| l.starts_with("✓ credentials: found") && l.contains(", expires ")),
            "the uploader role's credentials are not in use:\n{assumed}"
        );
        assert!(!assumed.contains('✗'), "{assumed}");
        Ok(())
    })
    .await
}

/// A session the pipeline stopped moving (cataloged hours ago, nothing since, e.g. its message
/// went to a dead-letter queue) shows *stuck* on its Pending row with the reason and what to do,
/// instead of "queued" for ever; a session cataloged a minute ago does not.
#[tokio::test]
async fn a_session_the_pipeline_stopped_moving_shows_stuck_with_what_to_do() -> Result<()> {
    within(Duration::from_secs(240), async {
        step("a session the pipeline stopped moving shows stuck with what to do");
        let emu = Emulator::start();
        let dirs = Dirs::new()?;
        let lab = dirs.root.path().join("lab");
        let sessions = make_lab(&lab, 2, false)?;
        let (stuck, fresh) = (&sessions[0], &sessions[1]);
        let table = unique_name("catalog");
        let db = emu.dynamodb_client().await;
        labpipe_tests::create_catalog_table(&db, &table).await?;
        let catalog = Catalog::new(db, &table);
        let now = chrono::Utc::now();
        for (s, age) in [
            (stuck, chrono::Duration::hours(3)),
            (fresh, chrono::Duration::minutes(1)),
        ] {
            let recorded = labpipe_core::SessionId::parse(&s.name)?.recorded_at();
            let mut item =
                SessionItem::placeholder(&s.name, recorded, Status::Cataloged, now - age);
            item.status_message = Some("3 files verified against the manifest".into());
            // The overdue one's history holds an error noted after it was cataloged.
            let events = if s.name == stuck.name {
                item.event_count = 1;
                vec![labpipe_catalog::Event {
                    at: now - chrono::Duration::hours(2),
                    seq: 1,
                    status: None,
                    from: None,
                    step: "ingest".into(),
                    level: labpipe_catalog::Level::Error,
                    message: STUCK_ERROR.into(),
                }]
            } else {
                Vec::new()
            };
            catalog
                .import_sessions(&[labpipe_catalog::SessionRecord {
                    item,
                    events,
                    outputs: Vec::new(),
                }])
                .await?;
        }
        let mut settings = cloud_settings(Some(&lab), &emu);
        settings["catalog_table"] = json!(table);
        settings["raw_bucket"] = json!("labpipe-raw-e2e");
        dirs.write_settings(settings)?;

        let app = App::start(&dirs, &emu.env()).await?;
        let why = app
            .until("the stuck reason", WAIT, || async {
                let Ok(el) = app
                    .find(&format!(
                        ".row[data-session='{}'] [data-testid='stuck']",
                        stuck.name
                    ))
                    .await
                else {
                    return Ok(None);
                };
                Ok(Some(el.text().await?))
            })
            .await?;
        for want in [
            "waited to be processed for 3 h",
            "labpipe redrive",
            &stuck.name,
        ] {
            assert!(why.contains(want), "{want:?} not in {why:?}");
        }
        let state = |name: String| {
            let app = &app;
            async move {
                app.find(&format!(
                    ".row[data-session='{name}'] [data-testid='pipeline-state']"
                ))
                .await?
                .text()
                .await
                .map_err(anyhow::Error::from)
            }
        };
        assert_eq!(
            state(stuck.name.clone()).await?.trim(),
            "stuck in the pipeline"
        );
        let queued = state(fresh.name.clone()).await?;
        assert!(queued.contains("queued for processing"), "{queued}");
        assert_eq!(
            app.find_all("[data-testid='stuck']").await?.len(),
            1,
            "only the overdue session is stuck"
        );
        app.screenshot("pending-stuck").await?;

        // Its detail in Sessions says so too, with the latest error of its history.
        app.goto("sessions").await?;
        app.wait_for(
            &format!("[data-testid='session-row'][data-session='{}']", stuck.name),
            WAIT,
        )
        .await?
        .click()
        .await?;
        let detail = text_of(&app, "[data-testid='detail-stuck']", WAIT).await?;
        for want in [
            "waited to be processed for 3 h",
            "the last error in its history (ingest at",
            STUCK_ERROR,
            "labpipe redrive",
        ] {
            assert!(detail.contains(want), "{want:?} not in {detail:?}");
        }
        Ok(())
    })
    .await
}

/// The error in the stuck session's history, in
/// [`a_session_the_pipeline_stopped_moving_shows_stuck_with_what_to_do`].
const STUCK_ERROR: &str = "ingest failed on all 5 deliveries (throttled)";

#[tokio::test]
async fn a_polled_lab_folder_finds_new_sessions_without_change_events() -> Result<()> {
    within(Duration::from_secs(180), async {
        step("a polled lab folder finds new sessions without change events");
        let dirs = Dirs::new()?;
        let lab = dirs.root.path().join("lab");
        make_lab(&lab, 1, false)?;
        // Polling chosen: no native watcher exists, as on a network share the rig writes to.
        let mut settings = base_settings(Some(&lab));
        settings["watch_mode"] = json!("poll");
        settings["poll_interval_secs"] = json!(2);
        dirs.write_settings(settings)?;

        let app = App::start(&dirs, &[]).await?;
        until_verdicts(&app, &["pass", "warn"], 1).await?;
        let banner = app
            .wait_for("[data-testid='watch-polling']", WAIT)
            .await?
            .text()
            .await?;
        ensure!(
            banner.contains("every 2 s") && banner.contains("polling chosen in Settings"),
            "the Pending view says the folder is polled and why: {banner:?}"
        );

        // A session arrives the way a rig copies one: written elsewhere, then moved in whole.
        let staging = dirs.root.path().join("staging");
        let mut opts = GenerateOptions::new(&staging);
        opts.count = 1;
        opts.size_bytes = 2_000_000;
        opts.seed = 11;
        opts.start = NaiveDate::from_ymd_opt(2022, 6, 1)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap();
        let arrived = generate(&opts, |_, _| {})?.remove(0);
        std::fs::rename(&arrived.path, lab.join(&arrived.name))?;
        let seen = Instant::now();
        app.wait_for(&format!(".row[data-session='{}']", arrived.name), WAIT)
            .await?;
        eprintln!(
            "a polled folder showed the new session after {:.1} s",
            seen.elapsed().as_secs_f64()
        );
        app.screenshot("pending-polling").await?;

        app.goto("settings").await?;
        let mode = app
            .find("[data-testid='watch-mode']")
            .await?
            .prop("value")
            .await?
            .unwrap_or_default();
        ensure!(mode == "poll", "Settings shows the watch mode: {mode:?}");
        app.quit().await
    })
    .await
}

#[tokio::test]
async fn settings_persist_across_a_restart() -> Result<()> {
    within(Duration::from_secs(240), async {
        step("settings persist across a restart");
        let dirs = Dirs::new()?;
        let keyring = Keyring::for_pictures().await?;
        let env = keyring.env();
        // First run: the guided setup opens.
        let app = App::start(&dirs, &env).await?;
        app.wait_for("[data-testid='setup']", WAIT).await?;
        app.screenshot("first-run").await?;
        app.click("[data-testid='setup'] button.link").await?; // skip for now
        app.goto("settings").await?;
        app.set_value("[data-testid='concurrency']", "3").await?;
        app.set_value("[data-testid='quiet-period']", "7").await?;
        app.type_into(
            "[data-testid='lab-folder']",
            &dirs.root.path().display().to_string(),
        )
        .await?;
        app.click("[data-testid='save-settings']").await?;
        app.until("settings.json", WAIT, || async {
            let text =
                std::fs::read_to_string(dirs.config().join("settings.json")).unwrap_or_default();
            Ok(text.contains("\"concurrency\": 3").then_some(()))
        })
        .await?;
        no_keyring_error(&app).await?;
        app.screenshot("settings").await?;
        app.quit().await?;

        let app = App::start(&dirs, &env).await?;
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
        app.click("[data-testid='log-level'] option[value='ERROR']")
            .await?;
        app.until("filtered log", WAIT, || async {
            let t = app.find("[data-testid='log-lines']").await?.text().await?;
            Ok((!t.contains("LabPipe app starting")).then_some(()))
        })
        .await?;
        app.click("[data-testid='log-level'] option[value='INFO']")
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
        let cloud = CloudLab::new(3).await?;
        let (s3, bucket, sessions) = (&cloud.s3, &cloud.bucket, &cloud.sessions);
        let mut settings = cloud.settings();
        settings["concurrency"] = json!(2);
        cloud.dirs.write_settings(settings)?;

        let app = cloud.start_app().await?;
        until_verdicts(&app, &["pass"], sessions.len()).await?;
        upload_all_ready(&app).await?;
        app.until("every upload done", Duration::from_secs(120), || async {
            Ok((app
                .find_all("section.transfer[data-state='done']")
                .await?
                .len()
                == sessions.len())
            .then_some(()))
        })
        .await?;
        app.click("section.transfer .expand").await?;
        app.screenshot("transfers").await?;
        for s in sessions {
            let key = labpipe_upload_manifest_key(&s.name);
            s3.head_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .with_context(|| format!("manifest {key} in S3"))?;
        }
        app.quit().await
    })
    .await
}

/// A session uploaded earlier (a real upload from another PC: its first revision is in the
/// bucket) whose local folder was then corrected: the plain upload is refused as changed since
/// upload naming the file, before sending anything, and the Transfers view offers to upload it as
/// a correction; with a reason it goes up as revision 2 beside the first, which stays as it was.
#[tokio::test]
async fn a_corrected_session_goes_up_as_a_correction_with_its_reason() -> Result<()> {
    within(Duration::from_secs(240), async {
        step("a corrected session goes up as a correction with its reason");
        let cloud = CloudLab::new(1).await?;
        let (s3, bucket, sessions) = (&cloud.s3, &cloud.bucket, &cloud.sessions);
        let session = &sessions[0].name;
        // The first upload, a real one from another lab PC; then one data file is corrected
        // here (same size, other bytes).
        let data = files_below(&sessions[0].path)?
            .into_iter()
            .find(|f| f.ends_with(".bin"))
            .context("a data file")?;
        let first_key = labpipe_core::layout::raw_key(session, &data);
        upload_from_another_pc(
            &cloud.emu,
            bucket,
            &sessions[0].path,
            &cloud.dirs.root.path().join("first-pc"),
        )?;
        let local = sessions[0].path.join(&data);
        let first_bytes = std::fs::read(&local)?;
        let mut corrected = first_bytes.clone();
        corrected[0] ^= 0xff;
        std::fs::write(&local, &corrected)?;
        age(&local)?;
        cloud.dirs.write_settings(cloud.settings())?;

        let app = cloud.start_app().await?;
        until_verdicts(&app, &["pass"], 1).await?;
        upload_all_ready(&app).await?;
        let row = format!("section.transfer[data-session='{session}']");
        app.wait_for(
            &format!("{row}[data-state='failed']"),
            Duration::from_secs(60),
        )
        .await?;
        let why = app
            .find(&format!("{row} [role='alert']"))
            .await?
            .text()
            .await?;
        for want in [
            "changed since upload",
            format!("changed {data}").as_str(),
            "Nothing was sent",
        ] {
            assert!(why.contains(want), "{want:?} not in {why}");
        }
        // The same upload again would be refused again: only the correction is offered.
        let again = app
            .find_all(&format!("{row} [data-testid='retry-transfer']"))
            .await?;
        assert!(again.is_empty(), "a plain upload again is offered too");

        let reason = "rec re-exported with the right gain";
        upload_as_correction(&app, &row, reason, Some("transfers-correction")).await?;
        app.wait_for(
            &format!("{row}[data-state='done']"),
            Duration::from_secs(90),
        )
        .await?;
        let note = app
            .find(&format!("{row} [data-testid='correction']"))
            .await?
            .text()
            .await?;
        assert!(note.contains(reason), "{note}");

        let manifest_key = labpipe_core::layout::revision_manifest_key(session, 2);
        let manifest = object_bytes(s3, bucket, &manifest_key).await;
        let manifest: serde_json::Value = serde_json::from_slice(&manifest)?;
        assert_eq!(manifest["revision"]["number"], 2, "{manifest}");
        assert_eq!(manifest["revision"]["reason"], reason, "{manifest}");
        assert_eq!(
            object_bytes(s3, bucket, &first_key).await,
            first_bytes,
            "the first upload stays as it was"
        );
        app.quit().await
    })
    .await
}

/// One recording made by rig "A" at the lab's first session time (the same name as
/// [`make_lab`]'s first folder, other bytes: seed 11), in `dir`.
fn rig_a_recording(dir: &Path) -> Result<labpipe_sample::GeneratedSession> {
    let mut opts = GenerateOptions::new(dir);
    opts.count = 1;
    opts.size_bytes = 2_000_000;
    opts.seed = 11;
    let mut sessions = generate(&opts, |_, _| {})?;
    std::fs::write(
        dir.join("labpipe.toml"),
        "[session]\nexpected_size_mb = 2\n",
    )?;
    Ok(sessions.remove(0))
}

/// `labpipe upload FOLDER` from another lab PC (its own journal) into `bucket`: a real upload,
/// manifest and all.
fn upload_from_another_pc(emu: &Emulator, bucket: &str, folder: &Path, home: &Path) -> Result<()> {
    let out = std::process::Command::new(labpipe_tests::labpipe_bin())
        .envs(emu.env())
        .env("LABPIPE_JOURNAL", home.join("journal.sqlite3"))
        .env("LABPIPE_LOG_DIR", home.join("logs"))
        .env_remove("LABPIPE_RIG")
        .args(["upload", "--bucket", bucket])
        .arg(folder)
        .output()?;
    ensure!(
        out.status.success(),
        "labpipe upload: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A new catalog table in `emu` holding `sessions` as PROCESSED.
async fn catalog_with_processed(emu: &Emulator, sessions: &[&str]) -> Result<String> {
    let table = unique_name("catalog");
    let db = emu.dynamodb_client().await;
    labpipe_tests::create_catalog_table(&db, &table).await?;
    let catalog = Catalog::new(db, &table);
    for s in sessions {
        let recorded = labpipe_core::SessionId::parse(s)?.recorded_at();
        let item = SessionItem::placeholder(s, recorded, Status::Processed, chrono::Utc::now());
        catalog
            .import_sessions(&[labpipe_catalog::SessionRecord {
                item,
                events: Vec::new(),
                outputs: Vec::new(),
            }])
            .await?;
    }
    Ok(table)
}

/// The keys under `prefix` with their ETags.
async fn listing(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, String)>> {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await?;
    Ok(out
        .contents()
        .iter()
        .map(|o| {
            (
                o.key().unwrap_or_default().to_string(),
                o.e_tag().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// Starts a correction on the Pending or Transfers row `row` (its "upload as a correction"),
/// types `reason`, saves the screenshot `screenshot` if named, and sends it.
async fn upload_as_correction(
    app: &App,
    row: &str,
    reason: &str,
    screenshot: Option<&str>,
) -> Result<()> {
    app.find(&format!("{row} [data-testid='start-correction']"))
        .await?
        .click()
        .await?;
    app.type_into(&format!("{row} [data-testid='correction-reason']"), reason)
        .await?;
    if let Some(name) = screenshot {
        app.screenshot(name).await?;
    }
    app.find(&format!("{row} [data-testid='upload-correction']"))
        .await?
        .click()
        .await?;
    Ok(())
}

/// Sets `path`'s modification time an hour back: a file changed long enough ago for the checks'
/// quiet period (a fresh one is "still being written").
fn age(path: &Path) -> Result<()> {
    std::fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))?;
    Ok(())
}

/// The text of `css`, once it is there.
async fn text_of(app: &App, css: &str, timeout: Duration) -> Result<String> {
    app.until(css, timeout, || async {
        let Some(el) = app.find_all(css).await?.first().cloned() else {
            return Ok(None);
        };
        Ok(Some(el.text().await?))
    })
    .await
}

/// Issue 24, items 1, 2 and 8: rig A uploaded its recording; this PC's folder has the same name
/// (the same second) and other bytes, and the catalog has rig A's session PROCESSED. The Pending
/// row says *name conflict* — who uploaded the other recording, when, what differs, and the rig
/// id in Settings — never "processed", and offers no Upload; the header counts it as a conflict,
/// not as ready. With a rig id in Settings the folder is session `<name>_rigB`, ready, and goes
/// up beside rig A's, whose objects stay as they were.
#[tokio::test]
async fn a_folder_under_a_taken_name_shows_a_name_conflict_then_uploads_with_a_rig_id() -> Result<()>
{
    within(Duration::from_secs(300), async {
        step("a folder under a taken name shows a name conflict, then uploads with a rig id");
        let cloud = CloudLab::new(1).await?;
        let (s3, bucket) = (&cloud.s3, &cloud.bucket);
        let rig_a = rig_a_recording(&cloud.dirs.root.path().join("rig-a"))?;
        let session = cloud.sessions[0].name.clone();
        ensure!(rig_a.name == session, "both recorded in the same second");
        upload_from_another_pc(
            &cloud.emu,
            bucket,
            &rig_a.path,
            &cloud.dirs.root.path().join("rig-a-pc"),
        )?;
        let theirs = listing(
            s3,
            bucket,
            &labpipe_core::layout::raw_session_prefix(&session),
        )
        .await?;
        let table = catalog_with_processed(&cloud.emu, &[&session]).await?;
        let mut settings = cloud.settings();
        settings["catalog_table"] = json!(table);
        cloud.dirs.write_settings(settings)?;

        let app = cloud.start_app().await?;
        let row = format!(".row[data-session='{session}']");
        let why = text_of(&app, &format!("{row} [data-testid='name-conflict']"), WAIT).await?;
        for want in [
            format!("a different recording already uses the name {session}").as_str(),
            "uploaded 20",
            format!("from {}", labpipe_core::machine::host_name()).as_str(),
            "none of its data files is in that upload",
            "Rig id",
        ] {
            ensure!(why.contains(want), "{want:?} not in {why:?}");
        }
        let state = app
            .find(&format!("{row} [data-testid='pipeline-state']"))
            .await?
            .text()
            .await?;
        ensure!(state.trim() == "name conflict", "state shown: {state:?}");
        ensure!(
            !app.find(&format!("{row} [data-testid='upload']"))
                .await?
                .is_enabled()
                .await?,
            "Upload is not offered under a taken name"
        );
        let conflicts = app
            .find("[data-testid='count-conflict']")
            .await?
            .text()
            .await?;
        ensure!(conflicts.contains("1 name conflict"), "{conflicts:?}");
        ensure!(
            app.find_all("[data-testid='count-ready']")
                .await?
                .is_empty(),
            "nothing counted ready"
        );
        ensure!(
            !app.find("[data-testid='upload-all']")
                .await?
                .is_enabled()
                .await?,
            "Upload all ready is off"
        );
        app.screenshot("pending-name-conflict").await?;

        // The way forward: a rig id for this PC, in Settings.
        app.goto("settings").await?;
        app.type_into("[data-testid='rig-id']", "rigB").await?;
        app.click("[data-testid='save-settings']").await?;
        app.goto("pending").await?;
        let ours_now = format!("{session}_rigB");
        let row = format!(".row[data-session='{ours_now}']");
        let upload = ready_upload(&app, &row, "the rig's session is ready").await?;
        let ready = app
            .find("[data-testid='count-ready']")
            .await?
            .text()
            .await?;
        ensure!(ready.contains("1 ready to upload"), "{ready:?}");
        upload.click().await?;
        app.goto("transfers").await?;
        app.wait_for(
            &format!("section.transfer[data-session='{ours_now}'][data-state='done']"),
            Duration::from_secs(90),
        )
        .await?;
        let manifest = object_bytes(s3, bucket, &labpipe_upload_manifest_key(&ours_now)).await;
        let manifest: serde_json::Value = serde_json::from_slice(&manifest)?;
        ensure!(manifest["session"] == ours_now.as_str(), "{manifest}");
        ensure!(manifest["uploaded_by"]["rig"] == "rigB", "{manifest}");
        ensure!(
            listing(
                s3,
                bucket,
                &labpipe_core::layout::raw_session_prefix(&session)
            )
            .await?
                == theirs,
            "rig A's upload stays as it was"
        );
        app.quit().await
    })
    .await
}

/// Issue 24, item 2: a session uploaded from the app, then changed in the lab folder (a file
/// added, one rewritten). The Pending row says *changed since upload*, naming both files and the
/// upload it differs from — not "uploaded" — and offers a correction, which goes up as revision 2.
#[tokio::test]
async fn a_folder_changed_after_its_upload_says_so_and_goes_up_as_a_correction() -> Result<()> {
    within(Duration::from_secs(300), async {
        step("a folder changed after its upload says so and goes up as a correction");
        let cloud = CloudLab::new(1).await?;
        let (s3, bucket, sessions) = (&cloud.s3, &cloud.bucket, &cloud.sessions);
        let session = sessions[0].name.clone();
        let table = catalog_with_processed(&cloud.emu, &[]).await?;
        let mut settings = cloud.settings();
        settings["catalog_table"] = json!(table);
        cloud.dirs.write_settings(settings)?;

        let app = cloud.start_app().await?;
        let row = format!(".row[data-session='{session}']");
        until_verdicts(&app, &["pass"], 1).await?;
        upload_all_ready(&app).await?;
        app.wait_for(
            &format!("section.transfer[data-session='{session}'][data-state='done']"),
            Duration::from_secs(90),
        )
        .await?;
        app.goto("pending").await?;
        app.until("Pending says uploaded", WAIT, || async {
            let el = app.find(&row).await?;
            Ok((attr(&el, "data-pipeline").await? == "UPLOADED").then_some(()))
        })
        .await?;

        // The technician changes the folder after the upload.
        let mut data: Vec<String> = files_below(&sessions[0].path)?
            .into_iter()
            .filter(|f| f.starts_with("rec_") && f.ends_with(".bin"))
            .collect();
        data.sort();
        ensure!(data.len() >= 2, "{data:?}");
        let first = sessions[0].path.join(&data[0]);
        let mut bytes = std::fs::read(&first)?;
        bytes[0] ^= 0xff;
        std::fs::write(&first, &bytes)?;
        age(&first)?;
        let added = format!("rec_{:03}.bin", data.len());
        let extra = sessions[0].path.join(&added);
        std::fs::copy(sessions[0].path.join(&data[1]), &extra)?;
        age(&extra)?;

        let why = text_of(
            &app,
            &format!("{row} [data-testid='changed-since-upload']"),
            WAIT,
        )
        .await?;
        for want in [
            "changed since upload",
            format!("added {added}").as_str(),
            format!("changed {}", data[0]).as_str(),
            "uploaded 20",
            "as a correction",
        ] {
            ensure!(why.contains(want), "{want:?} not in {why:?}");
        }
        let state = app
            .find(&format!("{row} [data-testid='pipeline-state']"))
            .await?
            .text()
            .await?;
        ensure!(
            state.trim() == "changed since upload",
            "state shown: {state:?}"
        );
        let changed = app
            .find("[data-testid='count-changed']")
            .await?
            .text()
            .await?;
        ensure!(changed.contains("1 changed since upload"), "{changed:?}");
        app.screenshot("pending-changed-since-upload").await?;

        let reason = "a take added, the first file re-exported";
        upload_as_correction(&app, &row, reason, None).await?;
        let manifest = app
            .until(
                "revision 2 in the bucket",
                Duration::from_secs(90),
                || async {
                    let Ok(got) = s3
                        .get_object()
                        .bucket(bucket)
                        .key(labpipe_core::layout::revision_manifest_key(&session, 2))
                        .send()
                        .await
                    else {
                        return Ok(None);
                    };
                    Ok(Some(got.body.collect().await?.into_bytes()))
                },
            )
            .await?;
        let manifest: serde_json::Value = serde_json::from_slice(&manifest)?;
        ensure!(manifest["revision"]["reason"] == reason, "{manifest}");
        app.quit().await
    })
    .await
}

/// The lab's status changes reach the stack's client log group from the app: a session folder
/// refused by its checks while the app runs (REJECTED, with the finding) and an upload
/// (UPLOADING, UPLOADED), sent as soon as the upload ends.
#[tokio::test]
async fn the_apps_status_changes_reach_the_client_log_group() -> Result<()> {
    within(Duration::from_secs(240), async {
        step("the app's status changes reach the client log group");
        let emu = Emulator::start();
        let (_s3, bucket) = empty_raw_bucket(&emu).await?;
        let logs = aws_sdk_cloudwatchlogs::Client::new(&emu.sdk_config().await);
        let group = unique_name("/labpipe/clients");
        logs.create_log_group()
            .log_group_name(&group)
            .send()
            .await?;
        let dirs = Dirs::new()?;
        let lab = dirs.root.path().join("lab");
        let sessions = make_lab(&lab, 1, false)?;
        let good = &sessions[0].name;
        let mut settings = cloud_settings(Some(&lab), &emu);
        settings["raw_bucket"] = json!(bucket);
        settings["client_log_group"] = json!(group);
        dirs.write_settings(settings)?;

        let app = App::start(&dirs, &emu.env()).await?;
        until_verdicts(&app, &["pass"], 1).await?;
        // A session folder that appears while the app runs and fails its checks: a copy of the
        // good one under another recording time, with unreadable metadata and an old mtime (a
        // fresh folder would be "still being written").
        let bad = "20210301_100000";
        let staging = dirs.root.path().join(bad);
        std::fs::create_dir(&staging)?;
        for f in files_below(&sessions[0].path)? {
            let to = staging.join(&f);
            std::fs::create_dir_all(to.parent().context("a parent")?)?;
            std::fs::copy(sessions[0].path.join(&f), to)?;
        }
        std::fs::write(staging.join("metadata.txt"), "this is not metadata\n")?;
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        for f in files_below(&staging)? {
            std::fs::File::options()
                .write(true)
                .open(staging.join(&f))?
                .set_modified(old)?;
        }
        std::fs::rename(&staging, lab.join(bad))?;
        until_verdicts(&app, &["fail"], 1).await?;

        upload_all_ready(&app).await?;
        app.wait_for(
            &format!("section.transfer[data-session='{good}'][data-state='done']"),
            Duration::from_secs(90),
        )
        .await?;

        let records = app
            .until(
                "the records in the client log group",
                Duration::from_secs(60),
                || async {
                    let mut out = Vec::new();
                    let page = logs
                        .filter_log_events()
                        .log_group_name(&group)
                        .send()
                        .await?;
                    for e in page.events() {
                        out.push(serde_json::from_str::<serde_json::Value>(
                            e.message().unwrap_or_default(),
                        )?);
                    }
                    let has = |kind: &str, session: &str| {
                        out.iter()
                            .any(|r| r["kind"] == kind && r["session"] == session)
                    };
                    Ok((has("REJECTED", bad) && has("UPLOADED", good)).then_some(out))
                },
            )
            .await?;
        let rejected = records
            .iter()
            .find(|r| r["kind"] == "REJECTED")
            .context("REJECTED")?;
        assert!(
            rejected["reason"]
                .as_str()
                .is_some_and(|r| r.contains("metadata")),
            "the finding travels with the record: {rejected}"
        );
        assert_eq!(rejected["program"], "labpipe-app");
        assert!(
            records
                .iter()
                .any(|r| r["kind"] == "UPLOADING" && r["session"] == good.as_str()),
            "{records:?}"
        );
        app.quit().await
    })
    .await
}

/// Free disk space's *Check now* runs `labpipe clean`'s checks over the lab folder from the app:
/// a session the catalog does not know stays, with the reason, and nothing is deleted.
#[tokio::test]
async fn free_disk_space_check_lists_what_stays_and_why_and_deletes_nothing() -> Result<()> {
    within(Duration::from_secs(240), async {
        step("free disk space check lists what stays and why");
        let emu = Emulator::start();
        let (_s3, bucket) = empty_raw_bucket(&emu).await?;
        let table = unique_name("catalog");
        labpipe_tests::create_catalog_table(&emu.dynamodb_client().await, &table).await?;
        let dirs = Dirs::new()?;
        let lab = dirs.root.path().join("lab");
        let sessions = make_lab(&lab, 1, false)?;
        let mut settings = cloud_settings(Some(&lab), &emu);
        settings["raw_bucket"] = json!(bucket);
        settings["catalog_table"] = json!(table);
        dirs.write_settings(settings)?;

        let app = App::start(&dirs, &emu.env()).await?;
        app.goto("settings").await?;
        app.click("[data-testid='clean-on']").await?;
        app.click("[data-testid='check-cleanup']").await?;
        let row = app
            .wait_for(
                &format!(
                    "[data-testid='cleanup-report'] li[data-session='{}']",
                    sessions[0].name
                ),
                Duration::from_secs(60),
            )
            .await?;
        assert_eq!(attr(&row, "data-action").await?, "kept");
        let text = row.text().await?;
        assert!(text.contains("not in the catalog"), "{text}");
        app.screenshot("settings-free-disk-space").await?;
        assert!(sessions[0].path.is_dir(), "a check deletes nothing");
        app.quit().await
    })
    .await
}

fn labpipe_upload_manifest_key(session: &str) -> String {
    labpipe_core::layout::manifest_key(session)
}

/// Files under `dir`, as paths relative to it with `/` separators.
fn files_below(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir)?.components();
                let rel: Vec<String> = rel
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(rel.join("/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `data-bytes-done` of one transfer row, with its state.
async fn transfer_progress(app: &App, session: &str) -> Result<(String, u64)> {
    let row = app
        .find(&format!("section.transfer[data-session='{session}']"))
        .await?;
    let state = attr(&row, "data-state").await?;
    let bytes = app
        .find(&format!(
            "section.transfer[data-session='{session}'] [data-testid='transfer-bytes']"
        ))
        .await?;
    let done = attr(&bytes, "data-bytes-done").await?.parse()?;
    Ok((state, done))
}

#[tokio::test]
async fn pausing_an_upload_holds_it_and_resume_continues_from_what_was_sent() -> Result<()> {
    within(Duration::from_secs(300), async {
        step("pause a running upload, then resume it");
        const PART: u64 = 16 * 1024 * 1024;
        let emu = Emulator::start();
        let (s3, bucket) = empty_raw_bucket(&emu).await?;
        let dirs = Dirs::new()?;
        let lab = dirs.root.path().join("lab");
        // Recording files of 20 MB and more: each is a multipart upload of 16 MiB parts.
        let mut opts = GenerateOptions::new(&lab);
        opts.count = 1;
        opts.size_bytes = 120_000_000;
        opts.seed = 11;
        let session = generate(&opts, |_, _| {})?.remove(0);
        std::fs::write(
            lab.join("labpipe.toml"),
            "[session]\nexpected_size_mb = 120\n",
        )?;
        let mut settings = cloud_settings(Some(&lab), &emu);
        settings["raw_bucket"] = json!(bucket);
        settings["concurrency"] = json!(2);
        // One 16 MiB part every ~3.4 s: slow enough to pause between two parts.
        settings["bandwidth_mb_per_sec"] = json!(5.0);
        dirs.write_settings(settings)?;

        let app = App::start(&dirs, &emu.env()).await?;
        until_verdicts(&app, &["pass", "warn"], 1).await?;
        upload_all_ready(&app).await?;
        let name = session.name.as_str();
        app.until("the first part acknowledged", Duration::from_secs(60), || async {
            let (state, done) = transfer_progress(&app, name).await?;
            Ok((state == "running" && done >= PART).then_some(()))
        })
        .await?;
        app.find(&format!(
            "section.transfer[data-session='{name}'] [data-testid='pause-transfer']"
        ))
        .await?
        .click()
        .await?;
        let held = app
            .until("paused", WAIT, || async {
                let (state, done) = transfer_progress(&app, name).await?;
                Ok((state == "paused").then_some(done))
            })
            .await?;
        let badge = app
            .find(&format!(
                "section.transfer[data-session='{name}'] [data-testid='transfer-state']"
            ))
            .await?
            .text()
            .await?;
        ensure!(
            badge.eq_ignore_ascii_case("paused"),
            "the badge says {badge:?}"
        );
        app.screenshot("transfers-paused").await?;
        // Long enough for a further part at the cap to arrive, had the upload gone on.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (state, later) = transfer_progress(&app, name).await?;
        ensure!(
            state == "paused" && later == held,
            "a paused upload stands still: {held} bytes when paused, {later} bytes ({state}) 5 s later"
        );
        ensure!(
            s3.head_object()
                .bucket(&bucket)
                .key(labpipe_upload_manifest_key(name))
                .send()
                .await
                .is_err(),
            "no manifest while paused"
        );

        app.find(&format!(
            "section.transfer[data-session='{name}'] [data-testid='resume-transfer']"
        ))
        .await?
        .click()
        .await?;
        app.until("the upload done", Duration::from_secs(120), || async {
            Ok((transfer_progress(&app, name).await?.0 == "done").then_some(()))
        })
        .await?;
        let resumed = app
            .find(&format!(
                "section.transfer[data-session='{name}'] [data-testid='bytes-resumed']"
            ))
            .await?;
        let saved: u64 = attr(&resumed, "data-bytes").await?.parse()?;
        ensure!(
            saved >= PART,
            "the resumed run reused the acknowledged parts: {saved} bytes resumed"
        );
        let text = resumed.text().await?;
        ensure!(text.contains("already in the cloud"), "{text}");

        for rel in files_below(&session.path)? {
            let key = labpipe_core::layout::raw_key(name, &rel);
            let remote = s3
                .get_object()
                .bucket(&bucket)
                .key(&key)
                .send()
                .await
                .with_context(|| format!("{key} in S3"))?
                .body
                .collect()
                .await?
                .into_bytes();
            let local = std::fs::read(session.path.join(&rel))?;
            ensure!(remote == local, "{key} differs from the local file");
        }
        s3.head_object()
            .bucket(&bucket)
            .key(labpipe_upload_manifest_key(name))
            .send()
            .await
            .context("the manifest after the resumed upload")?;
        app.quit().await
    })
    .await
}

/// A Secret Service for this test: gnome-keyring on the session bus of `dbus-run-session`,
/// with its files in a temporary HOME. `None` when there is no session bus.
/// A Secret Service of the test's own: a private session bus and a gnome-keyring-daemon on it.
/// Its own bus, because on a shared one any earlier app that read the keyring has made the bus
/// start the distribution's daemon (real home, locked keyring), which then owns the name.
struct Keyring {
    bus: std::process::Child,
    child: std::process::Child,
    /// `DBUS_SESSION_BUS_ADDRESS` of the private bus, for the app under test.
    address: String,
    _home: tempfile::TempDir,
}

/// The keyring's state as Settings shows it holds no error (the pictures in the README show a
/// lab PC whose keyring works).
async fn no_keyring_error(app: &App) -> Result<()> {
    let state = app
        .find("[data-testid='credentials-state']")
        .await?
        .text()
        .await?;
    ensure!(
        !state.contains("could not be used"),
        "Settings shows a keyring error: {state}"
    );
    Ok(())
}

impl Keyring {
    /// A keyring for a test whose screenshots show Settings; a run without a session bus fails
    /// (scripts/test.sh runs this suite under dbus-run-session).
    async fn for_pictures() -> Result<Keyring> {
        Keyring::start()
            .await?
            .context("no D-Bus session bus for the keyring: run this suite under dbus-run-session")
    }

    /// What the app under test needs to use this keyring, under an account of its own.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LABPIPE_APP_KEYRING_ACCOUNT", unique_name("e2e-keys")),
            ("DBUS_SESSION_BUS_ADDRESS", self.address.clone()),
        ]
    }

    async fn start() -> Result<Option<Keyring>> {
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
            return Ok(None);
        }
        use std::io::{BufRead, Write};
        let home = tempfile::tempdir()?;
        let mut bus = std::process::Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("dbus-daemon (apt package dbus)")?;
        let mut address = String::new();
        std::io::BufReader::new(bus.stdout.take().context("dbus-daemon stdout")?)
            .read_line(&mut address)?;
        let address = address.trim().to_string();
        ensure!(!address.is_empty(), "dbus-daemon printed no address");
        let mut child = std::process::Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
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
        let mut keyring = Keyring {
            bus,
            child,
            address,
            _home: home,
        };
        keyring.until_it_owns_the_secrets_name().await?;
        Ok(Some(keyring))
    }

    /// Waits until this daemon owns `org.freedesktop.secrets`. Asking earlier would make the
    /// bus start another daemon (the distribution's service file, with the real home), whose
    /// locked keyring the app cannot use.
    async fn until_it_owns_the_secrets_name(&mut self) -> Result<()> {
        let bus = zbus::connection::Builder::address(self.address.as_str())
            .build()
            .await?;
        let dbus = zbus::fdo::DBusProxy::new(&bus).await?;
        let name = zbus::names::BusName::try_from("org.freedesktop.secrets")?;
        let t0 = Instant::now();
        loop {
            if dbus.name_has_owner(name.clone()).await? {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "gnome-keyring-daemon exited before owning org.freedesktop.secrets: {status}"
                );
            }
            ensure!(
                t0.elapsed() < Duration::from_secs(20),
                "gnome-keyring-daemon did not own org.freedesktop.secrets within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        for process in [&mut self.child, &mut self.bus] {
            unsafe {
                libc::kill(process.id() as libc::pid_t, libc::SIGTERM);
            }
            let _ = process.wait();
        }
    }
}

#[tokio::test]
async fn credentials_live_in_the_os_keyring() -> Result<()> {
    within(Duration::from_secs(240), async {
        step("credentials live in the os keyring");
        // Without a session bus there is no keyring to test: that is a failed run, not a pass
        // (scripts/test.sh runs this suite under dbus-run-session).
        let Some(keyring) = Keyring::start().await? else {
            bail!("no D-Bus session bus, so the OS keyring cannot be tested: run this suite under dbus-run-session");
        };
        let dirs = Dirs::new()?;
        dirs.write_settings(base_settings(None))?;
        let env = [
            ("LABPIPE_APP_KEYRING_ACCOUNT", unique_name("e2e-keys")),
            ("DBUS_SESSION_BUS_ADDRESS", keyring.address.clone()),
        ];
        let app = App::start(&dirs, &env).await?;
        app.goto("settings").await?;
        app.type_into("[data-testid='access-key']", "AKIAIOSFODNN7EXAMPLE")
            .await?;
        app.type_into(
            "[data-testid='secret-key']",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        .await?;
        app.click("[data-testid='store-credentials']").await?;
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
        app.click("[data-testid='forget-credentials']").await?;
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

/// A stand-in for the desktop's notification daemon: owns `org.freedesktop.Notifications` on
/// the session bus of `dbus-run-session` and records what the app asks it to show.
struct NotificationDaemon {
    shown: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

struct DaemonInterface {
    shown: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    next_id: u32,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl DaemonInterface {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &mut self,
        _app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        _hints: std::collections::HashMap<String, zbus::OwnedVariant>,
        _expire_timeout: i32,
    ) -> u32 {
        self.shown.lock().expect("shown").push((summary, body));
        self.next_id += 1;
        self.next_id
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "e2e-notifications".into(),
            "labpipe".into(),
            "1".into(),
            "1.2".into(),
        )
    }

    fn close_notification(&self, _id: u32) {}
}

impl NotificationDaemon {
    /// Serves on a thread and runtime of its own, so the daemon answers while the test's own
    /// runtime is busy driving the app.
    fn start() -> Result<NotificationDaemon> {
        ensure!(
            std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
            "no D-Bus session bus: run the app tests under dbus-run-session (see scripts/test.sh)"
        );
        let shown = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let recorder = shown.clone();
        std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            runtime.block_on(async move {
                let built = zbus::connection::Builder::session()
                    .name("org.freedesktop.Notifications")
                    .serve_at(
                        "/org/freedesktop/Notifications",
                        DaemonInterface {
                            shown: recorder,
                            next_id: 0,
                        },
                    )
                    .build()
                    .await;
                match built {
                    Ok(connection) => {
                        let _ = ready_tx.send(Ok(()));
                        // Serve until the test process ends.
                        std::future::pending::<()>().await;
                        drop(connection);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                    }
                }
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .context("the notification daemon did not start")?
            .map_err(|e| {
                anyhow::anyhow!("owning org.freedesktop.Notifications on the session bus: {e}")
            })?;
        Ok(NotificationDaemon { shown })
    }

    fn shown(&self) -> Vec<(String, String)> {
        self.shown.lock().expect("shown").clone()
    }
}

/// The stack of `infra/template.yaml` deployed to `emu` by `scripts/deploy-local.sh` (the same
/// path as the demo), its outputs, and the backend's `local-runner` polling its queues.
struct DeployedStack {
    outputs: serde_json::Value,
    runner: std::process::Child,
    runner_log: std::path::PathBuf,
}

impl DeployedStack {
    fn start(emu: &Emulator, dir: &Path) -> Result<DeployedStack> {
        Self::start_with(emu, dir, &[])
    }

    /// With `runner_env` set for the backend only (e.g. an S3 endpoint it cannot reach).
    fn start_with(
        emu: &Emulator,
        dir: &Path,
        runner_env: &[(&str, &str)],
    ) -> Result<DeployedStack> {
        let outputs_path = dir.join("outputs.json");
        let status = std::process::Command::new("bash")
            .arg(labpipe_e2e_app::repo_root().join("scripts/deploy-local.sh"))
            .args(["--endpoint", &emu.endpoint(), "--outputs"])
            .arg(&outputs_path)
            .envs(emu.env())
            .stdout(std::process::Stdio::null())
            .status()
            .context("scripts/deploy-local.sh")?;
        ensure!(
            status.success(),
            "deploying the stack to the emulator failed"
        );
        let outputs: serde_json::Value = serde_json::from_slice(&std::fs::read(&outputs_path)?)?;
        let runner_bin = labpipe_e2e_app::app_bin().with_file_name("local-runner");
        ensure!(
            runner_bin.is_file(),
            "{} is missing: cargo build -p labpipe-backend --bin local-runner",
            runner_bin.display()
        );
        let runner_log = dir.join("local-runner.log");
        let runner = std::process::Command::new(&runner_bin)
            .args(["--wait", "1", "--retry-after", "2", "--outputs"])
            .arg(&outputs_path)
            .envs(emu.env())
            .envs(runner_env.iter().copied())
            .stdout(std::fs::File::create(&runner_log)?)
            .stderr(std::fs::File::options().append(true).open(&runner_log)?)
            .spawn()
            .context("starting local-runner")?;
        Ok(DeployedStack {
            outputs,
            runner,
            runner_log,
        })
    }

    fn output(&self, key: &str) -> Result<String> {
        self.outputs[key]
            .as_str()
            .map(String::from)
            .with_context(|| format!("stack output {key}"))
    }
}

impl Drop for DeployedStack {
    fn drop(&mut self) {
        let _ = self.runner.kill();
        let _ = self.runner.wait();
        if std::thread::panicking() {
            eprintln!(
                "local-runner log:\n{}",
                std::fs::read_to_string(&self.runner_log).unwrap_or_default()
            );
        }
    }
}

/// Issue 24 item 5: an upload the backend cannot catalog is never shown as UPLOADED forever.
/// Here ingest cannot read the raw bucket on any delivery of the S3 event, so the event ends in
/// the ingest dead-letter queue; ingest's last delivery records the session `FAILED` with where
/// the event is and the operator's command, and Pending shows exactly that.
#[tokio::test]
async fn an_upload_ingest_cannot_catalog_shows_failed_with_the_reason_not_uploaded() -> Result<()> {
    within(Duration::from_secs(300), async {
        step("an upload ingest cannot catalog shows failed with the reason");
        let emu = Emulator::start();
        let dirs = Dirs::new()?;
        // Nothing listens on port 9: every S3 read of the backend fails.
        let stack = DeployedStack::start_with(
            &emu,
            dirs.root.path(),
            &[("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")],
        )?;
        let lab = dirs.root.path().join("lab");
        let sessions = make_lab(&lab, 1, false)?;
        let mut settings = cloud_settings(Some(&lab), &emu);
        settings["raw_bucket"] = json!(stack.output("RawBucket")?);
        settings["catalog_table"] = json!(stack.output("CatalogTable")?);
        dirs.write_settings(settings)?;
        let target = &sessions[0].name;
        let row = format!(".row[data-session='{target}']");

        let app = App::start(&dirs, &emu.env()).await?;
        app.goto("pending").await?;
        let upload = ready_upload(&app, &row, "the session is ready to upload").await?;
        upload.click().await?;
        app.until("Pending says failed", Duration::from_secs(180), || async {
            let el = app.find(&row).await?;
            Ok((attr(&el, "data-pipeline").await? == "FAILED").then_some(()))
        })
        .await?;
        let why = app
            .find(&format!("{row} [data-testid='failed']"))
            .await?
            .text()
            .await?;
        for want in [
            "ingest",
            "ingest dead-letter queue",
            "labpipe redrive --queue ingest",
        ] {
            ensure!(why.contains(want), "{want:?} not in {why:?}");
        }
        let state = app
            .find(&format!("{row} [data-testid='pipeline-state']"))
            .await?
            .text()
            .await?;
        ensure!(
            !state.to_lowercase().contains("uploaded"),
            "pipeline state shown: {state}"
        );
        drop(stack);
        app.quit().await
    })
    .await
}

/// The technician's whole path with clicks only: a new session in the lab folder → Upload →
/// the backend ingests and preprocesses it → Pending and Sessions say PROCESSED, with its
/// outputs, and the desktop shows a notification.
#[tokio::test]
async fn uploading_a_session_ends_processed_in_sessions() -> Result<()> {
    within(Duration::from_secs(300), async {
        step("uploading a session ends processed in sessions");
        let emu = Emulator::start();
        let dirs = Dirs::new()?;
        let stack = DeployedStack::start(&emu, dirs.root.path())?;
        let daemon = NotificationDaemon::start()?;
        let lab = dirs.root.path().join("lab");
        let sessions = make_lab(&lab, 2, false)?;
        let mut settings = cloud_settings(Some(&lab), &emu);
        settings["raw_bucket"] = json!(stack.output("RawBucket")?);
        settings["catalog_table"] = json!(stack.output("CatalogTable")?);
        dirs.write_settings(settings)?;
        let target = &sessions[0].name;
        let row = format!(".row[data-session='{target}']");

        let app = App::start(&dirs, &emu.env()).await?;
        // A researcher has the (still empty) catalog loaded in Sessions before the upload.
        app.goto("sessions").await?;
        app.until("the empty catalog loaded", WAIT, || async {
            Ok((match_count(&app).await.ok() == Some(0)).then_some(()))
        })
        .await?;
        app.goto("pending").await?;
        let upload = ready_upload(&app, &row, "the session is ready to upload").await?;
        upload.click().await?;
        // Sessions follows the upload without a Refresh: the session joins the loaded catalog
        // and its row moves on to PROCESSED while the view is open.
        app.goto("sessions").await?;
        let session_row = format!("[data-testid='session-row'][data-session='{target}']");
        app.until(
            "Sessions shows it processed",
            Duration::from_secs(180),
            || async {
                let rows = app.find_all(&session_row).await?;
                let Some(el) = rows.first() else {
                    return Ok(None);
                };
                let text = el.text().await?.to_lowercase();
                Ok(text.contains("processed").then_some(()))
            },
        )
        .await?;
        // Pending follows the session through the pipeline too: uploaded → … → processed.
        app.goto("pending").await?;
        app.until("Pending says processed", WAIT, || async {
            let el = app.find(&row).await?;
            Ok((attr(&el, "data-pipeline").await? == "PROCESSED").then_some(()))
        })
        .await?;
        let state = app
            .find(&format!("{row} [data-testid='pipeline-state']"))
            .await?
            .text()
            .await?;
        ensure!(state.contains("processed"), "pipeline state shown: {state}");
        let upload_enabled = app
            .find(&format!("{row} [data-testid='upload']"))
            .await?
            .is_enabled()
            .await?;
        ensure!(
            !upload_enabled,
            "a processed session must not be offered for upload again"
        );
        // The other session was never uploaded: still offered.
        let other = format!(
            ".row[data-session='{}'] [data-testid='upload']",
            sessions[1].name
        );
        ensure!(
            app.find(&other).await?.is_enabled().await?,
            "the other session is still uploadable"
        );
        app.screenshot("pending-processed").await?;

        // The researcher's side: Sessions shows it PROCESSED with its outputs.
        app.goto("sessions").await?;
        app.wait_for(&session_row, WAIT).await?.click().await?;
        let detail = app
            .until("detail with outputs", WAIT, || async {
                let text = app.find("[data-testid='detail']").await?.text().await?;
                Ok((text.contains("processed") && text.contains("v1 ·")).then_some(text))
            })
            .await?;
        ensure!(
            detail.contains("ingest") && detail.contains("preprocess"),
            "the timeline names the backend's steps: {detail}"
        );
        app.screenshot("session-detail").await?;

        // One notification for the processed session, saying so.
        let notices = app
            .until("a desktop notification", WAIT, || async {
                let shown = daemon.shown();
                Ok((!shown.is_empty()).then_some(shown))
            })
            .await?;
        ensure!(
            notices
                .iter()
                .any(|(title, body)| title == &format!("{target} is processed")
                    && body.contains("v1")),
            "notifications shown: {notices:?}"
        );
        app.quit().await
    })
    .await
}
