#!/usr/bin/env bash
# Benchmark: the desktop app with a large catalog, against the goals of its issue.
#
# Seeds a fresh catalog with SESSIONS demo sessions (tests/e2e-app/src/seed.rs, imported with batch
# writes) on dynalite (a second DynamoDB whose Scan reads what DynamoDB's would; BENCH_DYNAMODB=emulator
# puts it on the emulator, whose index Scan walks every item of the table), S3 on the local emulator,
# starts the built app under Xvfb through tauri-driver, and measures: time to
# first paint (process start → first contentful paint), catalog load (click → every row counted
# and drawn, split into the Rust command, IPC and drawing), filter latency per filter (command
# sent → table drawn), sort and scroll, idle CPU (10 s, summed over labpipe-app and its WebKit
# processes, thread by thread) and memory (RSS, PSS and private, per process and summed).
# The measuring code is tests/e2e-app/tests/bench.rs; it fails if the app shows a wrong count.
#
# There is no peer tool to compare the app with, so the figures are absolute, against the goals
# (up to 100,000 sessions): catalog load < 15 s, filter latency < 50 ms, idle CPU < 1 %, memory
# < 350 MB PSS summed over the app and WebKit. The catalog travels to the page as columns (crates/lab/src/sessions/mod.rs); the load line
# gives the size of that JSON, the first filter line the size of an index array of every session.
#
# Usage: bench/app.sh [SESSIONS]          (default 10000)
# Env:   CARGO_TARGET_DIR (default ~/.cache/labpipe/target),
#        LABPIPE_APP_BIN (measure this app binary, e.g. a release build, instead of the debug one),
#        BENCH_DIR (where the app's and the emulator's log goes; default a temp dir),
#        BENCH_DYNAMODB (dynalite | emulator; default dynalite)
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
SESSIONS="${1:-10000}"
bench_workdir bench-app

[ -x "$VENV/bin/moto_server" ] || { echo "moto not installed: run scripts/bootstrap.sh" >&2; exit 2; }
for tool in xvfb-run dbus-run-session WebKitWebDriver; do
  command -v "$tool" >/dev/null || { echo "$tool not found: run scripts/bootstrap.sh apt" >&2; exit 2; }
done
[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver" ] || command -v tauri-driver >/dev/null \
  || { echo "tauri-driver not found: run scripts/bootstrap.sh driver" >&2; exit 2; }
[ -d "$ROOT/ui/node_modules" ] || { echo "ui/node_modules missing: run scripts/bootstrap.sh ui" >&2; exit 2; }
DYNAMODB="${BENCH_DYNAMODB:-dynalite}"
case "$DYNAMODB" in
  dynalite) [ -d "$ROOT/tests/dynalite/node_modules/dynalite" ] ||
    { echo "dynalite not installed: run scripts/bootstrap.sh dynalite" >&2; exit 2; } ;;
  emulator) ;;
  *) echo "BENCH_DYNAMODB must be dynalite or emulator, not '$DYNAMODB'" >&2; exit 2 ;;
esac

# The app embeds ui/dist when it is compiled, so the UI is built first.
echo "building the UI, the app and the benchmark…" >&2
(cd "$ROOT/ui" && npx vite build --logLevel warn)
# One package per command, as scripts/test.sh builds them: together they would resolve other
# features for the app's dependencies (the test crate's D-Bus server) and compile them again.
cargo build --quiet -p labpipe-app --manifest-path "$ROOT/Cargo.toml"
cargo build --quiet -p labpipe-e2e-app --bins --manifest-path "$ROOT/Cargo.toml"
cargo test --quiet --no-run -p labpipe-e2e-app --test bench --manifest-path "$ROOT/Cargo.toml" 2>/dev/null

echo "running the benchmark with $SESSIONS sessions (app and emulator log: $WORK/stderr.log)…" >&2
# The accessibility bus and the keyring daemon that WebKit starts greet on stdout: dropped.
if ! LABPIPE_BENCH_SESSIONS="$SESSIONS" LABPIPE_BENCH_DYNAMODB="$DYNAMODB" xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- \
  cargo test --quiet -p labpipe-e2e-app --test bench --manifest-path "$ROOT/Cargo.toml" \
  -- --ignored --nocapture 2>"$WORK/stderr.log" | grep -v -e '^SpiRegistry daemon' -e '^GNOME_KEYRING'; then
  echo "benchmark failed; last lines of $WORK/stderr.log:" >&2
  tail -n 30 "$WORK/stderr.log" >&2
  exit 1
fi
echo "(machine: $(nproc) cores shared by the app, WebKit, the emulator and anything else running)"
