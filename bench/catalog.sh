#!/usr/bin/env bash
# Benchmark: the catalog at scale — 1,000, 10,000 and 100,000 sessions (100,000 is ~27 years at
# ten sessions a day) — `labpipe query` with and without a date bound and `labpipe sync
# --dry-run`, against aws-cli reading the same table the same way, in the same run.
#
# The catalog lives in dynalite (BENCH_DYNAMODB=dynalite, the default: a DynamoDB on LevelDB whose
# Query reads one index partition, as DynamoDB's does) or in the emulator's DynamoDB
# (BENCH_DYNAMODB=emulator: moto, whose Query loops over every item of the table, so it measures
# moto more than labpipe at 100,000). Each size gets a fresh table, filled with complete demo records
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
#        BENCH_DYNAMODB (dynalite | emulator; default dynalite),
#        SCANS_UP_TO (unbounded filters, which read every session, are measured up to this size
#        only; default 100000 on dynalite, 10000 on the emulator, where a scan costs ~25 ms per
#        session, so 100,000 would take the better part of an hour per command)
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
DYNAMODB="${BENCH_DYNAMODB:-dynalite}"
case "$DYNAMODB" in
  dynalite)
    start_bench_dynalite
    # labpipe's DynamoDB calls go to dynalite, everything else to the emulator.
    export AWS_ENDPOINT_URL_DYNAMODB="$DYNALITE_ENDPOINT"
    DB_ENDPOINT="$DYNALITE_ENDPOINT"
    SCANS_UP_TO="${SCANS_UP_TO:-100000}"
    DB_NAME="dynalite $(node -p "require('$ROOT/tests/dynalite/node_modules/dynalite/package.json').version") (Node, LevelDB in memory)"
    ;;
  emulator)
    DB_ENDPOINT="$ENDPOINT"
    SCANS_UP_TO="${SCANS_UP_TO:-10000}"
    DB_NAME="the emulator's DynamoDB (moto, Python)"
    ;;
  *) echo "BENCH_DYNAMODB must be dynalite or emulator, not '$DYNAMODB'" >&2; exit 2 ;;
esac
echo "catalog on $DB_NAME at $DB_ENDPOINT" >&2
AWS=("$VENV/bin/aws" --endpoint-url "$DB_ENDPOINT" --region "$AWS_REGION")

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
declare -A WALLS RSSES
count_json() { python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

printf '%-8s %-34s %9s %8s %9s\n' sessions command wall_s rss_mb matched
for n in "${SIZES[@]}"; do
  table="bench-catalog-$n"
  t0=$SECONDS
  "$SEED" --endpoint "$DB_ENDPOINT" --table "$table" --count "$n" --create >/dev/null
  echo "seeded $n sessions in $((SECONDS - t0)) s" >&2
  export LABPIPE_TABLE="$table" LABPIPE_PROCESSED_BUCKET=bench-processed
  month='date >= 2021-03-01 and date < 2021-04-01'

  # The figures are kept under a plain key: a label with quotes in it cannot be looked up again
  # inside "${WALLS[...]}" (the quotes are removed from the subscript there).
  row() { # key label command...
    local key="$1" label="$2"; shift 2
    read -r wall rss _ < <(measure "$@")
    WALLS[$key]="$wall" RSSES[$key]="$rss"
    printf '%-8s %-34s %9s %8s %9s\n' "$n" "$label" "$wall" "$rss" "$matched"
  }
  matched="$("$LABPIPE" query --json "$month" | count_json)"
  row month "labpipe query (one month)" "$LABPIPE" query --json "$month"
  row month_peer "aws dynamodb query (month, peer)" "${AWS[@]}" dynamodb query --table-name "$table" \
    --index-name by_month --key-condition-expression '#m = :m' \
    --expression-attribute-names '{"#m": "month"}' --expression-attribute-values '{":m": {"S": "2021-03"}}'
  matched="-"
  row sync "labpipe sync --dry-run (month)" "$LABPIPE" sync --dry-run --json --where "$month" --dest "$WORK/dest"
  if [ "$n" -le "$SCANS_UP_TO" ]; then
    matched="$("$LABPIPE" query --json 'fatigue > 5' | count_json)"
    row fatigue "labpipe query 'fatigue > 5' (scan)" "$LABPIPE" query --json 'fatigue > 5'
    matched="$("$LABPIPE" query --json '' | count_json)"
    row all_json "labpipe query '' (all)" "$LABPIPE" query --json ''
    matched="-"
    row all_table "labpipe query '' (all, table)" "$LABPIPE" query ''
    matched="-"
    row scan_peer "aws dynamodb scan (all, peer)" "${AWS[@]}" dynamodb scan --table-name "$table"
  fi
  "${AWS[@]}" dynamodb delete-table --table-name "$table" >/dev/null
  # The figures' one home: bench/results/catalog.md (emulator), catalog-dynalite.md (dynalite).
  if [ "$DYNAMODB" = emulator ]; then
    bench_record catalog "$(python3 -c "print(f'{$n:,}')")" "${WALLS[month]} s" \
      "${WALLS[month_peer]} s" "${WALLS[sync]} s"
  elif [ "$n" -le "$SCANS_UP_TO" ]; then
    bench_record catalog-dynalite "$(python3 -c "print(f'{$n:,}')")" "${WALLS[month]} s" \
      "${WALLS[month_peer]} s" "${WALLS[sync]} s" \
      "${WALLS[fatigue]} s" \
      "${WALLS[all_json]} s, ${RSSES[all_json]} MiB" \
      "${WALLS[all_table]} s, ${RSSES[all_table]} MiB" \
      "${WALLS[scan_peer]} s, ${RSSES[scan_peer]} MiB"
  fi
done
echo "(catalog on $DB_NAME; labpipe: $LABPIPE; machine: $(nproc) cores shared by the client and the server, load average now $(cut -d' ' -f1-3 /proc/loadavg))"
