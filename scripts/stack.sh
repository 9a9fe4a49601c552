#!/usr/bin/env bash
# Runs the local AWS emulator (moto server) in the background so LabPipe can
# be used and tested with no AWS account. It listens on 127.0.0.1 only and
# keeps its state (pid, port, log) under $REPO/.labpipe/stack/.
#
#   usage: scripts/stack.sh start [--port N]   start (or report the running one)
#          scripts/stack.sh stop               SIGTERM, then SIGKILL after a bound
#          scripts/stack.sh status             exit 0 if running, 1 if not
#          scripts/stack.sh env                export lines, for: eval "$(scripts/stack.sh env)"
#
#   LABPIPE_STACK_DIR=DIR  keep the state in DIR instead: a private emulator (benchmarks use one each)
#
# The emulator keeps everything in memory: stopping it forgets all buckets
# and tables. This is the one launcher: demo.sh, app.sh and every benchmark start it through here
# (the Rust test harness in tests/src/lib.rs starts its own per test binary, on an ephemeral port).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
STATE="${LABPIPE_STACK_DIR:-$REPO/.labpipe/stack}"
PID_FILE="$STATE/pid"
PORT_FILE="$STATE/port"
LOG_FILE="$STATE/moto.log"
HOST="127.0.0.1"
START_TIMEOUT="${LABPIPE_STACK_TIMEOUT:-20}"
STOP_TIMEOUT=10

say() { printf 'stack: %s\n' "$*"; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '5,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# The pid from the state file, if that process is alive and is our moto
# server (a stale file may name a pid the system has since reused).
running_pid() {
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q moto_server || return 1
  echo "$pid"
}

endpoint() { echo "http://$HOST:$(cat "$PORT_FILE")"; }

ensure_moto() {
  if [ ! -x "$VENV/bin/moto_server" ] || ! "$VENV/bin/python" -c 'import moto.server' >/dev/null 2>&1; then
    say "moto server not installed, running bootstrap (venv step)"
    bash "$REPO/scripts/bootstrap.sh" venv
  fi
}

# Prints a free TCP port on 127.0.0.1, or checks that the given one is free.
pick_port() {
  "$VENV/bin/python" - "${1:-0}" "$HOST" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind((sys.argv[2], int(sys.argv[1])))
except OSError as e:
    sys.exit(f"stack: error: port {sys.argv[1]} on {sys.argv[2]} is not free ({e.strerror.lower()})")
print(s.getsockname()[1])
s.close()
EOF
}

# True once the server answers any HTTP request.
answers() {
  "$VENV/bin/python" - "$1" >/dev/null 2>&1 <<'EOF'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1)
except urllib.error.HTTPError:
    pass
EOF
}

cmd_start() {
  local port=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --port) [ $# -ge 2 ] || die "--port needs a number"; port="$2"; shift 2 ;;
      --port=*) port="${1#--port=}"; shift ;;
      *) die "unknown option '$1' for start" ;;
    esac
  done
  if [ -n "$port" ] && ! [[ "$port" =~ ^[0-9]+$ && "$port" -ge 1 && "$port" -le 65535 ]]; then
    die "--port must be a number from 1 to 65535, got '$port'"
  fi

  local pid
  if pid="$(running_pid)"; then
    if [ -n "$port" ] && [ "$port" != "$(cat "$PORT_FILE")" ]; then
      die "already running on port $(cat "$PORT_FILE") (pid $pid); run 'scripts/stack.sh stop' first"
    fi
    say "already running (pid $pid)"
    echo "$(endpoint)"
    return
  fi

  ensure_moto
  mkdir -p "$STATE"
  rm -f "$PID_FILE" "$PORT_FILE"
  port="$(pick_port "$port")" || exit 1

  local t0=$SECONDS
  # setsid: the server outlives this script and a Ctrl-C in the calling shell.
  setsid "$VENV/bin/moto_server" -H "$HOST" -p "$port" >"$LOG_FILE" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PID_FILE"
  echo "$port" >"$PORT_FILE"

  local url="http://$HOST:$port" deadline=$((SECONDS + START_TIMEOUT))
  until answers "$url"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE" "$PORT_FILE"
      tail -n 20 "$LOG_FILE" >&2 || true
      die "moto server exited during start; full log: $LOG_FILE"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      kill -TERM "$pid" 2>/dev/null || true
      rm -f "$PID_FILE" "$PORT_FILE"
      die "moto server did not answer within ${START_TIMEOUT}s (LABPIPE_STACK_TIMEOUT raises it); log: $LOG_FILE"
    fi
    sleep 0.2
  done
  say "started moto server (pid $pid) in $((SECONDS - t0))s, log $LOG_FILE"
  echo "$url"
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE" "$PORT_FILE"
    say "not running"
    return
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  rm -f "$PID_FILE" "$PORT_FILE"
  say "stopped (pid $pid)"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    say "running (pid $pid) at $(endpoint), log $LOG_FILE"
  else
    say "not running; start it with 'scripts/stack.sh start'"
    return 1
  fi
}

cmd_env() {
  running_pid >/dev/null || die "not running; start it with 'scripts/stack.sh start'"
  cat <<EOF
export AWS_ENDPOINT_URL=$(endpoint)
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
EOF
}

main() {
  [ $# -ge 1 ] || { usage >&2; exit 2; }
  local cmd="$1"
  shift
  case "$cmd" in
    start) cmd_start "$@" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    -h|--help|help) usage ;;
    *) usage >&2; die "unknown command '$cmd'" ;;
  esac
}

main "$@"
