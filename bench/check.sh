#!/usr/bin/env bash
# Benchmarks the lab PC's checks: `labpipe dev generate` of COUNT sessions of SIZE_MB each, then
# `labpipe check` of them with a cold page cache (when this user may drop it) and a warm one,
# wall time and peak RSS under /usr/bin/time -v. A check lists sizes and reads only the metadata
# file, so its time should not grow with the sessions' size.
#
#   usage: bench/check.sh [COUNT] [SIZE_MB]      (default 10 600: a day of the lab's sessions)
#
# Needs COUNT × SIZE_MB of free disk in the work folder ($BENCH_DIR, else a temporary one).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
COUNT="${1:-10}"
SIZE_MB="${2:-600}"
bench_workdir bench-check
trap 'rm -rf "$WORK"' EXIT
[ -x /usr/bin/time ] || { apt-get install -y -qq time >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }; }
labpipe_under_test

timed() { # command... → "wall_s rss_mb" of the command; a failure stops the benchmark
  /usr/bin/time -f '%e %M' -o "$WORK/time.txt" "$@" >"$WORK/last.log" 2>&1 \
    || { echo "failed: $*" >&2; tail -5 "$WORK/last.log" >&2; exit 1; }
  awk '{printf "%s %.0f\n", $1, $2 / 1024}' "$WORK/time.txt"
}

echo "generating $COUNT sessions of $SIZE_MB MB…" >&2
got="$(timed "$LABPIPE" dev generate --out "$WORK/lab" --count "$COUNT" --size-mb "$SIZE_MB")"
read -r gen_wall _ <<<"$got"
sync
cold="not measured"
if [ -w /proc/sys/vm/drop_caches ]; then
  echo 3 >/proc/sys/vm/drop_caches
  got="$(timed "$LABPIPE" check "$WORK/lab")"
  read -r cold_wall cold_rss <<<"$got"
  cold="$cold_wall s"
fi
got="$(timed "$LABPIPE" check "$WORK/lab")"
read -r warm_wall warm_rss <<<"$got"
echo "generate: $gen_wall s; check: cold $cold (${cold_rss:-?} MB), warm $warm_wall s ($warm_rss MB)"

fmt() { awk -v s="$1" 'BEGIN {if (s < 0.01) print "< 0.01 s"; else printf "%.2f s\n", s}'; }
[ "$cold" = "not measured" ] || bench_record check "\`labpipe check\`, wall, cold page cache" "$(fmt "$cold_wall")"
bench_record check "\`labpipe check\`, wall, warm page cache" "$(fmt "$warm_wall")"
bench_record check "\`labpipe check\`, peak RSS" "${cold_rss:-$warm_rss} MB"
bench_record check "\`labpipe dev generate\`, wall" "$(awk -v s="$gen_wall" 'BEGIN {printf (s < 10 ? "%.1f s" : "%.0f s"), s}')"
