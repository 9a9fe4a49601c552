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
#        LABPIPE_BENCH_ARGS (extra flags for labpipe upload, e.g. "--concurrency 8 --part-size 16MiB")
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
SIZE_MB="${1:-600}"
SMALL_COUNT="${2:-200}"
bench_workdir bench

install_peers

echo "building labpipe (release)…" >&2
cargo build --quiet --release -p labpipe-cli --manifest-path "$ROOT/Cargo.toml"
LABPIPE="$CARGO_TARGET_DIR/release/labpipe"

DATA="$WORK/data"
if [ ! -d "$DATA" ]; then
  "$LABPIPE" dev generate --out "$DATA" --count 1 --size-mb "$SIZE_MB" --seed 7 --json >/dev/null
fi
SESSION_DIR="$(find "$DATA" -mindepth 1 -maxdepth 1 -type d -name '[0-9]*_[0-9]*' | head -1)"
SESSION="$(basename "$SESSION_DIR")"
BYTES="$(find "$SESSION_DIR" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')"

SMALL="$WORK/small"
if [ ! -d "$SMALL" ]; then
  "$LABPIPE" dev generate --out "$SMALL" --count "$SMALL_COUNT" --size-mb 1 --seed 8 --json >/dev/null
fi
SMALL_BYTES="$(find "$SMALL" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')"
SMALL_FILES="$(find "$SMALL" -type f | wc -l)"

start_bench_emulator
start_bench_seaweedfs

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
  got="$("${aws[@]}" s3 ls --recursive "s3://$bucket/" | awk '$4 !~ /manifest.json$/ {s+=$3} END {print s+0}')"
  [ "$got" = "$want" ] || { echo "$name: uploaded $got bytes, expected $want" >&2; exit 1; }
  "${aws[@]}" s3 rm --quiet --recursive "s3://$bucket/" >/dev/null   # free the server's memory and disk
  echo "$m"
}

# tool case → the command uploading that case's folder into s3://BUCKET/raw/…
upload_cmd() { # tool case bucket
  local tool="$1" case="$2" bucket="$3" src dest
  if [ "$case" = big ]; then src="$SESSION_DIR" dest="raw/$SESSION"; else src="$SMALL" dest="raw"; fi
  case "$tool" in
    labpipe) printf '%s\0' env "${LABPIPE_ENV[@]}" LABPIPE_JOURNAL="$WORK/journal-$EP-$case.sqlite3" \
      LABPIPE_LOG_DIR="$WORK/logs" "$LABPIPE" upload "$src" --bucket "$bucket" --json ;;
    aws-cli) printf '%s\0' "$VENV/bin/aws" --endpoint-url "$ENDPOINT" s3 cp --recursive --only-show-errors "$src" "s3://$bucket/$dest/" ;;
    s5cmd) printf '%s\0' "$VENV/bin/s5cmd" --endpoint-url "$ENDPOINT" cp "$src/*" "s3://$bucket/$dest/" ;;
    rclone) printf '%s\0' env -u AWS_CA_BUNDLE rclone --config "$WORK/rclone.conf" copy "$src" "$REMOTE:$bucket/$dest" ;;
  esac
}

TOOLS=(labpipe aws-cli s5cmd rclone)
declare -A BIG SMALL_RUN
for EP in "${BENCH_ENDPOINTS[@]}"; do
  use_endpoint "$EP"
  for tool in "${TOOLS[@]}"; do
    mapfile -d '' -t cmd < <(upload_cmd "$tool" big "bench-$tool")
    # shellcheck disable=SC2086 # the extra flags are words
    [ "$tool" = labpipe ] && cmd+=(${LABPIPE_BENCH_ARGS:-})
    BIG[$EP/$tool]="$(run_tool "$tool" "bench-$tool" "$BYTES" "${cmd[@]}")"
    echo "$EP $tool, one ${SIZE_MB} MB session: ${BIG[$EP/$tool]} (wall s, cpu s)" >&2
    mapfile -d '' -t cmd < <(upload_cmd "$tool" small "small-$tool")
    # shellcheck disable=SC2086
    [ "$tool" = labpipe ] && cmd+=(${LABPIPE_BENCH_ARGS:-})
    SMALL_RUN[$EP/$tool]="$(run_tool "$tool" "small-$tool" "$SMALL_BYTES" "${cmd[@]}")"
    echo "$EP $tool, $SMALL_COUNT small sessions: ${SMALL_RUN[$EP/$tool]} (wall s, cpu s)" >&2
  done
done

echo
echo "one session $SESSION: $BYTES bytes; $SMALL_COUNT small sessions: $SMALL_FILES files, $SMALL_BYTES bytes"
echo "$(nproc) cores shared by the client and the server; load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
for EP in "${BENCH_ENDPOINTS[@]}"; do
  echo
  echo "== $(describe_endpoint "$EP")"
  printf '%-8s %8s %8s %14s %12s %14s | %14s %12s\n' tool wall_s MB/s cpu_s_per_GB "MB/s ratio" "cpu/GB ratio" "small wall_s" "small cpu_s"
  read -r lw lc <<<"${BIG[$EP/labpipe]}"
  for tool in "${TOOLS[@]}"; do
    read -r wall cpu <<<"${BIG[$EP/$tool]}"
    read -r swall scpu <<<"${SMALL_RUN[$EP/$tool]}"
    python3 - "$tool" "$wall" "$cpu" "$BYTES" "$lw" "$lc" "$swall" "$scpu" <<'PY'
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
