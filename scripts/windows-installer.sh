#!/usr/bin/env bash
# The Windows lab PC, checked on Linux: the MSI (scripts/package-windows.sh) is inspected, installed
# under Wine, used and removed again, and the programs it installed are compared with the Linux
# build:
#
#   1. build    dist/LabPipe-<version>-x64.msi from the `cross` profile (--release: optimised);
#               every DLL the exes import is a Windows system DLL or shipped beside them; the app
#               carries its icon, manifest and version resource
#   2. tables   the MSI's File, Directory, Shortcut, Environment, Upgrade and LaunchCondition tables
#               are what packaging/windows/LabPipe.wxs promises; msiextract gives the build's bytes
#   3. install  in a fresh Wine prefix: refused without the WebView2 runtime (exit 1603, nothing
#               installed); with it (its registry value, as Windows has it) `msiexec /i … /qn` puts
#               every file where the tables say, the Start-menu shortcut, labpipe.exe's folder on
#               the system PATH and one uninstall entry
#   4. use      the installed `labpipe-app.exe configure …` (no window) writes %APPDATA%\
#               org.labpipe.desktop\settings.json, which the Linux build reads back equal; the
#               installed `labpipe.exe` runs from PATH and scripts/cross-windows.sh compares it with
#               the Linux build (generate, check verdicts, upload)
#   5. upgrade  the same files as the next version install over it: one LabPipe left, the new one
#   6. remove   `msiexec /x` removes the files, the shortcut, the PATH entry and the uninstall entry,
#               and leaves the lab's settings alone
#
#   usage: scripts/windows-installer.sh [--release]     (scripts/test.sh's windows stage)
#
# The app's window is not started: it draws with WebView2, which does not run under Wine. What only
# a Windows machine shows is listed in docs/operations.md ("The Windows lab PC").
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-$REPO}/.cache/labpipe/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
TARGET=x86_64-pc-windows-gnu
PROFILE=cross
PKG_ARGS=()
for arg in "$@"; do
  case "$arg" in
    --release) PROFILE=release; PKG_ARGS=(--release) ;;
    -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "windows-installer: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done
