#!/usr/bin/env bash
# The main job on the local stack, end to end, for a newcomer on a fresh machine:
#   installs what is missing, builds, starts the local AWS emulator and deploys the stack
#   (infra/template.yaml), writes demo recording sessions (good and broken), checks them,
#   uploads the ready ones, runs the backend (ingest + preprocess) until the queues are idle,
#   shows the pipeline status and the preprocessed files a researcher would sync,
#   and finally opens the desktop app connected to the same stack (when a display is available).
# Re-running is safe: existing demo sessions are kept, uploads are idempotent, nothing is overwritten.
#
#   usage: scripts/demo.sh [--count N] [--size-mb MB] [--no-app]
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
COUNT=3
SIZE_MB=60
APP=1
while [ $# -gt 0 ]; do
  case "$1" in
    --count) COUNT="$2"; shift 2 ;;
    --size-mb) SIZE_MB="$2"; shift 2 ;;
    --no-app) APP=0; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

step "installing prerequisites (skips what is already there)"
bash scripts/bootstrap.sh

step "building labpipe, the backend's local runner, the UI and the app"
# One workspace build, the same as scripts/test.sh's: per-package builds (-p) resolve other
# feature sets and would build the AWS SDK again for each. The app embeds ui/dist: UI first.
(cd ui && npx vite build --logLevel warn)
cargo build -q --workspace --bins

start_local_stack
write_demo_lab "$COUNT" "$SIZE_MB"

step "checking the demo sessions (the broken examples are expected to fail, with their reasons)"
"$LABPIPE" check "$LAB" || true

step "uploading the ready sessions (failing ones are refused; re-running resumes or skips)"
export LABPIPE_JOURNAL="$REPO/.labpipe/upload-journal.sqlite3"
"$LABPIPE" upload "$LAB" || true

step "running the backend: ingest (verify + catalog) and preprocess, until the queues are idle"
"$RUNNER" --until-idle --wait 2 > "$REPO/.labpipe/backend.log" 2>&1 || {
  echo "the backend runner failed; its log: .labpipe/backend.log" >&2
  exit 1
}
echo "backend log (JSON lines): .labpipe/backend.log"

step "pipeline status"
"$LABPIPE" status || true

step "what a researcher gets: preprocessed files of sessions with fatigue > 2"
"$LABPIPE" query 'fatigue > 2 and status = processed'
"$LABPIPE" query 'fatigue > 2 and status = processed' --files
echo
echo "on an EC2 node: labpipe sync --where 'fatigue > 2' --dest /data/labpipe"

if [ "$APP" = 1 ] && { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; }; then
  step "opening the desktop app, connected to the same stack"
  exec bash scripts/app.sh
fi
printf '\nThe emulator keeps running at %s; stop it with: bash scripts/stack.sh stop\n' "$AWS_ENDPOINT_URL"
if [ "$APP" = 1 ]; then
  echo "No display found: open the desktop app on a desktop session with: bash scripts/app.sh"
fi
