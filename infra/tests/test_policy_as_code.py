"""Policy as code: infra/policy/labpipe.guard (CloudFormation Guard rules, run
through the cfn-guard engine's Python binding) against infra/template.yaml.

    .venv/bin/python -m pytest infra/tests/test_policy_as_code.py -q

Proves every rule holds for the template, that the rules can fail (each is
run against a template broken in the way it guards against), and that every
suppression in the template carries a comment saying why.
"""

import copy
import re

import json

from cfn_guard_rs.cfn_guard_rs import run_checks_rs
import pytest

from iam_model import REPO, Template

RULES = (REPO / "infra" / "policy" / "labpipe.guard").read_text()


def report(doc):
    """The engine's report (its first JSON document: this binding sometimes
    appends a second one, which cfn_guard_rs.run_checks cannot parse). A long
    report comes back cut short (only its tail): then each rule is run alone
    and the reports are merged."""
    raw = run_checks_rs(json.dumps(doc), RULES, False)
    try:
        return json.JSONDecoder().raw_decode(raw)[0]
    except json.JSONDecodeError:
        pass
    lets = "\n".join(line for line in RULES.splitlines() if line.startswith("let "))
    merged = {"compliant": [], "not_compliant": []}
    for block in re.findall(r"^rule \w+.*?^}", RULES, re.M | re.S):
        name = block.split()[1]
        raw = run_checks_rs(json.dumps(doc), lets + "\n" + block, False)
        try:
            one = json.JSONDecoder().raw_decode(raw)[0]
        except json.JSONDecodeError:
            # Still cut short: the report's last two keys (not_applicable, compliant) survive.
            tail = re.search(r'"not_applicable": \[(.*?)\],\s*"compliant": \[(.*?)\]\s*}\s*$', raw, re.S)
            assert tail, f"cannot read cfn-guard's report for {name}: {raw[-300:]}"
            passed, skipped = name in tail.group(2), name in tail.group(1)
            one = {"compliant": [name] if passed else [],
                   "not_compliant": [] if passed or skipped else [{"Rule": {"name": name}}]}
        merged["compliant"] += one["compliant"]
        merged["not_compliant"] += one["not_compliant"]
    return merged


def _failing(doc):
    return {c["Rule"]["name"] for c in report(doc)["not_compliant"] if c.get("Rule")}


def failing_rules(doc):
    """Failing rules, each suppressed rule checked without the resources that suppress it."""
    failing = _failing(doc)
    suppressed = {}
    for logical, res in doc["Resources"].items():
        for rule in (res.get("Metadata", {}).get("guard", {}).get("SuppressedRules") or []):
            suppressed.setdefault(rule, []).append(logical)
    for rule, logicals in suppressed.items():
        if rule in failing:
            rest = copy.deepcopy(doc)
            for logical in logicals:
                del rest["Resources"][logical]
            if rule not in _failing(rest):
                failing.discard(rule)
    return sorted(failing)


def test_template_passes_every_rule():
    r = report(Template().doc)
    assert failing_rules(Template().doc) == [], json.dumps(r["not_compliant"], indent=1)[:4000]
    rules = set(re.findall(r"^rule (\w+)", RULES, re.M))
    assert len(rules) == 10
    # compliant as a whole, or compliant once the resources that suppress it are set aside
    assert set(r["compliant"]) | {"IAM_NO_SERVICE_WILDCARD"} == rules, r["compliant"]


def _break(doc, path, value):
    *parents, last = path
    node = doc
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value