T0=$SECONDS
say() { printf 'windows-installer: [%3ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() { printf 'windows-installer: error: %s\n' "$*" >&2; exit 1; }
CHECK=(python3 "$REPO/scripts/windows_msi.py")

# 1. The MSI (exit 3 from package-windows.sh: the toolchain cannot be installed here; skip).
rc=0
bash scripts/package-windows.sh "${PKG_ARGS[@]}" || rc=$?
[ "$rc" -eq 3 ] && exit 0
[ "$rc" -eq 0 ] || exit "$rc"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
MSI="$REPO/dist/LabPipe-${VERSION}-x64.msi"
OUT="$CARGO_TARGET_DIR/$TARGET/$PROFILE"
python3 scripts/windows_pe.py resources "$OUT/labpipe-app.exe" --version "$VERSION" ||
  die "labpipe-app.exe lacks its icon or version resource (tauri-build embeds them with x86_64-w64-mingw32-windres)"
LINUX_APP="$CARGO_TARGET_DIR/debug/labpipe-app"
if [ ! -x "$LINUX_APP" ] || [ "$(find "$REPO/src-tauri/src" -newer "$LINUX_APP" -name '*.rs' -print -quit)" ]; then
  nice -n 10 cargo build --quiet -p labpipe-app
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/labpipe-windows-installer.XXXXXX")"
# A fresh prefix each run (about 12 s): an install test starts from a PC that never had LabPipe.
export WINEPREFIX="$WORK/wine" WINEARCH=win64 WINEDEBUG=-all
# No Mono or Gecko (nothing here uses them) and no menu entries on this Linux desktop from the
# shortcut the MSI creates.
export WINEDLLOVERRIDES="mscoree,mshtml,winemenubuilder.exe="
unset DISPLAY WAYLAND_DISPLAY
WINE="$(command -v wine64 || true)"
[ -n "$WINE" ] || WINE=/usr/lib/wine/wine64
WINESERVER="$(command -v wineserver || echo /usr/lib/wine/wineserver)"
cleanup() {
  "$WINESERVER" -k 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
winpath() { printf 'Z:%s' "$1" | tr / '\\'; }
DRIVE_C="$WINEPREFIX/drive_c"
INSTALLED="$DRIVE_C/Program Files/LabPipe"
WV2_KEY='HKLM\SOFTWARE\Microsoft\EdgeUpdate\Clients\{F3017226-FE2A-4295-8BDF-00C3A9A7E4C5}'
ENV_KEY='HKLM\System\CurrentControlSet\Control\Session Manager\Environment'
FAILED=0

# 2. The tables, and the files inside.
say "MSI tables ($(basename "$MSI"), $(du -h "$MSI" | cut -f1))"
"${CHECK[@]}" tables "$MSI" "$VERSION" || FAILED=1
mkdir -p "$WORK/extracted"
"${CHECK[@]}" extracted "$MSI" "$WORK/extracted" "$OUT" || FAILED=1

# 3. Install.
t=$SECONDS
mkdir -p "$WINEPREFIX"
"$WINE" wineboot --init >/dev/null 2>&1 || true
"$WINESERVER" -w
[ -f "$WINEPREFIX/system.reg" ] || die "wineboot did not create $WINEPREFIX; run '$WINE wineboot' to see why"
say "wine prefix created in $((SECONDS - t))s"
rc=0
"$WINE" msiexec /i "$(winpath "$MSI")" /qn /l*v "$(winpath "$WORK/refused.log")" || rc=$?
# msiexec's 1603 (fatal error) arrives as 1603 % 256 = 67 through Wine's unix exit status.
if [ "$rc" -eq 67 ] && [ ! -e "$INSTALLED" ]; then
  echo "  ok  without the WebView2 runtime the install is refused (1603) and installs nothing"
else
  echo "  FAIL without the WebView2 runtime: msiexec exit $rc, $INSTALLED $([ -e "$INSTALLED" ] && echo exists || echo absent)"
  FAILED=1
fi
"$WINE" reg add "$WV2_KEY" /v pv /t REG_SZ /d 120.0.2210.91 /f /reg:32 >/dev/null
rc=0
"$WINE" msiexec /i "$(winpath "$MSI")" /qn /l*v "$(winpath "$WORK/install.log")" || rc=$?
[ "$rc" -eq 0 ] || die "msiexec /i $(basename "$MSI") exited $rc (log: $WORK/install.log)"
"${CHECK[@]}" installed "$MSI" "$WORK/install.log" "$DRIVE_C" || FAILED=1
path_has() {
  "$WINE" reg query "$ENV_KEY" /v PATH | tr -d '\r' | sed -n 's/^ *PATH *REG_[A-Z_]* *//p' | tr ';' '\n' |
    grep -cixF 'C:\Program Files\LabPipe\' || true
}
n="$(path_has)"
if [ "$n" -eq 1 ]; then echo "  ok  C:\\Program Files\\LabPipe\\ is on the system PATH once"; else
  echo "  FAIL C:\\Program Files\\LabPipe\\ is on the system PATH $n times"; FAILED=1; fi
arp() {
  "$WINE" reg export 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall' "$(winpath "$WORK/arp.reg")" /y >/dev/null
  iconv -f utf-16 -t utf-8 "$WORK/arp.reg" | tr -d '\r' | awk -F'"' '
    /^\[/ { key = $0 } /^"DisplayName"="LabPipe"$/ { found[key] = 1 } /^"DisplayVersion"=/ { v[key] = $4 }
    END { for (k in found) print v[k] }'
}
entries="$(arp | tr '\n' ' ')"
if [ "$entries" = "$VERSION " ]; then echo "  ok  one uninstall entry: LabPipe $VERSION"; else
  echo "  FAIL uninstall entries named LabPipe: '${entries}' (want one, $VERSION)"; FAILED=1; fi
say "installed in $((SECONDS - t))s"

# 4. Use: the app prepared from a script, the CLI from PATH and against the Linux build.
t=$SECONDS
mkdir -p "$WORK/lab" "$WORK/linux-config" "$WORK/reread"
printf '{"RawBucket": "lab-raw", "CatalogTable": "lab-catalog", "Region": "eu-west-1", "UploaderRoleArn": "arn:aws:iam::123456789012:role/lab-UploaderRole", "ClientLogGroup": "/labpipe/lab/client"}\n' \
  >"$WORK/outputs.json"
CONFIGURE=(configure --stack-outputs "$(winpath "$WORK/outputs.json")" --lab-folder "$(winpath "$WORK/lab")" --endpoint http://127.0.0.1:4566)
# Wine 8 lacks the bcryptprimitives.dll every Rust program needs; the stand-in cross-windows.sh
# builds (scripts/wine/) goes into this prefix first.
x86_64-w64-mingw32-gcc -shared -O2 -s -Wall -o "$DRIVE_C/windows/system32/bcryptprimitives.dll" \
  scripts/wine/bcryptprimitives.c -lbcrypt
rc=0
"$WINE" "$INSTALLED/labpipe-app.exe" "${CONFIGURE[@]}" >"$WORK/configure.out" 2>&1 || rc=$?
WIN_SETTINGS="$DRIVE_C/users/$(id -un)/AppData/Roaming/org.labpipe.desktop/settings.json"
if [ "$rc" -ne 0 ] || [ ! -f "$WIN_SETTINGS" ]; then
  cat "$WORK/configure.out"
  die "the installed labpipe-app.exe configure exited $rc and wrote no %APPDATA%\\org.labpipe.desktop\\settings.json"
fi
echo "  ok  installed labpipe-app.exe configure (no window): $(head -1 "$WORK/configure.out" | tr -d '\r')"
# The Linux build reads the Windows file (its Settings type), validates it and saves it again.
cp "$WIN_SETTINGS" "$WORK/reread/settings.json"
"$LINUX_APP" configure --config-dir "$WORK/reread" >/dev/null ||
  { echo "  FAIL the Linux build could not read the Windows build's settings.json"; FAILED=1; }
"$LINUX_APP" configure --config-dir "$WORK/linux-config" --stack-outputs "$WORK/outputs.json" \
  --lab-folder "$WORK/lab" --endpoint http://127.0.0.1:4566 >/dev/null
"${CHECK[@]}" settings "$WIN_SETTINGS" "$WORK/reread/settings.json" "$WORK/linux-config/settings.json" || FAILED=1

rc=0
onpath="$("$WINE" cmd /c "labpipe --version" 2>&1 | tr -d '\r')" || rc=$?
if [ "$rc" -eq 0 ] && [ "${onpath#"labpipe $VERSION"}" != "$onpath" ]; then echo "  ok  'labpipe --version' from PATH: $onpath"; else
  echo "  FAIL 'labpipe --version' from PATH: exit $rc, '$onpath'"; FAILED=1; fi
say "used in $((SECONDS - t))s; the installed labpipe.exe against the Linux build:"
"$WINESERVER" -w
LABPIPE_WINEPREFIX="$WINEPREFIX" LABPIPE_WINDOWS_EXE="$INSTALLED/labpipe.exe" bash scripts/cross-windows.sh || FAILED=1

# 5. Upgrade: the same files, the next version.
t=$SECONDS
NEXT="$(echo "$VERSION" | awk -F. '{ printf "%d.%d.%d", $1, $2, $3 + 1 }')"
bash scripts/package-windows.sh "${PKG_ARGS[@]}" --msi-version "$NEXT" --out "$WORK/next.msi" >/dev/null
rc=0
"$WINE" msiexec /i "$(winpath "$WORK/next.msi")" /qn /l*v "$(winpath "$WORK/upgrade.log")" || rc=$?
entries="$(arp | tr '\n' ' ')"
if [ "$rc" -eq 0 ] && [ "$entries" = "$NEXT " ]; then echo "  ok  $NEXT installs over $VERSION: one uninstall entry, LabPipe $NEXT"; else
  echo "  FAIL upgrade to $NEXT: msiexec exit $rc, uninstall entries '${entries}'"; FAILED=1; fi
"${CHECK[@]}" installed "$WORK/next.msi" "$WORK/upgrade.log" "$DRIVE_C" >/dev/null || { echo "  FAIL files after the upgrade"; FAILED=1; }
n="$(path_has)"
[ "$n" -eq 1 ] || { echo "  FAIL after the upgrade C:\\Program Files\\LabPipe\\ is on the system PATH $n times"; FAILED=1; }
rc=0
"$WINE" msiexec /i "$(winpath "$MSI")" /qn || rc=$?
if [ "$rc" -eq 67 ]; then echo "  ok  $VERSION over $NEXT is refused (1603, no downgrade)"; else
  echo "  FAIL installing $VERSION over $NEXT: exit $rc (want 1603)"; FAILED=1; fi
say "upgrade checked in $((SECONDS - t))s"

# 6. Remove.
rc=0
"$WINE" msiexec /x "$(winpath "$WORK/next.msi")" /qn /l*v "$(winpath "$WORK/remove.log")" || rc=$?
[ "$rc" -eq 0 ] || { echo "  FAIL msiexec /x exited $rc"; FAILED=1; }
"${CHECK[@]}" removed "$WORK/next.msi" "$WORK/remove.log" "$DRIVE_C" || FAILED=1
n="$(path_has)"
[ "$n" -eq 0 ] && echo "  ok  the PATH entry is removed" || { echo "  FAIL the PATH entry is left ($n)"; FAILED=1; }
[ -z "$(arp)" ] && echo "  ok  the uninstall entry is removed" || { echo "  FAIL an uninstall entry is left"; FAILED=1; }
[ -f "$WIN_SETTINGS" ] && echo "  ok  the lab's settings are kept" || { echo "  FAIL the uninstall removed %APPDATA%\\org.labpipe.desktop"; FAILED=1; }

[ "$FAILED" -eq 0 ] || die "the Windows installer does not do what packaging/windows/LabPipe.wxs says (FAIL lines above)"
say "the MSI installs, works, upgrades and uninstalls as described ($(du -h "$MSI" | cut -f1))"
