#!/usr/bin/env python3
"""One home per measured figure: the benchmarks' results files and README's copies of them.

Each `bench/<name>.sh` writes its table into `bench/results/<name>.md` (`bench_record` in
`bench/lib.sh`). README's *Performance* section shows each file verbatim between
`<!-- bench:<name> -->` and `<!-- /bench:<name> -->`. This script

* `--check README.md`: fails when a block differs from its file, or a file has no block;
* `--write README.md`: copies every file into its block;
* `--figures DOC...`: fails when a figure from a results table (a cell other than the first
  column: `4.29`, `22.4 s`, `20 MiB`) is written in one of DOC outside README's blocks, so a
  figure is never stated in two places (link README's *Performance* instead). The cost model's
  generated block (`<!-- cost-model:begin -->`) is its own home and is skipped.

Usage: bench_results.py [--results DIR] (--check FILE | --write FILE | --figures DOC...)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- bench:([\w-]+) -->\n(.*?)<!-- /bench:\1 -->", re.S)
SKIPPED = re.compile(r"<!-- cost-model:begin -->.*?<!-- cost-model:end -->", re.S)
# A figure: a number with a unit, or a bare number with two decimals (a table's seconds).
UNIT = r"(?:ms|s|MB/s|MiB|MB|GB|Mbit/s|%)"
NUMBER = r"\d[\d,]*(?:\.\d+)?"
FIGURE = re.compile(
    rf"(?<![\w.,])(?:<\s)?{NUMBER}(?:–{NUMBER})?\s?{UNIT}(?![\w/])|(?<![\w.,])\d+\.\d\d(?![\d\w])"
)


def results(directory: Path) -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.md"))}


def check(readme: Path, files: dict[str, str], where: str = "bench/results") -> list[str]:
    text = readme.read_text(encoding="utf-8")
    blocks = {m.group(1): (m.group(2), text[: m.start()].count("\n") + 1) for m in BLOCK.finditer(text)}
    problems = []
    for name, body in files.items():
        if name not in blocks:
            problems.append(
                f"{readme}: no <!-- bench:{name} --> block for {where}/{name}.md; add one to *Performance*"
            )
        elif blocks[name][0] != body:
            problems.append(
                f"{readme}:{blocks[name][1]}: the {name} table differs from {where}/{name}.md; "
                f"run: python3 docs/check/bench_results.py --write {readme}"
            )
    for name, (_, line) in blocks.items():
        if name not in files:
            problems.append(f"{readme}:{line}: block bench:{name} has no {where}/{name}.md")
    return problems


def write(readme: Path, files: dict[str, str]) -> None:
    text = readme.read_text(encoding="utf-8")

    def fill(m: re.Match) -> str:
        body = files.get(m.group(1))
        return m.group(0) if body is None else f"<!-- bench:{m.group(1)} -->\n{body}<!-- /bench:{m.group(1)} -->"

    readme.write_text(BLOCK.sub(fill, text), encoding="utf-8")


def figures(files: dict[str, str]) -> dict[str, str]:
    """figure → the results file it comes from (cells after the first column of table rows)."""
    found: dict[str, str] = {}
    for name, body in files.items():
        for line in body.splitlines():
            if not line.startswith("|") or set(line) <= set("|-: "):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            for cell in cells[1:]:
                for m in FIGURE.finditer(cell):
                    found.setdefault(normal(m.group(0)), name)
    # A header row holds no figures; it is harmless here because headers are words.
    return found


def normal(figure: str) -> str:
    return re.sub(r"\s+", " ", figure.strip())


def written_twice(docs: list[Path], files: dict[str, str], where: str = "bench/results") -> list[str]:
    known = figures(files)
    problems = []
    for doc in docs:
        text = doc.read_text(encoding="utf-8")
        # Blank out (keeping line numbers) README's own copies and the cost model's block.
        text = BLOCK.sub(lambda m: "\n" * m.group(0).count("\n"), text)
        text = SKIPPED.sub(lambda m: "\n" * m.group(0).count("\n"), text)
        for no, line in enumerate(text.split("\n"), 1):
            for m in FIGURE.finditer(line):
                fig = normal(m.group(0))
                bare = re.match(r"\d+\.\d\d(?=\s?[a-zA-Z%])", fig)
                if fig not in known and bare and bare.group(0) in known:
                    fig = bare.group(0)  # `4.29 s` in prose is the table's bare `4.29`
                if fig in known:
                    problems.append(
                        f"{doc}:{no}: '{fig}' is a measured figure of {where}/{known[fig]}.md; "
                        f"link README's *Performance* instead of writing it again"
                    )
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", type=Path, metavar="FILE")
    group.add_argument("--write", type=Path, metavar="FILE")
    group.add_argument("--figures", type=Path, nargs="+", metavar="DOC")
    args = parser.parse_args(argv)
    files = results(args.results)
    if not files:
        print(f"bench_results: no results files in {args.results}")
        return 2
    if args.write:
        write(args.write, files)
        return 0
    try:
        where = args.results.resolve().relative_to(REPO).as_posix()
    except ValueError:
        where = str(args.results)
    problems = check(args.check, files, where) if args.check else written_twice(args.figures, files, where)
    for p in problems:
        print(p)
    what = "benchmark tables" if args.check else "measured figures"
    print(f"{what}: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
