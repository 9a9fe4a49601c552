"""Tests of the document checks' rules, against a stand-in binary whose --help has the shape
clap prints (the real binary is checked by scripts/check-docs.sh).

    .venv/bin/python -m pytest docs/check/test_check_docs.py -q -p no:cacheprovider
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_docs  # noqa: E402

HELP = {
    "": """Usage: tool <COMMAND>

Commands:
  check  Run the checks
  dev    Tools for development
  help   Print this message

Options:
  -h, --help     Print help
  -V, --version  Print version
""",
    "check": """Usage: tool check [OPTIONS] <PATH>...

Options:
      --json                Print JSON
      --quiet-period <SECS>  Seconds
  -h, --help                Print help
""",
    "dev": """Usage: tool dev <COMMAND>

Commands:
  generate  Write sample sessions
  help      Print this message

Options:
  -h, --help  Print help
""",
    "dev generate": """Usage: tool dev generate [OPTIONS] --out <DIR>

Options:
      --out <DIR>    Folder
      --count <N>    Number
  -h, --help         Print help
""",
}


@pytest.fixture
def binary(tmp_path):
    script = tmp_path / "labpipe"
    script.write_text(
        "#!" + sys.executable + "\n"
        "import sys, json\n"
        f"HELP = json.loads({__import__('json').dumps(__import__('json').dumps(HELP))})\n"
        "args = [a for a in sys.argv[1:] if a != '--help']\n"
        "key = ' '.join(args)\n"
        "if key not in HELP:\n"
        "    sys.exit(2)\n"
        "print(HELP[key])\n"
    )
    script.chmod(0o755)
    return str(script)


def problems(binary, tmp_path, text):
    doc = tmp_path / "doc.md"
    doc.write_text(textwrap.dedent(text))
    grammar = check_docs.Grammar(binary)
    return check_docs.check_commands(grammar, doc, doc.read_text()) + check_docs.check_links(doc, doc.read_text())


def test_existing_commands_and_flags_pass(binary, tmp_path):
    assert problems(binary, tmp_path, """
        Run `labpipe check PATH --json --quiet-period 5` or `labpipe dev generate --out d --count=3`.
        | `labpipe check [--json\\|--quiet-period S]` | table cell with alternatives |

        ```sh
        labpipe check demo --json | jq .   # a pipe ends the command
        labpipe dev generate \\
          --out demo
        ```
        Not commands: `labpipe (CLI)`, `labpipe FILTER`, `labpipe-core`, `labpipe.toml`, `labpipe --version`.
        """) == []


def test_a_missing_command_and_a_missing_flag_are_named_with_their_line(binary, tmp_path):
    found = problems(binary, tmp_path, """
        line one
        `labpipe teleport --now`
        `labpipe check PATH --no-such-flag`
        ```
        labpipe dev generate --out d --colour
        ```
        """)
    assert any(":3: `labpipe teleport`: no such command" in p for p in found), found
    assert any(":4: `labpipe check` has no flag --no-such-flag" in p for p in found), found
    assert any(":6: `labpipe dev generate` has no flag --colour" in p for p in found), found
    assert len(found) == 3


def test_planned_lines_must_name_what_is_not_built(binary, tmp_path):
    assert problems(binary, tmp_path, "`labpipe reprocess --where F` <!-- planned -->\n") == []
    assert problems(binary, tmp_path, "`labpipe check --brand-new` <!-- planned -->\n") == []
    found = problems(binary, tmp_path, "`labpipe check --json` <!-- planned -->\n")
    assert len(found) == 1 and "remove the marker" in found[0]


def test_flags_inside_quotes_are_arguments_not_flags(binary, tmp_path):
    assert problems(binary, tmp_path, "`labpipe check 'name --odd' --json`\n") == []


def test_links_and_anchors(binary, tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A `code` heading, with punctuation!\n")
    ok = """
        # Title
        See [other](other.md), [its heading](other.md#a-code-heading-with-punctuation),
        [here](#title), [web](https://example.org/x) and `[not a link](nowhere.md)`.
        """
    assert problems(binary, tmp_path, ok) == []
    found = problems(binary, tmp_path, "[a](missing.md) [b](other.md#nope)\n")
    assert len(found) == 2
    assert "missing.md does not exist" in found[0]
    assert "no heading #nope in other.md" in found[1]


def test_flags_written_without_their_command_must_exist_somewhere(binary, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("Use `--json`, `--out DIR --count N`, `--stack-outputs F`, `--release`; not `--colour`.\n")
    grammar = check_docs.Grammar(binary)
    found = check_docs.check_bare_flags(grammar, {"--stack-outputs", "--help"}, doc, doc.read_text())
    assert len(found) == 1 and "`--colour` is no flag of any `labpipe` command" in found[0], found


def test_the_apps_configure_flags(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(
        "`labpipe-app configure --stack-outputs o.json --region r`\n"
        "`labpipe-app configure --colour x`\n"
        "`labpipe-app teleport`\n"
    )
    found = check_docs.check_app({"--stack-outputs", "--region", "--help"}, doc, doc.read_text())
    assert any(":2: `labpipe-app configure` has no flag --colour" in p for p in found), found
    assert any(":3: `labpipe-app teleport`: no such command" in p for p in found), found
    assert len(found) == 2


def test_cited_files_and_tests_must_exist(tmp_path):
    (tmp_path / "crates" / "x" / "src").mkdir(parents=True)
    (tmp_path / "crates" / "x" / "src" / "plan.rs").write_text(
        "#[test]\nfn every_case_of_the_plan_is_here() {}\non_each!(a_test_run_by_a_macro_on_both);\n"
    )
    tree = check_docs.Tree(tmp_path)
    doc = tmp_path / "doc.md"
    doc.write_text(
        "`crates/x/src/plan.rs`, `plan.rs::every_case_of_the_plan_is_here`, `every_case_of_the…`,\n"
        "`a_test_run_by_a_macro_on_both`, `raw/<session>/manifest.json`, `DIR/labpipe-sync.json`\n"
        "`crates/x/src/gone.rs`, `plan.rs::a_renamed_test_of_the_plan`, `a_test_that_was_deleted_later`\n"
    )
    found = check_docs.check_citations(tree, doc, doc.read_text())
    assert [p.split(": ", 1)[0] for p in found] == [f"{doc}:3"] * 3, found
    assert "`crates/x/src/gone.rs` does not exist" in found[0]
    assert "`a_renamed_test_of_the_plan` is not defined in crates/x/src/plan.rs" in found[1]
    assert "`a_test_that_was_deleted_later` is not a test or function of this tree" in found[2]


def test_benchmark_tables_and_figures_have_one_home(tmp_path):
    import bench_results

    results = tmp_path / "results"
    results.mkdir()
    (results / "demo.md").write_text("intro\n\n| step | wall |\n|---|---:|\n| one | 1.23 s |\n")
    readme = tmp_path / "README.md"
    readme.write_text("# R\n\n<!-- bench:demo -->\nold\n<!-- /bench:demo -->\n")
    files = bench_results.results(results)
    assert "the demo table differs" in bench_results.check(readme, files)[0]
    bench_results.write(readme, files)
    assert bench_results.check(readme, files) == []
    other = tmp_path / "DESIGN.md"
    other.write_text("It takes 1.23 s.\nA step named one.\n")
    found = bench_results.written_twice([readme, other], files)
    assert len(found) == 1 and found[0].startswith(f"{other}:1: '1.23 s'"), found
    # A table's bare seconds, written in prose with their unit, are the same figure.
    (results / "demo.md").write_text("| tool | wall |\n|---|---:|\n| one | 4.56 |\n")
    other.write_text("one took 4.56 s there\n")
    found = bench_results.written_twice([other], bench_results.results(results))
    assert len(found) == 1 and "'4.56'" in found[0], found
