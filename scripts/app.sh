#!/usr/bin/env bash
# Opens the LabPipe desktop app already connected to the local stack, with demo
# sessions waiting in its lab folder and a demo catalog to browse:
#   installs what is missing, starts the local AWS emulator, deploys the stack,
#   writes demo sessions (good and broken) if there are none, seeds the catalog,
#   builds the UI and the app, starts the backend's local runner (the emulator
#   cannot run Lambdas, so uploads from the app are ingested and processed by it)
#   and starts the app with its own config under .labpipe/app-demo/ (your own app
#   settings are not touched).
#
#   usage: scripts/app.sh [--count N] [--size-mb MB] [--catalog N] [--no-open]
#
#   --count N     good demo sessions to write (default 4; only when demo/lab is missing)
#   --size-mb MB  size of each demo session (default 60)
#   --catalog N   sessions to seed into the demo catalog (default 300; 0 = none)
#   --no-open     prepare everything, print how to start the app, do not start it
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
COUNT=4
SIZE_MB=60
CATALOG=300
OPEN=1
while [ $# -gt 0 ]; do
  case "$1" in
    --count) COUNT="$2"; shift 2 ;;
    --size-mb) SIZE_MB="$2"; shift 2 ;;
    --catalog) CATALOG="$2"; shift 2 ;;
    --no-open) OPEN=0; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "app.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

step "installing prerequisites (skips what is already there)"
bash scripts/bootstrap.sh apt venv rust ui

step "building labpipe, the UI and the app"
# The app embeds ui/dist, so the UI is built first; one workspace build, the same feature set as
# scripts/demo.sh's and scripts/test.sh's (per-package builds would rebuild shared dependencies).
(cd ui && npx vite build --logLevel warn)
cargo build -q --workspace --bins

start_local_stack
TABLE="$(stack_output CatalogTable)"
REGION="$(stack_output Region 2>/dev/null || echo "${AWS_REGION:-us-east-1}")"
write_demo_lab "$COUNT" "$SIZE_MB"

# Sessions recorded "today" for the technician to upload in the app: the demo's earlier
# sessions may already be uploaded and processed (scripts/demo.sh does that).
TODAY="$(date +%Y%m%d)"
if ! ls "$LAB" | grep -q "^${TODAY}_"; then
  step "writing 2 sessions recorded today to demo/lab, waiting to be uploaded from the app"
  "$LABPIPE" dev generate --out "$LAB" --count 2 --size-mb "$SIZE_MB" --seed "$TODAY" \
    --start "${TODAY}_000500" >/dev/null
fi

DEMO="$REPO/.labpipe/app-demo"
SEEDED="$DEMO/seeded-$(cat "$REPO/.labpipe/stack/pid")"
if [ "$CATALOG" -gt 0 ] && [ ! -f "$SEEDED" ]; then
  step "seeding the demo catalog ($TABLE) with $CATALOG sessions"
  "$CARGO_TARGET_DIR/debug/seed-catalog" --endpoint "$AWS_ENDPOINT_URL" --table "$TABLE" --count "$CATALOG"
  mkdir -p "$DEMO" && touch "$SEEDED"
fi

step "writing the app's demo settings to .labpipe/app-demo/config"
mkdir -p "$DEMO/config" "$DEMO/data" "$DEMO/logs"
APP="$CARGO_TARGET_DIR/debug/labpipe-app"
"$APP" configure --config-dir "$DEMO/config" --stack-outputs "$OUTPUTS" --lab-folder "$LAB" \
  --endpoint "$AWS_ENDPOINT_URL" --region "$REGION" >/dev/null

export LABPIPE_APP_CONFIG_DIR="$DEMO/config" LABPIPE_APP_DATA_DIR="$DEMO/data" LABPIPE_APP_LOG_DIR="$DEMO/logs"
# The emulator's test credentials come from 'stack.sh env' (AWS_ACCESS_KEY_ID, ...); the app
# uses them because no credentials are stored in this demo's keyring entry.
export LABPIPE_APP_KEYRING_ACCOUNT="app-demo"
if [ "$OPEN" -eq 0 ]; then
  printf '\nReady. Start the app with:\n  LABPIPE_APP_CONFIG_DIR=%s LABPIPE_APP_DATA_DIR=%s LABPIPE_APP_LOG_DIR=%s \\\n  %s\n' \
    "$LABPIPE_APP_CONFIG_DIR" "$LABPIPE_APP_DATA_DIR" "$LABPIPE_APP_LOG_DIR" "$APP"
  printf '(with the emulator environment: eval "$(bash scripts/stack.sh env)")\n'
  printf 'and the backend (uploads are processed by it):\n  %s --outputs %s\n' "$RUNNER" "$OUTPUTS"
  exit 0
fi
RUNNER_LOG="$DEMO/logs/local-runner.log"
step "starting the backend's local runner (log: ${RUNNER_LOG#$REPO/})"
"$RUNNER" --wait 2 --outputs "$OUTPUTS" >>"$RUNNER_LOG" 2>&1 &
RUNNER_PID=$!
trap 'kill "$RUNNER_PID" 2>/dev/null || true' EXIT
step "starting the app (the emulator keeps running; stop it with: bash scripts/stack.sh stop)"
"$APP"
