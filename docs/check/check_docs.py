#!/usr/bin/env python3
"""Keeps the Markdown documents honest about the code (standard library only).

Two checks, each printing `file:line: problem` and failing the run:

* **commands**: every `labpipe <command> [<command>] --flag` written in code (inline code spans
  and fenced blocks other than mermaid) is asked of the built binary's `--help`: the command must
  exist and so must each long flag. A line that carries `<!-- planned -->` names commands or
  flags that are not built yet: every mention on it must NOT exist (when it is built, the marker
  goes), so write a not-built command on a line of its own. A first word that is not a lowercase
  word (`labpipe (CLI)`, `labpipe FILTER`) is not a command.
* **links**: every relative Markdown link `[text](path#anchor)` resolves to a file, and its
  anchor to a heading of that file (GitHub's slugs).

Usage: check_docs.py --bin PATH/TO/labpipe FILE.md...   (exit 0 fine, 1 problems found)
"""

from __future__ import annotations

import argparse
import functools
import re
import shlex
import subprocess
import sys
from pathlib import Path

PLANNED = "<!-- planned -->"
# `labpipe` as a word followed by a space: not `labpipe-core`, `labpipe.toml`, `labpipe_core::`.
MENTION = re.compile(r"(?<![\w./-])labpipe(?=[ \t])")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
COMMAND_WORD = re.compile(r"^[a-z][a-z0-9-]*$")


# ------------------------------------------------------------------ the binary's grammar
class Grammar:
    """What the built binary says about itself, one `--help` per command path (cached)."""

    def __init__(self, binary: str):
        self.binary = binary

    @functools.lru_cache(maxsize=None)
    def help(self, path: tuple[str, ...]) -> str | None:
        try:
            out = subprocess.run(
                [self.binary, *path, "--help"], capture_output=True, text=True, timeout=20
            )
        except OSError:
            return None
        return out.stdout if out.returncode == 0 else None

    def subcommands(self, path: tuple[str, ...]) -> set[str]:
        text = self.help(path) or ""
        names, inside = set(), False
        for line in text.splitlines():
            if line.strip() == "Commands:":
                inside = True
                continue
            if inside:
                m = re.match(r"^  (\S+)", line)
                if m:
                    names.add(m.group(1))
                elif line and not line.startswith(" "):
                    inside = False
        return names

    def flags(self, path: tuple[str, ...]) -> set[str]:
        text = self.help(path) or ""
        found = set(re.findall(r"(?m)^\s+(?:-\w,\s+)?(--[a-z0-9][a-z0-9-]*)", text))
        return found | {"--help", "--version"}


# ------------------------------------------------------------------ Markdown scanning
def code_snippets(text: str):
    """(line number, code) for each inline code span outside fences and each fenced line
    (continuation lines joined), skipping mermaid blocks. Yields also whether the line is
    marked planned."""
    lines = text.split("\n")
    fence = None
    pending = None  # (start line, text) of a fenced line ending in a backslash
    for no, line in enumerate(lines, 1):
        m = re.match(r"^\s*(```+|~~~+)\s*([\w-]*)", line)
        if fence is None and m:
            fence = (m.group(1), m.group(2))
            continue
        if fence is not None and m and line.strip().startswith(fence[0]) and not m.group(2):
            fence = None
            continue
        planned = PLANNED in line
        if fence is not None:
            if fence[1] == "mermaid":
                continue
            if pending:
                start, acc, was_planned = pending
                line_text, no_used, planned = acc + " " + line.strip(), start, planned or was_planned
            else:
                line_text, no_used = line, no
            if line_text.rstrip().endswith("\\"):
                pending = (no_used, line_text.rstrip()[:-1], planned)
                continue
            pending = None
            yield no_used, line_text, planned, True
        else:
            for span in INLINE_CODE.finditer(line):
                yield no, span.group(2), planned, False


def mentions(code: str, fenced: bool):
    """The token lists that follow each `labpipe ` in one piece of code."""
    if not fenced:
        # `--json\|--csv` in a table cell: alternatives, both must exist.
        code = code.replace("\\|", " ")
    for m in MENTION.finditer(code):
        rest = code[m.end():]
        try:
            lexer = shlex.shlex(rest, posix=True, punctuation_chars="|;&<>")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            tokens = list(lexer)
        except ValueError:  # an unbalanced quote in a table cell: fall back to spaces
            tokens = rest.split()
        words = []
        for t in tokens:
            if t and set(t) <= set("|;&<>"):
                break
            words.append(t)
        yield words


