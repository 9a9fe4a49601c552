#!/usr/bin/env python3
"""The rules of ARCHITECTURE.md's "Invariants" that are read from the source text.

`cargo tree` (scripts/check-architecture.sh) sees which crate depends on which; it cannot see a
front end that decides for itself, or an upload that forgot its condition. Each rule below is one
invariant's cheapest falsifiable form: a pattern that product code must not (or must) contain.
Each fails naming the file, the line, the invariant and what to do instead:

- "One rule set": outside crates/core no product code makes a finding (`Finding::error(…)`,
  `Finding { … }`), a report (`SessionReport { … }`) or a verdict (`verdict: Verdict::Fail`,
  `.verdict = …`, `.findings.push(…)`), and ui/ writes no verdict or severity: every verdict comes
  from labpipe_core::check. One exception, printed on every run: a folder that cannot be listed at
  all is `fail` with the reason (crates/lab `PendingSession::unreadable`), since no check could run.
- "The lab PC's rules live in crates/lab": the CLI, the app and the Python package make none of
  crates/lab's decisions (no `Eligibility::…`, `TransferState::…`, `FileState::…`, no
  `TransferActions { … }`, `TransferView { … }`, `RunSummary { … }`, `ErrorActions { … }`
  literal), and ui/ does not choose what to offer from an error's code (`.code === "…"`): what may
  be done with a transfer is `TransferView.actions`, what an error offers is `AppError.actions`
  (`labpipe_lab::ErrorActions::of` its code). A place listed in UI_CODE_EXCEPTIONS (none now) is
  printed on every run; any other fails.
- "Raw data is write-once": in crates/upload (the one writer of raw/) every `.put_object()` and
  `.complete_multipart_upload()` sends `.if_none_match("*")` before `.send()`, and no product code
  calls an S3 delete (`.delete_object()`, `.delete_objects()`).
- "One S3 gateway": no product code outside crates/aws builds an S3 client itself
  (`aws_sdk_s3::Client::new` / `from_conf`, or the same through a `use aws_sdk_s3::Client as …`).
- "Tests use real parts": Cargo.lock resolves no mocking crate (MOCK_CRATES), no Rust file uses
  the SDK's replay or stub clients (`StaticReplayClient`, `aws_smithy_mocks`, …) and no Python file
  stubs AWS in process (moto's `mock_aws` decorators, botocore's `Stubber`).
- Every invariant names its check: each bullet of ARCHITECTURE.md's "## Invariants" cites a test
  or a script in backticks (scripts/check-docs.sh then holds that what it cites exists).

"Product code" is every Rust file outside the test trees (`tests/`, `*/tests/`, `tests.rs`),
examples and benchmarks, without its `#[cfg(test)]` items; `//` comments are not looked at.

  usage: scripts/check_invariants.py   (reads every file git knows, tracked or not)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from check_key_layout import known_files  # noqa: E402  (one way to list the files, shared)

# --- which files -------------------------------------------------------------------------------

NOT_PRODUCT = re.compile(r"(^|/)(tests|examples|benches)/|(^|/)tests\.rs$|^bench/")


CHAR_LITERAL = re.compile(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'")


def code_only(text: str) -> str:
    """`text` with comments, string and character literals blanked (newlines kept): what is left
    is code, whose braces can be counted."""
    out, i, n = [], 0, len(text)
    blank = lambda s: "".join(c if c == "\n" else " " for c in s)  # noqa: E731
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif (m := re.match(r'b?r(#*)"', text[i:])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            close = '"' + m.group(1)
            j = text.find(close, i + m.end())
            j = n if j < 0 else j + len(close)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
        elif c == "'" and (m := CHAR_LITERAL.match(text, i)):
            j = m.end()
        else:
            out.append(c)
            i += 1
            continue
        out.append(blank(text[i:j]))
        i = j
    return "".join(out)


def product_lines(path: str) -> list[tuple[int, str]]:
    """The numbered lines of a Rust file's product code: `#[cfg(test)]` items and comment lines
    left out. A `#[cfg(test)]` item ends at its `;` (`mod tests;`) or where its braces close."""
    text = (ROOT / path).read_text(encoding="utf-8", errors="replace")
    lines = []
    skipping, depth, opened = False, 0, False
    for number, (line, code) in enumerate(zip(text.splitlines(), code_only(text).splitlines()), 1):
        stripped = line.strip()
        if skipping:
            depth += code.count("{") - code.count("}")
            opened = opened or "{" in code
            if (opened and depth <= 0) or (not opened and code.strip().endswith(";")):
                skipping = False
            continue
        if stripped.startswith("#[cfg(test)]"):
            skipping, depth, opened = True, 0, False
            continue
        if stripped.startswith("//"):
            continue
        lines.append((number, line))
    return lines


def ui_lines(path: str) -> list[tuple[int, str]]:
    return [
        (n, line)
        for n, line in enumerate((ROOT / path).read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if not line.strip().startswith("//")
    ]


RUST = [p for p in known_files("*.rs")]
PRODUCT_RUST = [p for p in RUST if not NOT_PRODUCT.search(p)]
UI = [
    p
    for p in known_files("ui/src/*.ts", "ui/src/*.svelte")
    if "/bindings/" not in p and not p.endswith(".test.ts")
]

problems: list[str] = []
notes: list[str] = []


def fail(path: str, number: int, text: str, invariant: str, instead: str) -> None:
    problems.append(f'{path}:{number}: {text.strip()}\n  breaks "{invariant}": {instead}')


# --- One rule set ------------------------------------------------------------------------------

ONE_RULE_SET = "One rule set"
VERDICT_MADE = [
    (re.compile(r"\bFinding::(new|error|warning|info)\s*\("), "makes a finding"),
    (re.compile(r"\bFinding\s*\{"), "makes a finding"),
    (re.compile(r"\bSessionReport\s*\{"), "makes a session report"),
    (re.compile(r"\bverdict\s*:\s*(labpipe_core::)?(check::)?Verdict::"), "writes a verdict"),
    (re.compile(r"\.verdict\s*=[^=]"), "overwrites a verdict"),
    (re.compile(r"\.findings\s*\.\s*push\s*\("), "adds a finding"),
]
# (path, text on the line): a folder no check could read (see the docstring).
RULE_SET_EXCEPTIONS = {
    ("crates/lab/src/pending.rs", "verdict: Verdict::Fail,"):
        "PendingSession::unreadable: a folder that cannot be listed is fail with the reason",
    ("crates/lab/src/pending.rs", 'findings: vec![Finding::error("folder", reason)],'):
        "PendingSession::unreadable: the reason it could not be listed is its one finding",
}
seen_exceptions: set[tuple[str, str]] = set()
for path in PRODUCT_RUST:
    if path.startswith("crates/core/"):
        continue
    for number, line in product_lines(path):
        for pattern, what in VERDICT_MADE:
            if pattern.search(line):
                key = (path, line.strip())
                if key in RULE_SET_EXCEPTIONS:
                    seen_exceptions.add(key)
                    break
                fail(path, number, line, ONE_RULE_SET,
                     f"{what} outside crates/core; every verdict and finding comes from "
                     "labpipe_core::check (check_folder / check_session): add the check there")
                break
UI_VERDICT = re.compile(r"\b(verdict|severity)\s*:\s*[\"'`]")
for path in UI:
    for number, line in ui_lines(path):
        if UI_VERDICT.search(line):
            fail(path, number, line, ONE_RULE_SET,
                 "ui/ writes a verdict or severity; it shows the ones labpipe_core::check made")
for key, why in RULE_SET_EXCEPTIONS.items():
    if key in seen_exceptions:
        notes.append(f"allowed ({ONE_RULE_SET}): {key[0]}: {why}")
    else:
        notes.append(f"stale exception ({ONE_RULE_SET}): {key[0]}: `{key[1]}` is gone; "
                     "remove it from RULE_SET_EXCEPTIONS in scripts/check_invariants.py")

# --- The lab PC's rules live in crates/lab -----------------------------------------------------

LAB_RULES = "The lab PC's rules live in crates/lab"
ADAPTERS = ("crates/cli/", "crates/python/", "src-tauri/")
LAB_DECISIONS = re.compile(
    r"\b(Eligibility|TransferState|FileState)::[A-Z]\w*|\b(TransferActions|TransferView|RunSummary|ErrorActions)\s*\{"
)
for path in PRODUCT_RUST:
    if not path.startswith(ADAPTERS):
        continue
    for number, line in product_lines(path):
        m = LAB_DECISIONS.search(line)
        if m:
            fail(path, number, line, LAB_RULES,
                 f"`{m.group(0).rstrip('{ ')}` is one of crates/lab's decisions; call labpipe_lab "
                 "(ready_to_upload, eligibility, the progress fold) and adapt what it returns")
# What a transfer allows is TransferView.actions, what an error offers is AppError.actions. Places
# that still choose what to offer from an error's code would be listed here, to move into
# crates/lab; none is left.
UI_CODE_EXCEPTIONS: set[tuple[str, str]] = set()
UI_CODE = re.compile(r"[\w?.\]]*\.code\s*[!=]==?\s*[\"'`][^\"'`]*[\"'`]")
seen_codes: set[tuple[str, str]] = set()
for path in UI:
    for number, line in ui_lines(path):
        for m in UI_CODE.finditer(line):
            key = (path, m.group(0))
            if key in UI_CODE_EXCEPTIONS:
                seen_codes.add(key)
                continue
            fail(path, number, m.group(0), LAB_RULES,
                 "ui/ chooses what to offer from an error's code; decide it in crates/lab "
                 "(TransferView.actions, Eligibility, AppError.actions) and draw what arrives")
for key in sorted(UI_CODE_EXCEPTIONS):
    state = "not yet held" if key in seen_codes else "gone (remove it from UI_CODE_EXCEPTIONS)"
    notes.append(f"{state} ({LAB_RULES}): {key[0]}: `{key[1]}`")

# --- Raw data is write-once --------------------------------------------------------------------

WRITE_ONCE = "Raw data is write-once"
WRITES = re.compile(r"\.(put_object|complete_multipart_upload)\(\)")
for path in PRODUCT_RUST:
    if not path.startswith("crates/upload/"):
        continue
    lines = product_lines(path)
    for i, (number, line) in enumerate(lines):
        m = WRITES.search(line)
        if not m:
            continue
        chain = []
        for _, later in lines[i:]:
            chain.append(later)
            if ".send()" in later:
                break
        if not any('.if_none_match("*")' in c for c in chain):
            fail(path, number, line, WRITE_ONCE,
                 f"{m.group(1)} without .if_none_match(\"*\") before .send() could overwrite a raw "
                 "object; write raw objects only if none exists")
DELETES = re.compile(r"\.(delete_object|delete_objects)\(\)")
for path in PRODUCT_RUST:
    for number, line in product_lines(path):
        if DELETES.search(line):
            fail(path, number, line, WRITE_ONCE,
                 "product code deletes S3 objects; raw data is never deleted (retention deletes "
                 "local folders only)")

# --- One S3 gateway ----------------------------------------------------------------------------

GATEWAY = "One S3 gateway"
for path in PRODUCT_RUST:
    if path.startswith("crates/aws/"):
        continue
    lines = product_lines(path)
    aliases = {"aws_sdk_s3::Client"}
    for _, line in lines:
        for alias in re.findall(r"use\s+aws_sdk_s3::Client\s+as\s+(\w+)", line):
            aliases.add(alias)
    built = re.compile(r"(?<![\w:])(" + "|".join(re.escape(a) for a in sorted(aliases)) + r")::(new|from_conf)\s*\(")
    for number, line in lines:
        if built.search(line):
            fail(path, number, line, GATEWAY,
                 "builds an S3 client outside labpipe-aws; take one from labpipe_aws::s3_client "
                 "(retries, timeouts, path style, checksum policy, loopback-only http)")

# --- Tests use real parts ----------------------------------------------------------------------

REAL_PARTS = "Tests use real parts"
MOCK_CRATES = {
    "mockall", "mockito", "wiremock", "httpmock", "mock_instant", "faux",
    "aws-smithy-mocks", "aws-smithy-mocks-experimental", "aws-smithy-http-server-mock",
}
lock = (ROOT / "Cargo.lock").read_text(encoding="utf-8")
for number, line in enumerate(lock.splitlines(), 1):
    m = re.match(r'name = "([^"]+)"', line)
    if m and m.group(1) in MOCK_CRATES:
        fail("Cargo.lock", number, line, REAL_PARTS,
             f"{m.group(1)} is a mocking crate; test against the harness's emulator, SeaweedFS or "
             "dynalite (tests/src) through the real SDK")
SDK_STANDINS = re.compile(
    r"\b(StaticReplayClient|ReplayEvent|aws_smithy_mocks\w*|mock_client!|infallible_client_fn|capture_request)\b"
)
for path in RUST:
    for number, line in enumerate((ROOT / path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip().startswith("//") and SDK_STANDINS.search(line):
            fail(path, number, line, REAL_PARTS,
                 "an SDK stand-in answers for AWS; start a real server with the harness (tests/src)")
PY_STANDINS = re.compile(r"\b(mock_aws|mock_s3|mock_dynamodb|mock_sqs|mock_logs|Stubber)\b|botocore\.stub")
for path in known_files("*.py"):
    if path == "scripts/check_invariants.py":
        continue
    for number, line in enumerate((ROOT / path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip().startswith("#") and PY_STANDINS.search(line):
            fail(path, number, line, REAL_PARTS,
                 "AWS is stubbed in process; use the moto server on 127.0.0.1 "
                 "(tests/python/local_emulator.py, moto_server)")

# --- Every invariant names its check -----------------------------------------------------------

text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
section = text.split("\n## Invariants\n", 1)[1].split("\n## ", 1)[0]
start = text[: text.index("\n## Invariants\n")].count("\n") + 2
bullets: list[tuple[int, str]] = []
for offset, line in enumerate(section.splitlines()):
    if line.startswith("- "):
        bullets.append((start + offset, line))
    elif bullets and line.startswith("  "):
        bullets[-1] = (bullets[-1][0], bullets[-1][1] + " " + line.strip())
CITES_A_CHECK = re.compile(r"`[^`]*(scripts/|tests|\.rs::|\.py)[^`]*`")
for number, bullet in bullets:
    if not CITES_A_CHECK.search(bullet):
        name = re.match(r"- \*\*(.+?)\*\*", bullet)
        fail("ARCHITECTURE.md", number, name.group(0) if name else bullet[:60],
             "every invariant names its check",
             "cite, in backticks, the test or script that fails when it is broken")

# --- report ------------------------------------------------------------------------------------

if problems:
    for p in problems:
        print(f"architecture: {p}", file=sys.stderr)
    print(f"architecture: {len(problems)} invariants of ARCHITECTURE.md broken in the source (scripts/check_invariants.py)",
          file=sys.stderr)
    sys.exit(1)
print(f"architecture: ok  invariants in the source  ({len(PRODUCT_RUST)} Rust product files, {len(UI)} ui files, "
      f"{len(bullets)} invariants each naming a check)")
for note in notes:
    print(f"architecture: {note}")
