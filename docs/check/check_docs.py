#!/usr/bin/env python3
"""Keeps the Markdown documents honest about the code (standard library only).

Two checks, each printing `file:line: problem` and failing the run:

* **commands**: every `labpipe <command> [<command>] --flag` written in code (inline code spans
  and fenced blocks other than mermaid) is asked of the built binary's `--help`: the command must
  exist and so must each long flag. A line that carries `<!-- planned -->` names commands or
  flags that are not built yet: every mention on it must NOT exist (when it is built, the marker
  goes), so write a not-built command on a line of its own. A first word that is not a lowercase
  word (`labpipe (CLI)`, `labpipe FILTER`) is not a command.
* **bare flags**: a code span that starts with a flag (`--sessions-in-flight`, `--revise
  --reason TEXT`) names flags of `labpipe` written without the command: each must be a flag of
  some `labpipe` command (or a hidden one of `crates/cli/src/cli.rs`, or of `labpipe-app
  configure`), unless it is listed in `OTHER_FLAGS` with the tool it belongs to.
* **the app's command**: `labpipe-app configure --flag` names a flag that `configure` accepts
  (the `known` list of `src-tauri/src/configure.rs`, read from the source: the app binary is
  not built for this check).
* **citations**: a file path cited in code (`crates/upload/src/run.rs`, `filter/tests.rs`,
  `src-tauri/`) exists, and a test or function cited as `path::name` (or as a bare
  snake_case name of four words or more, as test names are) is defined there (`fn name`,
  `def name`, or a test macro's `name!(…)` argument); a trailing `…` makes the name a prefix.
* **links**: every relative Markdown link `[text](path#anchor)` resolves to a file, and its
  anchor to a heading of that file (GitHub's slugs).

Usage: check_docs.py --bin PATH/TO/labpipe [--repo DIR] FILE.md...   (exit 0 fine, 1 problems found)
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
APP_MENTION = re.compile(r"(?<![\w./-])labpipe-app(?=[ \t])")
APP_CONFIGURE = "src-tauri/src/configure.rs"
CLI_GRAMMAR = "crates/cli/src/cli.rs"
# Flags of other tools that the documents write on their own, each with its tool.
OTHER_FLAGS = {
    "--release": "cargo, scripts/package.sh, scripts/package-lambdas.sh",
    "--install": "scripts/package.sh",
    "--arm64": "scripts/package-lambdas.sh",
    "--no-app": "scripts/demo.sh",
    "--bundles": "the Tauri bundler",
    "--ignored": "cargo test",
    "--check": "docs/cost/model.py, docs/check/bench_results.py",
    "--write": "docs/cost/model.py, docs/check/bench_results.py",
}
# Where cited paths live: the tree's top-level folders and files.
SOURCE_DIRS = ("crates", "backend", "tests", "src-tauri", "ui/src", "infra", "docs", "scripts", "bench", "python")
SOURCE_EXT = (".rs", ".ts", ".py", ".sh", ".svelte", ".mjs", ".yaml", ".yml", ".json", ".toml", ".guard", ".c")
PATH_LIKE = re.compile(r"^[\w.-]+(?:/[\w.-]+)*/?$")
TEST_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+){3,}…?$")
DEFINED = re.compile(
    r"\b(?:fn|def|struct|enum|trait|const|mod|class|type)\s+([A-Za-z_]\w*)|\b[a-z_]+!\(\s*([a-z_]\w*)\s*\)"
)
IDENT = re.compile(r"^[A-Za-z_]\w*…?$")
COST_BLOCK = re.compile(r"<!-- cost-model:begin -->.*?<!-- cost-model:end -->", re.S)


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

    @functools.lru_cache(maxsize=None)
    def all_flags(self) -> frozenset[str]:
        """Every flag of every command (the `help` command left out)."""
        found, todo = set(), [()]
        while todo:
            path = todo.pop()
            found |= self.flags(path)
            todo += [path + (s,) for s in self.subcommands(path) if s != "help"]
        return frozenset(found)


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


# ------------------------------------------------------------------ bare flags, the app
def inline_spans(text: str):
    """(line number, code) of each inline code span outside fences and the cost model's block."""
    text = COST_BLOCK.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for no, code, _planned, fenced in code_snippets(text):
        if not fenced:
            yield no, code


def check_bare_flags(grammar: Grammar, app_flags: set[str], file: Path, text: str,
                     hidden: frozenset[str] = frozenset()) -> list[str]:
    problems = []
    known = grammar.all_flags() | app_flags | hidden | set(OTHER_FLAGS)
    for no, code in inline_spans(text):
        if not code.startswith("--"):
            continue
        code = code.replace("\\|", " ")
        for token in code.split():
            flag = clean(token)
            if flag.startswith("--") and len(flag) > 2 and flag not in known:
                problems.append(
                    f"{file}:{no}: `{flag}` is no flag of any `labpipe` command; write the command "
                    f"(`labpipe <command> {flag}`), fix the flag, or name its tool in OTHER_FLAGS"
                )
    return problems


def hidden_flags(repo: Path) -> set[str]:
    """Flags `--help` does not show (`hide = true` in crates/cli/src/cli.rs), written out by hand."""
    source = (repo / CLI_GRAMMAR).read_text(encoding="utf-8")
    fields = re.findall(r"#\[arg\([^\]]*\bhide\s*=\s*true[^\]]*\)\]\s*pub\s+(\w+)", source)
    return {"--" + f.replace("_", "-") for f in fields}


