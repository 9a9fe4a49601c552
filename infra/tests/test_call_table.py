"""docs/security.md's "Calls by role" table, kept true against the template and the code.

    .venv/bin/python -m pytest infra/tests/test_call_table.py -q

Proves (statically, by AWS's evaluation rules as modelled in iam_model.py):
every call a role is listed for is allowed to that role by the statement the
table names, with the IAM action(s) AWS documents for that call; every call in
"Denied on purpose" and "Denied whatever the client" is denied as stated; every
AWS SDK call the Rust code makes (crates/, backend/, src-tauri/) appears in a
table, and every row naming Rust code is a call that code makes (a stale row
fails as a missing one does). `labpipe admin deploy`'s calls (crates/deploy,
the administrator's credentials) are held the same way, both ways, against
their own table. Whether AWS
evaluates the conditions as modelled rests on AWS's documentation (cited in
docs/security.md and beside the statements in the template).
"""

import re
from pathlib import Path

import botocore.session
import pytest

from iam_model import REPO, ROLES, Template

DOC = REPO / "docs" / "security.md"
SESSION = "20210301_161221"
CODE_ROOTS = ("crates", "backend", "src-tauri")
# The services the template's roles are granted. Deploy tooling (CloudFormation,
# Lambda, IAM, STS) runs with an administrator's credentials, not a template role.
SERVICES = ("s3", "dynamodb", "sqs", "logs")
# A shared client crate calls on behalf of the crates that use it: its calls
# are covered by the rows of those crates (any row with the same call).
SHARED_UNITS = {"crates/aws"}
# `labpipe admin deploy` runs with the credentials of the administrator who
# deploys the stack, before any template role exists: its calls are listed in
# docs/security.md ("The deploy command"), not in the role tables.
ADMINISTRATOR_UNITS = {"crates/deploy"}

# The IAM actions AWS documents for each call (and variant the table uses).
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/api-permissions-reference.html
REQUIRED_ACTIONS = {
    "PutObject": {"s3:PutObject"},
    "CreateMultipartUpload": {"s3:PutObject"},
    "UploadPart": {"s3:PutObject"},
    "CompleteMultipartUpload": {"s3:PutObject"},
    "AbortMultipartUpload": {"s3:AbortMultipartUpload"},
    "ListParts": {"s3:ListMultipartUploadParts"},
    "ListMultipartUploads": {"s3:ListBucketMultipartUploads"},
    "ListObjectsV2": {"s3:ListBucket"},
    "HeadBucket": {"s3:ListBucket"},
    "HeadObject": {"s3:GetObject"},
    "HeadObject (version id)": {"s3:GetObjectVersion"},
    "HeadObject (missing key → 404)": {"s3:ListBucket"},
    "GetObject": {"s3:GetObject"},
    "GetObject (version id)": {"s3:GetObjectVersion"},
    "GetObject (missing key → NoSuchKey)": {"s3:ListBucket"},
    "DeleteObject": {"s3:DeleteObject"},
    # the destination's action; reading the source needs s3:GetObject on it
    "CopyObject": {"s3:PutObject"},
    "DescribeTable": {"dynamodb:DescribeTable"},
    "GetItem": {"dynamodb:GetItem"},
    "BatchGetItem": {"dynamodb:BatchGetItem"},
    "PutItem": {"dynamodb:PutItem"},
    "UpdateItem": {"dynamodb:UpdateItem"},
    "Query": {"dynamodb:Query"},
    "Scan": {"dynamodb:Scan"},
    "CreateTable": {"dynamodb:CreateTable"},
    "BatchWriteItem": {"dynamodb:BatchWriteItem"},
    # no action of its own: each item's (Put / Update / ConditionCheck) is checked
    "TransactWriteItems": None,
    "ReceiveMessage": {"sqs:ReceiveMessage"},
    "DeleteMessage": {"sqs:DeleteMessage"},
    "ChangeMessageVisibility": {"sqs:ChangeMessageVisibility"},
    "GetQueueAttributes": {"sqs:GetQueueAttributes"},
    "SendMessage": {"sqs:SendMessage"},
    "PutLogEvents": {"logs:CreateLogStream", "logs:PutLogEvents"},
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatchlogs.html
    "CreateLogStream": {"logs:CreateLogStream"},
}
# s3:ObjectCreationOperation as S3 sets it: true for the requests that create an object.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html
OBJECT_CREATION = {"PutObject": "true", "CompleteMultipartUpload": "true", "CopyObject": "true",
                   "CreateMultipartUpload": "false", "UploadPart": "false", "UploadPartCopy": "false"}


