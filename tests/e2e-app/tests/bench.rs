//! Benchmark of the desktop app with a large catalog, against its goals: catalog load (click →
//! every row drawn) < 15 s, filter latency < 50 ms, idle CPU < 1 % and memory (PSS summed over the
//! app and its WebKit processes) < 350 MB with up to 100,000 sessions loaded; time to first paint
//! is reported. Ignored by default; run by `bench/app.sh`, or:
//!
//!   xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- \
//!     cargo test -p labpipe-e2e-app --test bench -- --ignored --nocapture
//!
//! `LABPIPE_BENCH_SESSIONS` sets the catalog size (default 10,000). The catalog is served by
//! dynalite (`LABPIPE_BENCH_DYNAMODB=dynalite`, the default: a DynamoDB whose Scan reads what
//! DynamoDB's would) or by the emulator (`=emulator`: moto, whose index Scan walks every item of the
//! table, so its load time measures moto); S3 and everything else are the emulator's either way.
//!
//! Times inside the window are taken by the page itself (`performance.now()`), not through
//! WebDriver, whose round trips would be most of what is measured. The page's `fetch` is wrapped
//! to time each Tauri command (the IPC goes over `fetch` to `ipc://`), which splits a latency into
//! the Rust command, the IPC (serialising, transfer, parsing) and the Svelte update. "Drawn" is the
//! first animation frame after the DOM shows the result. Every step checks what the app shows
//! (row counts against the filter language's in-memory evaluator), so a wrong result fails the
//! benchmark instead of giving a fast number.

use anyhow::{ensure, Context, Result};
use fantoccini::wd::TimeoutConfiguration;
use labpipe_catalog::{Catalog, SessionItem};
use labpipe_core::filter::Filter;
use labpipe_core::LabSchema;
use labpipe_e2e_app::{seed, App, Dirs};
use labpipe_tests::{unique_name, Dynalite, Emulator};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `LABPIPE_BENCH_SESSIONS`, else 10,000.
fn sessions() -> usize {
    std::env::var("LABPIPE_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// How long loading the catalog may take: the emulator scans about 10,000 sessions a minute on
/// this machine's two cores, so 10 minutes, or 12 ms per session when that is longer (100,000
/// sessions: 20 minutes).
fn load_limit(sessions: usize) -> Duration {
    Duration::from_secs(600).max(Duration::from_millis(12 * sessions as u64))
}

/// How long the app is left alone to measure its idle CPU.
const IDLE_WINDOW: Duration = Duration::from_secs(10);
/// Filters typed in the benchmark, each measured after a clear filter (so the count changes).
const FILTERS: [&str; 5] = [
    "fatigue > 5",
    "hardware_model = \"X200\" and status = processed",
    "date >= 2021-06-01 and date < 2021-07-01",
    "status = failed or fatigue >= 8",
    "fatigue > 99",
];
/// Each filter is measured this many times; the median is reported.
const ROUNDS: usize = 3;

/// One process as `/proc` shows it.
#[derive(Debug, Clone)]
struct Proc {
    pid: u32,
    ppid: u32,
    comm: String,
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
    /// Start time, in clock ticks after boot.
    start_ticks: u64,
}

fn read_proc(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(Proc {
        pid,
        ppid: field(1)? as u32,
        comm: stat[open + 1..close].to_string(),
        cpu_ticks: field(11)? + field(12)?,
        start_ticks: field(19)?,
    })
}

/// The threads of a process, as `/proc/<pid>/task` shows them (`comm` is the thread's name).
fn threads(pid: u32) -> Vec<Proc> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|tid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
            let open = stat.find('(')?;
            let close = stat.rfind(')')?;
            let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
            Some(Proc {
                pid: tid,
                ppid: pid,
                comm: stat[open + 1..close].to_string(),
                cpu_ticks: field(11)? + field(12)?,
                start_ticks: field(19)?,
            })
        })
        .collect()
}

fn all_processes() -> Vec<Proc> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_proc)
        .collect()
}

