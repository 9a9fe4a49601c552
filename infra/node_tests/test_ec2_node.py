"""The EC2 node (infra/ec2-node.yaml) on a fresh emulator with authorization on: the LabPipe
stack deployed, two sessions uploaded with the built `labpipe` and processed by the built
`local-runner` (an administrator's key), then the node stack deployed next to it and its first
boot run for real with the credentials of Ec2ReaderRole (an IAM user holding exactly that role's
policies, as test_iam_matrix.py does: moto cannot assume a role that trusts a service).

    .venv/bin/python -m pytest infra/node_tests -q      (after cargo build --workspace --bins)

Proves: cfn-lint passes; the launch template carries the stack's read-only instance profile,
IMDSv2-only metadata and an encrypted disk; an instance starts from it; and the user data it
boots with installs the exact `labpipe` binary from the artifacts bucket and syncs the
preprocessed files of the sessions matching the filter (and only those), byte for byte, then
writes the sync timer. The user data runs here under a folder of its own (LABPIPE_NODE_ROOT),
with the AWS CLI from the venv against the emulator, as it would run as root on the instance.

What the emulator checks of the role (measured, test_iam_matrix.py): S3 by action and resource,
so the binary's download (InstallLabpipe: that one object of the artifacts bucket) and the
processed reads are held here as the template grants them. DynamoDB it checks against resource
`*` only, which a table-scoped grant never matches: the node's user also gets the same catalog
reads on `*` (emulator only; the table-scoped grant is checked statically in test_call_table.py).
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
from test_deploy_local import REPO, VENV_BIN  # noqa: E402
from test_iam_matrix import CFG, client, emulator, policy_document  # noqa: E402,F401

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


def _env(key):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=key[0], AWS_SECRET_ACCESS_KEY=key[1], AWS_REGION="us-east-1")
    return env


@pytest.fixture(scope="module")
def endpoint(emulator):
    return emulator[0]


@pytest.fixture(scope="module")
def admin(emulator):
    return emulator[1]


@pytest.fixture(scope="module")
def aws(endpoint, admin):
    return lambda name: client(endpoint, name, admin)


@pytest.fixture(scope="module")
def deployed(endpoint, admin, tmp_path_factory):
    out = tmp_path_factory.mktemp("stack") / "outputs.json"
    run = subprocess.run([str(VENV_BIN / "python"), str(REPO / "infra" / "deploy_local.py"), "--endpoint", endpoint,
                          "--stack", "labpipe", "--outputs", str(out)],
                         capture_output=True, text=True, timeout=300, env=_env(admin))
    assert run.returncode == 0, f"deploy with authorization on failed:\n{run.stderr[-3000:]}"
    return {"outputs": json.loads(run.stdout), "file": out}


@pytest.fixture(scope="module")
def node_key(aws, deployed):
    """An access key of a user holding exactly Ec2ReaderRole's policies (and, emulator only, the
    same catalog reads on `*`)."""
    iam, cf = aws("iam"), aws("cloudformation")
    name = next(r["PhysicalResourceId"] for r in cf.describe_stack_resources(StackName="labpipe")["StackResources"]
                if r.get("LogicalResourceId") == "Ec2ReaderRole")
    iam.create_user(UserName="ec2-node")
    policies = 0
    for pol in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        doc = policy_document(iam.get_role_policy(RoleName=name, PolicyName=pol)["PolicyDocument"])
        iam.put_user_policy(UserName="ec2-node", PolicyName=pol, PolicyDocument=json.dumps(doc))
        policies += 1
    for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        iam.attach_user_policy(UserName="ec2-node", PolicyArn=p["PolicyArn"])
        policies += 1
    # moto's CloudFormation does not attach ManagedPolicyArns: attach the ones the template names.
    from iam_model import Template
    for ref in Template().resources["Ec2ReaderRole"]["Properties"].get("ManagedPolicyArns", []):
        arn = next(r["PhysicalResourceId"] for r in cf.describe_stack_resources(StackName="labpipe")["StackResources"]
                   if r.get("LogicalResourceId") == ref["Ref"])
        iam.attach_user_policy(UserName="ec2-node", PolicyArn=arn)
        policies += 1
    assert policies, f"{name} has no policies on the emulator"
    iam.put_user_policy(UserName="ec2-node", PolicyName="emulator-only-catalog-reads", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
            "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:DescribeTable"]}]}))
    k = iam.create_access_key(UserName="ec2-node")["AccessKey"]
    return k["AccessKeyId"], k["SecretAccessKey"]


@pytest.fixture(scope="module")
def stack_env(endpoint, deployed, admin):
    for binary in (LABPIPE, RUNNER):
        assert binary.is_file(), f"{binary} is missing: run 'cargo build --workspace --bins' first"
    out = deployed["outputs"]
    env = _env(admin)
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
    aws, deployed, stack_env, processed, awscli, node_key, tmp_path
):
    out = deployed["outputs"]
    s3, ec2, cfn = aws("s3"), aws("ec2"), aws("cloudformation")

    # The binary the node installs, where `labpipe admin deploy` keeps artifacts (the stack's
    # LambdaCodeBucket; deploy_local.py's stands in for it), at the stack's NodeBinaryKey.
    binary = STATIC if STATIC.is_file() else LABPIPE
    artifacts = "labpipe-lambda-code-local"
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

    # The first boot, for real: the same script, under a folder instead of /, as the node's role.
    root = tmp_path / "node"
    env = _env(node_key)
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