def resources(t):
    raw, processed = t.arn("RawBucket"), t.arn("ProcessedBucket")
    t.params["LambdaCodeBucket"] = t.params.get("LambdaCodeBucket") or "labpipe-artifacts-123456789012-us-east-1"
    log = lambda lg: t.arn(lg).removesuffix("*") + "log-stream:2026/12/01/[$LATEST]0123"  # noqa: E731
    return {
        "raw object": f"{raw}/raw/{SESSION}/ch01.bin",
        "raw bucket": raw,
        "processed object": f"{processed}/v1/{SESSION}/ch01.parquet",
        "processed bucket": processed,
        "table": t.arn("CatalogTable"),
        "index": t.arn("CatalogTable") + "/index/by_month",
        "ingest queue": t.arn("IngestQueue"),
        "preprocess queue": t.arn("PreprocessQueue"),
        "ingest dead-letter queue": t.arn("IngestDeadLetterQueue"),
        "preprocess dead-letter queue": t.arn("PreprocessDeadLetterQueue"),
        "ingest log group": log("IngestLogGroup"),
        "preprocess log group": log("PreprocessLogGroup"),
        # one stream per lab PC and user: <host>/<user>
        "client log group": t.arn("ClientLogGroup").removesuffix("*") + "log-stream:lab-pc-01/technician",
        # the static labpipe an EC2 node installs (ec2-node.yaml's first boot)
        "labpipe binary": f"arn:aws:s3:::{t.params['LambdaCodeBucket']}/{t.params['NodeBinaryKey']}",
        "other artifact": f"arn:aws:s3:::{t.params['LambdaCodeBucket']}/lambda/ingest-0123456789abcdef.zip",
    }


def context(call, request):
    base = call.split(" (")[0]
    ctx = {}
    if base in OBJECT_CREATION:
        ctx["s3:ObjectCreationOperation"] = OBJECT_CREATION[base]
    request = request.strip()
    for part in [p.strip() for p in request.split("+")]:
        if part == "If-None-Match":
            ctx["s3:if-none-match"] = "*"
        elif part.startswith("prefix "):
            ctx["s3:prefix"] = part.removeprefix("prefix ").replace("<session>", SESSION)
        elif part in HEADERS:
            ctx.update(HEADERS[part])
        elif part == "no creation key":
            ctx.pop("s3:ObjectCreationOperation", None)
        elif part.startswith("storage class "):
            ctx["s3:x-amz-storage-class"] = part.removeprefix("storage class ")
        elif part not in ("", "multipart step", "no If-None-Match"):
            raise AssertionError(f"request {request!r} is not modelled: say what the call carries")
    return ctx


# Request headers a row may name, as the condition keys S3 sets from them.
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html
HEADERS = {
    "SSE-C": {"s3:x-amz-server-side-encryption-customer-algorithm": "AES256"},
    "SSE-KMS": {"s3:x-amz-server-side-encryption": "aws:kms"},
    "KMS key": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:us-east-1:999999999999:key/x"},
    "copy source": {"s3:x-amz-copy-source": "other-bucket/raw/x"},
}


DENIED = ("Denied on purpose", "Denied whatever the client")
# Rows whose code is not this repository's Rust code: made by AWS on a role's behalf, by the
# EC2 node's first boot (the AWS CLI), or by any client holding the role's credentials.
NOT_RUST = {"Lambda service", "Lambda runtime", "infra/ec2-node.yaml", "any client"}


