#!/usr/bin/env bash
# Holds the dependency rules of ARCHITECTURE.md ("Invariants"), that object keys are built only
# in labpipe_core::layout (scripts/check_key_layout.py), and the invariants read from the source
# text: one rule set, the lab PC's rules in crates/lab, write-once raw data, one S3 gateway, real
# parts in tests, every invariant naming its check (scripts/check_invariants.py). Each dependency
# rule is a package, the dependency kinds looked at, and the crates it must not reach. It reads
# `cargo tree` (the resolved graph, not the manifests), so a rule also catches a forbidden crate
# pulled in through another workspace crate. Fails with the path from the package to the forbidden crate.
#
#   usage: scripts/check-architecture.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

failed=0
# The workspace-hack (crates/workspace-hack) depends on every third-party crate whose features it
# unifies, for every member: it is never linked (nothing names it) and is not a real dependency.
PRUNE=(--prune labpipe-workspace-hack)
# rule PACKAGE DEPTH PATTERN WHY
#   DEPTH: "all" for the whole normal-dependency graph, "1" for direct dependencies only.
rule() {
  local pkg="$1" depth="$2" pattern="$3" why="$4" tree hits
  if [ "$depth" = all ]; then
    tree="$(cargo tree -q --offline -p "$pkg" -e normal "${PRUNE[@]}" --prefix none --format '{p}' 2>/dev/null || cargo tree -q -p "$pkg" -e normal "${PRUNE[@]}" --prefix none --format '{p}')"
  else
    tree="$(cargo tree -q --offline -p "$pkg" -e normal "${PRUNE[@]}" --depth "$depth" --prefix none --format '{p}' 2>/dev/null || cargo tree -q -p "$pkg" -e normal "${PRUNE[@]}" --depth "$depth" --prefix none --format '{p}')"
  fi
  hits="$(printf '%s\n' "$tree" | awk '{print $1}' | sort -u | grep -E "^($pattern)\$" || true)"
  if [ -n "$hits" ]; then
    printf 'architecture: %s must not depend on %s (%s); found: %s\n' "$pkg" "$pattern" "$why" "$(echo $hits)" >&2
    printf '  see: cargo tree -p %s -i %s\n' "$pkg" "$(printf '%s\n' "$hits" | head -1)" >&2
    failed=1
  else
    printf 'architecture: ok  %-16s no %s (%s)\n' "$pkg" "$pattern" "$why"
  fi
}

FRAMEWORKS='tauri|clap|lambda_runtime'
AWS='aws-config|aws-sdk-[a-z0-9]+|aws-smithy-[a-z-]+|aws-types'

rule labpipe-core all "$AWS|$FRAMEWORKS|tokio|rusqlite" "the domain is pure: no I/O clients, no frameworks"
rule labpipe-sample all "$AWS|$FRAMEWORKS" "sample data touches the filesystem only"
# Every engine is named here; a package that is renamed or removed fails the run (cargo tree finds
# no such package), it is never skipped.
for pkg in labpipe-upload labpipe-catalog labpipe-sqs labpipe-sync labpipe-retention labpipe-doctor labpipe-clientlog labpipe-deploy labpipe-aws labpipe-lab; do
  rule "$pkg" all "$FRAMEWORKS" "engines are libraries, shared by the CLI, the app and the backend"
done
rule labpipe-app 1 "clap|lambda_runtime|aws-sdk-[a-z0-9]+" "the app is a Tauri adapter: AWS through the workspace's crates"
rule labpipe-cli 1 "aws-sdk-[a-z0-9]+|tauri" "the CLI reaches AWS only through the workspace's engines"
rule labpipe-python 1 "aws-sdk-[a-z0-9]+|tauri|clap|lambda_runtime" "the Python package is an adapter like the CLI: AWS only through the engines"

# Build each feature set once: every cargo command of scripts/test.sh that builds for this machine
# must resolve each third-party crate with the same features, or cargo compiles it (and everything
# above it) again. crates/workspace-hack pins the union; this holds it current after a dependency
# change. The commands compared: the build (--workspace --bins), the tests (--workspace,
# dev-dependencies on: scripts/test_lanes.py and the installed-app stage) and the app alone
# (-p labpipe-app, the Tauri bundler). Host and build-script features are compared as sets per crate.
feature_sets() {
  cargo tree -q --offline "$@" --target x86_64-unknown-linux-gnu -f '{p}|{f}' --prefix none 2>/dev/null |
    sed 's/ (\*)$//' | grep -v ' (/' | sort -u
}
if [ "$(uname -m)-$(uname -s)" = x86_64-Linux ]; then
  base="$(feature_sets --workspace -e normal,build)"
  for selection in "--workspace" "-p labpipe-app -e normal,build"; do
    # shellcheck disable=SC2086
    other="$(feature_sets $selection)"
    differ="$(python3 - "$base" "$other" <<'PY'
import sys
def sets(text):
    out = {}
    for line in text.splitlines():
        pkg, _, feats = line.partition("|")
        out.setdefault(pkg.strip(), set()).add(feats.strip())
    return out
a, b = sets(sys.argv[1]), sets(sys.argv[2])
print(" ".join(sorted(p.split(" ")[0] for p in a.keys() & b.keys() if a[p] != b[p])))
PY
)"
    if [ -n "$differ" ]; then
      printf 'architecture: "cargo build --workspace --bins" and "%s" resolve different features for: %s\n' "$selection" "$differ" >&2
      printf '  each is compiled twice: run "cargo hakari generate" (cargo install cargo-hakari) and commit crates/workspace-hack\n' >&2
      failed=1
    else
      printf 'architecture: ok  one feature set  "cargo build --workspace --bins" = "%s"\n' "$selection"
    fi
  done
fi

# One resolution of the stack (ARCHITECTURE.md, "adapters stay thin"): the CLI, the app and the
# Python package hand their flags or keywords to labpipe_lab::stack; none reads or looks for the
# stack outputs file itself.
stray="$(grep -rlE 'StackOutputs::(find|read)' crates/cli crates/python src-tauri --include='*.rs' || true)"
if [ -n "$stray" ]; then
  printf 'architecture: the stack outputs file is read outside labpipe_lab::stack in: %s\n' "$(echo $stray)" >&2
  printf '  resolve the stack with labpipe_lab::stack::Stack::resolve (or LabPcOutputs::read)\n' >&2
  failed=1
else
  printf 'architecture: ok  one stack resolution  (no front end reads the stack outputs file itself)\n'
fi

# One layout of object keys (ARCHITECTURE.md, "One S3 gateway"): no key format string
# (`"raw/{…}`, `"v{}/…"`, `".r{}"`, `{RAW_PREFIX}`) in any Rust file outside crates/core/src/layout*.
python3 scripts/check_key_layout.py || failed=1

# The invariants cargo tree cannot see, read from the source text (ARCHITECTURE.md, "Invariants";
# each rule is named in the script's docstring).
python3 scripts/check_invariants.py || failed=1

exit "$failed"
