#!/usr/bin/env bash
# Benchmarks preprocessing of one full-size session: wall time and peak RSS of the preprocess
# handler alone (generation, upload and ingest happen in a separate, unmeasured process).
#
#   usage: bench/preprocess.sh [SIZE_MB]      (default 600, the lab's session size)
#
# Starts its own emulator (scripts/stack.sh, private state) on a free port of 127.0.0.1 (stopped on exit), builds the release
# benchmark helper (backend/examples/bench_preprocess.rs) and runs it under /usr/bin/time -v.
# Note: the emulator serves the raw objects from the same two cores, so the figure is a lower
# bound on what a Lambda reading from S3 achieves.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
SIZE_MB="${1:-600}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-$REPO}/.cache/labpipe/target}"

say() { printf 'bench: %s\n' "$*" >&2; }

[ -x /usr/bin/time ] || { say "installing GNU time"; apt-get install -y -qq time >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }; }
[ -x "$REPO/.venv/bin/moto_server" ] || bash "$REPO/scripts/bootstrap.sh" venv

WORK="$(mktemp -d -t labpipe-bench-XXXXXX)"
export LABPIPE_STACK_DIR="$WORK/stack"
cleanup() {
  bash "$REPO/scripts/stack.sh" stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

say "building the release benchmark helper"
cargo build --release -q -p labpipe-backend --example bench_preprocess
HELPER="$CARGO_TARGET_DIR/release/examples/bench_preprocess"

bash "$REPO/scripts/stack.sh" start >/dev/null
eval "$(bash "$REPO/scripts/stack.sh" env)"

say "generating, uploading and ingesting one ${SIZE_MB} MB session"
"$HELPER" setup "$WORK/lab" "$SIZE_MB" >"$WORK/env.sh"
# shellcheck disable=SC1091
. "$WORK/env.sh"
rm -rf "$WORK/lab"

say "preprocessing (measured)"
/usr/bin/time -v "$HELPER" run >"$WORK/result.json" 2>"$WORK/time.txt"
RESULT="$(cat "$WORK/result.json")"
WALL="$(grep 'Elapsed (wall clock)' "$WORK/time.txt" | awk '{print $NF}')"
RSS_KB="$(grep 'Maximum resident set size' "$WORK/time.txt" | awk '{print $NF}')"
USER_S="$(grep 'User time' "$WORK/time.txt" | awk '{print $NF}')"
SYS_S="$(grep 'System time' "$WORK/time.txt" | awk '{print $NF}')"
echo "$RESULT"
printf 'preprocess %s MB: wall %s, cpu %ss user + %ss sys, peak RSS %d MiB\n' \
  "$SIZE_MB" "$WALL" "$USER_S" "$SYS_S" "$((RSS_KB / 1024))"

# The figures' one home: bench/results/preprocess.md.
SECS="$(awk -F: '{s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.1f", s}' <<<"$WALL")"
MIB="$((RSS_KB / 1024))"
GOAL="$(awk -v s="$SECS" -v m="$MIB" 'BEGIN {print (s < 30 && m < 512) ? "met" : "not met"}')"
bench_record preprocess "one $SIZE_MB MB session" "$SECS s" "$MIB MiB" "< 30 s, < 512 MB: $GOAL"