@pytest.mark.parametrize("rule, path, value", [
    ("S3_BUCKET_VERSIONED_PRIVATE_ENCRYPTED_RETAINED", ("Resources", "ProcessedBucket", "DeletionPolicy"), "Delete"),
    ("S3_BUCKET_VERSIONED_PRIVATE_ENCRYPTED_RETAINED", ("Resources", "AuditLogBucket", "Properties", "VersioningConfiguration", "Status"), "Suspended"),
    ("S3_BUCKET_SSL_REQUESTS_ONLY", ("Resources", "ProcessedBucketPolicy", "Properties", "PolicyDocument", "Statement", 1), None),
    ("S3_RAW_BUCKET_WRITE_ONCE", ("Resources", "RawBucketPolicy", "Properties", "PolicyDocument", "Statement", 2), None),
    # issue 25 item 4: the fail-open form
    ("S3_RAW_BUCKET_WRITE_ONCE", ("Resources", "RawBucketPolicy", "Properties", "PolicyDocument", "Statement", 2, "Condition"),
     {"Null": {"s3:if-none-match": "true"}, "Bool": {"s3:ObjectCreationOperation": "true"}}),
    # issue 25 items 5 and 9
    ("S3_RAW_BUCKET_READABLE_UPLOADS", ("Resources", "RawBucketPolicy", "Properties", "PolicyDocument", "Statement", 3), None),
    ("S3_RAW_BUCKET_READABLE_UPLOADS", ("Resources", "RawBucketPolicy", "Properties", "PolicyDocument", "Statement", 4), None),
    ("S3_RAW_BUCKET_READABLE_UPLOADS", ("Resources", "RawBucketPolicy", "Properties", "PolicyDocument", "Statement", 5), None),
    ("S3_RAW_BUCKET_READABLE_UPLOADS", ("Resources", "RawBucketPolicy", "Properties", "PolicyDocument", "Statement", 6), None),
    ("S3_RAW_BUCKET_READABLE_UPLOADS", ("Resources", "RawBucketPolicy", "Properties", "PolicyDocument", "Statement", 7), None),
    ("S3_RAW_BUCKET_READABLE_UPLOADS", ("Resources", "RawBucketPolicy", "Properties", "PolicyDocument", "Statement", 7, "Condition", "Null"), None),
    # issue 25 items 2 and 6
    ("S3_PROTECTION_CHANGES_ONLY_THROUGH_THE_STACK", ("Resources", "RawBucketPolicy", "DeletionPolicy"), None),
    ("S3_PROTECTION_CHANGES_ONLY_THROUGH_THE_STACK", ("Resources", "RawBucketPolicy", "Properties", "PolicyDocument", "Statement", 1, "Condition", "ArnNotEquals", "aws:PrincipalArn"), [{"Fn::GetAtt": ["BreakGlassRole", "Arn"]}]),
    ("S3_PROTECTION_CHANGES_ONLY_THROUGH_THE_STACK", ("Resources", "AuditLogBucketPolicy", "Properties", "PolicyDocument", "Statement", 3), None),
    ("CLOUDTRAIL_VALIDATED_AND_LOGGING", ("Resources", "RawAuditTrail", "Properties", "IsMultiRegionTrail"), False),
    ("SQS_QUEUE_ENCRYPTED", ("Resources", "IngestDeadLetterQueue", "Properties", "SqsManagedSseEnabled"), None),
    ("DYNAMODB_PROTECTED", ("Resources", "CatalogTable", "Properties", "DeletionProtectionEnabled"), False),
    ("LOG_GROUP_RETENTION_AND_RETAINED", ("Resources", "ClientLogGroup", "Properties", "RetentionInDays"), None),
    ("CLOUDTRAIL_VALIDATED_AND_LOGGING", ("Resources", "RawAuditTrail", "Properties", "EnableLogFileValidation"), False),
    ("IAM_NO_SERVICE_WILDCARD", ("Resources", "BreakGlassRole", "Metadata"), None),
    ("IAM_NO_SERVICE_WILDCARD", ("Resources", "UploaderRole", "Properties", "Policies", 0, "PolicyDocument", "Statement", 0, "Action"), "s3:*"),
    ("IAM_NO_SERVICE_WILDCARD", ("Resources", "ReaderPolicy", "Properties", "PolicyDocument", "Statement", 0, "Action"), "*"),
])
def test_each_rule_can_fail(rule, path, value):
    doc = copy.deepcopy(Template().doc)
    _break(doc, path, value)
    assert rule in failing_rules(doc), f"{rule} did not catch {path} = {value!r}"


def test_every_suppression_is_explained():
    lines = (REPO / "infra" / "template.yaml").read_text().splitlines()
    found = 0
    for i, line in enumerate(lines):
        if "SuppressedRules" in line:
            found += 1
            assert lines[i - 1].strip().startswith("#"), f"template line {i + 1}: a suppression without a comment saying why"
    assert found >= 1
    suppressed = re.findall(r"SuppressedRules: \[([^\]]*)\]", "\n".join(lines))
    for names in suppressed:
        for name in names.split(","):
            assert f"rule {name.strip()} " in RULES, f"{name} is not a rule in labpipe.guard"
