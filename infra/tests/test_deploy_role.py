"""infra/deploy-role.yaml: the CloudFormation service role `labpipe admin deploy`
passes (RoleARN) for the LabPipe stack, checked against what CloudFormation needs.

    .venv/bin/python -m pytest infra/tests/test_deploy_role.py -q

Proves (statically; moto's CloudFormation neither assumes the role nor checks
its rights): the role grants every permission CloudFormation's resource
handlers document (create, read, update, delete) for every resource type of
infra/template.yaml, but those of features the template does not use, each
named below with why; it grants no object delete or Object Lock bypass; only
CloudFormation in this account may assume it; its name is the one the bucket
policies exempt. The handlers' permissions are read from the resource schemas
that ship with cfn-lint (the registry's own schemas).
"""

import glob
import json
import re
from pathlib import Path

import cfnlint
import pytest

from iam_model import REPO, Template, _glob

ROLE_FILE = REPO / "infra" / "deploy-role.yaml"
SCHEMAS = Path(cfnlint.__file__).parent / "data" / "schemas" / "resources"

# Handler permissions of features the template does not use, and why the role lacks them.
NOT_NEEDED = {
    "kms:": "no customer KMS key anywhere in the template",
    "kinesis:": "no DynamoDB Kinesis streaming destination",
    "firehose:": "no log delivery to Firehose",
    "s3tables:": "no S3 table bucket / metadata tables",
    "s3files:": "no S3 Files mount on a function",
    "elasticfilesystem:": "no EFS on a function",
    "ec2:": "no function in a VPC",
    "organizations:": "not an organization trail",
    "iam:CreateServiceLinkedRole": "no DynamoDB replicas, no organization trail",
    "lambda:PassCapacityProvider": "no Lambda capacity provider",
    "dynamodb:CreateTableReplica": "no global table",
    "dynamodb:AssociateTableReplica": "no global table",
    "dynamodb:ImportTable": "no table import",
    "dynamodb:DescribeImport": "no table import",
    "dynamodb:EnableKinesisStreamingDestination": "no Kinesis destination",
    "dynamodb:DisableKinesisStreamingDestination": "no Kinesis destination",
    "dynamodb:UpdateKinesisStreamingDestination": "no Kinesis destination",
    # item-level calls the table handler lists for an import; CloudFormation never writes items here
    "dynamodb:BatchWriteItem": "no table import", "dynamodb:PutItem": "no table import",
    "dynamodb:DeleteItem": "no table import", "dynamodb:GetItem": "no table import",
    "dynamodb:UpdateItem": "no table import", "dynamodb:Query": "no table import", "dynamodb:Scan": "no table import",
    "logs:CreateLogStream": "the table handler's import logging; not used",
    "logs:PutLogEvents": "the table handler's import logging; not used",
    "logs:DescribeLogStreams": "the table handler's import logging; not used",
    "s3:GetObjectMetadata": "the table handler's import source; not used",
    "s3:DeleteObject": "never: buckets are retained, CloudFormation never empties them",
    "s3:REST.PUT.OBJECT": "not an IAM action (the log group schema lists it)",
    "s3:CreateBucketMetadataTableConfiguration": "no S3 metadata tables",
    "s3:GetBucketMetadataTableConfiguration": "no S3 metadata tables",
    "s3:DeleteBucketMetadataTableConfiguration": "no S3 metadata tables",
    "s3:UpdateBucketMetadataAnnotationTableConfiguration": "no S3 metadata tables",
    "s3:UpdateBucketMetadataInventoryTableConfiguration": "no S3 metadata tables",
    "s3:UpdateBucketMetadataJournalTableConfiguration": "no S3 metadata tables",
    "lambda:AssociateRuntimeAlias": "not an IAM action (cfn-lint W3037)",
    "s3:PutObjectLockConfiguration": "not an IAM action (cfn-lint W3037); s3:PutBucketObjectLockConfiguration is granted",
    "s3:DeleteBucketEncryption": "not an IAM action (cfn-lint W3037); s3:PutEncryptionConfiguration is granted",
    "s3:DeleteBucketLifecycle": "not an IAM action (cfn-lint W3037); s3:PutLifecycleConfiguration is granted",
    "s3:DeleteBucketCors": "not an IAM action (cfn-lint W3037); s3:PutBucketCORS is granted",
    "s3:DeleteBucketAnalyticsConfiguration": "not an IAM action (cfn-lint W3037)",
    "s3:DeleteBucketMetricsConfiguration": "not an IAM action (cfn-lint W3037)",
    "s3:PutBucketReplication": "not an IAM action (cfn-lint W3037); s3:PutReplicationConfiguration is granted",
    "s3:DeleteBucketReplication": "not an IAM action (cfn-lint W3037)",
}


