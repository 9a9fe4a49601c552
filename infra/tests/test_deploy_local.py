"""The stack template, deployed the way scripts/deploy-local.sh does it, on a
fresh emulator of its own (moto server on a free port of 127.0.0.1).

    .venv/bin/python -m pytest infra/tests -q

Proves: cfn-lint passes; the stack outputs name every resource; a manifest
committed under raw/ produces an ingest message (and a data file does not);
raw object versions cannot be deleted; the catalog table works with its
indexes; the Lambdas and their SQS mappings are wired; re-deploying changes
nothing.
"""

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote_plus

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "python"))
from local_emulator import moto_server  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
STACK = "labpipe"
SESSION = "20210301_161221"
MANIFEST_KEY = f"raw/{SESSION}/manifest.json"
START_TIMEOUT = float(os.environ.get("LABPIPE_EMULATOR_TIMEOUT_SECS", "60"))
DEPLOY_TIMEOUT = 180

EXPECTED_OUTPUTS = {
    "RawBucket", "ProcessedBucket", "CatalogTable", "CatalogTableArn", "CatalogMonthIndex",
    "CatalogStatusIndex", "IngestQueueUrl", "IngestQueueArn", "IngestDeadLetterQueueUrl",
    "PreprocessQueueUrl", "PreprocessQueueArn", "PreprocessDeadLetterQueueUrl", "IngestFunction",
    "PreprocessFunction", "PipelineVersion", "UploaderRoleArn", "ResearcherRoleArn", "Ec2ReaderRoleArn",
    "Ec2ReaderInstanceProfile", "BreakGlassRoleArn", "AlarmTopicArn", "IngestLogGroup",
    "PreprocessLogGroup", "ClientLogGroup", "RawPrefix", "Region", "StackName",
}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    with moto_server(tmp_path_factory.mktemp("emulator")) as url:
        yield url


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
    return env


def _deploy(endpoint, outputs_file):
    t0 = time.monotonic()
    run = subprocess.run(
        ["bash", str(REPO / "scripts" / "deploy-local.sh"), "--endpoint", endpoint, "--stack", STACK,
         "--outputs", str(outputs_file)],
        capture_output=True, text=True, timeout=DEPLOY_TIMEOUT, env=_env(), cwd=REPO,
    )
    assert run.returncode == 0, f"deploy failed ({run.returncode}):\n{run.stderr}\n{run.stdout}"
    print(f"deploy took {time.monotonic() - t0:.1f}s", file=sys.stderr)
    return json.loads(run.stdout), run.stderr


@pytest.fixture(scope="module")
def deployed(endpoint, tmp_path_factory):
    outputs_file = tmp_path_factory.mktemp("stack") / "outputs.json"
    outputs, log = _deploy(endpoint, outputs_file)
    return {"outputs": outputs, "log": log, "file": outputs_file}


@pytest.fixture(scope="module")
def aws(endpoint):
    cfg = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2}, s3={"addressing_style": "path"})

    def client(name):
        return boto3.client(
            name, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
            aws_secret_access_key="test", config=cfg,
        )

    return client


def _drain(sqs, url):
    """Receives and deletes everything visible; returns the bodies."""
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return bodies
        for m in got:
            bodies.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def _object_keys(bodies):
    return [r["s3"]["object"]["key"] for b in bodies for r in b.get("Records", [])]


def _status(err):
    return err.response["ResponseMetadata"]["HTTPStatusCode"]


