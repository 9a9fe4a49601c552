#!/usr/bin/env bash
# Packages the ingest and preprocess Lambdas for the provided.al2023 runtime:
# ingest.zip and preprocess.zip, each holding a `bootstrap` executable at its
# root, in DIR (default $CARGO_TARGET_DIR/lambda-package/<profile>). Prints
# each zip's path and size, one per line.
#
#   usage: scripts/package-lambdas.sh [--release] [--arm64] [--out DIR] [--from-build]
#
#   --release     optimised build (what `labpipe admin deploy --build` deploys)
#   --arm64       build for Graviton; needs zig and the aarch64-unknown-linux-gnu
#                 std (rustup target add ...); x86_64 is the default and always works
#   --from-build  zip the ingest/preprocess executables an earlier `cargo build`
#                 (e.g. `cargo build --workspace --bins`) left in $CARGO_TARGET_DIR/<profile>
#                 for this machine (x86_64 only), without building: cargo-lambda's
#                 explicit --target is a second, separate build of the whole backend.
#                 Cheap, for tests; deploys use cargo-lambda.
#
# cargo-lambda comes from .venv (scripts/bootstrap.sh installs it with pip). The one
# place that runs it: `labpipe admin deploy --build` calls this script (crates/deploy).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROFILE=debug
ARCH=x86_64
OUT=""
FROM_BUILD=0
while [ $# -gt 0 ]; do
  case "$1" in
    --release) PROFILE=release ;;
    --arm64) ARCH=arm64 ;;
    --out) OUT="$2"; shift ;;
    --from-build) FROM_BUILD=1 ;;
    -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package-lambdas: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
OUT="${OUT:-$TARGET/lambda-package/$PROFILE}"
mkdir -p "$OUT"
export PATH="$REPO/.venv/bin:$PATH"
# The zips are written and read with Python's zipfile: the venv's, else the system's
# (`labpipe admin deploy --build` runs this script in a tree that may have no .venv).
PYTHON="$REPO/.venv/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3

# zip_bootstrap EXE ZIP: ZIP holds EXE as an executable named bootstrap.
zip_bootstrap() {
  local stage
  stage="$(mktemp -d)"
  cp "$1" "$stage/bootstrap"
  chmod 755 "$stage/bootstrap"
  rm -f "$2"
  (cd "$stage" && "$PYTHON" -c '
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o100755 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, open("bootstrap", "rb").read())
' "$2")
  rm -rf "$stage"
}

t0=$SECONDS
if [ "$FROM_BUILD" = 1 ]; then
  [ "$ARCH" = x86_64 ] && [ "$(uname -m)" = x86_64 ] \
    || { echo "package-lambdas: --from-build packages this machine's x86_64 build only" >&2; exit 2; }
  for bin in ingest preprocess; do
    [ -x "$TARGET/$PROFILE/$bin" ] || {
      rel=""; [ "$PROFILE" = release ] && rel=" --release"
      echo "package-lambdas: $TARGET/$PROFILE/$bin is missing: cargo build -p labpipe-backend --bins$rel" >&2
      exit 1
    }
    zip_bootstrap "$TARGET/$PROFILE/$bin" "$OUT/$bin.zip"
  done
else
  command -v cargo-lambda >/dev/null 2>&1 \
    || { echo "package-lambdas: cargo-lambda is missing: .venv/bin/pip install cargo-lambda (or scripts/bootstrap.sh venv)" >&2; exit 1; }
  flags=(-p labpipe-backend --features lambda --bin ingest --bin preprocess --output-format zip --lambda-dir "$OUT/cargo-lambda")
  if [ "$ARCH" = arm64 ]; then
    rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu \
      || { echo "package-lambdas: arm64 needs the aarch64-unknown-linux-gnu std: rustup target add aarch64-unknown-linux-gnu" >&2; exit 1; }
    command -v zig >/dev/null 2>&1 || "$REPO/.venv/bin/python" -c 'import ziglang' 2>/dev/null \
      || { echo "package-lambdas: arm64 is cross-compiled with zig: .venv/bin/pip install ziglang" >&2; exit 1; }
    flags+=(--arm64)
  elif [ "$(uname -m)" = x86_64 ]; then
    # Native: plain cargo, no zig.
    flags+=(--x86-64 --compiler cargo)
  else
    flags+=(--x86-64)
  fi
  [ "$PROFILE" = release ] && flags+=(--release)
  (cd "$REPO" && cargo lambda build "${flags[@]}")
  for bin in ingest preprocess; do
    cp "$OUT/cargo-lambda/$bin/bootstrap.zip" "$OUT/$bin.zip"
  done
fi

# provided.al2023 has glibc 2.34: a bootstrap linked against newer symbols
# would not start there (cargo-lambda's zig compiler pins an older glibc; a
# native cargo build links against this machine's).
if [ "$ARCH" = x86_64 ] && command -v objdump >/dev/null 2>&1; then
  for bin in ingest preprocess; do
    exe="$(mktemp)"
    "$PYTHON" -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("bootstrap"))' "$OUT/$bin.zip" "$exe"
    need="$(objdump -T "$exe" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1 || true)"
    rm -f "$exe"
    if [ -n "$need" ] && [ "$(printf '%s\n2.34\n' "$need" | sort -V | tail -1)" != 2.34 ]; then
      echo "package-lambdas: $bin needs glibc $need, provided.al2023 has 2.34: build on an older system or with --compiler cargo-zigbuild" >&2
      exit 1
    fi
  done
fi

for bin in ingest preprocess; do
  printf '%s\t%s bytes\n' "$OUT/$bin.zip" "$(stat -c %s "$OUT/$bin.zip")"
done
echo "package-lambdas: $PROFILE $ARCH in $((SECONDS - t0))s" >&2