def app_configure_flags(repo: Path) -> set[str]:
    """The flags `labpipe-app configure` accepts: the `known` list of its source."""
    source = (repo / APP_CONFIGURE).read_text(encoding="utf-8")
    m = re.search(r"let known = \[(.*?)\];", source, re.S)
    if not m:
        raise SystemExit(f"check_docs: no `let known = [...]` flag list in {APP_CONFIGURE}: update check_docs.py")
    return set(re.findall(r'"(--[a-z0-9-]+)"', m.group(1))) | {"--help"}


def check_app(app_flags: set[str], file: Path, text: str) -> list[str]:
    problems = []
    for no, code, planned, _fenced in code_snippets(text):
        if planned:
            continue
        for m in APP_MENTION.finditer(code):
            words = code[m.end():].split()
            if not words or not COMMAND_WORD.match(words[0]):
                continue
            if words[0] != "configure":
                problems.append(f"{file}:{no}: `labpipe-app {words[0]}`: no such command (the app has: configure)")
                continue
            missing = []
            for w in words[1:]:
                if w in ("|", "&&", ";", "#") or w.startswith("#"):
                    break
                flag = clean(w)
                if flag.startswith("--") and len(flag) > 2 and flag not in app_flags:
                    missing.append(flag)
            if missing:
                problems.append(
                    f"{file}:{no}: `labpipe-app configure` has no flag {', '.join(missing)} ({APP_CONFIGURE})"
                )
    return problems


# ------------------------------------------------------------------ citations
class Tree:
    """The repository's source files and the names they define, for citations."""

    def __init__(self, repo: Path):
        self.repo = repo
        self.files: list[str] = []
        for top in SOURCE_DIRS:
            base = repo / top
            if not base.exists():
                continue
            for path in base.rglob("*"):
                rel = path.relative_to(repo).as_posix()
                if any(part in ("node_modules", "target", "__pycache__", ".venv") for part in path.parts):
                    continue
                if path.is_file():
                    self.files.append(rel)
        self._names: dict[str, set[str]] = {}

    def names(self, rel: str) -> set[str]:
        if rel not in self._names:
            try:
                text = (self.repo / rel).read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = ""
            self._names[rel] = {a or b for a, b in DEFINED.findall(text)}
        return self._names[rel]

    def resolve(self, cited: str) -> list[str]:
        """The files a cited path means: itself from the root, else any file whose path ends so."""
        cited = cited.rstrip("/")
        if (self.repo / cited).exists():
            return [cited]
        return [f for f in self.files if f.endswith("/" + cited)]

    def defined_anywhere(self, name: str) -> bool:
        return any(self.defines(f, name) for f in self.files if f.endswith((".rs", ".py", ".ts")))

    def defines(self, rel: str, name: str) -> bool:
        if name.endswith("…"):
            return any(n.startswith(name[:-1]) for n in self.names(rel))
        return name in self.names(rel)


def is_path(cited: str) -> bool:
    if not PATH_LIKE.match(cited) or cited.startswith(("-", ".", "/")):
        return False
    if any(part.isupper() for part in cited.split("/")):
        return False  # a placeholder: `DIR/labpipe-sync.json`
    if "/" in cited:
        top = cited.split("/", 1)[0]
        return top in {d.split("/")[0] for d in SOURCE_DIRS} or cited.endswith(SOURCE_EXT)
    return cited.endswith(SOURCE_EXT) and not cited.startswith("labpipe")


def check_citations(tree: Tree, file: Path, text: str) -> list[str]:
    problems = []
    for no, code in inline_spans(text):
        code = code.strip()
        path, sep, name = code.partition("::")
        if sep and is_path(path):
            files = tree.resolve(path)
            if not files:
                problems.append(f"{file}:{no}: `{path}` does not exist; fix the path")
            elif name and IDENT.match(name.split("::")[0]):
                name = name.split("::")[0]
                if not any(tree.defines(f, name) for f in files):
                    problems.append(f"{file}:{no}: `{name}` is not defined in {', '.join(files[:3])}; fix the name")
        elif not sep and is_path(code) and ("/" in code or code.endswith((".rs", ".ts", ".py"))):
            if not tree.resolve(code):
                problems.append(f"{file}:{no}: `{code}` does not exist; fix the path")
        elif not sep and TEST_NAME.match(code) and not tree.defined_anywhere(code):
            problems.append(f"{file}:{no}: `{code}` is not a test or function of this tree; fix the name")
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
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2],
                        help="the tree whose files and tests are cited (default: this repository)")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    grammar = Grammar(args.bin)
    if grammar.help(()) is None:
        print(f"check_docs: {args.bin} --help failed: build it with `cargo build -p labpipe-cli`")
        return 2
    app_flags = app_configure_flags(args.repo)
    hidden = frozenset(hidden_flags(args.repo))
    tree = Tree(args.repo)
    problems = []
    for file in args.files:
        text = file.read_text(encoding="utf-8")
        problems += check_commands(grammar, file, text)
        problems += check_bare_flags(grammar, app_flags, file, text, hidden)
        problems += check_app(app_flags, file, text)
        problems += check_citations(tree, file, text)
        problems += check_links(file, text)
    for p in problems:
        print(p)
    print(f"commands, flags, citations and links: {len(args.files)} file(s), {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