def clean(token: str) -> str:
    return token.strip("[](){}…,.'\"").split("=", 1)[0]


def check_mention(grammar: Grammar, words: list[str]):
    """(command path, problem or None, whether everything named exists)."""
    path: tuple[str, ...] = ()
    i = 0
    while i < len(words):
        subs = grammar.subcommands(path)
        if not subs:
            break
        word = words[i]
        if word.startswith("-"):
            break
        if not COMMAND_WORD.match(word):
            if not path:
                return path, None, None  # not an invocation: `labpipe (CLI)`, `labpipe FILTER`
            break
        if word not in subs:
            if not path and word in ("help",):
                return path, None, True
            if path and not grammar.subcommands(path):
                break
            shown = " ".join(("labpipe",) + path + (word,))
            return path, f"`{shown}`: no such command (the binary has: {', '.join(sorted(subs))})", False
        path += (word,)
        i += 1
    if not path:
        return path, None, True  # `labpipe --help`, `labpipe --version`
    known = grammar.flags(path)
    missing = []
    for token in words[i:]:
        flag = clean(token)
        if flag.startswith("--") and len(flag) > 2 and flag not in known:
            missing.append(flag)
    if missing:
        shown = " ".join(("labpipe",) + path)
        return path, f"`{shown}` has no flag {', '.join(missing)}", False
    return path, None, True


def check_commands(grammar: Grammar, file: Path, text: str) -> list[str]:
    problems = []
    for no, code, planned, fenced in code_snippets(text):
        for words in mentions(code, fenced):
            path, problem, exists = check_mention(grammar, words)
            if exists is None:
                continue
            if planned:
                if exists:
                    shown = " ".join(["labpipe", *path, *[w for w in words if w.startswith("--")]])
                    problems.append(
                        f"{file}:{no}: `{shown}` is marked {PLANNED} but the binary has it: remove the marker"
                    )
            elif problem:
                problems.append(f"{file}:{no}: {problem}; build it, fix the text, or mark the line {PLANNED}")
    return problems


# ------------------------------------------------------------------ links
def slug(heading: str) -> str:
    text = re.sub(r"`|\*\*|__|\*|_(?=\W)|(?<=\W)_", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text, flags=re.UNICODE)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    found, seen, fence = set(), {}, False
    for line in text.split("\n"):
        if re.match(r"^\s*(```|~~~)", line):
            fence = not fence
            continue
        m = None if fence else HEADING.match(line)
        if m:
            base = slug(m.group(2))
            n = seen.get(base, 0)
            found.add(base if n == 0 else f"{base}-{n}")
            seen[base] = n + 1
    found.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", text))
    return found


def check_links(file: Path, text: str) -> list[str]:
    problems, fence = [], False
    for no, line in enumerate(text.split("\n"), 1):
        if re.match(r"^\s*(```|~~~)", line):
            fence = not fence
            continue
        if fence:
            continue
        for m in LINK.finditer(INLINE_CODE.sub("", line)):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            dest = (file.parent / path_part).resolve() if path_part else file.resolve()
            if not dest.exists():
                problems.append(f"{file}:{no}: link to {target}: {path_part} does not exist")
                continue
            if anchor and dest.suffix == ".md":
                if anchor not in anchors(dest.read_text(encoding="utf-8")):
                    problems.append(f"{file}:{no}: link to {target}: no heading #{anchor} in {dest.name}")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", required=True, help="the built labpipe binary")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    grammar = Grammar(args.bin)
    if grammar.help(()) is None:
        print(f"check_docs: {args.bin} --help failed: build it with `cargo build -p labpipe-cli`")
        return 2
    problems = []
    for file in args.files:
        text = file.read_text(encoding="utf-8")
        problems += check_commands(grammar, file, text)
        problems += check_links(file, text)
    for p in problems:
        print(p)
    print(f"commands and links: {len(args.files)} file(s), {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
