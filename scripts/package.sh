#!/usr/bin/env bash
# The installable packages: what a lab installs, not a source checkout.
#
#   dist/LabPipe_<version>_amd64.deb   the desktop app (package `lab-pipe`), made by the Tauri
#                                      bundler: /usr/bin/labpipe-app, a menu entry and its icon
#   dist/labpipe_<version>_amd64.deb   the CLI (package `labpipe`, made by cargo-deb from
#                                      crates/cli/Cargo.toml): a static musl binary (runs on any
#                                      x86_64 Linux, e.g. an EC2 AMI), man pages and bash/zsh/fish
#                                      completions generated from its clap definitions
#   dist/labpipe-<version>-x86_64-linux-musl   the same static binary on its own (EC2 user data)
#   dist/LabPipe-<version>-x64.msi     the Windows installer: the app, WebView2Loader.dll and
#                                      labpipe.exe (scripts/package-windows.sh; skipped in one line
#                                      where its toolchain cannot be installed)
#
#   usage: scripts/package.sh [--release] [--install]
#
#   --release  optimised builds (what a lab gets). Without it the debug builds that the tests
#              already made are packaged: the same files and layout, quicker to make.
#   --install  installs both packages with apt (root) and checks the installed files.
#
# The app's AppImage is not made: the Tauri bundler downloads its AppImage tools when it runs,
# and this build network reaches only package registries. A runner with internet access adds
# `--bundles deb,appimage`.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-$REPO}/.cache/labpipe/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
PROFILE=debug
INSTALL=0
for arg in "$@"; do
  case "$arg" in
    --release) PROFILE=release ;;
    --install) INSTALL=1 ;;
    -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "package: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done