/// `labpipe-app` under this benchmark's tauri-driver, and every process under it (WebKit's web
/// and network processes and their sandbox). Other apps on the machine are not counted.
fn app_processes(driver: u32) -> Vec<Proc> {
    let all = all_processes();
    let mut children: HashMap<u32, Vec<&Proc>> = HashMap::new();
    for p in &all {
        children.entry(p.ppid).or_default().push(p);
    }
    let descendants = |root: u32| {
        let mut found = Vec::new();
        let mut stack = vec![root];
        while let Some(pid) = stack.pop() {
            for child in children.get(&pid).into_iter().flatten() {
                found.push((*child).clone());
                stack.push(child.pid);
            }
        }
        found
    };
    let Some(app) = descendants(driver)
        .into_iter()
        .find(|p| p.comm.starts_with("labpipe-app"))
    else {
        return Vec::new();
    };
    let mut procs = vec![app.clone()];
    procs.extend(descendants(app.pid));
    procs
}

/// Memory of one process in kB, from `/proc/<pid>/smaps_rollup`.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    /// Every resident page, shared ones included: what `ps` and `top` show.
    rss: u64,
    /// Shared pages divided among the processes that map them: sums to what a group of
    /// processes really takes (less when other programs share the same libraries).
    pss: u64,
    /// Pages no other process maps.
    private: u64,
}