# --------------------------------------------------------------------- tests
def test_cfn_lint_passes():
    run = subprocess.run(
        [str(VENV_BIN / "cfn-lint"), "--format", "parseable", str(REPO / "infra" / "template.yaml")],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, f"cfn-lint exit {run.returncode}:\n{run.stdout}{run.stderr}"


def test_outputs_name_every_resource(deployed):
    outputs = deployed["outputs"]
    missing = EXPECTED_OUTPUTS - set(outputs)
    assert not missing, f"missing outputs: {sorted(missing)}"
    assert all(str(v).strip() for v in outputs.values()), outputs
    assert json.loads(deployed["file"].read_text()) == outputs
    assert outputs["RawBucket"] == f"{STACK}-raw-123456789012-us-east-1"
    assert outputs["StackName"] == STACK
    assert "EMULATOR-ONLY" in deployed["log"]


def test_buckets_are_configured_as_the_template_says(deployed, aws):
    s3, o = aws("s3"), deployed["outputs"]
    raw, processed = o["RawBucket"], o["ProcessedBucket"]
    assert s3.get_bucket_versioning(Bucket=raw)["Status"] == "Enabled"
    assert s3.get_bucket_versioning(Bucket=processed)["Status"] == "Enabled"
    lock = s3.get_object_lock_configuration(Bucket=raw)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert lock["Rule"]["DefaultRetention"]["Mode"] == "GOVERNANCE"
    assert lock["Rule"]["DefaultRetention"]["Days"] == 3650
    with pytest.raises(ClientError):  # processed outputs are reproducible: not locked
        s3.get_object_lock_configuration(Bucket=processed)
    for bucket in (raw, processed):
        pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(pab.values()) and len(pab) == 4, pab
        enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=raw)["Rules"]}
    assert rules["raw-to-glacier-ir"]["Transitions"] == [{"Days": 30, "StorageClass": "GLACIER_IR"}]
    assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    policy = json.loads(s3.get_bucket_policy(Bucket=raw)["Policy"])
    denied = policy["Statement"][0]["Action"] + policy["Statement"][1]["Action"]
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutBucketVersioning",
                   "s3:PutLifecycleConfiguration", "s3:BypassGovernanceRetention"):
        assert action in denied
    assert policy["Statement"][0]["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == o["BreakGlassRoleArn"]
    # Bucket configuration: break-glass and the stack's CloudFormation service role.
    assert policy["Statement"][1]["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == [
        o["BreakGlassRoleArn"], o["BreakGlassRoleArn"].rsplit("/", 1)[0] + f"/{o['StackName']}-cloudformation-us-east-1"]
    # The TLS-only statement is in the template but deliberately not in the emulator.
    assert "aws:SecureTransport" not in json.dumps(policy)


def test_manifest_put_notifies_ingest_queue(deployed, aws):
    s3, sqs, o = aws("s3"), aws("sqs"), deployed["outputs"]
    queue = o["IngestQueueUrl"]
    before = _drain(sqs, queue)
    assert all(b.get("Event") == "s3:TestEvent" for b in before), before  # sent when the notification is set

    s3.put_object(Bucket=o["RawBucket"], Key=f"raw/{SESSION}/ch01.bin", Body=b"\0" * 1024)
    s3.put_object(Bucket=o["RawBucket"], Key="other/manifest.json", Body=b"{}")  # outside raw/
    s3.put_object(Bucket=o["RawBucket"], Key=MANIFEST_KEY, Body=b'{"session": "%s"}' % SESSION.encode())

    keys, deadline = [], time.monotonic() + 10
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        keys += _object_keys(json.loads(m["Body"]) for m in got)
        for m in got:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        if keys:
            time.sleep(0.5)  # any stray event would be enqueued by now
            keys += _object_keys(_drain(sqs, queue))
            break
    assert keys == ["raw%2F20210301_161221%2Fmanifest.json"], keys  # URL-encoded, as S3 sends it
    assert unquote_plus(keys[0]) == MANIFEST_KEY


def test_raw_versions_cannot_be_deleted(deployed, aws):
    s3, o = aws("s3"), deployed["outputs"]
    bucket, key = o["RawBucket"], f"raw/{SESSION}/ch02.bin"
    version = s3.put_object(Bucket=bucket, Key=key, Body=b"precious")["VersionId"]

    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    until = head["ObjectLockRetainUntilDate"]
    expected = datetime.now(timezone.utc) + timedelta(days=3650)
    assert abs(until - expected) < timedelta(days=2), until

    attempts = {
        "delete version": dict(VersionId=version),
        "delete version, bypassing governance": dict(VersionId=version, BypassGovernanceRetention=True),
        "delete marker": {},
    }
    for what, extra in attempts.items():
        with pytest.raises(ClientError) as err:
            s3.delete_object(Bucket=bucket, Key=key, **extra)
        assert _status(err.value) == 403, f"{what}: {err.value.response}"
    # A batch delete answers 200 with a per-key error (as on AWS), or is refused outright.
    try:
        batch = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key, "VersionId": version}]})
        assert not batch.get("Deleted") and [e["Key"] for e in batch.get("Errors", [])] == [key], batch
    except ClientError as e:
        assert _status(e) == 403

    listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
    assert [v["VersionId"] for v in listing.get("Versions", [])] == [version]
    assert not listing.get("DeleteMarkers")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"precious"


