"""The EC2 node (infra/ec2-node.yaml) on a fresh emulator: the LabPipe stack deployed, two
sessions uploaded with the built `labpipe` and processed by the built `local-runner`, then the
node stack deployed next to it and its first boot run for real.

    .venv/bin/python -m pytest infra/node_tests -q      (after cargo build --workspace --bins)

Proves: cfn-lint passes; the launch template carries the stack's read-only instance profile,
IMDSv2-only metadata and an encrypted disk; an instance starts from it; and the user data it
boots with installs the exact `labpipe` binary from the artifacts bucket and syncs the
preprocessed files of the sessions matching the filter (and only those), byte for byte, then
writes the sync timer. The user data runs here under a folder of its own (LABPIPE_NODE_ROOT),
with the AWS CLI from the venv against the emulator, as it would run as root on the instance.
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_deploy_local import REPO, VENV_BIN, _env, aws, deployed, endpoint  # noqa: E402,F401

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "labpipe" / "target"))
LABPIPE = Path(os.environ.get("LABPIPE_BIN", TARGET / "debug" / "labpipe"))
RUNNER = TARGET / "debug" / "local-runner"
# The node installs the static build when scripts/package.sh has made one, else the test build.
STATIC = REPO / "dist" / "labpipe-0.1.0-x86_64-linux-musl"
NODE_TEMPLATE = REPO / "infra" / "ec2-node.yaml"
BINARY_KEY = "labpipe/labpipe-x86_64-linux-musl"
DEST = "/data/labpipe"


def _run(args, env, timeout=300, **kw):
    run = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, **kw)
    assert run.returncode == 0, f"{args[0]} failed ({run.returncode}):\n{run.stderr[-3000:]}\n{run.stdout[-2000:]}"
    return run


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def stack_env(endpoint, deployed):
    for binary in (LABPIPE, RUNNER):
        assert binary.is_file(), f"{binary} is missing: run 'cargo build --workspace --bins' first"
    out = deployed["outputs"]
    env = _env()
    env.update(
        AWS_ENDPOINT_URL=endpoint, LABPIPE_TABLE=out["CatalogTable"], LABPIPE_RAW_BUCKET=out["RawBucket"],
        LABPIPE_PROCESSED_BUCKET=out["ProcessedBucket"], LABPIPE_STACK_OUTPUTS=str(deployed["file"]),
    )
    return env


@pytest.fixture(scope="module")
def processed(stack_env, deployed, tmp_path_factory):
    """Two sessions recorded, uploaded and processed: what a researcher's node finds."""
    lab = tmp_path_factory.mktemp("lab")
    env = dict(stack_env, LABPIPE_JOURNAL=str(lab.parent / "journal.sqlite"))
    _run([str(LABPIPE), "dev", "generate", "--out", str(lab), "--count", "2", "--size-mb", "2", "--seed", "3"], env)
    _run([str(LABPIPE), "upload", "--json", str(lab)], env)
    _run([str(RUNNER), "--outputs", str(deployed["file"]), "--until-idle", "--wait", "1"], env, timeout=240)
    rows = json.loads(_run([str(LABPIPE), "query", "--json"], env).stdout)
    assert [r["status"] for r in rows] == ["PROCESSED", "PROCESSED"], rows
    return rows


@pytest.fixture(scope="module")
def awscli():
    aws_bin = VENV_BIN / "aws"
    if not aws_bin.exists():
        _run([str(VENV_BIN / "pip"), "install", "--quiet", "awscli"], os.environ.copy(), timeout=600)
    return aws_bin


