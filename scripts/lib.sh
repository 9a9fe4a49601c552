# Sourced by scripts/demo.sh and scripts/app.sh: where things are, progress lines, and the
# local stack (emulator on 127.0.0.1 + infra/template.yaml deployed to it).
# shellcheck shell=bash

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-$REPO}/.cache/labpipe/target}"
OUTPUTS="$REPO/.labpipe/stack/outputs.json"
LABPIPE="$CARGO_TARGET_DIR/debug/labpipe"
RUNNER="$CARGO_TARGET_DIR/debug/local-runner"
LAB="$REPO/demo/lab"

step() { printf '\n==> %s\n' "$1"; }

# Starts the emulator unless it runs, exports its environment (AWS_ENDPOINT_URL, test
# credentials) and deploys the stack; deploying again is idempotent and takes seconds.
start_local_stack() {
  step "starting the local AWS emulator on 127.0.0.1 and deploying infra/template.yaml to it"
  bash scripts/stack.sh start
  eval "$(bash scripts/stack.sh env)"
  bash scripts/deploy-local.sh >/dev/null
  echo "stack outputs: ${OUTPUTS#"$REPO"/}"
}

# One value of the deployed stack's outputs, e.g. `stack_output RawBucket`.
stack_output() {
  "$REPO/.venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$OUTPUTS" "$1"
}

# Writes the demo lab folder (good sessions and one broken example of each kind) unless it exists.
write_demo_lab() { # count size_mb
  if [ ! -d "$LAB" ]; then
    step "writing $1 demo sessions of $2 MB, plus one broken example of each kind, to demo/lab"
    "$LABPIPE" dev generate --out "$LAB" --count "$1" --size-mb "$2" --broken
  else
    step "demo sessions already in demo/lab (delete the folder to start over)"
  fi
}
