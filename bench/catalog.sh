#!/usr/bin/env bash
# Benchmark: the catalog at scale — 1,000, 10,000 and 100,000 sessions (100,000 is ~27 years at
# ten sessions a day) — `labpipe query` with and without a date bound and `labpipe sync
# --dry-run`, against aws-cli reading the same table the same way, in the same run.
#
# Each size gets a fresh table on one local emulator, filled with complete demo records
# (tests/e2e-app/src/seed.rs: ten a day from 2021-01-04, imported with batch writes). Measured per
# command: wall seconds and the client's peak RSS. The date-bounded query is one month (~300
# sessions): it must read that month's partition of the `by_month` index and nothing else, so it
# should stay flat while the table grows (aws-cli's Query of the same partition is its peer: the
# emulator's own cost per Query); an unbounded filter is a paginated Scan and grows with
# the table, like aws-cli's scan of the same table.
#
# Usage: bench/catalog.sh [SIZES...]          (default: 1000 10000 100000)
# Env:   CARGO_TARGET_DIR (default ~/.cache/labpipe/target), BENCH_DIR (default a temp dir),
#        LABPIPE_BIN (measure this labpipe instead of a fresh release build),
#        SCANS_UP_TO (default 10000: unbounded filters, which scan the whole table, are measured
#        up to this size only; on the emulator a scan costs ~25 ms per session, so 100,000 would
#        take the better part of an hour per command — they grow linearly, as 1k → 10k shows)
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
SIZES=("$@")
[ "${#SIZES[@]}" -gt 0 ] || SIZES=(1000 10000 100000)
bench_workdir bench-catalog
install_peers

labpipe_under_test
echo "building the seeder…" >&2
cargo build --quiet -p labpipe-e2e-app --bin seed-catalog --manifest-path "$ROOT/Cargo.toml"
SEED="$CARGO_TARGET_DIR/debug/seed-catalog"

start_bench_emulator
AWS=("$VENV/bin/aws" --endpoint-url "$ENDPOINT" --region "$AWS_REGION")

# Runs a command; prints "wall_seconds peak_rss_mb lines_of_output".
measure() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
wall = time.monotonic() - t
if p.returncode not in (0, 1):
    sys.exit(f"command failed ({p.returncode}): {' '.join(sys.argv[1:])}\n{p.stderr.decode()[-800:]}")
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
lines = p.stdout.count(b"\n")
print(f"{wall:.2f} {rss:.0f} {lines}")
PY
}

# Sessions in a JSON array printed by `labpipe query --json`.
declare -A WALLS
count_json() { python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

printf '%-8s %-34s %9s %8s %9s\n' sessions command wall_s rss_mb matched
for n in "${SIZES[@]}"; do
  table="bench-catalog-$n"
  t0=$SECONDS
  "$SEED" --endpoint "$ENDPOINT" --table "$table" --count "$n" --create >/dev/null
  echo "seeded $n sessions in $((SECONDS - t0)) s" >&2
  export LABPIPE_TABLE="$table" LABPIPE_PROCESSED_BUCKET=bench-processed
  month='date >= 2021-03-01 and date < 2021-04-01'

  row() { # label command...
    local label="$1"; shift
    read -r wall rss _ < <(measure "$@")
    WALLS[$label]="$wall"
    printf '%-8s %-34s %9s %8s %9s\n' "$n" "$label" "$wall" "$rss" "$matched"
  }
  matched="$("$LABPIPE" query --json "$month" | count_json)"
  row "labpipe query (one month)" "$LABPIPE" query --json "$month"
  row "aws dynamodb query (month, peer)" "${AWS[@]}" dynamodb query --table-name "$table" \
    --index-name by_month --key-condition-expression '#m = :m' \
    --expression-attribute-names '{"#m": "month"}' --expression-attribute-values '{":m": {"S": "2021-03"}}'
  matched="-"
  row "labpipe sync --dry-run (month)" "$LABPIPE" sync --dry-run --json --where "$month" --dest "$WORK/dest"
  if [ "$n" -le "${SCANS_UP_TO:-10000}" ]; then
    matched="$("$LABPIPE" query --json 'fatigue > 5' | count_json)"
    row "labpipe query 'fatigue > 5' (scan)" "$LABPIPE" query --json 'fatigue > 5'
    matched="$("$LABPIPE" query --json '' | count_json)"
    row "labpipe query '' (all)" "$LABPIPE" query --json ''
    matched="-"
    row "aws dynamodb scan (all, peer)" "${AWS[@]}" dynamodb scan --table-name "$table"
  fi
  "${AWS[@]}" dynamodb delete-table --table-name "$table" >/dev/null
  # The figures' one home: bench/results/catalog.md.
  bench_record catalog "$(python3 -c "print(f'{$n:,}')")" "${WALLS[labpipe query (one month)]} s" \
    "${WALLS[aws dynamodb query (month, peer)]} s" "${WALLS[labpipe sync --dry-run (month)]} s"
done
echo "(machine: $(nproc) cores shared by the client and the emulator; the emulator is Python)"
