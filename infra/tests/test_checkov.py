"""An independent scanner over the templates: checkov (PyPI `checkov`, pinned in
scripts/bootstrap.sh), run by the test command's infra stage.

    .venv/bin/python -m pytest infra/tests/test_checkov.py -q -s

Proves: checkov finds nothing it would fail in infra/template.yaml,
infra/ec2-node.yaml and infra/deploy-role.yaml; every finding it does not fail
is skipped next to its resource (`Metadata: checkov: skip: - id, comment`) with
a one-line reason; and every skip hides a real finding (the same templates with
the skips stripped fail exactly the skipped checks), so a new finding fails
this test and a stale skip does too.
"""

import json
import subprocess
import sys

import pytest

from iam_model import REPO
from test_deploy_local import VENV_BIN

sys.path.insert(0, str(REPO / "infra"))
from deploy_local import load_template  # noqa: E402

TEMPLATES = ("infra/template.yaml", "infra/ec2-node.yaml", "infra/deploy-role.yaml")
CHECKOV = VENV_BIN / "checkov"
VERSION = "3.3.30"


def scan(paths):
    """{file: summary}, [(check id, resource, file)] failed, [(check id, resource, file, comment)] skipped."""
    args = [str(CHECKOV), "--framework", "cloudformation", "--compact", "-o", "json"]
    for p in paths:
        args += ["-f", str(p)]
    run = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.stdout.strip(), f"checkov printed nothing (exit {run.returncode}):\n{run.stderr[-2000:]}"
    reports = json.loads(run.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed, skipped, summaries = [], [], []
    for r in reports:
        summaries.append(r["summary"])
        for c in r["results"].get("failed_checks", []):
            failed.append((c["check_id"], c["resource"], c["file_path"].lstrip("/")))
        for c in r["results"].get("skipped_checks", []):
            skipped.append((c["check_id"], c["resource"], c["file_path"].lstrip("/"), c.get("check_result", {}).get("suppress_comment", "")))
    return summaries, failed, skipped


@pytest.fixture(scope="module")
def checkov():
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run scripts/bootstrap.sh (it installs checkov=={VERSION} into the venv)")
    version = subprocess.run([str(CHECKOV), "--version"], capture_output=True, text=True).stdout.strip()
    assert version == VERSION, f"checkov {version}; the findings below were reviewed with {VERSION}"
    return scan(REPO / t for t in TEMPLATES)


def test_checkov_finds_nothing_unexplained(checkov):
    summaries, failed, skipped = checkov
    print("\ncheckov", VERSION, json.dumps(summaries))
    assert all(s["parsing_errors"] == 0 for s in summaries), summaries
    assert sum(s["passed"] for s in summaries) >= 100, summaries
    assert not failed, (
        "checkov fails these: fix the resource, or skip the check next to it "
        "(Metadata: checkov: skip: - id: CKV_… comment: \"one line a reviewer accepts\"):\n"
        + "\n".join(f"  {cid} {res} ({f})" for cid, res, f in failed)
    )


def test_every_skip_has_a_one_line_reason(checkov):
    _, _, skipped = checkov
    assert skipped
    for cid, res, f, comment in skipped:
        assert len(comment) >= 30 and "\n" not in comment and len(comment) <= 200, (cid, res, f, comment)


def test_every_skip_hides_a_real_finding(checkov, tmp_path):
    """The templates without their checkov skips fail exactly the skipped checks: no skip is
    there for a check that would pass anyway (it would hide nothing and explain nothing)."""
    _, _, skipped = checkov
    stripped = []
    for t in TEMPLATES:
        _, doc = load_template(REPO / t)
        for res in doc["Resources"].values():
            meta = res.get("Metadata", {})
            meta.pop("checkov", None)
            if not meta:
                res.pop("Metadata", None)
        out = tmp_path / t.replace("/", "_").replace(".yaml", ".json")
        out.write_text(json.dumps(doc))
        stripped.append((t, out))
    _, failed, again = scan(p for _, p in stripped)
    assert not again
    names = {p.name: t for t, p in stripped}
    failed = sorted((cid, res, names[f.rsplit("/", 1)[-1]]) for cid, res, f in failed)
    assert failed == sorted((cid, res, f) for cid, res, f, _ in skipped)
