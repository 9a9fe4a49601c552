#!/usr/bin/env bash
# The one test command: everything CI checks, in the order that fails
# fastest. Installs missing prerequisites first, so it works on a fresh
# clone of a fresh Debian 12 machine.
#
#   usage: scripts/test.sh
#
# CARGO_TARGET_DIR defaults to ~/.cache/labpipe/target, outside the clone,
# so repeated runs (and fresh CI clones on the same machine) reuse builds.
# End-to-end tests start their own emulator; no stack.sh instance is needed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-$REPO}/.cache/labpipe/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

T0=$SECONDS
STAGE=""
stage() {
  STAGE="$1"
  printf '==> [%4ds] %s\n' "$((SECONDS - T0))" "$1"
}
trap 'rc=$?; [ "$rc" -ne 0 ] && printf "==> [%4ds] FAILED in stage: %s (exit %d)\n" "$((SECONDS - T0))" "$STAGE" "$rc"' EXIT

stage "bootstrap: scripts/bootstrap.sh"
bash scripts/bootstrap.sh

stage "fmt: cargo fmt --all --check"
cargo fmt --all --check

# infra/template.yaml: cfn-lint, then deployed to a fresh emulator of its
# own and checked (infra/tests). Needs no Rust build, so it runs early.
stage "infra: pytest infra/tests"
PYTHONDONTWRITEBYTECODE=1 .venv/bin/python -m pytest infra/tests -q -p no:cacheprovider

stage "clippy: cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# The end-to-end tests run the real labpipe binary; `cargo test` alone does
# not build other packages' binaries.
stage "build: cargo build --workspace --bins"
cargo build --workspace --bins

stage "test: cargo test --workspace"
cargo test --workspace

# --- front-end checks (hook) -----------------------------------------------
# When the desktop UI lands under ui/, add its stages here, e.g.:
#   stage "ui: npm ci";       (cd ui && npm ci --no-audit --no-fund)
#   stage "ui: tsc";          (cd ui && npx tsc --noEmit)
#   stage "ui: vitest";       (cd ui && npx vitest run)
# and install Node.js/npm prerequisites from scripts/bootstrap.sh.
# ---------------------------------------------------------------------------

printf '==> [%4ds] all stages passed\n' "$((SECONDS - T0))"
