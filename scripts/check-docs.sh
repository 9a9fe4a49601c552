#!/usr/bin/env bash
# Keeps the documents honest about the code. Fails, naming the file and line, when:
#   - a `labpipe <command> --flag` written in README.md, ARCHITECTURE.md or docs/**/*.md is not
#     what the built binary's --help offers, or a relative link or #anchor does not resolve
#     (docs/check/check_docs.py). A command that is not built yet is written on a line that
#     carries <!-- planned -->; every `labpipe …` on such a line must then NOT exist (so a built
#     command loses its marker, and a not-built one is never shown as if it existed);
#   - a flag written without its command (`--sessions-in-flight`) is no flag of any labpipe
#     command, or `labpipe-app configure` is given a flag it does not accept (check_docs.py);
#   - a file path, test or function cited in code (`plan.rs::every_combination_…`) does not
#     exist in the tree (check_docs.py);
#   - a mermaid block does not parse (mermaid's own parser under node, offline: docs/check/);
#   - the cost tables in docs/DESIGN.md differ from what docs/cost/model.py prints;
#   - a table of README's *Performance* differs from its benchmark's results file
#     (bench/results/*.md), or one of those measured figures is written in another document
#     (docs/check/bench_results.py): each figure has one home;
#   - docs/DESIGN.md is longer than 700 lines (its detail belongs in the topic documents).
# Each check is first shown able to fail, on docs/check/fixtures/ (broken.md, bench-readme.md,
# results/).
#
#   usage: scripts/check-docs.sh
#
# Needs the CLI built (cargo build -p labpipe-cli; $CARGO_TARGET_DIR/debug/labpipe, or
# LABPIPE_BIN) and node + npm (installs docs/check/package-lock.json with npm ci once).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
CHECK="$REPO/docs/check"
BIN="${LABPIPE_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/labpipe}"
say() { printf 'check-docs: %s\n' "$*"; }
die() { printf 'check-docs: error: %s\n' "$*" >&2; exit 1; }

[ -x "$BIN" ] || die "no labpipe binary at $BIN: run 'cargo build -p labpipe-cli' (or set LABPIPE_BIN)"
command -v node >/dev/null || die "node is not installed (scripts/bootstrap.sh installs it)"

# The lockfile decides: reinstall when it changed since the last install.
stamp="$CHECK/node_modules/.labpipe-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$CHECK/package-lock.json" "$stamp"; then
  say "installing the mermaid parser (npm ci in docs/check)"
  (cd "$CHECK" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$CHECK/package-lock.json" "$stamp"
fi

mapfile -t DOCS < <(ls README.md ARCHITECTURE.md; find docs -name '*.md' -not -path 'docs/check/*' | sort)
FIXTURE="docs/check/fixtures/broken.md"

# 1. Each check must be able to fail: the fixture holds one mistake of each kind.
out="$(python3 "$CHECK/check_docs.py" --bin "$BIN" "$FIXTURE" || true)"
for expect in "labpipe teleport\`: no such command" "has no flag --no-such-flag" \
              "is marked <!-- planned --> but the binary has it" \
              "no-such-file.md does not exist" "no heading #no-such-heading" \
              "\`--no-such-bare-flag\` is no flag of any \`labpipe\` command" \
              "\`labpipe-app configure\` has no flag --no-such-app-flag" \
              "\`crates/no-such-crate/src/lib.rs\` does not exist" \
              "\`no_such_upload_test\` is not defined in tests/tests/upload.rs" \
              "\`no_such_test_of_this_tree\` is not a test or function of this tree"; do
  grep -qF -- "$expect" <<<"$out" || die "self-test: check_docs.py did not report '$expect' in $FIXTURE:
$out"
done
if node "$CHECK/mermaid.mjs" "$FIXTURE" >/tmp/check-docs-mermaid.$$ 2>&1; then
  rm -f /tmp/check-docs-mermaid.$$
  die "self-test: the broken mermaid block in $FIXTURE parsed"
fi
grep -q "$FIXTURE:10: mermaid block does not parse" /tmp/check-docs-mermaid.$$ \
  || { cat /tmp/check-docs-mermaid.$$; rm -f /tmp/check-docs-mermaid.$$; die "self-test: mermaid did not name $FIXTURE:10"; }
rm -f /tmp/check-docs-mermaid.$$
RESULTS_FIXTURE="docs/check/fixtures/results"
out="$(python3 "$CHECK/bench_results.py" --results "$RESULTS_FIXTURE" --figures "$FIXTURE" || true)"
grep -qF "'9.87 s' is a measured figure of $RESULTS_FIXTURE/demo.md" <<<"$out" \
  || die "self-test: bench_results.py did not report the figure written twice in $FIXTURE:
$out"
out="$(python3 "$CHECK/bench_results.py" --results "$RESULTS_FIXTURE" --check docs/check/fixtures/bench-readme.md || true)"
grep -qF "the demo table differs from $RESULTS_FIXTURE/demo.md" <<<"$out" \
  || die "self-test: bench_results.py did not report the drifted table of docs/check/fixtures/bench-readme.md:
$out"
say "self-test: every check fails on docs/check/fixtures/ as it should"

# 2. The real documents.
status=0
python3 "$CHECK/check_docs.py" --bin "$BIN" "${DOCS[@]}" || status=1
node "$CHECK/mermaid.mjs" "${DOCS[@]}" || status=1
python3 "$REPO/docs/cost/model.py" --check docs/DESIGN.md || status=1
python3 "$CHECK/bench_results.py" --check README.md || status=1
python3 "$CHECK/bench_results.py" --figures "${DOCS[@]}" || status=1
DESIGN_MAX=700
lines="$(wc -l <docs/DESIGN.md)"
if [ "$lines" -gt "$DESIGN_MAX" ]; then
  echo "docs/DESIGN.md: $lines lines, more than $DESIGN_MAX: move detail into its topic document and link it"
  status=1
fi
PYTHONDONTWRITEBYTECODE=1 "$REPO/.venv/bin/python" -m pytest "$REPO/docs/cost" "$REPO/docs/check/test_check_docs.py" -q -p no:cacheprovider || status=1
[ "$status" = 0 ] && say "documents are consistent with the code" || say "FAILED: fix the lines above"
exit "$status"
