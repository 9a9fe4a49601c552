"""What infra/template.yaml promises, asserted on the template itself (no emulator).

    .venv/bin/python -m pytest infra/tests/test_template.py -q

Proves the statements are there and say what docs/security.md claims: TLS only
on every bucket, data resources retained, the catalog protected, every queue
encrypted, write-once for every principal (evaluated with iam_model.py for
each request shape), break-glass behind MFA, an alarm address required, the
FAILED-session alarm matching the lines the backend logs, a CloudTrail trail
for raw-bucket writes. That AWS then enforces them rests on AWS's
documentation (cited in the template and in docs/security.md).
"""

import json
import re

import pytest

from iam_model import REPO, ROLES, Template

SESSION_KEY = "raw/20210301_161221/manifest.json"


@pytest.fixture(scope="module")
def t():
    return Template()


def of_type(t, kind):
    return {k: v for k, v in t.resources.items() if v["Type"] == kind}


def test_every_bucket_is_tls_only(t):
    policies = {t.resolve(p["Properties"]["Bucket"]): p for p in of_type(t, "AWS::S3::BucketPolicy").values()}
    buckets = of_type(t, "AWS::S3::Bucket")
    assert len(buckets) >= 3
    for logical in buckets:
        name = t.physical(logical)
        assert name in policies, f"{logical} has no bucket policy"
        stmts = t.resolve(policies[name]["Properties"]["PolicyDocument"])["Statement"]
        tls = [s for s in stmts if s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
        assert len(tls) == 1, f"{logical}: no TLS-only statement"
        s = tls[0]
        assert s["Principal"] == "*" and s["Action"] == "s3:*"
        assert sorted(s["Resource"]) == sorted([t.arn(logical), t.arn(logical) + "/*"])


def test_data_resources_are_retained(t):
    must_keep = (
        list(of_type(t, "AWS::S3::Bucket")) + list(of_type(t, "AWS::DynamoDB::Table"))
        + list(of_type(t, "AWS::Logs::LogGroup")) + ["IngestDeadLetterQueue", "PreprocessDeadLetterQueue"]
    )
    assert len(must_keep) >= 9
    for logical in must_keep:
        res = t.resources[logical]
        assert res.get("DeletionPolicy") == "Retain", f"{logical}: DeletionPolicy is not Retain"
        assert res.get("UpdateReplacePolicy") == "Retain", f"{logical}: UpdateReplacePolicy is not Retain"
    for logical, lg in of_type(t, "AWS::Logs::LogGroup").items():
        assert lg["Properties"].get("RetentionInDays"), f"{logical}: logs kept forever (no retention)"


def test_catalog_is_protected(t):
    (table,) = of_type(t, "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["DeletionProtectionEnabled"] is True
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_every_queue_is_encrypted(t):
    queues = of_type(t, "AWS::SQS::Queue")
    assert len(queues) == 4
    for logical, q in queues.items():
        props = q["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or props.get("KmsMasterKeyId"), f"{logical} is not encrypted"
    for logical in ("IngestQueue", "PreprocessQueue"):
        redrive = t.resolve(queues[logical]["Properties"]["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"].endswith(logical.replace("Queue", "DeadLetterQueue"))


def test_raw_bucket_keeps_versions_and_locks_them(t):
    props = t.resources["RawBucket"]["Properties"]
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    assert props["ObjectLockEnabled"] is True
    assert props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"] == "GOVERNANCE"
    assert all(props["PublicAccessBlockConfiguration"].values())


@pytest.mark.parametrize("role", ROLES)
def test_write_once_statement_denies_overwrites_for_every_role(t, role):
    """PutObject / CompleteMultipartUpload without If-None-Match are denied to
    every principal, break-glass included; If-Match instead is denied too."""
    raw_key = f"{t.arn('RawBucket')}/{SESSION_KEY}"
    for ctx in ({"s3:ObjectCreationOperation": "true"}, {"s3:ObjectCreationOperation": "true", "s3:if-match": '"etag"'}):
        decision, sid = t.evaluate(role, "s3:PutObject", raw_key, ctx)
        assert (decision, sid) == ("deny", "DenyRawWritesWithoutIfNoneMatch"), (role, ctx, decision, sid)


def test_write_once_statement_lets_the_uploader_create_and_upload_parts(t):
    raw_key = f"{t.arn('RawBucket')}/{SESSION_KEY}"
    create = {"s3:ObjectCreationOperation": "true", "s3:if-none-match": "*"}
    part = {"s3:ObjectCreationOperation": "false"}  # CreateMultipartUpload, UploadPart
    assert t.evaluate("UploaderRole", "s3:PutObject", raw_key, create) == ("allow", "CreateRawObjectsOnce")
    assert t.evaluate("UploaderRole", "s3:PutObject", raw_key, part) == ("allow", "UploadRawParts")
    # The identity policy alone (bucket policy edited away) still refuses an unconditional put.
    identity_only = [s for s in t.role_statements("UploaderRole") if s["Effect"] == "Allow"]
    from iam_model import matches
    ctx = {"s3:ObjectCreationOperation": "true", "aws:SecureTransport": "true"}
    assert not [s["Sid"] for s in identity_only if matches(s, "s3:PutObject", raw_key, ctx)]
    # Nothing outside raw/ and nothing in the processed bucket for the uploader.
    assert t.evaluate("UploaderRole", "s3:PutObject", f"{t.arn('RawBucket')}/other/x", create)[0] != "allow"
    assert t.evaluate("UploaderRole", "s3:PutObject", f"{t.arn('ProcessedBucket')}/v1/x", create)[0] != "allow"


def test_write_once_statement_names_the_documented_keys(t):
    policy = t.resolve(t.resources["RawBucketPolicy"]["Properties"]["PolicyDocument"])
    (s,) = [s for s in policy["Statement"] if s.get("Sid") == "DenyRawWritesWithoutIfNoneMatch"]
    assert s == {
        "Sid": "DenyRawWritesWithoutIfNoneMatch", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
        "Resource": f"{t.arn('RawBucket')}/*",
        "Condition": {"Null": {"s3:if-none-match": "true"}, "BoolIfExists": {"s3:ObjectCreationOperation": "true"}},
    }
    assert "conditional-writes-enforce.html" in t.text


@pytest.mark.parametrize("role", ROLES)
def test_write_once_fails_closed_when_the_request_lacks_the_creation_key(t, role):
    """Issue 25 item 4: a write S3 does not mark as a multipart step (s3:ObjectCreationOperation
    absent) and without If-None-Match is denied, break-glass (s3:*) included. With `Bool` the
    deny would not apply to it (an operator on a missing key is false)."""
    raw_key = f"{t.arn('RawBucket')}/{SESSION_KEY}"
    decision, sid = t.evaluate(role, "s3:PutObject", raw_key, {})
    assert (decision, sid) == ("deny", "DenyRawWritesWithoutIfNoneMatch"), (role, decision, sid)


CREATE = {"s3:ObjectCreationOperation": "true", "s3:if-none-match": "*"}
# Issue 25 items 5 and 9: what an upload may not carry into the raw bucket, and the statement
# that refuses it. CreateMultipartUpload carries the same headers with ObjectCreationOperation false.
REFUSED_UPLOADS = {
    "SSE-C": ({"s3:x-amz-server-side-encryption-customer-algorithm": "AES256"}, "DenyCustomerProvidedKeys"),
    "SSE-KMS": ({"s3:x-amz-server-side-encryption": "aws:kms"}, "DenyEncryptionOtherThanBucketDefault"),
    "DSSE-KMS": ({"s3:x-amz-server-side-encryption": "aws:kms:dsse"}, "DenyEncryptionOtherThanBucketDefault"),
    "a KMS key id": ({"s3:x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:us-east-1:999999999999:key/x"}, "DenyKmsKeys"),
    "DEEP_ARCHIVE": ({"s3:x-amz-storage-class": "DEEP_ARCHIVE"}, "DenyStorageClassOtherThanStandard"),
    "GLACIER": ({"s3:x-amz-storage-class": "GLACIER"}, "DenyStorageClassOtherThanStandard"),
    "CopyObject with If-None-Match": ({"s3:x-amz-copy-source": "other-bucket/raw/x"}, "DenyCopyIntoRaw"),
}


@pytest.mark.parametrize("what", REFUSED_UPLOADS)
@pytest.mark.parametrize("step", ["create", "multipart step"])
def test_raw_uploads_others_could_not_read_are_refused(t, what, step):
    extra, sid = REFUSED_UPLOADS[what]
    raw_key = f"{t.arn('RawBucket')}/{SESSION_KEY}"
    ctx = dict(CREATE if step == "create" else {"s3:ObjectCreationOperation": "false"}, **extra)
    for role in ("UploaderRole", "BreakGlassRole"):
        assert t.evaluate(role, "s3:PutObject", raw_key, ctx) == ("deny", sid), (role, what, step)


@pytest.mark.parametrize("extra", [{}, {"s3:x-amz-server-side-encryption": "AES256"}, {"s3:x-amz-storage-class": "STANDARD"}])
def test_raw_uploads_with_the_bucket_defaults_are_allowed(t, extra):
    """The negated operators apply only when the header is there: an upload without SSE or
    storage-class headers (what crates/upload sends), or naming the defaults, goes through."""
    raw_key = f"{t.arn('RawBucket')}/{SESSION_KEY}"
    assert t.evaluate("UploaderRole", "s3:PutObject", raw_key, dict(CREATE, **extra)) == ("allow", "CreateRawObjectsOnce")
    part = dict({"s3:ObjectCreationOperation": "false"}, **extra)
    assert t.evaluate("UploaderRole", "s3:PutObject", raw_key, part) == ("allow", "UploadRawParts")


def test_the_upload_engine_sends_none_of_the_refused_headers():
    """crates/upload sets no SSE, KMS or storage-class field on its requests (and never copies)."""
    src = "\n".join(p.read_text() for p in (REPO / "crates" / "upload" / "src").rglob("*.rs"))
    for setter in ("server_side_encryption", "sse_customer", "ssekms", "storage_class", "copy_source", "copy_object"):
        assert f".{setter}" not in src, setter


def deploy_role(t):
    """The statements of infra/deploy-role.yaml's role, for the stack `labpipe`, and its ARN."""
    role_t = Template(REPO / "infra" / "deploy-role.yaml")
    role_t.params.update(LabPipeStackName="labpipe", ArtifactsBucket="labpipe-artifacts-123456789012-us-east-1")
    props = role_t.resolve(role_t.resources["CloudFormationRole"]["Properties"])
    arn = f"arn:aws:iam::123456789012:role/{props['RoleName']}"
    return arn, [s for pol in props["Policies"] for s in pol["PolicyDocument"]["Statement"]]


ADMIN = ("arn:aws:iam::123456789012:user/administrator", [{"Effect": "Allow", "Action": "*", "Resource": "*"}])
CONFIG_ACTIONS = ("s3:PutBucketVersioning", "s3:PutLifecycleConfiguration", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy",
                  "s3:PutBucketObjectLockConfiguration")


def test_nobody_but_break_glass_deletes_raw_data(t):
    raw_key = f"{t.arn('RawBucket')}/{SESSION_KEY}"
    for role in ROLES:
        for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention") + CONFIG_ACTIONS:
            resource = raw_key if "Object" in action and "ObjectLock" not in action else t.arn("RawBucket")
            decision, _ = t.evaluate(role, action, resource)
            assert (decision == "allow") == (role == "BreakGlassRole"), (role, action, decision)
    # An administrator's own credentials (Allow *) are refused all of it, the deploy role the deletes.
    role_arn, role_statements = deploy_role(t)
    for principal, identity in (ADMIN, (role_arn, role_statements)):
        for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention", "s3:PutObjectRetention"):
            assert t.evaluate_principal(principal, identity, action, raw_key)[0] != "allow", (principal, action)


def test_the_stack_changes_the_raw_and_audit_buckets_only_as_its_deploy_role(t):
    """Issue 25 items 2 and 6: a stack update that changes RawRetentionDays, RawTransitionDays,
    AbortIncompleteUploadDays, AuditLogRetentionDays or a bucket policy runs as the deploy role
    (RoleARN), which the bucket policies let do so; an administrator's own credentials, every
    template role (break-glass aside on the raw bucket) are refused."""
    role_arn, role_statements = deploy_role(t)
    for bucket in ("RawBucket", "AuditLogBucket"):
        for action in CONFIG_ACTIONS:
            if bucket == "AuditLogBucket" and action == "s3:PutBucketObjectLockConfiguration":
                continue
            res = t.arn(bucket)
            assert t.evaluate_principal(role_arn, role_statements, action, res)[0] == "allow", (bucket, action)
            assert t.evaluate_principal(*ADMIN, action, res)[0] == "deny", (bucket, action)
            for role in ROLES:
                allowed = t.evaluate(role, action, res)[0] == "allow"
                assert allowed == (role == "BreakGlassRole" and bucket == "RawBucket"), (role, bucket, action)
    for logical in ("RawBucketPolicy", "AuditLogBucketPolicy"):
        assert t.resources[logical].get("DeletionPolicy") == "Retain", logical
        assert t.resources[logical].get("UpdateReplacePolicy") == "Retain", logical


def test_ec2_reader_reads_the_labpipe_binary_and_processed_outputs_only(t):
    """Issue 25 items 1 and 7: the node's first boot downloads exactly one object of the artifacts
    bucket; its sync reads processed outputs and the catalog, never raw data."""
    bucket = t.params["LambdaCodeBucket"] = "labpipe-artifacts-123456789012-us-east-1"
    binary = f"arn:aws:s3:::{bucket}/{t.params['NodeBinaryKey']}"
    node = REPO / "infra" / "ec2-node.yaml"
    assert f"Default: {t.params['NodeBinaryKey']}" in node.read_text(), "ec2-node.yaml's LabpipeBinaryKey default differs"
    assert t.evaluate("Ec2ReaderRole", "s3:GetObject", binary) == ("allow", "InstallLabpipe")
    for other in (f"arn:aws:s3:::{bucket}/lambda/ingest-0123.zip", f"arn:aws:s3:::{bucket}/labpipe/other"):
        assert t.evaluate("Ec2ReaderRole", "s3:GetObject", other)[0] != "allow", other
    raw_key = f"{t.arn('RawBucket')}/{SESSION_KEY}"
    for action in ("s3:GetObject", "s3:GetObjectVersion"):
        assert t.evaluate("Ec2ReaderRole", action, raw_key)[0] != "allow", action
        assert t.evaluate("ResearcherRole", action, raw_key)[0] == "allow", action
    assert t.evaluate("Ec2ReaderRole", "s3:ListBucket", t.arn("RawBucket"))[0] != "allow"
    assert t.evaluate("Ec2ReaderRole", "s3:GetObject", f"{t.arn('ProcessedBucket')}/v1/x/features.parquet")[0] == "allow"


def test_lambda_roles_cannot_delete_or_overwrite_raw_data(t):
    raw_key = f"{t.arn('RawBucket')}/{SESSION_KEY}"
    for role in ("IngestFunctionRole", "PreprocessFunctionRole"):
        for action, ctx in (("s3:DeleteObject", {}), ("s3:DeleteObjectVersion", {}),
                            ("s3:PutObject", {"s3:ObjectCreationOperation": "true", "s3:if-none-match": "*"})):
            assert t.evaluate(role, action, raw_key, ctx)[0] != "allow", (role, action)


def test_break_glass_requires_mfa(t):
    trust = t.resources["BreakGlassRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust and all(s["Condition"]["Bool"]["aws:MultiFactorAuthPresent"] == "true" for s in trust if s["Effect"] == "Allow")
    assert t.resources["BreakGlassRole"]["Properties"]["MaxSessionDuration"] <= 3600
    # No other role trusts a principal without saying which: service roles trust their service only.
    for role in ("IngestFunctionRole", "PreprocessFunctionRole"):
        (s,) = t.resources[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert s["Principal"] == {"Service": "lambda.amazonaws.com"}
    (s,) = t.resources["Ec2ReaderRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert s["Principal"] == {"Service": "ec2.amazonaws.com"}


def test_alarm_address_is_required_or_explicitly_none(t):
    p = t.doc["Parameters"]["AlarmEmail"]
    assert "Default" not in p, "an alarm address must be given (or `none`)"
    pattern = re.compile(p["AllowedPattern"])
    for ok in ("none", "ops@example.org", "lab.alerts+labpipe@uni.example.ac.uk"):
        assert pattern.fullmatch(ok), ok
    for bad in ("", "None ", "ops", "ops@", "a b@example.org", "nobody"):
        assert not pattern.fullmatch(bad), bad
    assert t.doc["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, "none"]}]}
    sub = t.resources["AlarmEmailSubscription"]
    assert sub["Condition"] == "HasAlarmEmail" and sub["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


def test_alarm_every_failure_path_reaches_the_topic(t):
    alarms = of_type(t, "AWS::CloudWatch::Alarm")
    for logical, a in alarms.items():
        assert a["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], logical
    watched = {(a["Properties"]["MetricName"], json.dumps(t.resolve(a["Properties"].get("Dimensions", [])))) for a in alarms.values()}
    names = {m for m, _ in watched}
    assert {"ApproximateNumberOfMessagesVisible", "Errors", "ApproximateAgeOfOldestMessage", "FailedSessions"} <= names
    ages = [d for m, d in watched if m == "ApproximateAgeOfOldestMessage"]
    assert any("PreprocessQueue" in d for d in ages) and any("IngestQueue" in d for d in ages), ages
    dlqs = [d for m, d in watched if m == "ApproximateNumberOfMessagesVisible"]
    assert any("IngestDeadLetterQueue" in d for d in dlqs) and any("PreprocessDeadLetterQueue" in d for d in dlqs)


def _json_filter_matches(pattern, event):
    """The subset of CloudWatch's JSON filter syntax the template uses:
    `{ ($.a = "x") && ($.b = "y*") }`, `*` a trailing wildcard."""
    terms = re.findall(r'\(\$\.(\w+) = "([^"]*)"\)', pattern)
    assert terms and pattern.count("&&") == len(terms) - 1, pattern
    for field, value in terms:
        actual = event.get(field)
        if not isinstance(actual, str):
            return False
        if value.endswith("*") and not actual.startswith(value[:-1]) or not value.endswith("*") and actual != value:
            return False
    return True


def test_failed_sessions_filter_matches_backend_log_lines(t):
    """The metric filter counts exactly the lines the handlers log when a
    session ends FAILED. The backend logs JSON (tracing, flattened):
    {"level":"ERROR","message":"session failed ingest","step":…,"reason":…}."""
    filters = of_type(t, "AWS::Logs::MetricFilter")
    groups = {t.resolve(f["Properties"]["LogGroupName"]) for f in filters.values()}
    assert groups == {t.physical("IngestLogGroup"), t.physical("PreprocessLogGroup")}
    src = "\n".join(p.read_text() for p in (REPO / "backend" / "src").rglob("*.rs"))
    failed = re.findall(r'error!\([^;]*?"(session failed[^"]*)"', src, re.S)
    assert len(failed) >= 2, f"the handlers no longer log 'session failed …' at ERROR: update the metric filters ({failed})"
    for f in filters.values():
        pattern = f["Properties"]["FilterPattern"]
        for message in failed:
            assert _json_filter_matches(pattern, {"level": "ERROR", "message": message, "reason": "x"}), (pattern, message)
        assert not _json_filter_matches(pattern, {"level": "WARN", "message": failed[0]})
        assert not _json_filter_matches(pattern, {"level": "ERROR", "message": "message is not an S3 event notification"})
        (m,) = f["Properties"]["MetricTransformations"]
        assert m["MetricName"] == "FailedSessions" and m["MetricValue"] == "1"


def test_raw_bucket_has_a_data_event_trail(t):
    (trail,) = of_type(t, "AWS::CloudTrail::Trail").values()
    props = t.resolve(trail["Properties"])
    assert props["IsLogging"] is True and props["EnableLogFileValidation"] is True
    # IAM and STS events are recorded in us-east-1: only a multi-Region trail records them
    # wherever the stack is (issue 25 item 6).
    assert props["IsMultiRegionTrail"] is True and props["IncludeGlobalServiceEvents"] is True
    assert props["S3BucketName"] == t.physical("AuditLogBucket")
    (sel,) = props["EventSelectors"]
    assert sel["ReadWriteType"] in ("WriteOnly", "All")
    assert sel["DataResources"] == [{"Type": "AWS::S3::Object", "Values": [t.arn("RawBucket") + "/"]}]
    audit = t.resolve(t.resources["AuditLogBucketPolicy"]["Properties"]["PolicyDocument"])["Statement"]
    (deny,) = [s for s in audit if s.get("Sid") == "DenyDeleteAuditLogs"]
    assert deny["Principal"] == "*" and "Condition" not in deny
    trail_arn = f"arn:aws:cloudtrail:us-east-1:123456789012:trail/{props['TrailName']}"
    writes = [s for s in audit if s.get("Sid") == "CloudTrailWrite"]
    assert writes and writes[0]["Condition"]["StringEquals"]["aws:SourceArn"] == trail_arn
