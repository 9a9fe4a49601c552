#!/usr/bin/env bash
# The one test command: everything CI checks, in the order that fails
# fastest. Installs missing prerequisites first, so it works on a fresh
# clone of a fresh Debian 12 machine.
#
#   usage: scripts/test.sh
#
# CARGO_TARGET_DIR defaults to ~/.cache/labpipe/target, outside the clone,
# so repeated runs (and fresh CI clones on the same machine) reuse builds.
# End-to-end tests start their own emulator; no stack.sh instance is needed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-$REPO}/.cache/labpipe/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A failing test says what failed in a few lines: no captured backtrace under every error
# (a panic still prints one when RUST_BACKTRACE asks).
export RUST_LIB_BACKTRACE="${RUST_LIB_BACKTRACE:-0}"

T0=$SECONDS
STAGE=""
stage() {
  STAGE="$1"
  printf '==> [%4ds] %s\n' "$((SECONDS - T0))" "$1"
}
CROSS_PID=""
INFRA_PID=""
trap 'rc=$?; [ -n "$INFRA_PID" ] && kill "$INFRA_PID" 2>/dev/null; [ -n "$CROSS_PID" ] && { pkill -TERM -P "$CROSS_PID" 2>/dev/null; kill "$CROSS_PID" 2>/dev/null; }; rm -f "${UI_READY:-}"; [ "$rc" -ne 0 ] && printf "==> [%4ds] FAILED in stage: %s (exit %d)\n" "$((SECONDS - T0))" "$STAGE" "$rc"' EXIT

# The shared build cache grows with every clone and feature set that used it; when the disk is
# nearly full, drop its incremental state (rebuilt on demand) before building.
mkdir -p "$CARGO_TARGET_DIR"
if [ "$(df -Pk "$CARGO_TARGET_DIR" | awk 'NR == 2 {print $4}')" -lt $((15 * 1024 * 1024)) ]; then
  echo "==> less than 15 GB free: removing $CARGO_TARGET_DIR/debug/incremental"
  # A build running beside this one can write into it while it goes: what is left is harmless.
  rm -rf "$CARGO_TARGET_DIR/debug/incremental" 2>/dev/null || true
fi

# Test runners' result lines are collected here for the closing tally.
RESULTS="$(mktemp)"

stage "bootstrap: scripts/bootstrap.sh"
bash scripts/bootstrap.sh

# Clippy lints as the code compiles: cargo runs each workspace crate's rustc through
# clippy-driver (the mechanism `cargo clippy` itself uses, RUSTC_WORKSPACE_WRAPPER + CLIPPY_ARGS),
# so the build and test stages also hold clippy's `-D warnings`. A separate `cargo clippy` was a
# second compile of the whole dependency tree in check mode: 15 of a cold run's minutes, ~25 s warm.
# Dependencies are compiled by plain rustc either way. The cross builds unset it (their
# Windows-only code is not linted; the scripts that rebuild them do the same, so each build finds
# the other's output). Set after bootstrap: `cargo install tauri-driver` must not lint tauri-driver.
if CLIPPY_DRIVER="$(rustup which clippy-driver 2>/dev/null)"; then
  export RUSTC_WORKSPACE_WRAPPER="$CLIPPY_DRIVER"
  export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
else
  echo "==> clippy-driver not found: 'rustup component add clippy'" >&2
  exit 1
fi

