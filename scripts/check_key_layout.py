#!/usr/bin/env python3
"""Object keys are built only in labpipe_core::layout (ARCHITECTURE.md, "One S3 gateway").

Fails on a key format string in any Rust file outside crates/core/src/layout*: a string literal
holding `raw/{`, a processed prefix (`v{}/`, `v{version}/`, `v1/{`), a revision mark (`.r{`) or a layout
constant spliced into text (`{RAW_PREFIX}`, `{RAW_ROOT}`, `{REVISION_MARK}`). Such a string is a
second copy of the layout: the day one side changes (revisions did: `raw/<session>.r<R>/`,
`v<N>/<session>.r<R>/`), a key the other side builds by hand stops being found. Build the key
with `labpipe_core::layout` (`raw_key`, `manifest_key`, `revision_manifest_key`,
`revision_folder`, `processed_prefix`, `processed_key`, `raw_revisions_prefix`, ...) instead.

Comments are not looked at. Not checked, said on every run: the Python tests under infra/tests,
which name keys as the template's IAM statements see them (`raw/*`), not as any code builds them;
and the end-to-end suites under tests/tests, which may spell an expected key out literally on
purpose: a key written there by hand is an oracle independent of layout, so a change to layout
that moves a key fails them instead of moving with it.

  usage: scripts/check_key_layout.py [FILE...]   (default: every Rust file git knows, tracked or not)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYOUT = re.compile(r"^crates/core/src/layout")
# The end-to-end suites: expected keys spelled out as an independent oracle (see the docstring).
ORACLES = re.compile(r"^tests/tests/")
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
KEY_FORMATS = [
    (re.compile(r"(?<![\w-])raw/\{"), "a raw key"),
    (re.compile(r"(?<![\w-])v(\{[^}]*\}/|[0-9]+/\{)"), "a processed key"),
    (re.compile(r"\.r\{"), "a revision folder"),
    (re.compile(r"\{(RAW_PREFIX|RAW_ROOT|REVISION_MARK)\}"), "a key from layout's constants"),
]
NOT_CHECKED = (
    "infra/tests/*.py (keys as the template's IAM statements see them, raw/*); tests/tests/*.rs "
    "(end-to-end suites may spell expected keys out as an oracle independent of layout)"
)


def known_files(*patterns: str) -> list[str]:
    """The files git tracks, or would track (not ignored), that match `patterns`; also used by
    scripts/check_invariants.py."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *patterns],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line for line in out.splitlines() if line and (ROOT / line).is_file()]


def findings(path: str, text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("//"):
            continue
        for literal in STRING.findall(line):
            for pattern, what in KEY_FORMATS:
                if pattern.search(literal):
                    found.append(f'{path}:{number}: "{literal}" builds {what} by hand')
                    break
    return found


def main(argv: list[str]) -> int:
    files = argv or known_files("*.rs")
    problems = []
    checked = 0
    for path in files:
        rel = Path(path).resolve().relative_to(ROOT).as_posix() if Path(path).is_absolute() else path
        if LAYOUT.match(rel) or ORACLES.match(rel):
            continue
        checked += 1
        problems += findings(rel, (ROOT / rel).read_text(encoding="utf-8", errors="replace"))
    if problems:
        for p in problems:
            print(f"architecture: {p}", file=sys.stderr)
        print(
            f"architecture: {len(problems)} object keys built outside labpipe_core::layout; build them "
            "with its functions (raw_key, manifest_key, revision_manifest_key, revision_folder, "
            "processed_prefix, processed_key, raw_revisions_prefix) so one layout serves every reader",
            file=sys.stderr,
        )
        return 1
    print(f"architecture: ok  object keys       built only in crates/core/src/layout* ({checked} Rust files)")
    print(f"architecture: not checked for keys: {NOT_CHECKED}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