def parse_tables(text, heading="## Calls by role"):
    """{section heading: [row dicts]} for every table under `heading`."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    tables, heading, header = {}, None, None
    for line in section.splitlines():
        if line.startswith("### "):
            heading, header = line[4:].strip(), None
            tables[heading] = []
        elif line.startswith("|") and heading:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
            elif not set(line.replace("|", "").strip()) <= set("-: "):
                tables[heading].append(dict(zip(header, cells)))
    return tables


@pytest.fixture(scope="module")
def template():
    return Template()


@pytest.fixture(scope="module")
def tables():
    return parse_tables(DOC.read_text())


def granted_rows(tables):
    for heading, rows in tables.items():
        if heading in DENIED:
            continue
        for role in [r.strip() for r in heading.split(",")]:
            assert role in ROLES, f"section {heading!r}: {role} is not a template role"
            for row in rows:
                yield role, row


def actions_of(row):
    return {a.strip() for a in row["IAM action"].split(",")}


def test_the_table_covers_every_role_but_break_glass(tables):
    covered = {r.strip() for h in tables if h not in DENIED for r in h.split(",")}
    assert covered == set(ROLES) - {"BreakGlassRole"}, covered
    assert sum(len(r) for r in tables.values()) >= 60


def test_actions_are_the_ones_aws_documents(tables):
    for heading, rows in tables.items():
        for row in rows:
            call = row["call"]
            assert call in REQUIRED_ACTIONS, f"{heading}: call {call!r} has no documented IAM action here; add it"
            need = REQUIRED_ACTIONS[call]
            if need is not None:
                assert actions_of(row) == need, f"{heading}: {call} needs {sorted(need)}, the table says {row['IAM action']}"


def test_every_listed_call_is_allowed_by_the_named_statement(template, tables):
    res, failures, checked = resources(template), [], 0
    for role, row in granted_rows(tables):
        ctx = context(row["call"], row["request"])
        for action in actions_of(row):
            decision, sid = template.evaluate(role, action, res[row["resource"]], ctx)
            checked += 1
            if decision != "allow":
                failures.append(f"{role} {row['call']} ({action} on {row['resource']}): {decision} by {sid}")
            elif row["statement"] not in template.allowing_sids(role, action, res[row["resource"]], ctx):
                failures.append(f"{role} {row['call']} ({action}): allowed by {sid}, the table says {row['statement']}")
    assert not failures, "\n".join(failures)
    assert checked >= 60


def test_denied_on_purpose_is_denied(template, tables):
    res, failures = resources(template), []
    rows = tables["Denied on purpose"] + tables["Denied whatever the client"]
    assert rows
    assert {r["code"] for r in tables["Denied whatever the client"]} == {"any client"}
    for row in rows:
        who = row["role"]
        if who == "every role":
            roles = ROLES
        elif who == "every role but BreakGlassRole":
            roles = [r for r in ROLES if r != "BreakGlassRole"]
        else:
            roles = [r.strip() for r in who.split(",")]
            assert set(roles) <= set(ROLES), f"Denied on purpose: {who} names no template role"
        ctx = context(row["call"], row["request"])
        for role in roles:
            for action in actions_of(row):
                decision, sid = template.evaluate(role, action, res[row["resource"]], ctx)
                if decision == "allow":
                    failures.append(f"{role} {row['call']} ({action} on {row['resource']}) is allowed by {sid}")
    assert not failures, "\n".join(failures)


def _snake(name):
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    return re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", s).lower()


def sdk_calls_in_code(roots=CODE_ROOTS, services=SERVICES, units=None):
    """{(Operation, code unit)} for every `.operation()` of an AWS SDK client
    in the Rust sources, tests, examples and #[cfg(test)] modules left out.
    `units`: only these code units (default: all but the administrator's)."""
    bs = botocore.session.get_session()
    ops = {}
    for svc in services:
        for op in bs.get_service_model(svc).operation_names:
            ops[_snake(op)] = op
    found = {}
    for root in roots:
        for f in sorted((REPO / root).rglob("*.rs")):
            rel = f.relative_to(REPO)
            if {"tests", "examples", "benches", "target", "gen"} & set(rel.parts):
                continue
            text = f.read_text()
            if m := re.search(r"^\s*#\[cfg\(test\)\]\s*\n\s*mod ", text, re.M):
                text = text[: m.start()]
            unit = "/".join(rel.parts[:2]) if rel.parts[0] == "crates" else rel.parts[0]
            if (unit in ADMINISTRATOR_UNITS) if units is None else (unit not in units):
                continue
            for mm in re.finditer(r"\.\s*([a-z][a-z0-9_]*)\(\)", text):
                if mm.group(1) in ops:
                    found.setdefault((ops[mm.group(1)], unit), set()).add(str(rel))
    return found


def _uses_gateway(unit):
    """Whether a code unit depends on the shared S3 gateway (crates/aws), which then makes
    calls on its behalf (labpipe_aws::list_prefix, the manifest reader)."""
    manifest = REPO / unit / "Cargo.toml"
    return manifest.is_file() and "labpipe-aws" in manifest.read_text()


def table_problems(tables, found):
    """(calls the code makes that no row names, rows naming a Rust call that code does not
    make). A call the gateway (crates/aws) makes counts for every unit built on it."""
    rows = [row for rows in tables.values() for row in rows]
    listed = {(row["call"].split(" (")[0], row["code"]) for row in rows}
    listed_calls = {call for call, _ in listed}
    missing = {
        k: sorted(v) for k, v in found.items()
        if k not in listed and not (k[1] in SHARED_UNITS and k[0] in listed_calls)
    }
    stale = []
    for call, unit in sorted(listed):
        if unit in NOT_RUST:
            continue
        assert (REPO / unit).is_dir(), f"row {call} names {unit!r}, which is no code unit here (or add it to NOT_RUST)"
        via_gateway = any((call, shared) in found for shared in SHARED_UNITS) and _uses_gateway(unit)
        if (call, unit) not in found and not via_gateway:
            stale.append((call, unit))
    return missing, stale


def test_every_sdk_call_in_the_code_is_in_the_table_and_every_row_in_the_code(tables):
    found = sdk_calls_in_code()
    assert len(found) >= 20, f"the code scan found only {sorted(found)}: is the pattern still right?"
    missing, stale = table_problems(tables, found)
    assert not missing, (
        "AWS calls in the code that docs/security.md does not list (add a row with the role, "
        f"IAM action and statement, and grant it in infra/template.yaml if needed): {missing}"
    )
    assert not stale, (
        "docs/security.md lists calls that no code makes (remove the rows, or move a deny that "
        f"holds whatever the client does to 'Denied whatever the client'): {stale}"
    )


# `labpipe admin deploy`: the administrator's credentials, CloudFormation, S3 (artifacts), STS.
DEPLOY_SERVICES = ("cloudformation", "s3", "sts")


def deploy_rows(text):
    return parse_tables(text, "## The deploy command's calls")["labpipe admin deploy"]


def deploy_problems(rows, found):
    listed = {(r["call"], r["code"]) for r in rows}
    return sorted(set(found) - listed), sorted(listed - set(found))


def test_the_deploy_commands_calls_are_listed_both_ways():
    found = sdk_calls_in_code(("crates",), DEPLOY_SERVICES, ADMINISTRATOR_UNITS)
    assert len(found) >= 10, sorted(found)
    missing, stale = deploy_problems(deploy_rows(DOC.read_text()), found)
    assert not missing, f"crates/deploy calls that docs/security.md's deploy table does not list: {missing}"
    assert not stale, f"docs/security.md's deploy table lists calls crates/deploy does not make: {stale}"


def test_the_checks_fail_on_a_planted_stale_row_and_a_planted_unlisted_call():
    """Each two-way check, shown failing once: a row no code makes (the GetObjectAttributes
    row docs/security.md had), and a call the table no longer names."""
    text = DOC.read_text()
    row = "| GetObjectAttributes | crates/upload | s3:GetObject, s3:GetObjectAttributes | raw object | | ReadRawUploads |"
    planted = text.replace("| ListParts | crates/upload |", row + "\n| ListParts | crates/upload |", 1)
    assert planted != text
    missing, stale = table_problems(parse_tables(planted), sdk_calls_in_code())
    assert not missing and stale == [("GetObjectAttributes", "crates/upload")], (missing, stale)
    removed = "\n".join(line for line in text.splitlines() if not line.startswith("| ListParts | crates/upload |"))
    missing, stale = table_problems(parse_tables(removed), sdk_calls_in_code())
    assert list(missing) == [("ListParts", "crates/upload")] and not stale, (missing, stale)

    rows = deploy_rows(text)
    found = sdk_calls_in_code(("crates",), DEPLOY_SERVICES, ADMINISTRATOR_UNITS)
    without_get_template = [r for r in rows if r["call"] != "GetTemplate"]
    assert deploy_problems(without_get_template, found) == ([("GetTemplate", "crates/deploy")], [])
    extra = rows + [{"call": "DeleteStack", "code": "crates/deploy"}]
    assert deploy_problems(extra, found) == ([], [("DeleteStack", "crates/deploy")])