# The Windows app + CLI and the static (musl) CLI are each a full compile of the dependency tree
# for another target, needed only by the windows and packages stages near the end. They start now, in
# the background at the lowest CPU priority, in their own profile (`cross` in Cargo.toml: its own
# folders, so it never waits on the host builds' lock), and use the CPU that the test stages leave
# idle while they wait on emulators and windows. The windows stage waits for them.
# The Windows app and CLI build in one invocation (one feature set, one compile of the tree, as
# scripts/package-windows.sh builds them); the app embeds ui/dist, so that build waits for the ui
# stage to have made it (UI_READY).
stage "cross builds: started in the background (musl CLI, then Windows app + CLI, profile cross)"
CROSS_LOG="$(mktemp)"
UI_READY="$(mktemp -u)"
(
  if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl ||
    rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1; then
    t=$SECONDS
    nice -n 19 env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS cargo build -p labpipe-cli --profile cross --target x86_64-unknown-linux-musl
    echo "cross builds: musl CLI built in $((SECONDS - t))s"
  fi
  rc=0
  bash scripts/bootstrap.sh windows || rc=$?
  [ "$rc" -eq 0 ] || exit 0
  while [ ! -e "$UI_READY" ]; do sleep 2; done
  t=$SECONDS
  nice -n 19 env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS cargo build -p labpipe-cli -p labpipe-app --profile cross --target x86_64-pc-windows-gnu
  echo "cross builds: Windows app + CLI built in $((SECONDS - t))s"
) >"$CROSS_LOG" 2>&1 </dev/null &
CROSS_PID=$!
wait_for_cross_builds() {
  [ -n "$CROSS_PID" ] || return 0
  local t=$SECONDS
  # A failure here is reported and the stage's own cargo build shows the compiler's error.
  wait "$CROSS_PID" || echo "==> the background cross build failed; its last lines:"
  CROSS_PID=""
  tail -n 3 "$CROSS_LOG"
  echo "==> waited $((SECONDS - t))s for the background cross builds"
  rm -f "$CROSS_LOG"
}

stage "fmt: cargo fmt --all --check"
cargo fmt --all --check

# infra/template.yaml: cfn-lint, cfn-guard rules, checkov over the three templates
# (test_checkov.py: a new finding fails the stage), the IAM model and call table, then
# deployed to a fresh emulator of its own and checked (infra/tests). Needs no Rust build: it runs in
# the background from here, beside the ui and build stages (one Python process, mostly waiting on
# its emulator), and its output is shown, and its result counted, before the tests start.
stage "infra: pytest infra/tests (in the background until the test stage)"
INFRA_LOG="$(mktemp)"
PYTHONDONTWRITEBYTECODE=1 .venv/bin/python -m pytest infra/tests -q -p no:cacheprovider >"$INFRA_LOG" 2>&1 </dev/null &
INFRA_PID=$!

# The desktop UI (ui/): type checks, lint, unit tests, then the production
# build that the app embeds (src-tauri needs ui/dist to compile).
stage "ui: svelte-check, tsc --noEmit, eslint, vitest, vite build"
(cd ui && npm run --silent check && npx tsc --noEmit -p tsconfig.json && npm run --silent lint && npx vitest run && npx vite build --logLevel warn)
touch "$UI_READY"

# The end-to-end tests run the real labpipe binary; `cargo test` alone does
# not build other packages' binaries. Lints come with the compile (clippy-driver, above): this stage
# lints every library, binary and example, the test stages every test target — what
# `cargo clippy --workspace --all-targets -- -D warnings` covers.
stage "build + clippy: cargo build --workspace --bins --examples (clippy-driver, -D warnings)"
cargo build --workspace --bins --examples

# ARCHITECTURE.md's dependency invariants, read from the resolved graph.
stage "architecture: scripts/check-architecture.sh"
bash scripts/check-architecture.sh

# The documents name only commands and flags the built binary has; links and mermaid blocks
# resolve; DESIGN.md's cost tables are what docs/cost/model.py prints.
stage "docs: scripts/check-docs.sh (commands, flags, links, mermaid, cost tables)"
bash scripts/check-docs.sh 2>&1 | tee -a "$RESULTS"

stage "infra: the background pytest infra/tests"
rc=0
wait "$INFRA_PID" || rc=$?
INFRA_PID=""
tee -a "$RESULTS" <"$INFRA_LOG"
rm -f "$INFRA_LOG"
[ "$rc" -eq 0 ] || exit "$rc"

