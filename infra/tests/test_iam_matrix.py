"""The template's roles, exercised on an emulator that enforces IAM.

    .venv/bin/python -m pytest infra/tests/test_iam_matrix.py -q -s

Starts its own moto server on 127.0.0.1 with INITIAL_NO_AUTH_ACTION_COUNT: the
first requests create an administrator key, every later request is checked
against the identity policies of the caller's key. The template is deployed
(deploy_local.py) with that key; then each role gets an IAM user carrying
exactly the role's policies (moto matches a trust policy's principal
literally, so it cannot assume a role that trusts the account root), and each
request of the matrix is made with that user's key.

Proves on the emulator (S3 and SQS, by action and resource): the uploader
uploads a whole session (PutObject and a multipart upload, both with
If-None-Match; a second write of a key → 412) and cannot delete, delete a
version, bypass governance, or write outside raw/; researcher and EC2 reader
read and cannot write or delete; the Lambda roles cannot delete raw data or
write it. Rests on AWS's documentation (moto ignores these conditions,
measured below): that a put without If-None-Match is denied, that the
uploader's listing needs a raw/ prefix, that break-glass may delete (moto
applies the bucket policy's deny without its ArnNotEquals exception; the MFA
requirement is a template check in test_template.py).
"""

import ast
import json
import os
import re
import subprocess

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from iam_model import REPO, Template
from local_emulator import moto_server
from test_deploy_local import VENV_BIN

DOC = REPO / "docs" / "security.md"
STACK = "labpipe"
SESSION = "20210301_161221"
# create_user, put_user_policy, create_access_key run before authorization starts.
NO_AUTH_REQUESTS = 3
ROLES = ("UploaderRole", "ResearcherRole", "Ec2ReaderRole", "IngestFunctionRole", "PreprocessFunctionRole")
CFG = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 1}, s3={"addressing_style": "path"})

A, D, P = "allowed", "denied", "412"  # P: refused by S3 because the key exists (If-None-Match)
COLUMNS = (
    "put raw/ If-None-Match", "multipart raw/ If-None-Match", "overwrite raw/ If-None-Match", "put outside raw/",
    "put processed/", "get raw/", "get raw/ version", "get processed/", "list raw/<session>/",
    "list raw/ uploads in progress", "delete raw/", "delete raw/ version",
    "delete raw/ bypassing lock", "send preprocess queue", "receive ingest queue", "get node binary (artifacts)",
)
# What the template means for each role (AWS's answer for these requests).
EXPECTED = {
    "UploaderRole":           (A, A, P, D, D, A, A, D, A, A, D, D, D, D, D, D),
    "ResearcherRole":         (D, D, D, D, D, A, A, A, A, D, D, D, D, D, D, D),
    # the node: its binary and processed outputs, no raw data (issue 25 items 1 and 7)
    "Ec2ReaderRole":          (D, D, D, D, D, D, D, A, D, D, D, D, D, D, D, A),
    "IngestFunctionRole":     (D, D, D, D, D, A, A, D, A, D, D, D, D, A, A, D),
    "PreprocessFunctionRole": (D, D, D, D, A, A, A, A, A, D, D, D, D, D, D, D),
}


def client(url, name, key):
    return boto3.client(name, endpoint_url=url, region_name="us-east-1", aws_access_key_id=key[0],
                        aws_secret_access_key=key[1], config=CFG)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    with moto_server(tmp_path_factory.mktemp("iam-emulator"), unchecked_requests=NO_AUTH_REQUESTS) as url:
        iam = client(url, "iam", ("test", "test"))
        iam.create_user(UserName="deployer")
        iam.put_user_policy(UserName="deployer", PolicyName="admin", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        k = iam.create_access_key(UserName="deployer")["AccessKey"]
        admin = (k["AccessKeyId"], k["SecretAccessKey"])
        yield url, admin


@pytest.fixture(scope="module")
def stack(emulator, tmp_path_factory):
    url, admin = emulator
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=admin[0], AWS_SECRET_ACCESS_KEY=admin[1], AWS_REGION="us-east-1")
    out = tmp_path_factory.mktemp("iam-stack") / "outputs.json"
    run = subprocess.run([str(VENV_BIN / "python"), str(REPO / "infra" / "deploy_local.py"), "--endpoint", url,
                          "--stack", STACK, "--outputs", str(out)], capture_output=True, text=True, timeout=180, env=env)
    assert run.returncode == 0, f"deploy with authorization on failed:\n{run.stderr[-3000:]}"
    outputs = json.loads(run.stdout)
    cf = client(url, "cloudformation", admin)
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                for r in cf.describe_stack_resources(StackName=STACK)["StackResources"] if r.get("LogicalResourceId")}
    return outputs, physical


