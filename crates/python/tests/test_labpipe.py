"""The `labpipe` Python package against the `labpipe` command on the same real local stack.

Every expectation is read from the CLI's output or from the pipeline's own files for the same
data, never written down here: query and files must equal `labpipe query --json` /
`--files --json`, sync must leave the same bytes as `labpipe sync`, load's shapes must be the ones
the preprocessing run reports in `summary.json`.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

BUILTIN = ["session", "recorded_at", "status", "status_message", "total_bytes", "file_count", "pipeline_version"]


def tree(root: Path) -> dict:
    """Relative path → bytes of every synced file (the sync's own bookkeeping left out)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and rel.parts[0] != ".labpipe-sync" and rel.name != "labpipe-sync.json":
            out[str(rel)] = p.read_bytes()
    return out


def split_filter(stack):
    """A filter that selects some sessions but not all, chosen from the catalog's own values."""
    everything = stack.cli_json("query", "--json")
    assert len(everything) >= 2, f"the seeded stack should hold several sessions: {everything}"
    values = sorted(s["metadata"]["fatigue"] for s in everything)
    cut = values[len(values) // 2 - 1]
    f = f"fatigue > {cut}"
    picked = stack.cli_json("query", f, "--json")
    assert 0 < len(picked) < len(everything), (f, picked)
    return f, picked, everything


def test_query_rows_equal_the_cli_json(stack, py):
    f, picked, everything = split_filter(stack)
    for text, expected in [(f, picked), ("", everything)]:
        rows = py(f"print(json.dumps(labpipe.query({text!r}, as_frame=False)))")
        assert rows == expected, text
    model = picked[0]["metadata"]["hardware_model"]
    text = f"hardware_model = '{model}' and status = processed"
    assert py(f"print(json.dumps(labpipe.query({text!r}, as_frame=False)))") == stack.cli_json(
        "query", text, "--json"
    )


def test_query_dataframe_has_a_row_per_session_and_a_column_per_field(stack, py):
    f, picked, _ = split_filter(stack)
    frame = py(
        f"df = labpipe.query({f!r})\n"
        "df['recorded_at'] = df['recorded_at'].dt.strftime('%Y-%m-%dT%H:%M:%S')\n"
        "print(json.dumps({'columns': list(df.columns), 'rows': json.loads(df.to_json(orient='records'))}))"
    )
    keys = sorted({k for s in picked for k in s["metadata"]})
    assert frame["columns"] == BUILTIN + keys
    assert [r["session"] for r in frame["rows"]] == [s["session"] for s in picked]
    for row, cli in zip(frame["rows"], picked):
        for c in BUILTIN:
            assert row[c] == cli.get(c), (c, row[c], cli.get(c))
        for k in keys:
            if k in cli["metadata"]:
                assert row[k] == cli["metadata"][k], (k, row[k])
            else:
                assert row[k] is None or (isinstance(row[k], float) and math.isnan(row[k])), (k, row[k])


def test_files_equal_the_cli_files_json(stack, py):
    f, picked, _ = split_filter(stack)
    for version in [None, 1]:
        flags = [] if version is None else ["--pipeline-version", str(version)]
        expected = stack.cli_json("query", f, "--files", "--json", *flags)
        assert expected, "the processed sessions should have files"
        rows = py(f"print(json.dumps(labpipe.files({f!r}, {version!r}, as_frame=False)))")
        # The CLI's rows, field for field, `path` (where sync puts a file) included.
        assert rows == expected
        assert all(r["path"] == f"{r['session']}/{r['key'].split('/', 2)[2]}" for r in rows)
    # A version nobody ran: no files, and every matching session named as unprocessed.
    answer = py(
        f"df = labpipe.files({f!r}, pipeline_version=9)\n"
        "print(json.dumps({'n': len(df), 'unprocessed': df.attrs['unprocessed']}))"
    )
    assert stack.cli_json("query", f, "--files", "--json", "--pipeline-version", "9") == []
    assert answer["n"] == 0
    assert sorted(u["session"] for u in answer["unprocessed"]) == sorted(s["session"] for s in picked)


def test_sync_writes_the_same_files_as_the_cli(stack, py, tmp_path):
    f, picked, _ = split_filter(stack)
    cli_dest, py_dest = tmp_path / "cli", tmp_path / "py"
    lines = [json.loads(x) for x in stack.cli("sync", "--where", f, "--dest", cli_dest, "--json").stdout.splitlines()]
    cli_summary = lines[-1]
    assert cli_summary["event"] == "summary"
    result = py(
        "events = []\n"
        f"s = labpipe.sync({f!r}, {str(py_dest)!r}, progress=events.append)\n"
        "print(json.dumps({'summary': s, 'events': events}))"
    )
    summary, events = result["summary"], result["events"]
    want, got = tree(cli_dest), tree(py_dest)
    assert want, "the CLI synced nothing"
    assert sorted(got) == sorted(want)
    for path in want:
        assert got[path] == want[path], path
    assert {p.split("/")[0] for p in got} == {s["session"] for s in picked}
    # Every file is the one the catalog lists, by SHA-256.
    listed = py(f"print(json.dumps(labpipe.files({f!r}, as_frame=False)))")
    assert {r["path"]: r["sha256"] for r in listed} == {p: hashlib.sha256(b).hexdigest() for p, b in got.items()}
    for key in ["sessions", "files", "files_transferred", "files_skipped", "files_failed", "bytes_total", "bytes_transferred"]:
        assert summary[key] == cli_summary[key], key
    assert summary["dest"] == str(py_dest)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "plan" and kinds.count("file_done") == summary["files"]
    assert [e for e in events if e["event"] == "progress"][-1]["bytes"] == summary["bytes_transferred"]
    # A second run finds everything in place.
    again = py(f"print(json.dumps(labpipe.sync({f!r}, {str(py_dest)!r}, progress=False)))")
    assert again["files_transferred"] == 0 and again["files_skipped"] == summary["files"]
    assert tree(py_dest) == got


def test_sync_into_a_folder_the_cli_synced_fetches_nothing(stack, py, tmp_path):
    f, _, _ = split_filter(stack)
    stack.cli("sync", "--where", f, "--dest", tmp_path, "--json")
    s = py(f"print(json.dumps(labpipe.sync({f!r}, {str(tmp_path)!r}, progress=False)))")
    assert s["files"] > 0 and s["files_transferred"] == 0 and s["files_skipped"] == s["files"]


def test_load_gives_the_signals_and_features_the_pipeline_wrote(stack, py, tmp_path):
    sessions = [s for s in stack.cli_json("query", "status = processed", "--json")]
    assert sessions
    for s in sessions:
        sid = s["session"]
        got = py(
            f"signals, features = labpipe.load({sid!r}, {str(tmp_path)!r})\n"
            "print(json.dumps({'shape': list(signals.shape), 'dtype': str(signals.dtype),\n"
            "  'sum': float(signals.astype('float64').sum()), 'columns': list(features.columns),\n"
            "  'channel': features['channel'].tolist(), 'samples': features['samples'].tolist(),\n"
            "  'flat': features['flat'].tolist(), 'flat_dtype': str(features['flat'].dtype),\n"
            "  'attrs': {k: v for k, v in features.attrs.items() if k != 'summary'},\n"
            "  'summary': features.attrs['summary']}))"
        )
        folder = tmp_path / sid
        summary = json.loads((folder / "summary.json").read_text())
        assert got["summary"] == summary
        frames, channels = summary["output"]["frames"], summary["input"]["channels"]
        assert channels == s["metadata"]["channels"]
        assert got["shape"] == [frames, channels]
        assert got["dtype"] == "float32"
        on_disk = np.load(folder / "signals.npy")
        assert math.isclose(got["sum"], float(on_disk.astype("float64").sum()), rel_tol=0, abs_tol=1e-6)
        assert got["channel"] == list(range(channels))
        assert got["columns"][:8] == ["channel", "samples", "mean", "std", "rms", "min", "max", "flat"]
        assert "total_power" in got["columns"] and any(c.startswith("band_") for c in got["columns"])
        assert set(got["samples"]) == {summary["input"]["frames"]}
        assert got["flat_dtype"] == "bool"
        assert got["attrs"] == {"labpipe.session": sid, "labpipe.pipeline_version": str(s["pipeline_version"])}
        # The files load() read are the catalog's, byte for byte.
        listed = {r["path"]: r["sha256"] for r in stack.cli_json("query", f"session = '{sid}'", "--files", "--json")}
        for path, sha in listed.items():
            assert hashlib.sha256((tmp_path / path).read_bytes()).hexdigest() == sha, path


def test_a_bad_filter_raises_and_names_the_field(stack, py):
    for text, needles in [
        ("fatige > 3", ["fatige", "did you mean 'fatigue'"]),
        ("fatigue > 'high'", ["fatigue"]),
        ("fatigue >", []),
    ]:
        cli = stack.cli("query", text, check=False)
        assert cli.returncode == 2, cli
        got = py(
            "try:\n"
            f"    labpipe.query({text!r})\n"
            "    print(json.dumps(None))\n"
            "except labpipe.FilterError as e:\n"
            "    print(json.dumps({'message': str(e), 'column': e.column, 'reason': e.reason,\n"
            "      'family': isinstance(e, labpipe.LabpipeError)}))"
        )
        assert got is not None, f"{text!r} raised nothing"
        # The CLI prints the same caret picture: the message is the engine's, not a second one.
        assert got["message"] in cli.stderr, (got["message"], cli.stderr)
        assert got["reason"] in got["message"] and got["family"]
        assert got["message"].splitlines()[1] == text
        assert got["message"].splitlines()[2].index("^") == got["column"]
        for n in needles:
            assert n in got["message"], (n, got["message"])


def test_configuration_follows_the_cli(stack, py, tmp_path):
    # Away from the outputs file and without LABPIPE_TABLE: a ConfigError that says what to set.
    got = py(
        "try:\n"
        "    labpipe.query('')\n"
        "    print(json.dumps(None))\n"
        "except labpipe.ConfigError as e:\n"
        "    print(json.dumps(str(e)))",
        cwd=tmp_path,
    )
    assert got and "LABPIPE_TABLE" in got and "table=" in got
    expected = stack.cli_json("query", "--json")
    outputs = str(stack.workdir / ".labpipe" / "stack" / "outputs.json")
    # The same answer through the environment, and through keyword overrides.
    env = stack.env(LABPIPE_STACK_OUTPUTS=outputs)
    assert py("print(json.dumps(labpipe.query(as_frame=False)))", cwd=tmp_path, env=env) == expected
    env = stack.env(LABPIPE_TABLE=stack.outputs["CatalogTable"])
    assert py("print(json.dumps(labpipe.query(as_frame=False)))", cwd=tmp_path, env=env) == expected
    bare = {k: v for k, v in stack.env().items() if k != "AWS_ENDPOINT_URL"}
    code = (
        f"print(json.dumps(labpipe.query(as_frame=False, table={stack.outputs['CatalogTable']!r},"
        f" endpoint_url={stack.endpoint!r}, region='us-east-1')))"
    )
    assert py(code, cwd=tmp_path, env=bare) == expected
    # A keyword wins over the outputs file: a table that does not exist fails, naming it.
    got = py(
        "try:\n"
        "    labpipe.query('', table='no-such-table')\n"
        "    print(json.dumps(None))\n"
        "except labpipe.CatalogError as e:\n"
        "    print(json.dumps(str(e)))"
    )
    assert got and "no-such-table" in got
    # A misspelt keyword is refused, not ignored.
    proc = py("labpipe.query('', tabel='x')", check=False)
    assert proc.returncode != 0 and "tabel" in proc.stderr


def test_a_sync_stopped_from_python_releases_the_folder_and_resumes(stack, py, tmp_path):
    # The progress callback raising is the same path as Ctrl-C: the run is dropped mid-way and
    # the exception reaches the caller; the folder's lock goes with it, so the next run works.
    f, _, _ = split_filter(stack)
    got = py(
        "class Stop(Exception):\n"
        "    pass\n"
        "def stop(event):\n"
        "    if event['event'] == 'plan':\n"
        "        raise Stop('stopped by the test')\n"
        "try:\n"
        f"    labpipe.sync({f!r}, {str(tmp_path)!r}, progress=stop)\n"
        "    print(json.dumps(None))\n"
        "except Stop as e:\n"
        "    print(json.dumps(str(e)))"
    )
    assert got == "stopped by the test"
    s = py(f"print(json.dumps(labpipe.sync({f!r}, {str(tmp_path)!r}, progress=False)))")
    assert s["files"] > 0 and s["files_failed"] == 0
    assert s["files_transferred"] + s["files_skipped"] == s["files"]
    expected = stack.cli_json("query", f, "--files", "--json")
    assert {r["key"].split("/", 1)[1]: r["sha256"] for r in expected} == {
        p: hashlib.sha256(b).hexdigest() for p, b in tree(tmp_path).items()
    }