T0=$SECONDS
say() { printf 'package: [%3ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() { printf 'package: error: %s\n' "$*" >&2; exit 1; }

VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
DIST="$REPO/dist"
mkdir -p "$DIST"

# 1. The app, by the Tauri bundler (it builds the binary with the bundle type stamped in).
[ -f ui/dist/index.html ] || die "ui/dist is missing: run 'cd ui && npx vite build' first"
TAURI="$REPO/ui/node_modules/.bin/tauri"
[ -x "$TAURI" ] || die "the Tauri CLI is missing: run 'scripts/bootstrap.sh ui'"
say "app: tauri build --bundles deb ($PROFILE)"
tauri_profile=()
[ "$PROFILE" = debug ] && tauri_profile=(--debug)
(cd src-tauri && "$TAURI" build "${tauri_profile[@]}" --bundles deb --ci) >"$DIST/tauri-build.log" 2>&1 ||
  { tail -20 "$DIST/tauri-build.log" >&2; die "the Tauri bundler failed (log: $DIST/tauri-build.log)"; }
APP_DEB="$DIST/LabPipe_${VERSION}_amd64.deb"
cp "$CARGO_TARGET_DIR/$PROFILE/bundle/deb/LabPipe_${VERSION}_amd64.deb" "$APP_DEB"

# 2. The CLI, static (musl): one file that runs on any x86_64 Linux.
MUSL=x86_64-unknown-linux-musl
if ! rustup target list --installed 2>/dev/null | grep -qx "$MUSL"; then
  rustup target add "$MUSL" >/dev/null 2>&1 || die "cannot install the rust target $MUSL (rustup target add $MUSL)"
fi
command -v musl-gcc >/dev/null 2>&1 || die "musl-gcc not found: run 'scripts/bootstrap.sh apt' (package musl-tools)"
# Without --release it is the `cross` profile (Cargo.toml: no debug info, unoptimised dependencies),
# which scripts/test.sh has usually built in the background already.
musl_profile=cross
[ "$PROFILE" = release ] && musl_profile=release
say "cli: cargo build -p labpipe-cli --target $MUSL --profile $musl_profile"
env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS cargo build -q --profile "$musl_profile" -p labpipe-cli --target "$MUSL"
CLI_BIN="$CARGO_TARGET_DIR/$MUSL/$musl_profile/labpipe"
file "$CLI_BIN" | grep -q "static" || die "$CLI_BIN is not statically linked: $(file -b "$CLI_BIN")"
cp "$CLI_BIN" "$DIST/labpipe-${VERSION}-x86_64-linux-musl"

# 3. The CLI's .deb, by cargo-deb from `[package.metadata.deb]` in crates/cli/Cargo.toml: the
# binary above, and the man pages and completions the binary generates, written first into
# deb-assets/ beside it (the folder those assets name). cargo-deb neither builds (--no-build: the
# build above, with its profile) nor strips (--no-strip: the .deb holds the same file as
# dist/labpipe-<version>-x86_64-linux-musl).
command -v cargo-deb >/dev/null 2>&1 || die "cargo-deb not found: run 'scripts/bootstrap.sh cargo-deb'"
ASSETS="$(dirname "$CLI_BIN")/deb-assets"
rm -rf "$ASSETS"
mkdir -p "$ASSETS/man" "$ASSETS/completions"
"$CLI_BIN" man --out "$ASSETS/man" >/dev/null
gzip -9n "$ASSETS"/man/*.1
"$CLI_BIN" completions bash >"$ASSETS/completions/labpipe.bash"
"$CLI_BIN" completions zsh >"$ASSETS/completions/_labpipe"
"$CLI_BIN" completions fish >"$ASSETS/completions/labpipe.fish"
CLI_DEB="$DIST/labpipe_${VERSION}_amd64.deb"
say "cli: cargo deb -p labpipe-cli --no-build --target $MUSL --profile $musl_profile"
env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS cargo deb -p labpipe-cli --no-build --no-strip \
  --target "$MUSL" --profile "$musl_profile" -o "$CLI_DEB" >"$DIST/cargo-deb.log" 2>&1 ||
  { tail -20 "$DIST/cargo-deb.log" >&2; die "cargo-deb failed (log: $DIST/cargo-deb.log)"; }
[ "$(dpkg-deb -f "$CLI_DEB" Package Version Architecture | tr '\n' ' ')" = "Package: labpipe Version: $VERSION Architecture: amd64 " ] ||
  die "$CLI_DEB is not labpipe $VERSION amd64: $(dpkg-deb -f "$CLI_DEB" Package Version Architecture | tr '\n' ' ')"
say "built $(basename "$APP_DEB") ($(du -h "$APP_DEB" | cut -f1)), $(basename "$CLI_DEB") ($(du -h "$CLI_DEB" | cut -f1)), static labpipe ($(du -h "$CLI_BIN" | cut -f1))"

# 4. The Windows installer (exit 3: its toolchain cannot be installed here, said in one line).
win_args=()
[ "$PROFILE" = release ] && win_args=(--release)
rc=0
bash scripts/package-windows.sh "${win_args[@]}" || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || die "the Windows installer could not be built (scripts/package-windows.sh, above)"

[ "$INSTALL" -eq 1 ] || exit 0

# 5. Install both with apt, as a technician or an image build would, and check what landed.
say "apt-get install ./$(basename "$APP_DEB") ./$(basename "$CLI_DEB")"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --reinstall \
  "$APP_DEB" "$CLI_DEB" >"$DIST/apt-install.log" 2>&1 ||
  { tail -20 "$DIST/apt-install.log" >&2; die "apt could not install the packages (log: $DIST/apt-install.log)"; }
dpkg -s lab-pipe labpipe >/dev/null || die "dpkg does not list lab-pipe and labpipe as installed"
[ -x /usr/bin/labpipe-app ] || die "/usr/bin/labpipe-app is missing after the install"
grep -q '^Exec=labpipe-app' /usr/share/applications/LabPipe.desktop || die "the menu entry does not start labpipe-app"
/usr/bin/labpipe --version | grep -q "^labpipe $VERSION" || die "installed labpipe --version: $(/usr/bin/labpipe --version)"
[ -f /usr/share/man/man1/labpipe-sync.1.gz ] || die "man page labpipe-sync.1.gz not installed"
grep -q "labpipe" /usr/share/bash-completion/completions/labpipe || die "bash completion not installed"
grep -q "labpipe" /usr/share/zsh/vendor-completions/_labpipe || die "zsh completion not installed"
grep -q "labpipe" /usr/share/fish/vendor_completions.d/labpipe.fish || die "fish completion not installed"

# The installed CLI gives the same verdicts as the one the tests built, on the same folders.
LAB="$(mktemp -d)"
trap 'rm -rf "$LAB"' EXIT
/usr/bin/labpipe dev generate --out "$LAB" --count 3 --size-mb 1 --broken --seed 5 >/dev/null
installed="$(/usr/bin/labpipe check --json "$LAB" | sort || true)"
built="$("$CARGO_TARGET_DIR/debug/labpipe" check --json "$LAB" | sort || true)"
[ -n "$installed" ] && [ "$installed" = "$built" ] ||
  die "the installed labpipe check disagrees with the built one on $LAB"
sessions="$(printf '%s' "$installed" | grep -c '"session":' || true)"
say "installed: lab-pipe (app) and labpipe (CLI); the installed CLI's verdicts equal the built one's on $sessions sessions"