def handler_permissions():
    """{resource type: {permission}} of every type infra/template.yaml uses."""
    types = {r["Type"] for r in Template().resources.values()}
    out = {}
    for f in glob.glob(str(SCHEMAS / "*.json")):
        schema = json.loads(Path(f).read_text())
        if schema.get("typeName") in types and schema["typeName"] not in out:
            handlers = schema.get("handlers", {})
            out[schema["typeName"]] = {p for h in ("create", "read", "update", "delete")
                                       for p in handlers.get(h, {}).get("permissions", [])}
    missing = types - set(out)
    assert not missing, f"no resource schema for {missing}: is cfn-lint's data still there?"
    return out


@pytest.fixture(scope="module")
def role():
    t = Template(ROLE_FILE)
    t.params.update(LabPipeStackName="labpipe", ArtifactsBucket="labpipe-artifacts-123456789012-us-east-1")
    props = t.resolve(t.resources["CloudFormationRole"]["Properties"])
    return props


def _not_needed(permission):
    return next((why for key, why in NOT_NEEDED.items()
                 if permission.lower() == key.lower() or (key.endswith(":") and permission.lower().startswith(key.lower()))), None)


def test_the_role_grants_what_cloudformation_needs_for_every_resource_type(role):
    allowed = [a for pol in role["Policies"] for s in pol["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"
               for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])]
    missing = {}
    checked = 0
    for kind, perms in sorted(handler_permissions().items()):
        for p in sorted(perms):
            if _not_needed(p):
                continue
            checked += 1
            if not any(_glob(a, p) for a in allowed):
                missing.setdefault(kind, []).append(p)
    assert checked >= 150, checked
    assert not missing, f"infra/deploy-role.yaml lacks what CloudFormation's handlers need (grant it, or say in NOT_NEEDED why not): {missing}"


def test_the_role_never_deletes_or_unlocks_data(role):
    statements = [s for pol in role["Policies"] for s in pol["PolicyDocument"]["Statement"]]
    for s in statements:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        for forbidden in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention",
                          "s3:PutObjectRetention", "s3:PutObjectLegalHold", "s3:PutObject", "dynamodb:DeleteItem"):
            assert not any(_glob(a, forbidden) for a in actions), (s.get("Sid"), forbidden)
        assert "*" not in actions and not any(re.fullmatch(r"[a-z0-9]+:\*", a) for a in actions), s.get("Sid")


def test_only_cloudformation_of_this_account_assumes_it(role):
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "cloudformation.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_its_name_is_the_one_the_bucket_policies_exempt(role):
    assert role["RoleName"] == "labpipe-cloudformation-us-east-1"
    text = (REPO / "infra" / "template.yaml").read_text()
    assert text.count(":role/${AWS::StackName}-cloudformation-${AWS::Region}") == 2, "raw and audit bucket policies"
    deploy = (REPO / "crates" / "deploy" / "src" / "lib.rs").read_text()
    assert 'format!("{stack}-cfn-role")' in deploy and "deploy-role.yaml" in deploy


def test_what_the_emulator_does_not_evaluate_for_cloudformation(tmp_path):
    """Why the role is checked statically here and not on the emulator: moto's CloudFormation,
    with authorization on, creates a bucket and a role for a caller allowed only
    `cloudformation:*`, with a RoleARN naming no role at all (measured). AWS would refuse the
    RoleARN (iam:PassRole, an existing role) and create the resources with the role's rights.
    If moto starts checking either, this test fails and the emulator test can say more."""
    import time

    import boto3

    from local_emulator import moto_server

    with moto_server(tmp_path, unchecked_requests=3) as url:
        key = dict(region_name="us-east-1", endpoint_url=url)
        iam = boto3.client("iam", aws_access_key_id="test", aws_secret_access_key="test", **key)
        iam.create_user(UserName="cloudformation-only")
        iam.put_user_policy(UserName="cloudformation-only", PolicyName="cfn", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "cloudformation:*", "Resource": "*"}]}))
        k = iam.create_access_key(UserName="cloudformation-only")["AccessKey"]
        cf = boto3.client("cloudformation", aws_access_key_id=k["AccessKeyId"], aws_secret_access_key=k["SecretAccessKey"], **key)
        body = {"Resources": {"Bucket": {"Type": "AWS::S3::Bucket"},
                              "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Statement": []}}}}}
        cf.create_stack(StackName="measure", TemplateBody=json.dumps(body), RoleARN="arn:aws:iam::123456789012:role/no-such-role")
        deadline = time.monotonic() + 30
        while (st := cf.describe_stacks(StackName="measure")["Stacks"][0])["StackStatus"].endswith("IN_PROGRESS"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert (st["StackStatus"], st.get("RoleARN")) == ("CREATE_COMPLETE", "arn:aws:iam::123456789012:role/no-such-role")
