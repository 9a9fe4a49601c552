#!/usr/bin/env bash
# The Windows installer: dist/LabPipe-<version>-x64.msi, per machine, into C:\Program Files\LabPipe
# (the desktop app, WebView2Loader.dll beside it, labpipe.exe on the system PATH, a Start-menu
# entry, an uninstall entry; packaging/windows/LabPipe.wxs says what and why).
#
#   usage: scripts/package-windows.sh [--release] [--msi-version V --out FILE]
#
#   --release  optimised builds (what a lab gets). Without it the `cross` profile (Cargo.toml),
#              which scripts/test.sh builds in the background: the same files, quicker to make.
#   --msi-version V --out FILE   the same files stamped as version V into FILE (the upgrade test
#              of scripts/windows-installer.sh installs one over the other)
#
# The app and the CLI are built for x86_64-pc-windows-gnu in ONE cargo invocation, so they share
# one feature set and one compile of the dependency tree (scripts/test.sh and cross-windows.sh run
# the same command, so each of them finds it built). The MSI is made by wixl (msitools) from the
# checked-in description, not by the Tauri bundler, whose Windows installers need tools it
# downloads or Windows itself. Every DLL the two programs import must be a Windows system DLL or
# shipped beside them (checked here, so no build that needs a missing DLL is packaged).
#
# Prerequisites: `scripts/bootstrap.sh windows` (exit status 3 there: cannot install here; this
# script then says so and exits 3). ui/dist must be built (the app embeds it).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-$REPO}/.cache/labpipe/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
TARGET=x86_64-pc-windows-gnu
PROFILE=cross
MSI_VERSION=""
MSI=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --release) PROFILE=release ;;
    --msi-version) MSI_VERSION="${2:?--msi-version needs a version}"; shift ;;
    --out) MSI="${2:?--out needs a file}"; shift ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "package-windows: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
T0=$SECONDS
say() { printf 'package-windows: [%3ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() { printf 'package-windows: error: %s\n' "$*" >&2; exit 1; }

rc=0
bash scripts/bootstrap.sh windows || rc=$?
[ "$rc" -eq 3 ] && { say "skipped: the Windows toolchain cannot be installed here (line above); no MSI made"; exit 3; }
[ "$rc" -eq 0 ] || exit "$rc"
[ -f ui/dist/index.html ] || die "ui/dist is missing: run 'cd ui && npx vite build' first (the app embeds it)"

VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
MSI_VERSION="${MSI_VERSION:-$VERSION}"
DIST="$REPO/dist"
MSI="${MSI:-$DIST/LabPipe-${VERSION}-x64.msi}"
mkdir -p "$DIST" "$(dirname "$MSI")"

say "cargo build -p labpipe-cli -p labpipe-app --target $TARGET --profile $PROFILE"
nice -n 10 env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS cargo build --quiet -p labpipe-cli -p labpipe-app --target "$TARGET" --profile "$PROFILE"
OUT="$CARGO_TARGET_DIR/$TARGET/$PROFILE"
# webview2-com-sys copies the loader out of the crate into its build output; the newest one is
# the one this build linked against.
LOADER="$(ls -t "$OUT"/build/webview2-com-sys-*/out/x64/WebView2Loader.dll 2>/dev/null | head -1)"
[ -n "$LOADER" ] || die "no WebView2Loader.dll under $OUT/build/webview2-com-sys-*/out/x64 (did the app build?)"

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
cp "$OUT/labpipe-app.exe" "$OUT/labpipe.exe" "$LOADER" "$STAGE/"
cp src-tauri/icons/icon.ico "$STAGE/LabPipe.ico"

# Every imported DLL is a system DLL of Windows 10/11 or ships beside the exe. The mingw runtime
# (libgcc_s_seh-1.dll, libwinpthread-1.dll, libstdc++-6.dll) is exactly what must not slip in.
python3 scripts/windows_pe.py imports "$STAGE/labpipe-app.exe" "$STAGE/labpipe.exe" \
  --beside WebView2Loader.dll || die "an exe imports a DLL that is neither a Windows system DLL nor in the installer (above)"

# wixl resolves sources relative to the current folder, so it runs in the staging folder.
(cd "$STAGE" && wixl --arch x64 -D Version="$MSI_VERSION" -D AppExe=labpipe-app.exe -D CliExe=labpipe.exe \
  -D WebView2Loader=WebView2Loader.dll -D Icon=LabPipe.ico -o LabPipe.msi "$REPO/packaging/windows/LabPipe.wxs") ||
  die "wixl could not build the MSI from packaging/windows/LabPipe.wxs (message above)"
# wixl has no <Environment> element: the row that appends the install folder to the system PATH
# (removed again on uninstall; `=-*`: set, remove on uninstall, system variable; `[~];`: append),
# and the two standard actions that apply it.
printf 'Environment\tName\tValue\tComponent_\ns72\tl255\tL255\ts72\nEnvironment\tEnvironment\nPath\t=-*Path\t[~];[INSTALLDIR]\tCli\n' \
  >"$STAGE/Environment.idt"
msibuild "$STAGE/LabPipe.msi" -i "$STAGE/Environment.idt" \
  -q "INSERT INTO \`InstallExecuteSequence\` (\`Action\`, \`Sequence\`) VALUES ('RemoveEnvironmentStrings', 3300)" \
  -q "INSERT INTO \`InstallExecuteSequence\` (\`Action\`, \`Sequence\`) VALUES ('WriteEnvironmentStrings', 5200)" ||
  die "msibuild could not add the PATH entry to the MSI"
mv "$STAGE/LabPipe.msi" "$MSI"
say "built $(basename "$MSI") ($(du -h "$MSI" | cut -f1), version $MSI_VERSION): labpipe-app.exe $(du -h "$OUT/labpipe-app.exe" | cut -f1), labpipe.exe $(du -h "$OUT/labpipe.exe" | cut -f1), WebView2Loader.dll ($PROFILE)"
