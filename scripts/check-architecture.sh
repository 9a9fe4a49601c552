#!/usr/bin/env bash
# Holds the dependency rules of ARCHITECTURE.md ("Invariants"): each rule is a package, the
# dependency kinds looked at, and the crates it must not reach. It reads `cargo tree` (the
# resolved graph, not the manifests), so a rule also catches a forbidden crate pulled in through
# another workspace crate. Fails with the path from the package to the forbidden crate.
#
#   usage: scripts/check-architecture.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

failed=0
# rule PACKAGE DEPTH PATTERN WHY
#   DEPTH: "all" for the whole normal-dependency graph, "1" for direct dependencies only.
rule() {
  local pkg="$1" depth="$2" pattern="$3" why="$4" tree hits
  if [ "$depth" = all ]; then
    tree="$(cargo tree -q --offline -p "$pkg" -e normal --prefix none --format '{p}' 2>/dev/null || cargo tree -q -p "$pkg" -e normal --prefix none --format '{p}')"
  else
    tree="$(cargo tree -q --offline -p "$pkg" -e normal --depth "$depth" --prefix none --format '{p}' 2>/dev/null || cargo tree -q -p "$pkg" -e normal --depth "$depth" --prefix none --format '{p}')"
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
for pkg in labpipe-upload labpipe-catalog labpipe-queue labpipe-sync labpipe-retention labpipe-doctor labpipe-clientlog labpipe-deploy; do
  rule "$pkg" all "$FRAMEWORKS" "engines are libraries, shared by the CLI, the app and the backend"
done
for pkg in labpipe-s3 labpipe-lab; do
  if cargo metadata -q --no-deps --format-version 1 --offline 2>/dev/null | grep -q "\"name\":\"$pkg\""; then
    rule "$pkg" all "$FRAMEWORKS" "engines are libraries, shared by the CLI, the app and the backend"
  fi
done
rule labpipe-app 1 "clap|lambda_runtime|aws-sdk-[a-z0-9]+" "the app is a Tauri adapter: AWS through the workspace's crates"
rule labpipe-cli 1 "aws-sdk-[a-z0-9]+|tauri" "the CLI reaches AWS only through the workspace's engines"
rule labpipe-python 1 "aws-sdk-[a-z0-9]+|tauri|clap|lambda_runtime" "the Python package is an adapter like the CLI: AWS only through the engines"

exit "$failed"