def test_catalog_table_with_indexes(deployed, aws):
    ddb, o = aws("dynamodb"), deployed["outputs"]
    table = o["CatalogTable"]
    desc = ddb.describe_table(TableName=table)["Table"]
    assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert {k["AttributeName"]: k["KeyType"] for k in desc["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    indexes = {g["IndexName"]: [k["AttributeName"] for k in g["KeySchema"]] for g in desc["GlobalSecondaryIndexes"]}
    assert indexes == {"by_month": ["month", "recorded_at"], "by_status": ["status", "recorded_at"]}
    pitr = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"

    pk = f"SESSION#{SESSION}"
    meta = {
        "pk": {"S": pk}, "sk": {"S": "META"}, "session": {"S": SESSION},
        "recorded_at": {"S": "2021-03-01T16:12:21"}, "month": {"S": "2021-03"}, "status": {"S": "CATALOGED"},
        "m_fatigue": {"N": "6.5"}, "m_hardware_model": {"S": "X200"},
    }
    event = {"pk": {"S": pk}, "sk": {"S": "EVENT#2021-03-01T16:40:00.000Z#000001"}, "status": {"S": "CATALOGED"}}
    output = {"pk": {"S": pk}, "sk": {"S": "OUTPUT#v1"}, "version": {"N": "1"}}
    for item in (meta, event, output):
        ddb.put_item(TableName=table, Item=item)
    ddb.put_item(  # conditional create, as ingest does: a second write is refused
        TableName=table, Item={**meta, "pk": {"S": "SESSION#20210302_090000"}, "recorded_at": {"S": "2021-03-02T09:00:00"},
                               "m_fatigue": {"N": "2"}},
        ConditionExpression="attribute_not_exists(pk)",
    )
    with pytest.raises(ClientError) as err:
        ddb.put_item(TableName=table, Item=meta, ConditionExpression="attribute_not_exists(pk)")
    assert err.value.response["Error"]["Code"] == "ConditionalCheckFailedException"

    got = ddb.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": "META"}})["Item"]
    assert got["m_fatigue"] == {"N": "6.5"} and got["m_hardware_model"] == {"S": "X200"}

    by_month = ddb.query(
        TableName=table, IndexName="by_month",
        KeyConditionExpression="#month = :m AND #at BETWEEN :a AND :b",
        FilterExpression="#f > :f AND #hw = :hw",
        ExpressionAttributeNames={"#month": "month", "#at": "recorded_at", "#f": "m_fatigue", "#hw": "m_hardware_model"},
        ExpressionAttributeValues={":m": {"S": "2021-03"}, ":a": {"S": "2021-03-01"}, ":b": {"S": "2021-03-31T99"},
                                   ":f": {"N": "5"}, ":hw": {"S": "X200"}},
    )["Items"]
    assert [i["pk"]["S"] for i in by_month] == [pk]  # numbers compare as numbers; 2 < 5 filtered out
    by_status = ddb.query(
        TableName=table, IndexName="by_status", KeyConditionExpression="#s = :s",
        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "CATALOGED"}},
    )["Items"]
    # Only META items carry recorded_at, so EVENT items (which have a status) stay out of the index.
    assert sorted(i["sk"]["S"] for i in by_status) == ["META", "META"]
    history = ddb.query(
        TableName=table, KeyConditionExpression="pk = :pk AND begins_with(sk, :e)",
        ExpressionAttributeValues={":pk": {"S": pk}, ":e": {"S": "EVENT#"}},
    )["Items"]
    assert len(history) == 1