def test_cfn_lint_passes():
    run = subprocess.run([str(VENV_BIN / "cfn-lint"), str(NODE_TEMPLATE)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_node_boots_installs_labpipe_and_syncs_what_the_filter_selects(
    aws, deployed, stack_env, processed, awscli, tmp_path
):
    out = deployed["outputs"]
    s3, ec2, cfn = aws("s3"), aws("ec2"), aws("cloudformation")

    # The binary the node installs, where `labpipe admin deploy` keeps artifacts.
    binary = STATIC if STATIC.is_file() else LABPIPE
    artifacts = "labpipe-node-artifacts"
    s3.create_bucket(Bucket=artifacts)
    s3.upload_file(str(binary), artifacts, BINARY_KEY)

    # Only the first session: a filter with quotes, as a researcher would write one.
    chosen = processed[0]["session"]
    sync_filter = f"session = '{chosen}'"
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    params = {
        "InstanceProfile": out["Ec2ReaderInstanceProfile"], "CatalogTable": out["CatalogTable"],
        "ProcessedBucket": out["ProcessedBucket"], "ArtifactsBucket": artifacts, "LabpipeBinaryKey": BINARY_KEY,
        "SyncFilter": sync_filter, "SyncDestination": DEST, "ImageId": image, "LaunchNode": "true",
    }
    cfn.create_stack(
        StackName="labpipe-node", TemplateBody=NODE_TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
    )
    deadline = time.monotonic() + 120
    while True:
        stack = cfn.describe_stacks(StackName="labpipe-node")["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    node_out = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    # The launch template: the reader's instance profile, IMDSv2 only, an encrypted disk.
    version = ec2.describe_launch_template_versions(LaunchTemplateId=node_out["LaunchTemplateId"])[
        "LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert version["IamInstanceProfile"]["Name"] == out["Ec2ReaderInstanceProfile"]
    assert version["MetadataOptions"]["HttpTokens"] == "required"
    assert version["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] in (True, "true")
    instance = ec2.describe_instances(InstanceIds=[node_out["NodeInstanceId"]])["Reservations"][0]["Instances"][0]
    assert instance["ImageId"] == image
    user_data = base64.b64decode(version["UserData"]).decode()
    assert "${" not in user_data.replace("${LABPIPE_NODE_ROOT:-}", ""), "every template value is filled in"

    # The first boot, for real: the same script, under a folder instead of /.
    root = tmp_path / "node"
    env = _env()
    env.update(AWS_ENDPOINT_URL=stack_env["AWS_ENDPOINT_URL"], LABPIPE_NODE_ROOT=str(root),
               PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    (tmp_path / "user-data.sh").write_text(user_data)
    t0 = time.monotonic()
    _run(["bash", str(tmp_path / "user-data.sh")], env, timeout=300)
    print(f"first boot (install + first sync) took {time.monotonic() - t0:.1f}s", file=sys.stderr)

    installed = root / "usr/local/bin/labpipe"
    assert _sha256(installed) == _sha256(binary), "the node runs the binary from the artifacts bucket"
    assert os.access(installed, os.X_OK)
    node_env = (root / "etc/labpipe/node.env").read_text()
    assert f"LABPIPE_TABLE={out['CatalogTable']}" in node_env
    assert (root / "etc/labpipe/filter").read_text().strip() == sync_filter
    timer = (root / "etc/systemd/system/labpipe-sync.timer").read_text()
    assert "OnUnitActiveSec=1h" in timer
    service = (root / "etc/systemd/system/labpipe-sync.service").read_text()
    assert f"--dest {DEST}" in service and "EnvironmentFile=/etc/labpipe/node.env" in service

    # What the first sync wrote is exactly what the catalog lists for the chosen session.
    events = [json.loads(line) for line in (root / "var/log/labpipe/first-sync.jsonl").read_text().splitlines()]
    summary = events[-1]
    assert summary.get("event") == "summary", summary
    listed = json.loads(_run([str(LABPIPE), "query", "--files", "--json", sync_filter], stack_env).stdout)
    assert listed, "the chosen session has preprocessed files"
    dest = root / DEST.lstrip("/")
    # Session folders only: the sync's own record (labpipe-sync.json) and state (.labpipe-sync/) aside.
    synced = sorted(p for p in dest.rglob("*") if p.is_file() and len(p.relative_to(dest).parts) > 1
                    and not p.relative_to(dest).parts[0].startswith("."))
    assert synced, f"nothing synced into {dest}"
    assert {p.relative_to(dest).parts[0] for p in synced} == {chosen}, "only the filtered session"
    assert summary["files"] == len(synced) and summary["files_failed"] == 0, summary
    by_sha = {f["sha256"] for f in listed}
    assert {_sha256(p) for p in synced} == by_sha, "every listed file, byte for byte"
