//! Benchmarks of the desktop app with a large catalog (ignored by default: seeding takes a while).
//!
//!   xvfb-run -a dbus-run-session -- cargo test -p labpipe-e2e-app --test bench -- --ignored --nocapture
//!
//! Prints: catalog load time, filter latency (Rust evaluation and typing → table updated),
//! sort time, and the idle CPU and memory of the app's processes with the table loaded.

use anyhow::{Context, Result};
use labpipe_e2e_app::{App, Dirs};
use labpipe_tests::{unique_name, Emulator};
use serde_json::json;
use std::time::{Duration, Instant};

/// `LABPIPE_BENCH_n`, else 10,000 (seeding that many into the emulator takes > 10 min).
fn sessions() -> usize {
    std::env::var("LABPIPE_BENCH_n")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// (utime + stime ticks, rss kB) of a process.
fn proc_stat(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks, rss))
}

/// The app and its WebKit helper processes.
fn app_pids() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        if comm.starts_with("labpipe-app")
            || comm.starts_with("WebKitWebProces")
            || comm.starts_with("WebKitNetworkPr")
        {
            out.push((pid, comm));
        }
    }
    out
}

async fn count(app: &App) -> Result<usize> {
    let t = app
        .find("[data-testid='match-count']")
        .await?
        .text()
        .await?;
    Ok(t.replace(',', "").parse()?)
}

#[tokio::test]
#[ignore = "seeds 10,000 sessions; run by hand for the numbers in the README"]
async fn ten_thousand_sessions() -> Result<()> {
    let n = sessions();
    let emu = Emulator::start();
    let table = unique_name("catalog");
    let t = Instant::now();
    let status =
        std::process::Command::new(labpipe_e2e_app::app_bin().with_file_name("seed-catalog"))
            .args([
                "--endpoint",
                &emu.endpoint(),
                "--table",
                &table,
                "--count",
                &n.to_string(),
                "--create",
            ])
            .envs(emu.env())
            .status()
            .context("seed-catalog (cargo build -p labpipe-e2e-app --bins)")?;
    anyhow::ensure!(status.success());
    println!("seeded {n} sessions in {:.1} s", t.elapsed().as_secs_f64());

    let dirs = Dirs::new()?;
    dirs.write_settings(json!({
        "endpoint_url": emu.endpoint(), "catalog_table": table, "region": "us-east-1", "setup_done": true
    }))?;
    let app = App::start(&dirs, &emu.env()).await?;
    let t = Instant::now();
    app.goto("sessions").await?;
    app.until("loaded", Duration::from_secs(120), || async {
        Ok((count(&app).await.ok() == Some(n)).then_some(()))
    })
    .await?;
    println!(
        "catalog load (scan + first render): {:.2} s",
        t.elapsed().as_secs_f64()
    );

    for filter in [
        "fatigue > 5",
        "hardware_model = \"X200\" and status = processed",
        "date >= 2021-06-01 and date < 2021-07-01",
        "fatigue > 99",
    ] {
        let before = count(&app).await?;
        let t = Instant::now();
        app.type_into("[data-testid='filter']", filter).await?;
        let typed = t.elapsed();
        app.until("filtered", Duration::from_secs(10), || async {
            let n = count(&app).await?;
            Ok((n != before || filter == "fatigue > 99" && n == 0).then_some(n))
        })
        .await
        .ok();
        let header = app.find(".head .muted").await?.text().await?;
        let ms = header
            .split("filtered in ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .unwrap_or("?")
            .to_string();
        println!(
            "filter {filter:<50} → {:>5} rows; evaluate {ms} ms in Rust; typing → table {:.0} ms (incl. {:.0} ms WebDriver typing, 120 ms debounce)",
            count(&app).await?,
            t.elapsed().as_secs_f64() * 1e3,
            typed.as_secs_f64() * 1e3
        );
    }
    app.type_into("[data-testid='filter']", "").await?;
    let t = Instant::now();
    app.find(".th:nth-child(6)").await?.click().await?;
    app.js("return 1").await?;
    println!(
        "sort 10,000 rows by fatigue (click → next script): {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    app.js("document.querySelector('.tbody').scrollTop = 150000; return 1")
        .await?;
    app.wait_for("#row-5000", Duration::from_secs(5)).await?;
    println!(
        "scroll to row 5,000 and draw it: {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    // Idle: nothing happening for 20 s with the table loaded.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pids = app_pids();
    let before: Vec<_> = pids.iter().map(|(p, _)| proc_stat(*p)).collect();
    let window = Duration::from_secs(20);
    tokio::time::sleep(window).await;
    let tick = 100.0; // USER_HZ
    for ((pid, comm), b) in pids.iter().zip(before) {
        if let (Some((t0, _)), Some((t1, rss))) = (b, proc_stat(*pid)) {
            println!(
                "idle {comm:<16} pid {pid:>7}: cpu {:.2} % of one core, rss {:.0} MB",
                (t1 - t0) as f64 / tick / window.as_secs_f64() * 100.0,
                rss as f64 / 1024.0
            );
        }
    }
    app.screenshot("sessions-10k").await?;
    app.quit().await
}
