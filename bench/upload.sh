#!/usr/bin/env bash
# Benchmark: `labpipe upload` against the usual S3 copy tools, same data, two local S3 endpoints.
#
# Every tool (labpipe, aws-cli, s5cmd, rclone) runs against both endpoints of bench/lib.sh — the
# emulator (moto, Python) and SeaweedFS (compiled) — each run into its own fresh bucket:
#   1. one generated session of SIZE_MB (default 600): wall-clock MB/s and client CPU-seconds per
#      GB (user + system of the client process tree only; the servers share the machine, so CPU
#      matters as much as wall);
#   2. 200 small sessions of ~1 MB each (per-request and per-session overhead): wall seconds.
# One table per endpoint.
#
# Usage: bench/upload.sh [SIZE_MB] [SMALL_COUNT]     (defaults 600, 200)
# Env:   CARGO_TARGET_DIR (default ~/.cache/labpipe/target), BENCH_DIR (default a temp dir),
#        LABPIPE_BENCH_ARGS (extra flags for labpipe upload, e.g. "--concurrency 8 --part-size 16MiB"),
#        LABPIPE_BIN (a labpipe binary to use instead of building one),
#        BENCH_COUNT (sessions of SIZE_MB each, default 1: e.g. 200 with SIZE_MB 1 for a backlog),
#        BENCH_WAN ("RTT_MS,MBIT", e.g. "40,500": every tool behind bench/lib.sh's bench_wan proxy)
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
SIZE_MB="${1:-600}"
COUNT="${BENCH_COUNT:-1}"
bench_workdir bench

install_peers

if [ -n "${LABPIPE_BIN:-}" ]; then
  LABPIPE="$LABPIPE_BIN"   # a binary already built (e.g. to compare two builds)
else
  echo "building labpipe (release)…" >&2
  cargo build --quiet --release -p labpipe-cli --manifest-path "$ROOT/Cargo.toml"
  LABPIPE="$CARGO_TARGET_DIR/release/labpipe"
fi

DATA="$WORK/data"
if [ ! -d "$DATA" ]; then
  "$LABPIPE" dev generate --out "$DATA" --count "$COUNT" --size-mb "$SIZE_MB" --seed 7 --json >/dev/null
fi
SESSION_DIR="$(find "$DATA" -mindepth 1 -maxdepth 1 -type d -name '[0-9]*_[0-9]*' | head -1)"
SESSION="$(basename "$SESSION_DIR")"
# One session is copied as its folder; a backlog as the folder of sessions, by every tool (the
# peers copy the lab's labpipe.toml too, labpipe reads it: it is not counted).
if [ "$COUNT" = 1 ]; then SRC="$SESSION_DIR" DEST="raw/$SESSION/"; else SRC="$DATA" DEST="raw/"; fi
BYTES="$(find "$SRC" -type f ! -name labpipe.toml -printf '%s\n' | awk '{s+=$1} END {print s}')"

SMALL="$WORK/small"
if [ ! -d "$SMALL" ]; then
  "$LABPIPE" dev generate --out "$SMALL" --count "$SMALL_COUNT" --size-mb 1 --seed 8 --json >/dev/null
fi
SMALL_BYTES="$(find "$SMALL" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')"
SMALL_FILES="$(find "$SMALL" -type f | wc -l)"

start_bench_emulator
bench_wan
AWS=("$VENV/bin/aws" --endpoint-url "$ENDPOINT")

# Runs a command, prints "wall_seconds cpu_seconds" of it and its children.
measure() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wall = time.monotonic() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN)
if rc != 0:
    sys.exit(f"command failed ({rc}): {' '.join(sys.argv[1:])}")
print(f"{wall:.3f} {r.ru_utime + r.ru_stime:.3f}")
PY
}

# Runs one tool into a fresh bucket, checks the bytes that arrived, empties the bucket again.
run_tool() { # name bucket expected_bytes command...
  local name="$1" bucket="$2" want="$3"; shift 3
  local aws=("$VENV/bin/aws" --endpoint-url "$ENDPOINT")
  "${aws[@]}" s3 mb "s3://$bucket" >/dev/null
  local m got
  m="$(measure "$@")"
  local got
  got="$("${AWS[@]}" s3 ls --recursive "s3://$bucket/" | awk '$4 !~ /(manifest.json|labpipe.toml)$/ {s+=$3} END {print s+0}')"
  [ "$got" = "$BYTES" ] || { echo "$name: uploaded $got bytes, expected $BYTES" >&2; exit 1; }
  "${AWS[@]}" s3 rm --quiet --recursive "s3://$bucket/" >/dev/null   # free the emulator's memory
  results+=("$name $m")
  echo "$name: $m (wall s, cpu s)" >&2
}

# labpipe's summary line (kept in $WORK/labpipe.jsonl) counts its requests (an SDK interceptor).
rm -f "$WORK/journal.sqlite3"
run_tool labpipe bench-labpipe bash -c 'exec "$@" >"$0"' "$WORK/labpipe.jsonl" \
  env AWS_ENDPOINT_URL="$ENDPOINT" LABPIPE_JOURNAL="$WORK/journal.sqlite3" LABPIPE_LOG_DIR="$WORK/logs" \
  "$LABPIPE" upload "$SRC" --bucket bench-labpipe --json ${LABPIPE_BENCH_ARGS:-}
run_tool aws-cli bench-awscli "${AWS[@]}" s3 cp --recursive --only-show-errors "$SRC" "s3://bench-awscli/$DEST"
run_tool s5cmd bench-s5cmd "$VENV/bin/s5cmd" --endpoint-url "$ENDPOINT" cp "$SRC/*" "s3://bench-s5cmd/$DEST"
run_tool rclone bench-rclone env -u AWS_CA_BUNDLE rclone --config "$WORK/rclone.conf" copy "$SRC" "emu:bench-rclone/$DEST"

echo
echo "$COUNT session(s) ($SESSION…): $BYTES bytes, $(nproc) cores shared by client and emulator${BENCH_WAN:+, behind wan-proxy $BENCH_WAN (rtt ms, Mbit/s)}"
python3 - "$WORK/labpipe.jsonl" <<'PY'
import json, sys
s = [json.loads(l) for l in open(sys.argv[1]) if '"summary"' in l][-1]
print(f"labpipe requests: {s['requests']} for {s['objects']} objects ({s['requests'] / max(s['objects'], 1):.2f} per object)")
PY
printf '%-8s %8s %8s %14s %12s %14s\n' tool wall_s MB/s cpu_s_per_GB "MB/s ratio" "cpu/GB ratio"
read -r _ lw lc <<<"${results[0]}"
for r in "${results[@]}"; do
  read -r name wall cpu <<<"$r"
  python3 - "$name" "$wall" "$cpu" "$BYTES" "$lw" "$lc" <<'PY'
import sys
name, wall, cpu, b, lw, lc, sw, sc = sys.argv[1], *map(float, sys.argv[2:])
mbs, cpugb = b / wall / 1e6, cpu / (b / 1e9)
lmbs, lcpugb = b / lw / 1e6, lc / (b / 1e9)
print(f"{name:<8} {wall:8.2f} {mbs:8.1f} {cpugb:14.2f} {mbs / lmbs:12.2f} {cpugb / lcpugb:14.2f} | {sw:14.2f} {sc:12.2f}")
PY
  done
done
echo "(ratios are relative to labpipe on the same endpoint: MB/s ratio > 1 = faster than labpipe; cpu ratio > 1 = more CPU than labpipe)"
echo "work folder: $WORK" >&2