@pytest.fixture(scope="module")
def role_keys(emulator, stack):
    """An access key per role, for an IAM user holding exactly that role's policies."""
    url, admin = emulator
    _, physical = stack
    iam = client(url, "iam", admin)
    template = Template()
    keys = {}
    for role in ROLES:
        name = physical[role]
        user = f"as-{role}"
        iam.create_user(UserName=user)
        inline = iam.list_role_policies(RoleName=name)["PolicyNames"]
        for pol in inline:
            doc = policy_document(iam.get_role_policy(RoleName=name, PolicyName=pol)["PolicyDocument"])
            iam.put_user_policy(UserName=user, PolicyName=pol, PolicyDocument=json.dumps(doc))
        attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]]
        # moto's CloudFormation creates the managed policies but does not attach them
        # (ManagedPolicyArns is dropped): attach the ones the template names.
        for ref in template.resources[role]["Properties"].get("ManagedPolicyArns", []):
            arn = physical[ref["Ref"]]
            if arn not in attached:
                attached.append(arn)
        for arn in attached:
            iam.attach_user_policy(UserName=user, PolicyArn=arn)
        assert inline or attached, f"{role} ({name}) has no policies on the emulator"
        k = iam.create_access_key(UserName=user)["AccessKey"]
        keys[role] = (k["AccessKeyId"], k["SecretAccessKey"])
    return keys


@pytest.fixture(scope="module")
def seeded(emulator, stack):
    """One raw object (with its version) and one processed object, written by the deployer."""
    url, admin = emulator
    outputs, _ = stack
    s3 = client(url, "s3", admin)
    raw, processed = outputs["RawBucket"], outputs["ProcessedBucket"]
    key = f"raw/{SESSION}/ch01.bin"
    version = s3.put_object(Bucket=raw, Key=key, Body=b"raw bytes", IfNoneMatch="*")["VersionId"]
    s3.put_object(Bucket=processed, Key=f"v1/{SESSION}/ch01.parquet", Body=b"processed")
    unfinished = f"raw/{SESSION}/unfinished.bin"
    upload_id = s3.create_multipart_upload(Bucket=raw, Key=unfinished)["UploadId"]
    # The static labpipe an EC2 node installs, where `labpipe admin deploy` keeps the Lambda zips.
    artifacts, binary = f"{STACK}-lambda-code-local", Template().params["NodeBinaryKey"]
    s3.put_object(Bucket=artifacts, Key=binary, Body=b"\x7fELF labpipe")
    return {"raw": raw, "processed": processed, "key": key, "version": version, "unfinished": (unfinished, upload_id),
            "binary": (artifacts, binary)}


def policy_document(doc):
    """A role policy as moto returns it: a dict, JSON, or (for roles its
    CloudFormation created) the Python repr of a dict."""
    if isinstance(doc, dict):
        return doc
    try:
        return json.loads(doc)
    except json.JSONDecodeError:
        return ast.literal_eval(doc)


def outcome(fn):
    try:
        fn()
        return A
    except ClientError as e:
        code = e.response["Error"]["Code"]
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        if code == "PreconditionFailed" or status == 412:
            return P
        if status == 403 or code in ("AccessDenied", "AccessDeniedException"):
            return D
        raise


def requests_for(role, url, key, seeded, outputs):
    s3, sqs = client(url, "s3", key), client(url, "sqs", key)
    raw, processed, existing = seeded["raw"], seeded["processed"], seeded["key"]
    new = f"raw/{SESSION}/{role}-"

    def multipart():
        k = new + "big.bin"
        up = s3.create_multipart_upload(Bucket=raw, Key=k)["UploadId"]
        part = s3.upload_part(Bucket=raw, Key=k, UploadId=up, PartNumber=1, Body=b"x" * (5 * 1024 * 1024))
        s3.complete_multipart_upload(Bucket=raw, Key=k, UploadId=up, IfNoneMatch="*",
                                     MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})

    return (
        lambda: s3.put_object(Bucket=raw, Key=new + "manifest.json", Body=b"{}", IfNoneMatch="*"),
        multipart,
        lambda: s3.put_object(Bucket=raw, Key=existing, Body=b"other bytes", IfNoneMatch="*"),
        lambda: s3.put_object(Bucket=raw, Key=f"other/{role}.bin", Body=b"x", IfNoneMatch="*"),
        lambda: s3.put_object(Bucket=processed, Key=f"v1/{SESSION}/{role}.parquet", Body=b"x"),
        lambda: s3.get_object(Bucket=raw, Key=existing)["Body"].read(),
        lambda: s3.get_object(Bucket=raw, Key=existing, VersionId=seeded["version"])["Body"].read(),
        lambda: s3.get_object(Bucket=processed, Key=f"v1/{SESSION}/ch01.parquet")["Body"].read(),
        lambda: s3.list_objects_v2(Bucket=raw, Prefix=f"raw/{SESSION}/"),
        lambda: s3.list_multipart_uploads(Bucket=raw, Prefix=f"raw/{SESSION}/"),
        lambda: s3.delete_object(Bucket=raw, Key=existing),
        lambda: s3.delete_object(Bucket=raw, Key=existing, VersionId=seeded["version"]),
        lambda: s3.delete_object(Bucket=raw, Key=existing, VersionId=seeded["version"], BypassGovernanceRetention=True),
        lambda: sqs.send_message(QueueUrl=outputs["PreprocessQueueUrl"], MessageBody=json.dumps({"session": SESSION})),
        lambda: sqs.receive_message(QueueUrl=outputs["IngestQueueUrl"], WaitTimeSeconds=0),
        lambda: s3.get_object(Bucket=seeded["binary"][0], Key=seeded["binary"][1])["Body"].read(),
    )


