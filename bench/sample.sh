#!/usr/bin/env bash
# Benchmarks sample-data generation (`labpipe dev generate`, release build): one session of
# SIZE_MB against the machine's own random source writing the same number of bytes to the same
# disk in the same run (`head -c … /dev/urandom`), so the ratio says what our signal model and
# file writing cost beyond the disk. Prints one Markdown table row per tool.
#
#   usage: bench/sample.sh [SIZE_MB]      (default 600, the lab's session size)
#
# It replaces an ignored unit test that only printed MB/s (crates/sample/src/signal.rs).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE_MB="${1:-600}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-$REPO}/.cache/labpipe/target}"
say() { printf 'bench: %s\n' "$*" >&2; }

[ -x /usr/bin/time ] || { say "installing GNU time"; apt-get install -y -qq time >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }; }
WORK="$(mktemp -d -t labpipe-bench-sample-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

say "building labpipe (release)"
cargo build --release -q -p labpipe-cli
LABPIPE="$CARGO_TARGET_DIR/release/labpipe"

# run NAME COMMAND…: wall and CPU seconds from GNU time, the bytes written, MB/s.
run() {
  local name="$1"; shift
  rm -rf "$WORK/out"; mkdir -p "$WORK/out"
  sync
  /usr/bin/time -f '%e %U %S' -o "$WORK/time" "$@" >/dev/null
  sync
  local bytes wall cpu
  bytes=$(du -sb "$WORK/out" | cut -f1)
  read -r wall user sys <"$WORK/time"
  cpu=$(echo "$user + $sys" | bc -l)
  printf '| %s | %d | %.2f | %.2f | %.0f |\n' "$name" "$((bytes / 1000000))" "$wall" "$cpu" "$(echo "$bytes / 1000000 / $wall" | bc -l)"
}

printf '| tool | MB written | wall s | CPU s | MB/s |\n|---|---:|---:|---:|---:|\n'
run "labpipe dev generate --count 1 --size-mb $SIZE_MB" \
  "$LABPIPE" dev generate --out "$WORK/out" --count 1 --size-mb "$SIZE_MB" --seed 5
run "head -c ${SIZE_MB}M /dev/urandom" \
  sh -c "head -c $((SIZE_MB * 1000000)) /dev/urandom >'$WORK/out/random.bin'"