def test_lambdas_and_queues_are_wired(deployed, aws):
    lam, sqs, cw, o = aws("lambda"), aws("sqs"), aws("cloudwatch"), deployed["outputs"]
    for fn in (o["IngestFunction"], o["PreprocessFunction"]):
        conf = lam.get_function_configuration(FunctionName=fn)
        assert conf["Runtime"] == "provided.al2023" and conf["Handler"] == "bootstrap"
        env = conf["Environment"]["Variables"]
        assert env["LABPIPE_TABLE"] == o["CatalogTable"]
        assert env["LABPIPE_RAW_BUCKET"] == o["RawBucket"]
        assert env["LABPIPE_PROCESSED_BUCKET"] == o["ProcessedBucket"]
        assert env["LABPIPE_PREPROCESS_QUEUE_URL"] == o["PreprocessQueueUrl"]
        assert str(env["LABPIPE_PIPELINE_VERSION"]) == o["PipelineVersion"]
    mappings = {m["EventSourceArn"]: m for m in lam.list_event_source_mappings()["EventSourceMappings"]}
    for queue_arn, fn in ((o["IngestQueueArn"], o["IngestFunction"]), (o["PreprocessQueueArn"], o["PreprocessFunction"])):
        m = mappings[queue_arn]
        assert m["FunctionArn"].endswith(f":function:{fn}")
        assert m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # EMULATOR-ONLY: mappings are disabled so moto does not swallow messages into the DLQ by
    # failing to invoke a Lambda it cannot run; the local runner must get every message.
    sqs.send_message(QueueUrl=o["PreprocessQueueUrl"], MessageBody='{"session":"20210301_161221","pipeline_version":1}')
    got = sqs.receive_message(QueueUrl=o["PreprocessQueueUrl"], AttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
    assert len(got) == 1 and got[0]["Attributes"]["ApproximateReceiveCount"] == "1", got
    sqs.delete_message(QueueUrl=o["PreprocessQueueUrl"], ReceiptHandle=got[0]["ReceiptHandle"])
    for queue, dlq in ((o["IngestQueueUrl"], o["IngestDeadLetterQueueUrl"]),
                       (o["PreprocessQueueUrl"], o["PreprocessDeadLetterQueueUrl"])):
        attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        assert json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"] == dlq_arn
    ingest_policy = sqs.get_queue_attributes(QueueUrl=o["IngestQueueUrl"], AttributeNames=["Policy"])["Attributes"]
    assert "s3.amazonaws.com" in ingest_policy["Policy"]
    alarms = cw.describe_alarms()["MetricAlarms"]
    dlq_alarms = [a for a in alarms if a["MetricName"] == "ApproximateNumberOfMessagesVisible"]
    assert len(dlq_alarms) == 2 and all(a["Threshold"] == 0 and a["AlarmActions"] == [o["AlarmTopicArn"]] for a in dlq_alarms)
    assert len([a for a in alarms if a["MetricName"] == "Errors"]) == 2


def test_redeploy_changes_nothing(deployed, endpoint, aws, tmp_path):
    outputs, log = _deploy(endpoint, tmp_path / "outputs.json")
    assert outputs == deployed["outputs"]
    assert "nothing to update" in log
    # Re-applying an unchanged notification would send another s3:TestEvent.
    assert _drain(aws("sqs"), outputs["IngestQueueUrl"]) == []


def test_refuses_an_endpoint_off_this_machine(tmp_path):
    run = subprocess.run(
        [str(VENV_BIN / "python"), str(REPO / "infra" / "deploy_local.py"), "--endpoint", "http://192.0.2.1:4566",
         "--outputs", str(tmp_path / "o.json")],
        capture_output=True, text=True, timeout=60, env=_env(),
    )
    assert run.returncode == 1 and "refusing endpoint" in run.stderr, run.stderr
    assert not (tmp_path / "o.json").exists()


def test_alarms_and_audit_trail_are_deployed(deployed, aws):
    """The FAILED-session metric filters and alarm, the preprocess-age alarm and the
    raw bucket's audit trail exist on the emulator as the template declares them."""
    logs, cw, ct, s3, o = aws("logs"), aws("cloudwatch"), aws("cloudtrail"), aws("s3"), deployed["outputs"]
    filters = logs.describe_metric_filters()["metricFilters"]
    for group in (o["IngestLogGroup"], o["PreprocessLogGroup"]):
        (f,) = [f for f in filters if f["logGroupName"] == group]
        assert f["filterPattern"] == '{ ($.level = "ERROR") && ($.message = "session failed*") }'
        assert f["metricTransformations"][0]["metricName"] == "FailedSessions"
        assert f["metricTransformations"][0]["metricNamespace"] == f"LabPipe/{STACK}"
    alarms = {a["AlarmName"].removeprefix(f"{STACK}-"): a for a in cw.describe_alarms()["MetricAlarms"]}
    failed = alarms["FailedSessionsAlarm"]
    assert (failed["Namespace"], failed["MetricName"], failed["Threshold"]) == (f"LabPipe/{STACK}", "FailedSessions", 0)
    age = alarms["PreprocessBacklogAlarm"]
    assert age["MetricName"] == "ApproximateAgeOfOldestMessage" and age["Threshold"] == 10800
    assert age["Dimensions"][0]["Value"] == o["PreprocessQueueUrl"].rsplit("/", 1)[-1]
    assert all(a["AlarmActions"] == [o["AlarmTopicArn"]] for a in alarms.values())

    trail = ct.get_trail(Name=o["AuditTrailName"])["Trail"]
    assert trail["S3BucketName"] == o["AuditLogBucket"] and trail["LogFileValidationEnabled"] is True
    assert ct.get_trail_status(Name=o["AuditTrailName"])["IsLogging"] is True
    (sel,) = ct.get_event_selectors(TrailName=o["AuditTrailName"])["EventSelectors"]
    assert sel["ReadWriteType"] == "WriteOnly"
    assert sel["DataResources"] == [{"Type": "AWS::S3::Object", "Values": [f"arn:aws:s3:::{o['RawBucket']}/"]}]
    assert s3.get_bucket_versioning(Bucket=o["AuditLogBucket"])["Status"] == "Enabled"

    # The emulator's raw bucket policy leaves out the write-once statement (moto would apply
    # its deny without the condition and refuse every upload); the deploy log says so.
    policy = json.loads(s3.get_bucket_policy(Bucket=o["RawBucket"])["Policy"])
    assert "s3:if-none-match" not in json.dumps(policy)
    assert "left out DenyRawWritesWithoutIfNoneMatch" in deployed["log"]