def render(matrix):
    width = max(len(c) for c in COLUMNS)
    head = "| request | " + " | ".join(r.removesuffix("Role") for r in ROLES) + " |"
    lines = [head, "|---|" + "---|" * len(ROLES)]
    for i, col in enumerate(COLUMNS):
        lines.append(f"| {col:<{width}} | " + " | ".join(matrix[r][i] for r in ROLES) + " |")
    return "\n".join(lines)


def test_iam_matrix(emulator, stack, role_keys, seeded):
    url, admin = emulator
    outputs, _ = stack
    matrix = {}
    for role in ROLES:
        matrix[role] = tuple(outcome(fn) for fn in requests_for(role, url, role_keys[role], seeded, outputs))
    table = render(matrix)
    print("\nIAM matrix (emulator with authorization on; 412 = refused by If-None-Match):\n" + table)

    wrong = [f"{role}: {COLUMNS[i]} is {got}, the template means {want}"
             for role in ROLES for i, (got, want) in enumerate(zip(matrix[role], EXPECTED[role])) if got != want]
    assert not wrong, "\n".join(wrong) + "\n" + table

    # The raw object is still there, unchanged, with its one version.
    s3 = client(url, "s3", admin)
    versions = s3.list_object_versions(Bucket=seeded["raw"], Prefix=seeded["key"])
    assert [v["VersionId"] for v in versions.get("Versions", [])] == [seeded["version"]]
    assert not versions.get("DeleteMarkers")
    assert s3.get_object(Bucket=seeded["raw"], Key=seeded["key"])["Body"].read() == b"raw bytes"

    doc = DOC.read_text()
    block = f"<!-- iam-matrix:begin -->\n{table}\n<!-- iam-matrix:end -->"
    if os.environ.get("LABPIPE_UPDATE_DOCS") == "1":
        DOC.write_text(re.sub(r"<!-- iam-matrix:begin -->.*?<!-- iam-matrix:end -->", lambda _: block, doc, flags=re.S))
    else:
        assert block in doc, "docs/security.md's IAM matrix differs from the measured one: run with LABPIPE_UPDATE_DOCS=1"


def test_what_the_emulator_does_not_evaluate(emulator, stack, role_keys, seeded):
    """Measured limits of moto's authorization, which docs/security.md states:
    each is a guarantee that rests on AWS's documentation, not on this suite.
    If moto starts evaluating one, this test fails and the docs can say more."""
    url, _ = emulator
    outputs, _ = stack
    up = client(url, "s3", role_keys["UploaderRole"])
    raw = seeded["raw"]
    measured = {
        # AWS: denied (ListRawPrefix needs s3:prefix like raw/*); moto ignores the condition.
        "uploader lists the raw bucket without a prefix": outcome(lambda: up.list_objects_v2(Bucket=raw)),
        # AWS: denied (the identity policy allows creation only with If-None-Match, and the bucket
        # policy denies it); moto ignores both conditions (and the emulator's bucket policy leaves
        # the write-once statement out).
        "uploader puts a new raw object without If-None-Match": outcome(
            lambda: up.put_object(Bucket=raw, Key=f"raw/{SESSION}/no-header.bin", Body=b"x")),
        # AWS: 403 to a caller without unconditional s3:ListBucket; moto answers 404.
        "uploader HEADs a missing raw key": _head_status(up, raw, f"raw/{SESSION}/missing.bin"),
        # AWS: allowed (s3:AbortMultipartUpload, ReadRawUploads); moto's bucket-policy check
        # names every DELETE on a key s3:DeleteObject, so the raw bucket's deny-delete refuses it.
        "uploader aborts an unfinished upload": outcome(lambda: up.abort_multipart_upload(
            Bucket=raw, Key=seeded["unfinished"][0], UploadId=seeded["unfinished"][1])),
        # AWS: allowed by ReadCatalog; moto checks DynamoDB against resource "*", which a
        # table-scoped statement never matches.
        "researcher queries the catalog": outcome(lambda: client(url, "dynamodb", role_keys["ResearcherRole"]).get_item(
            TableName=outputs["CatalogTable"], Key={"pk": {"S": f"SESSION#{SESSION}"}, "sk": {"S": "META"}})),
    }
    print("\nmeasured emulator limits:", json.dumps(measured, indent=1))
    assert measured == {
        "uploader lists the raw bucket without a prefix": A,
        "uploader puts a new raw object without If-None-Match": A,
        "uploader HEADs a missing raw key": 404,
        "uploader aborts an unfinished upload": D,
        "researcher queries the catalog": D,
    }, measured


def _head_status(s3, bucket, key):
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return 200
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"]