fn memory_kb(pid: u32) -> Memory {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let value = |key: &str| -> u64 {
        rollup
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss: value("Rss:"),
        pss: value("Pss:"),
        private: value("Private_Clean:") + value("Private_Dirty:"),
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// When a process started, in Unix milliseconds (10 ms resolution).
fn started_unix_ms(proc: &Proc) -> f64 {
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let age = uptime - proc.start_ticks as f64 / clock_ticks_per_second();
    (now - age) * 1e3
}

/// Prints each process's memory and returns the totals in MB.
fn print_memory(when: &str, procs: &[Proc]) -> Memory {
    let mb = |kb: u64| kb as f64 / 1024.0;
    let mut total = Memory::default();
    for p in procs {
        let m = memory_kb(p.pid);
        println!(
            "  {when}: {:<16} pid {:>7}  rss {:>6.1} MB  pss {:>6.1} MB  private {:>6.1} MB",
            p.comm,
            p.pid,
            mb(m.rss),
            mb(m.pss),
            mb(m.private)
        );
        total.rss += m.rss;
        total.pss += m.pss;
        total.private += m.private;
    }
    println!(
        "  {when}: total            rss {:>6.1} MB  pss {:>6.1} MB  private {:>6.1} MB",
        mb(total.rss),
        mb(total.pss),
        mb(total.private)
    );
    let others = all_processes()
        .iter()
        .filter(|p| p.comm.starts_with("WebKitWebProces") && !procs.iter().any(|q| q.pid == p.pid))
        .count();
    if others > 0 {
        println!("  ({others} other WebKit web processes run on this machine and share library pages: PSS reads lower than with the app alone)");
    }
    total
}

/// Leaves the app alone for [`IDLE_WINDOW`] and prints the CPU its processes used, process by
/// process and thread by thread (threads that ran at all); returns the total, in % of one core.
async fn idle_cpu(what: &str, procs: &[Proc]) -> f64 {
    let process_ticks: Vec<u64> = procs.iter().map(|p| p.cpu_ticks).collect();
    let thread_ticks: HashMap<u32, u64> = procs
        .iter()
        .flat_map(|p| threads(p.pid))
        .map(|t| (t.pid, t.cpu_ticks))
        .collect();
    tokio::time::sleep(IDLE_WINDOW).await;
    let percent =
        |ticks: u64| ticks as f64 / clock_ticks_per_second() / IDLE_WINDOW.as_secs_f64() * 100.0;
    println!(
        "\n{what}, {} s (CPU in % of one core):",
        IDLE_WINDOW.as_secs()
    );
    let mut total = 0.0;
    for (p, before) in procs.iter().zip(process_ticks) {
        let after = read_proc(p.pid).map_or(before, |now| now.cpu_ticks);
        total += percent(after - before);
        println!(
            "  idle: {:<16} pid {:>7}  cpu {:>5.2} %",
            p.comm,
            p.pid,
            percent(after - before)
        );
        for t in threads(p.pid) {
            let ran = t.cpu_ticks - thread_ticks.get(&t.pid).copied().unwrap_or(t.cpu_ticks);
            if ran > 0 {
                println!(
                    "          thread {:<16} tid {:>7}  cpu {:>5.2} %",
                    t.comm,
                    t.pid,
                    percent(ran)
                );
            }
        }
    }
    println!("  idle: total  cpu {total:.2} %");
    total
}

/// Wraps the page's `fetch` so each Tauri command's start, answer and parsed result are timed.
const PROBE_JS: &str = r#"
if (!window.__bench) {
  const calls = [];
  const send = window.fetch.bind(window);
  window.fetch = (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    if (!url.startsWith("ipc:")) return send(input, init);
    const call = { cmd: decodeURIComponent(url.split("/").pop()), start: performance.now() };
    calls.push(call);
    return send(input, init).then((response) => {
      call.answered = performance.now();
      const text = response.text.bind(response);
      response.json = () => text().then((raw) => {
        call.bytes = raw.length;
        const body = JSON.parse(raw);
        call.parsed = performance.now();
        if (body && typeof body === "object") call.rust_ms = body.elapsed_ms ?? body.load_ms ?? null;
        return body;
      });
      return response;
    });
  };
  window.__bench = { calls };
}
return true;
"#;

/// Starts counting what the page does (DOM changes, commands) while the app is left alone.
const WATCH_IDLE_JS: &str = r#"
window.__bench.calls.length = 0;
window.__idle = { mutations: 0 };
window.__idle.observer = new MutationObserver((records) => { window.__idle.mutations += records.length; });
window.__idle.observer.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
return true;
"#;

/// What the page did since [`WATCH_IDLE_JS`].
const IDLE_ACTIVITY_JS: &str = r#"
window.__idle.observer.disconnect();
const calls = window.__bench.calls;
const focus = document.activeElement;
return {
  mutations: window.__idle.mutations,
  commands: calls.length,
  names: [...new Set(calls.map((c) => c.cmd))],
  focus: focus ? focus.tagName.toLowerCase() + (focus.dataset.testid ? ` data-testid=${focus.dataset.testid}` : "") : "none",
};
"#;

/// Shared by the measuring scripts: `act()` starts something, the script answers (async) once
/// `ready()` holds in the DOM, with the time of the DOM change and of the next frame.
const MEASURE_JS: &str = r#"
const bench = window.__bench;
const shown = () => {
  const el = document.querySelector("[data-testid='match-count']");
  return el ? Number(el.textContent.replace(/[^0-9]/g, "")) : -1;
};
const call = (cmd) => bench.calls.find((c) => c.cmd === cmd && c.parsed !== undefined);
function measure(act, ready, limitMs = 60000) {
  bench.calls.length = 0;
  let finished = false;
  const t0 = performance.now();
  const finish = (extra) => {
    if (finished) return;
    finished = true;
    observer.disconnect();
    done(Object.assign({ t0, shown: shown(), calls: bench.calls.slice() }, extra));
  };
  const check = () => {
    if (finished) return;
    if (ready()) {
      const dom = performance.now();
      requestAnimationFrame(() => finish({ dom, drawn: performance.now() }));
    } else if (performance.now() - t0 > limitMs) {
      finish({ timeout: true });
    } else {
      setTimeout(check, 25);
    }
  };
  const observer = new MutationObserver(() => { if (!finished && ready()) check(); });
  observer.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  act();
  check();
}
"#;

async fn measure(app: &App, body: &str, args: Vec<Value>) -> Result<Value> {
    let script = format!("const done = arguments[arguments.length - 1];\n{MEASURE_JS}\n{body}");
    let out = app.client.execute_async(&script, args).await?;
    ensure!(out.get("timeout").is_none(), "timed out in the page: {out}");
    Ok(out)
}

/// [`measure`] for a step that may outlast one WebDriver script: WebKitWebDriver ended an async
/// script after 600 s whatever the session's script timeout said (seen loading 100,000 sessions
/// from the emulator). The step starts in a short script that leaves its answer in the page, and
/// the page is asked for it every second, up to `limit`.
async fn measure_long(app: &App, body: &str, args: Vec<Value>, limit: Duration) -> Result<Value> {
    let script = format!(
        "window.__measured = null;\nconst done = (v) => {{ window.__measured = v; }};\n\
         {MEASURE_JS}\n{body}\nreturn true;"
    );
    app.client.execute(&script, args).await?;
    let t0 = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let out = app
            .client
            .execute("return window.__measured;", vec![])
            .await?;
        if !out.is_null() {
            ensure!(out.get("timeout").is_none(), "timed out in the page: {out}");
            return Ok(out);
        }
        ensure!(
            t0.elapsed() < limit + Duration::from_secs(30),
            "no answer from the page within {limit:?}"
        );
    }
}

/// Start, answer and parse times of one command in a measured step.
struct Call {
    start: f64,
    parsed: f64,
    rust_ms: f64,
    /// Length of the answer's JSON text.
    bytes: f64,
}

fn call(out: &Value, cmd: &str) -> Result<Call> {
    let c = out["calls"]
        .as_array()
        .and_then(|calls| calls.iter().rev().find(|c| c["cmd"] == cmd))
        .with_context(|| format!("no {cmd} call in {out}"))?;
    Ok(Call {
        start: c["start"].as_f64().context("start")?,
        parsed: c["parsed"].as_f64().context("parsed")?,
        rust_ms: c["rust_ms"].as_f64().unwrap_or(f64::NAN),
        bytes: c["bytes"].as_f64().unwrap_or(f64::NAN),
    })
}

fn num(out: &Value, key: &str) -> f64 {
    out[key].as_f64().unwrap_or(f64::NAN)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// One filter measurement, in ms.
#[derive(Debug, Clone, Copy)]
struct FilterTiming {
    /// Input event → filter command sent (the view's typing pause).
    pause: f64,
    rust: f64,
    /// Command round trip minus the Rust evaluation: serialising, transfer, parsing.
    ipc: f64,
    /// Result parsed → table drawn.
    render: f64,
    /// Filter command sent → table drawn: the goal's latency.
    latency: f64,
}

async fn apply_filter(app: &App, text: &str, expected: usize) -> Result<FilterTiming> {
    let out = measure(
        app,
        r#"
        const [text, expected] = arguments;
        const input = document.querySelector("[data-testid='filter']");
        measure(() => {
          input.value = text;
          input.dispatchEvent(new Event("input", { bubbles: true }));
        }, () => call("filter_catalog") && shown() === expected);
        "#,
        vec![json!(text), json!(expected)],
    )
    .await?;
    ensure!(
        out["shown"].as_u64() == Some(expected as u64),
        "filter {text:?}: the app shows {} rows, the evaluator selects {expected}",
        out["shown"]
    );
    let c = call(&out, "filter_catalog")?;
    let drawn = num(&out, "drawn");
    Ok(FilterTiming {
        pause: c.start - num(&out, "t0"),
        rust: c.rust_ms,
        ipc: c.parsed - c.start - c.rust_ms,
        render: drawn - c.parsed,
        latency: drawn - c.start,
    })
}

#[tokio::test]
#[ignore = "seeds 10,000 sessions and drives the app for minutes; run bench/app.sh"]
async fn ten_thousand_sessions() -> Result<()> {
    let n = sessions();
    let emu = Emulator::start();
    let dynalite = match std::env::var("LABPIPE_BENCH_DYNAMODB").as_deref() {
        Ok("dynalite") | Err(_) => Some(Dynalite::start()),
        Ok("emulator") => None,
        Ok(other) => {
            anyhow::bail!("LABPIPE_BENCH_DYNAMODB must be dynalite or emulator, not {other:?}")
        }
    };
    let table = unique_name("catalog");
    let db = match &dynalite {
        Some(dynalite) => dynalite.dynamodb_client().await,
        None => emu.dynamodb_client().await,
    };
    println!(
        "catalog on {}",
        if dynalite.is_some() {
            "dynalite"
        } else {
            "the emulator (moto)"
        }
    );
    labpipe_tests::create_catalog_table(&db, &table).await?;
    let catalog = Catalog::new(db, table.clone());
    let records = seed::demo_sessions(n);
    let t = Instant::now();
    let summary = catalog.import_sessions(&records).await?;
    let seed_s = t.elapsed().as_secs_f64();
    println!(
        "seeded {n} sessions ({} items, {} BatchWriteItem requests) in {seed_s:.1} s",
        summary.items, summary.requests
    );
    let items: Vec<SessionItem> = records.into_iter().map(|r| r.item).collect();
    let schema = LabSchema::default();
    let expected = |text: &str| -> Result<usize> {
        let filter = Filter::new(text, &schema).map_err(|e| anyhow::anyhow!("{text}: {e:?}"))?;
        Ok(items
            .iter()
            .filter(|i| filter.matches(&i.subject()))
            .count())
    };

    let dirs = Dirs::new()?;
    // With dynalite the endpoints come from the environment (DynamoDB's own variable beside the
    // emulator's), as the SDK resolves them: an endpoint in Settings would send both services to one.
    let (settings, env) = match &dynalite {
        Some(dynalite) => (
            json!({"catalog_table": table, "region": "us-east-1", "setup_done": true}),
            dynalite.env_with(&emu),
        ),
        None => (
            json!({"endpoint_url": emu.endpoint(), "catalog_table": table, "region": "us-east-1", "setup_done": true}),
            emu.env(),
        ),
    };
    dirs.write_settings(settings)?;
    let app = App::start(&dirs, &env).await?;
    let procs = app_processes(app.driver_pid());
    let main = procs.first().context("labpipe-app under tauri-driver")?;

    println!("\nfirst paint (labpipe-app process start → window content, Paint Timing):");
    let timing = app
        .js(
            "return { origin: performance.timeOrigin, \
                      paint: performance.getEntriesByType('paint').map((e) => [e.name, e.startTime]), \
                      nav: performance.getEntriesByType('navigation').map((e) => [e.domContentLoadedEventEnd, e.loadEventEnd]) };",
        )
        .await?;
    let origin = timing["origin"].as_f64().context("timeOrigin")?;
    let started = started_unix_ms(main);
    let page_ms = origin - started;
    println!("  process start → page navigation starts: {page_ms:>6.0} ms");
    let mut first_paint_ms = f64::NAN;
    for entry in timing["paint"].as_array().into_iter().flatten() {
        let at = entry[1].as_f64().unwrap_or(f64::NAN);
        println!(
            "  process start → {:<24} {:>6.0} ms",
            entry[0].as_str().unwrap_or("?"),
            page_ms + at
        );
        if entry[0] == "first-contentful-paint" {
            first_paint_ms = page_ms + at;
        }
    }
    if let Some(nav) = timing["nav"].as_array().and_then(|a| a.first()) {
        println!(
            "  process start → DOMContentLoaded          {:>6.0} ms, load {:>6.0} ms",
            page_ms + nav[0].as_f64().unwrap_or(f64::NAN),
            page_ms + nav[1].as_f64().unwrap_or(f64::NAN)
        );
    }
    println!("\nmemory with the first view shown (before the catalog is loaded):");
    print_memory("start", &app_processes(app.driver_pid()));
    idle_cpu(
        "idle on the first view, before the catalog is loaded",
        &app_processes(app.driver_pid()),
    )
    .await;

    // Every later step is short, but WebDriver's default 30 s would cut a slow one on a busy machine.
    app.client
        .update_timeouts(TimeoutConfiguration::new(
            Some(Duration::from_secs(120)),
            None,
            None,
        ))
        .await?;
    // Loading the catalog from the emulator takes minutes at 100,000 sessions: polled.
    let limit = load_limit(n);
    app.js(PROBE_JS).await?;
    let out = measure_long(
        &app,
        r#"
        const [n, limitMs] = arguments;
        measure(() => document.querySelector("nav button[data-view='sessions']").click(),
                () => call("filter_catalog") && shown() === n, limitMs);
        "#,
        vec![json!(n), json!(limit.as_millis() as u64)],
        limit,
    )
    .await?;
    let load = call(&out, "load_catalog")?;
    let first_filter = call(&out, "filter_catalog")?;
    let load_total = num(&out, "drawn") - num(&out, "t0");
    println!("\ncatalog load (click Sessions → {n} rows counted and drawn): {load_total:.0} ms");
    println!(
        "  load_catalog: {:.0} ms in Rust (scan of the emulator's table + indexing), {:.0} ms IPC (serialise, transfer, parse the snapshot of {:.1} MB JSON)",
        load.rust_ms,
        load.parsed - load.start - load.rust_ms,
        load.bytes / 1e6
    );
    println!(
        "  filter_catalog(\"\"): {:.1} ms in Rust, {:.1} ms IPC ({:.0} kB JSON); then {:.0} ms to the drawn table",
        first_filter.rust_ms,
        first_filter.parsed - first_filter.start - first_filter.rust_ms,
        first_filter.bytes / 1e3,
        num(&out, "drawn") - first_filter.parsed
    );

    println!(
        "\nfilter latency over {n} sessions (median of {ROUNDS}; latency = filter command sent → table drawn; the view waits 120 ms after the last keystroke before sending):"
    );
    println!(
        "  {:<50} {:>6} {:>8} {:>8} {:>8} {:>9}",
        "filter", "rows", "rust ms", "ipc ms", "draw ms", "latency"
    );
    let all = expected("")?;
    let mut rows = Vec::new();
    for text in FILTERS {
        let want = expected(text)?;
        ensure!(
            want != all,
            "{text} must change the row count to be measured"
        );
        rows.push((text, want, Vec::new()));
    }
    let mut cleared = Vec::new();
    for _ in 0..ROUNDS {
        for (text, want, timings) in rows.iter_mut() {
            timings.push(apply_filter(&app, text, *want).await?);
            cleared.push(apply_filter(&app, "", all).await?);
        }
    }
    rows.push(("", all, cleared));
    let mut worst_latency: f64 = 0.0;
    for (text, want, timings) in &rows {
        let med = |f: fn(&FilterTiming) -> f64| median(timings.iter().map(f).collect());
        let latency = med(|t| t.latency);
        worst_latency = worst_latency.max(latency);
        let label = if text.is_empty() {
            "(cleared: every session)".to_string()
        } else {
            text.to_string()
        };
        println!(
            "  {label:<50} {want:>6} {:>8.1} {:>8.1} {:>8.1} {latency:>6.1} ms   (typing pause {:.0} ms)",
            med(|t| t.rust),
            med(|t| t.ipc),
            med(|t| t.render),
            med(|t| t.pause),
        );
    }

    let out = measure(
        &app,
        r#"
        const th = document.querySelector(".th:nth-child(6)");
        measure(() => th.click(), () => th.getAttribute("aria-sort") === "ascending");
        "#,
        vec![],
    )
    .await?;
    println!(
        "\nsort {n} rows by fatigue (click → drawn): {:.0} ms",
        num(&out, "drawn") - num(&out, "t0")
    );
    let row = 5_000.min(n / 2);
    let out = measure(
        &app,
        r#"
        const [row] = arguments;
        measure(() => { document.querySelector(".tbody").scrollTop = row * 30; },
                () => document.getElementById(`row-${row}`) !== null);
        "#,
        vec![json!(row)],
    )
    .await?;
    println!(
        "scroll to row {row} (→ drawn): {:.0} ms",
        num(&out, "drawn") - num(&out, "t0")
    );

    // Idle: the catalog loaded and on screen, nobody touching the app. WebKit keeps repainting
    // for a few seconds after an interaction such as the scroll above (with no DOM change and no
    // command), so the first window shows the app settling and the second one the app at rest.
    app.js(WATCH_IDLE_JS).await?;
    idle_cpu(
        "settling: the first seconds after the last scroll",
        &app_processes(app.driver_pid()),
    )
    .await;
    let idle_total = idle_cpu(
        &format!("idle with {n} sessions loaded"),
        &app_processes(app.driver_pid()),
    )
    .await;
    let activity = app.js(IDLE_ACTIVITY_JS).await?;
    println!(
        "  in both windows the page made {} DOM changes and {} commands {}; focus on <{}>",
        activity["mutations"], activity["commands"], activity["names"], activity["focus"]
    );
    let procs = app_processes(app.driver_pid());
    println!("\nmemory with {n} sessions loaded:");
    let memory = print_memory("loaded", &procs);
    let (rss_total, pss_total) = (memory.rss as f64 / 1024.0, memory.pss as f64 / 1024.0);

    println!("\ngoals ({n} sessions, debug build unless LABPIPE_APP_BIN says otherwise):");
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "  idle CPU < 1 %:            {idle_total:>7.2} %   {}",
        verdict(idle_total < 1.0)
    );
    println!(
        "  memory < 350 MB:           {pss_total:>7.1} MB PSS ({rss_total:.1} MB summed RSS)   {}",
        verdict(pss_total < 350.0)
    );
    let latency_goal = 50.0;
    println!(
        "  filter latency < {latency_goal:.0} ms:   {worst_latency:>7.1} ms (slowest filter's median)   {}",
        verdict(worst_latency < latency_goal)
    );
    println!("  time to first paint:       {first_paint_ms:>7.0} ms (no goal set)");
    println!(
        "  catalog load < 15 s:       {load_total:>7.0} ms   {}",
        verdict(load_total < 15_000.0)
    );
    println!("  seeding {n} sessions:     {seed_s:>7.1} s");
    app.screenshot("sessions-10k").await?;
    app.quit().await
}
