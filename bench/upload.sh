#!/usr/bin/env bash
# Benchmark: `labpipe upload` against the usual S3 copy tools, same data, two local S3 endpoints.
#
# Every tool (labpipe, aws-cli, s5cmd, rclone) runs against both endpoints of bench/lib.sh — the
# emulator (moto, Python) and SeaweedFS (compiled, the throughput reference) — each run into its
# own fresh bucket, and the bytes that arrived are counted. Two workloads:
#   1. one generated session of SIZE_MB (default 600): wall-clock MB/s and client CPU-seconds per
#      GB (user + system of the client process tree only; the servers share the machine, so CPU
#      matters as much as wall);
#   2. a backlog of BACKLOG sessions of ~1 MB each (default 200; 0 skips it): per-request and
#      per-session overhead, wall seconds.
# One table per endpoint and workload, with labpipe's requests per object (its SDK interceptor).
#
# Usage: bench/upload.sh [SIZE_MB] [BACKLOG]     (defaults 600, 200)
# Env:   CARGO_TARGET_DIR (default ~/.cache/labpipe/target), BENCH_DIR (default a temp dir),
#        LABPIPE_BENCH_ARGS (extra flags for labpipe upload, e.g. "--sessions-in-flight 8"),
#        LABPIPE_BIN (a labpipe binary to use instead of building a release one),
#        BENCH_ENDPOINTS_ONLY (e.g. "seaweedfs": one endpoint only),
#        BENCH_WAN ("RTT_MS,MBIT", e.g. "40,500": every tool behind a wan-proxy, bench/lib.sh)
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
SIZE_MB="${1:-600}"
BACKLOG="${2:-200}"
bench_workdir bench
install_peers

labpipe_under_test

# The workloads: name → folder of sessions (generated once; BENCH_DIR keeps them between runs).
declare -A DATA=([one]="$WORK/one-$SIZE_MB" [backlog]="$WORK/backlog-$BACKLOG")
WORKLOADS=(one)
[ "$BACKLOG" -gt 0 ] && WORKLOADS+=(backlog)
[ -d "${DATA[one]}" ] || "$LABPIPE" dev generate --out "${DATA[one]}" --count 1 --size-mb "$SIZE_MB" --seed 7 --json >/dev/null
[ "$BACKLOG" -eq 0 ] || [ -d "${DATA[backlog]}" ] ||
  "$LABPIPE" dev generate --out "${DATA[backlog]}" --count "$BACKLOG" --size-mb 1 --seed 8 --json >/dev/null

# Source and destination per workload: one session is copied as its folder, a backlog as the
# folder of sessions, by every tool (the peers copy the lab's labpipe.toml too, labpipe reads it:
# it is not counted).
source_of() { # workload
  if [ "$1" = one ]; then find "${DATA[one]}" -mindepth 1 -maxdepth 1 -type d -name '[0-9]*_[0-9]*' | head -1
  else echo "${DATA[$1]}"; fi
}
dest_of() { # workload
  if [ "$1" = one ]; then echo "raw/$(basename "$(source_of one)")/"; else echo raw/; fi
}
bytes_of() { find "$(source_of "$1")" -type f ! -name labpipe.toml -printf '%s\n' | awk '{s+=$1} END {print s}'; }
files_of() { find "$(source_of "$1")" -type f ! -name labpipe.toml | wc -l; }

start_bench_emulator
start_bench_seaweedfs
start_wan_proxies
ENDPOINTS=("${BENCH_ENDPOINTS[@]}")
[ -z "${BENCH_ENDPOINTS_ONLY:-}" ] || read -r -a ENDPOINTS <<<"$BENCH_ENDPOINTS_ONLY"

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

# The command of one tool copying SRC to s3://BUCKET/DEST on the current endpoint.
tool_cmd() { # tool bucket src dest
  local tool="$1" bucket="$2" src="$3" dest="$4"
  case "$tool" in
    labpipe)
      rm -f "$WORK/journal.sqlite3"
      # labpipe's summary line (kept in $WORK/labpipe.jsonl) counts its requests.
      CMD=(bash -c 'exec "$@" >"$0"' "$WORK/labpipe.jsonl" env "${LABPIPE_ENV[@]}"
        LABPIPE_JOURNAL="$WORK/journal.sqlite3" LABPIPE_LOG_DIR="$WORK/logs"
        "$LABPIPE" upload "$src" --bucket "$bucket" --json)
      # shellcheck disable=SC2206 # flags, split on purpose
      CMD+=(${LABPIPE_BENCH_ARGS:-}) ;;
    aws-cli) CMD=("$VENV/bin/aws" --endpoint-url "$ENDPOINT" s3 cp --recursive --only-show-errors "$src" "s3://$bucket/$dest") ;;
    s5cmd) CMD=("$VENV/bin/s5cmd" --endpoint-url "$ENDPOINT" cp "$src/*" "s3://$bucket/$dest") ;;
    rclone) CMD=(env -u AWS_CA_BUNDLE rclone --config "$WORK/rclone.conf" copy "$src" "$REMOTE:$bucket/$dest") ;;
  esac
}