# Every test binary of the workspace, the app's end-to-end suite and the Python package's tests, in
# three lanes (scripts/test_lanes.py: compiled once by `cargo test --no-run`, then run side by side,
# longest first; most suites wait on the servers they start, so one after another left the two
# cores half idle). Each binary's output is printed whole when it ends.
# - The app end to end: the built labpipe-app driven through tauri-driver (WebDriver) under Xvfb, in
#   its own D-Bus session, one test at a time; saves docs/screenshots/.
# - The researchers' Python package (crates/python): a maturin wheel (dev profile) in a fresh venv,
#   checked against the binaries just built on its own emulator (crates/python/tests/conftest.py).
stage "test: scripts/test_lanes.py (cargo test --workspace, the app under xvfb, pytest crates/python/tests)"
python3 scripts/test_lanes.py --lanes 3 \
  --run 'labpipe-e2e-app/app=xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- {} --test-threads=1' \
  --job 'pytest crates/python/tests=PYTHONDONTWRITEBYTECODE=1 .venv/bin/python -m pytest crates/python/tests -q -p no:cacheprovider' \
  -- --workspace --no-fail-fast 2>&1 | tee -a "$RESULTS"

# ts-rs writes ui/src/lib/bindings/ from the Rust types during the test run
# above; the checked-in copies must be what the Rust types say.
stage "bindings: ui/src/lib/bindings matches the Rust types"
if git rev-parse --git-dir >/dev/null 2>&1 && [ -n "$(git status --porcelain -- ui/src/lib/bindings)" ]; then
  git status --short -- ui/src/lib/bindings
  echo "ui/src/lib/bindings is out of date: run 'cargo test -p labpipe-app' and commit the result" >&2
  exit 1
fi

# The Windows lab PC: the MSI (app, WebView2Loader.dll, labpipe.exe) checked, installed, upgraded
# and removed under Wine; the installed app's `configure` and the installed labpipe.exe compared
# with the Linux build (scripts/cross-windows.sh: check verdicts, uploaded bytes); skipped in one
# line where the tools cannot be installed.
stage "windows: scripts/windows-installer.sh (the MSI under Wine; installed labpipe.exe vs the Linux build)"
wait_for_cross_builds
bash scripts/windows-installer.sh

# What a lab installs: the app's .deb (Tauri bundler), the static (musl) CLI and its .deb with man
# pages and completions; both installed with apt and checked. The installed app is driven end to
# end after the app suite below.
stage "packages: scripts/package.sh --install (app .deb, static CLI + .deb)"
bash scripts/package.sh --install

# infra/ec2-node.yaml deployed next to the stack on the emulator; its user data (install the static
# labpipe, first sync of the filtered sessions, sync timer) run for real under a folder.
stage "ec2 node: pytest infra/node_tests"
PYTHONDONTWRITEBYTECODE=1 .venv/bin/python -m pytest infra/node_tests -q -p no:cacheprovider 2>&1 | tee -a "$RESULTS"

# The app as installed from its .deb (/usr/bin/labpipe-app, not the build tree): window shown,
# settings loaded, the lab folder checked. `--workspace`: the feature set the test stage built, so nothing
# is compiled again.
stage "installed app: /usr/bin/labpipe-app (xvfb, tauri-driver)"
LABPIPE_APP_BIN=/usr/bin/labpipe-app xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- \
  cargo test --workspace --test app -- --test-threads=1 --exact pending_shows_each_sessions_verdict_and_reasons 2>&1 | tee -a "$RESULTS"

printf '==> [%4ds] all stages passed\n' "$((SECONDS - T0))"
# One closing tally over every runner (cargo test binaries and pytest).
summary_lines=$(grep -hE '^test result: |^[0-9]+ (passed|failed).* in [0-9.]+s' "$RESULTS" || true)
passed=$(printf '%s\n' "$summary_lines" | grep -oE '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')
failed=$(printf '%s\n' "$summary_lines" | grep -oE '[0-9]+ failed' | awk '{s += $1} END {print s + 0}')
rm -f "$RESULTS"
printf '%d passed, %d failed\n' "$passed" "$failed"
