#!/usr/bin/env bash
# The main job on the local stack, for a newcomer on a fresh machine:
#   installs what is missing, builds labpipe, starts the local AWS emulator,
#   writes demo recording sessions (good and broken) and checks them.
# Re-running is safe: existing demo sessions are kept, nothing is overwritten.
#
#   usage: scripts/demo.sh [--count N] [--size-mb MB]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-$REPO}/.cache/labpipe/target}"
COUNT=3
SIZE_MB=60
while [ $# -gt 0 ]; do
  case "$1" in
    --count) COUNT="$2"; shift 2 ;;
    --size-mb) SIZE_MB="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

step() { printf '\n==> %s\n' "$1"; }

step "installing prerequisites (skips what is already there)"
bash scripts/bootstrap.sh

step "building labpipe"
cargo build --release -p labpipe-cli
LABPIPE="$CARGO_TARGET_DIR/release/labpipe"

step "starting the local AWS emulator on 127.0.0.1"
bash scripts/stack.sh start
eval "$(bash scripts/stack.sh env)"

LAB="$REPO/demo/lab"
if [ ! -d "$LAB" ]; then
  step "writing $COUNT demo sessions of $SIZE_MB MB, plus one broken example of each kind, to demo/lab"
  "$LABPIPE" dev generate --out "$LAB" --count "$COUNT" --size-mb "$SIZE_MB" --broken
else
  step "demo sessions already in demo/lab (delete the folder to start over)"
fi

step "checking the demo sessions (a failing session is expected: the broken examples)"
"$LABPIPE" check "$LAB" || true

printf '\nThe emulator keeps running at %s; stop it with: bash scripts/stack.sh stop\n' "$AWS_ENDPOINT_URL"