TOOLS=(labpipe aws-cli s5cmd rclone)
declare -A WALL CPU REQUESTS
for EP in "${ENDPOINTS[@]}"; do
  use_endpoint "$EP"
  AWS=("$VENV/bin/aws" --endpoint-url "${SEAWEEDFS_ENDPOINT:-}")
  [ "$EP" = emulator ] && AWS=("$VENV/bin/aws" --endpoint-url "$EMULATOR_ENDPOINT")
  for W in "${WORKLOADS[@]}"; do
    src="$(source_of "$W")" want="$(bytes_of "$W")"
    for tool in "${TOOLS[@]}"; do
      bucket="bench-$tool-$W"
      # Buckets are made and checked on the server directly, not through the slow link.
      "${AWS[@]}" s3 mb "s3://$bucket" >/dev/null
      tool_cmd "$tool" "$bucket" "$src" "$(dest_of "$W")"
      echo "$EP $W $tool…" >&2
      read -r "WALL[$EP/$W/$tool]" "CPU[$EP/$W/$tool]" < <(measure "${CMD[@]}")
      got="$("${AWS[@]}" s3 ls --recursive "s3://$bucket/" | awk '$4 !~ /(manifest.json|labpipe.toml)$/ {s+=$3} END {print s+0}')"
      [ "$got" = "$want" ] || { echo "$tool on $EP ($W): uploaded $got bytes, expected $want" >&2; exit 1; }
      if [ "$tool" = labpipe ]; then
        REQUESTS[$EP/$W]="$(python3 - "$WORK/labpipe.jsonl" <<'PY'
import json, sys
s = [json.loads(l) for l in open(sys.argv[1]) if '"summary"' in l][-1]
r, o = s["requests"], s["objects"]
print(f"{r} requests for {o} objects ({r / max(o, 1):.2f} per object)")
PY
)"
      fi
      "${AWS[@]}" s3 rm --quiet --recursive "s3://$bucket/" >/dev/null   # free the server's memory and disk
      "${AWS[@]}" s3 rb "s3://$bucket" >/dev/null
      echo "  ${WALL[$EP/$W/$tool]} s wall, ${CPU[$EP/$W/$tool]} CPU-s" >&2
    done
  done
done

echo
echo "$(nproc) cores shared by the clients and the servers${BENCH_WAN:+; every tool behind wan-proxy at $BENCH_WAN (round trip ms, Mbit/s)}; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
for EP in "${ENDPOINTS[@]}"; do
  for W in "${WORKLOADS[@]}"; do
    bytes="$(bytes_of "$W")" files="$(files_of "$W")"
    echo
    if [ "$W" = one ]; then what="one session of $SIZE_MB MB ($files files)"; else what="a backlog of $BACKLOG sessions of 1 MB ($files files)"; fi
    echo "== $what to $(describe_endpoint "$EP"); labpipe: ${REQUESTS[$EP/$W]}"
    printf '%-8s | %8s | %8s | %12s | %10s | %14s\n' tool "wall (s)" "MB/s" "vs labpipe" "CPU-s/GB" "CPU vs labpipe"
    printf -- '---------|----------|----------|--------------|------------|---------------\n'
    for tool in "${TOOLS[@]}"; do
      awk -v t="$tool" -v w="${WALL[$EP/$W/$tool]}" -v c="${CPU[$EP/$W/$tool]}" \
        -v lw="${WALL[$EP/$W/labpipe]}" -v lc="${CPU[$EP/$W/labpipe]}" -v b="$bytes" \
        'BEGIN {printf "%-8s | %8.2f | %8.1f | %11.2fx | %10.2f | %13.2fx\n", t, w, b / w / 1e6, lw / w, c / (b / 1e9), c / lc}'
    done
  done
done
echo "(vs labpipe = labpipe's wall time / the tool's: above 1 means the tool was faster; CPU vs labpipe above 1 means the tool used more CPU)"
echo "work folder: $WORK" >&2

# The figures' one home: bench/results/upload.md (wall s, and CPU-s per GB in brackets).
for EP in "${ENDPOINTS[@]}"; do
  for W in "${WORKLOADS[@]}"; do
    bytes="$(bytes_of "$W")" cells=()
    for tool in "${TOOLS[@]}"; do
      cells+=("$(awk -v w="${WALL[$EP/$W/$tool]}" -v c="${CPU[$EP/$W/$tool]}" -v b="$bytes" \
        'BEGIN {printf "%.2f (%.2f)", w, c / (b / 1e9)}')")
    done
    if [ "$W" = one ]; then key="$SIZE_MB MB"; else key=backlog; fi
    bench_record upload "$key, $(bench_label "$EP")" "${cells[@]}"
  done
done
