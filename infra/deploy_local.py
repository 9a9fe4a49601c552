#!/usr/bin/env python3
"""Deploy infra/template.yaml to the local AWS emulator (moto server).

    usage: deploy_local.py [--endpoint URL] [--stack NAME] [--param KEY=VALUE]...
                           [--outputs FILE] [--timeout SECS]

The SAME template that goes to AWS is deployed through CloudFormation. Then an
EMULATOR-ONLY step applies, through the API, what moto's CloudFormation
silently drops: on the buckets versioning, Object Lock, public access block,
ownership, lifecycle, the S3 -> SQS notification and the bucket policies; and
the SQS queue policy, the CloudWatch alarms and DynamoDB point-in-time
recovery (moto 5.2.5 skips AWS::SQS::QueuePolicy, AWS::CloudWatch::Alarm,
AWS::Logs::MetricFilter and AWS::CloudTrail::Trail resources with only a
warning in its log). That step reads them from the template itself, so it
cannot drift from what AWS gets. The deliberate differences: bucket-policy
statements whose condition moto cannot evaluate are left out (moto ignores
the condition of a Deny and so denies every request it names): the TLS-only
(aws:SecureTransport) ones, because moto is plain http, and the write-once
one (s3:if-none-match), which would refuse every upload. The upload engine
sends If-None-Match itself; that AWS enforces it rests on AWS's documentation
(docs/security.md).

AlarmEmail defaults to `none` here (the template requires it).

Idempotent: an existing stack with the same template and parameters is left as
it is, a changed one is updated, and the emulator-only step is re-applied.
Prints the stack outputs as JSON and writes them to .labpipe/stack/outputs.json
(or --outputs). Refuses any endpoint that is not on this machine.
"""

import argparse
import io
import json
import os
import sys
import time
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "infra" / "template.yaml"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# moto's CloudFormation keeps only BucketEncryption from these; the rest is
# applied by the emulator-only step.
BUCKET_PROPERTIES_APPLIED = (
    "VersioningConfiguration",
    "ObjectLockConfiguration",
    "BucketEncryption",
    "PublicAccessBlockConfiguration",
    "OwnershipControls",
    "LifecycleConfiguration",
    "NotificationConfiguration",
)


ALARM_FIELDS = (
    "AlarmDescription", "Namespace", "MetricName", "Dimensions", "Statistic", "Period", "EvaluationPeriods",
    "Threshold", "ComparisonOperator", "TreatMissingData", "AlarmActions", "OKActions",
)


def log(msg):
    print(f"deploy-local: {msg}", file=sys.stderr, flush=True)


class DeployError(Exception):
    pass


# --------------------------------------------------------------- template
class CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short tags (!Ref, !Sub, ...)
    into their long form ({"Ref": ...}, {"Fn::Sub": ...})."""


def _tag_constructor(loader, tag_suffix, node):
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag_constructor)


def load_template(path):
    text = Path(path).read_text()
    return text, yaml.load(text, Loader=CfnLoader)  # noqa: S506 (SafeLoader subclass)


class Resolver:
    """Resolves the intrinsic functions the bucket settings use, against the
    deployed stack: Ref, Fn::Sub, Fn::GetAtt (Arn/QueueName), Fn::Join."""

    def __init__(self, template, params, pseudo, physical, session):
        self.resources = template.get("Resources", {})
        self.params = params
        self.pseudo = pseudo
        self.physical = physical
        self.iam = session.client("iam")
        self.sqs = session.client("sqs")

    def ref(self, name):
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        if name in self.physical:
            return self.physical[name]
        # A log group's Ref is its name. For the stack `labpipe admin deploy` created and then
        # updated, moto's DescribeStackResources listed no physical id for the log groups; the
        # name the template gives a log group is the same value.
        res = self.resources.get(name, {})
        if res.get("Type") == "AWS::Logs::LogGroup" and "LogGroupName" in res.get("Properties", {}):
            return self(res["Properties"]["LogGroupName"])
        raise DeployError(f"cannot resolve Ref {name}")

    def get_att(self, logical, attr):
        rtype = self.resources.get(logical, {}).get("Type")
        phys = self.ref(logical)
        if rtype == "AWS::S3::Bucket" and attr == "Arn":
            return f"arn:{self.pseudo['AWS::Partition']}:s3:::{phys}"
        if rtype == "AWS::IAM::Role" and attr == "Arn":
            return self.iam.get_role(RoleName=phys)["Role"]["Arn"]
        if rtype == "AWS::SQS::Queue" and attr == "Arn":
            attrs = self.sqs.get_queue_attributes(QueueUrl=phys, AttributeNames=["QueueArn"])
            return attrs["Attributes"]["QueueArn"]
        if rtype == "AWS::SQS::Queue" and attr == "QueueName":
            return phys.rstrip("/").rsplit("/", 1)[-1]
        raise DeployError(f"emulator step cannot resolve GetAtt {logical}.{attr} ({rtype})")

    def sub(self, text, extra):
        out, i = [], 0
        while i < len(text):
            j = text.find("${", i)
            if j < 0:
                out.append(text[i:])
                break
            out.append(text[i:j])
            k = text.index("}", j)
            expr = text[j + 2 : k]
            if expr.startswith("!"):  # ${!Literal}
                out.append("${" + expr[1:] + "}")
            elif expr in extra:
                out.append(str(extra[expr]))
            elif "." in expr and not expr.startswith("AWS::"):
                logical, attr = expr.split(".", 1)
                out.append(str(self.get_att(logical, attr)))
            else:
                out.append(str(self.ref(expr)))
            i = k + 1
        return "".join(out)

    def __call__(self, node):
        if isinstance(node, list):
            return [self(x) for x in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, val), = node.items()
            if key == "Ref":
                return self.ref(val)
            if key == "Fn::GetAtt":
                logical, attr = val if isinstance(val, list) else val.split(".", 1)
                return self.get_att(logical, attr)
            if key == "Fn::Sub":
                if isinstance(val, list):
                    text, variables = val
                    return self.sub(text, {k: self(v) for k, v in variables.items()})
                return self.sub(val, {})
            if key == "Fn::Join":
                sep, items = val
                return sep.join(str(x) for x in self(items))
            if key.startswith("Fn::"):
                raise DeployError(f"emulator step does not support {key}")
        return {k: self(v) for k, v in node.items()}


# ------------------------------------------------- CloudFormation -> S3 API
def lifecycle_rule(rule):
    out = {"Status": rule["Status"]}
    if "Id" in rule:
        out["ID"] = rule["Id"]
    if "Prefix" in rule:
        out["Filter"] = {"Prefix": rule["Prefix"]}
    else:
        flt = rule.get("Filter") or {}
        out["Filter"] = {"Prefix": flt.get("Prefix", "")}
    if "Transitions" in rule:
        out["Transitions"] = [
            {"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]} for t in rule["Transitions"]
        ]
    if "NoncurrentVersionTransitions" in rule:
        out["NoncurrentVersionTransitions"] = [
            {"NoncurrentDays": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]}
            for t in rule["NoncurrentVersionTransitions"]
        ]
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        }
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        }
    unknown = set(rule) - {
        "Id", "Status", "Prefix", "Filter", "Transitions", "NoncurrentVersionTransitions",
        "NoncurrentVersionExpiration", "ExpirationInDays", "AbortIncompleteMultipartUpload",
    }
    if unknown:
        raise DeployError(f"emulator step does not translate lifecycle fields {sorted(unknown)}")
    return out


def queue_notification(conf):
    out = {"QueueArn": conf["Queue"], "Events": [conf["Event"]]}
    rules = ((conf.get("Filter") or {}).get("S3Key") or {}).get("Rules")
    if rules:
        out["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
    return out


# Condition keys of bucket-policy statements the emulator-only step leaves out,
# and why. moto evaluates a bucket policy without its conditions, so a Deny
# with one of these would deny every request it names.
EMULATOR_SKIPPED_CONDITIONS = {
    "aws:SecureTransport": "moto is plain http",
    "s3:if-none-match": "moto ignores the condition and would deny every upload",
    "s3:x-amz-copy-source": "moto ignores the condition and would deny every upload",
    "s3:x-amz-server-side-encryption": "moto ignores the condition and would deny every upload",
    "s3:x-amz-storage-class": "moto ignores the condition and would deny every upload",
}


def emulator_policy(policy):
    """The policy minus the statements conditioned on EMULATOR_SKIPPED_CONDITIONS;
    returns (policy, [(sid, reason)] of the statements left out)."""
    kept, dropped = [], []
    for s in policy["Statement"]:
        cond = json.dumps(s.get("Condition", {}))
        reason = next((why for key, why in EMULATOR_SKIPPED_CONDITIONS.items() if key in cond), None)
        if reason:
            dropped.append((s.get("Sid", "?"), reason))
        else:
            kept.append(s)
    return {**policy, "Statement": kept}, dropped


def apply_bucket(s3, bucket, props):
    """Applies one bucket's CloudFormation properties through the API.
    Returns the names of the settings applied."""
    done = []
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]})
        done.append("versioning")
    if "ObjectLockConfiguration" in props:
        lock = props["ObjectLockConfiguration"]
        conf = {"ObjectLockEnabled": lock.get("ObjectLockEnabled", "Enabled")}
        retention = (lock.get("Rule") or {}).get("DefaultRetention")
        if retention:
            r = {"Mode": retention["Mode"]}
            for unit in ("Days", "Years"):
                if unit in retention:
                    r[unit] = int(retention[unit])
            conf["Rule"] = {"DefaultRetention": r}
        try:
            current = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
            # moto reports the unused unit as 0 (e.g. "Years": 0).
            cur_ret = (current.get("Rule") or {}).get("DefaultRetention") or {}
            for unit in ("Days", "Years"):
                if cur_ret.get(unit) == 0:
                    del cur_ret[unit]
        except ClientError:
            current = None
        if current == conf:
            done.append("object-lock (unchanged)")
        else:
            try:
                s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=conf)
                done.append("object-lock")
            except ClientError as e:
                # moto refuses this call on any bucket that holds objects,
                # even when Object Lock is already on (AWS allows it).
                if not current or current.get("ObjectLockEnabled") != "Enabled":
                    raise DeployError(f"cannot enable Object Lock on {bucket}: {e} (restart the emulator for a fresh one)")
                log(f"warning: {bucket} keeps Object Lock {current} instead of {conf}: {e}")
                done.append("object-lock (kept, see warning)")
    if "BucketEncryption" in props:
        rules = []
        for r in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]:
            rule = {"ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"]}
            if "BucketKeyEnabled" in r:
                rule["BucketKeyEnabled"] = bool(r["BucketKeyEnabled"])
            rules.append(rule)
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})
        done.append("encryption")
    if "PublicAccessBlockConfiguration" in props:
        pab = {k: bool(v) for k, v in props["PublicAccessBlockConfiguration"].items()}
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=pab)
        done.append("public-access-block")
    if "OwnershipControls" in props:
        s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={"Rules": props["OwnershipControls"]["Rules"]})
        done.append("ownership")
    if "LifecycleConfiguration" in props:
        rules = [lifecycle_rule(r) for r in props["LifecycleConfiguration"]["Rules"]]
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
        done.append("lifecycle")
    if "NotificationConfiguration" in props:
        notif = props["NotificationConfiguration"]
        unsupported = set(notif) - {"QueueConfigurations"}
        if unsupported:
            raise DeployError(f"emulator step does not translate notifications {sorted(unsupported)}")
        conf = {"QueueConfigurations": [queue_notification(q) for q in notif.get("QueueConfigurations", [])]}
        # Each put sends an s3:TestEvent to the queue (as AWS does): skip it
        # when the bucket already has this configuration, so re-runs add none.
        current = s3.get_bucket_notification_configuration(Bucket=bucket).get("QueueConfigurations", [])
        if [{k: v for k, v in c.items() if k != "Id"} for c in current] != conf["QueueConfigurations"]:
            s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=conf)
            done.append("notification")
        else:
            done.append("notification (unchanged)")
    return done


def emulator_only_step(session, template, params, pseudo, physical):
    """EMULATOR-ONLY: what real AWS takes from the template and moto drops."""
    resolve = Resolver(template, params, pseudo, physical, session)
    s3 = session.client("s3")
    resources = template["Resources"]
    for logical, res in resources.items():
        if res["Type"] != "AWS::S3::Bucket":
            continue
        bucket = physical[logical]
        props = resolve({k: v for k, v in res.get("Properties", {}).items() if k in BUCKET_PROPERTIES_APPLIED})
        done = apply_bucket(s3, bucket, props)
        log(f"EMULATOR-ONLY {logical} ({bucket}): applied {', '.join(done)}")
    # moto's CloudFormation skips these resource types (a warning in its log).
    sqs, cw, ddb = session.client("sqs"), session.client("cloudwatch"), session.client("dynamodb")
    for logical, res in resources.items():
        if res["Type"] == "AWS::SQS::QueuePolicy":
            props = resolve(res["Properties"])
            for url in props["Queues"]:
                sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
            log(f"EMULATOR-ONLY {logical}: applied to {len(props['Queues'])} queue(s)")
        elif res["Type"] == "AWS::CloudWatch::Alarm":
            props = resolve(res["Properties"])
            alarm = {k: props[k] for k in ALARM_FIELDS if k in props}
            for k in ("Period", "EvaluationPeriods"):
                alarm[k] = int(alarm[k])
            alarm["Threshold"] = float(alarm["Threshold"])
            alarm["AlarmName"] = props.get("AlarmName") or f"{pseudo['AWS::StackName']}-{logical}"
            cw.put_metric_alarm(**alarm)
            log(f"EMULATOR-ONLY {logical}: alarm {alarm['AlarmName']}")
        elif res["Type"] == "AWS::Logs::MetricFilter":
            props = resolve(res["Properties"])
            name = props.get("FilterName") or f"{pseudo['AWS::StackName']}-{logical}"
            logs = session.client("logs")
            wanted = {
                "filterName": name, "filterPattern": props["FilterPattern"], "logGroupName": props["LogGroupName"],
                "metricTransformations": [
                    {k[0].lower() + k[1:]: v for k, v in m.items()} for m in props["MetricTransformations"]
                ],
            }
            current = [f for f in logs.describe_metric_filters(filterNamePrefix=name)["metricFilters"]
                       if f["filterName"] == name and f["logGroupName"] == wanted["logGroupName"]]
            if [{k: f.get(k) for k in wanted} for f in current] == [wanted]:
                log(f"EMULATOR-ONLY {logical}: metric filter {name} (unchanged)")
            else:
                # moto appends on every put (AWS replaces): start from none.
                for _ in current:
                    logs.delete_metric_filter(filterName=name, logGroupName=wanted["logGroupName"])
                logs.put_metric_filter(**wanted)
                log(f"EMULATOR-ONLY {logical}: metric filter {name}")
        elif res["Type"] == "AWS::CloudTrail::Trail":
            props = resolve(res["Properties"])
            ct = session.client("cloudtrail")
            name = props["TrailName"]
            if not any(t["Name"] == name for t in ct.list_trails().get("Trails", [])):
                ct.create_trail(
                    Name=name, S3BucketName=props["S3BucketName"],
                    IsMultiRegionTrail=bool(props.get("IsMultiRegionTrail", False)),
                    IncludeGlobalServiceEvents=bool(props.get("IncludeGlobalServiceEvents", True)),
                    EnableLogFileValidation=bool(props.get("EnableLogFileValidation", False)),
                )
            if props.get("EventSelectors"):
                selectors = [
                    {"ReadWriteType": s["ReadWriteType"], "IncludeManagementEvents": bool(s["IncludeManagementEvents"]),
                     "DataResources": s.get("DataResources", [])}
                    for s in props["EventSelectors"]
                ]
                ct.put_event_selectors(TrailName=name, EventSelectors=selectors)
            if props.get("IsLogging"):
                ct.start_logging(Name=name)
            log(f"EMULATOR-ONLY {logical}: trail {name}")
        elif res["Type"] == "AWS::DynamoDB::Table":
            pitr = res.get("Properties", {}).get("PointInTimeRecoverySpecification")
            if pitr:
                ddb.update_continuous_backups(
                    TableName=physical[logical],
                    PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": bool(pitr["PointInTimeRecoveryEnabled"])},
                )
                log(f"EMULATOR-ONLY {logical}: point-in-time recovery {'on' if pitr['PointInTimeRecoveryEnabled'] else 'off'}")
    # The emulator cannot run provided.al2023 Lambdas, yet moto "invokes" an enabled SQS event
    # source mapping on every SendMessage: the invocation fails, counts as a receive, and after
    # maxReceiveCount the message lands in the DLQ before the local runner (which stands in for
    # the Lambdas here) ever sees it. Keep the mappings (they are part of the deployment) but
    # disabled.
    lam = session.client("lambda")
    try:
        mappings = lam.list_event_source_mappings()["EventSourceMappings"]
    except ClientError as e:
        # moto with authorization on (INITIAL_NO_AUTH_ACTION_COUNT) miscomputes the
        # signature of Lambda's REST calls; nothing consumes queues on such an emulator.
        if "SignatureDoesNotMatch" not in str(e):
            raise
        log("EMULATOR-ONLY event source mappings: left as they are (this emulator refuses Lambda calls' signatures)")
        mappings = []
    for mapping in mappings:
        if mapping.get("State") != "Disabled":
            lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
        log(f"EMULATOR-ONLY event source mapping {mapping['EventSourceArn'].rsplit(':', 1)[-1]}: disabled (backend/local-runner consumes the queue)")
    # Bucket policies last: moto enforces them on object operations.
    for logical, res in resources.items():
        if res["Type"] != "AWS::S3::BucketPolicy":
            continue
        props = resolve(res["Properties"])
        policy, dropped = emulator_policy(props["PolicyDocument"])
        s3.put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(policy))
        left_out = "; ".join(f"{sid} ({why})" for sid, why in dropped) or "nothing"
        log(f"EMULATOR-ONLY {logical} ({props['Bucket']}): applied {len(policy['Statement'])} statement(s), left out {left_out}")


# ------------------------------------------------------------- the stack
TERMINAL_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}


def wait_stack(cf, stack, timeout):
    deadline = time.monotonic() + timeout
    while True:
        s = cf.describe_stacks(StackName=stack)["Stacks"][0]
        status = s["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            if status in TERMINAL_OK:
                return s
            reasons = []
            try:
                for e in cf.describe_stack_events(StackName=stack)["StackEvents"][:20]:
                    if e.get("ResourceStatusReason"):
                        reasons.append(f"  {e.get('LogicalResourceId')}: {e['ResourceStatusReason']}")
            except ClientError:
                pass
            raise DeployError(f"stack {stack} ended in {status}: {s.get('StackStatusReason', '')}\n" + "\n".join(reasons))
        if time.monotonic() >= deadline:
            raise DeployError(f"stack {stack} still {status} after {timeout}s")
        time.sleep(0.25)


def find_stack(cf, stack):
    try:
        return cf.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as e:
        if "does not exist" in str(e):
            return None
        raise


def upload_placeholder_code(s3, bucket, keys):
    """Lambda code objects the template points at. moto cannot run
    provided.al2023 functions; the local runner calls the handlers instead."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        s3.create_bucket(Bucket=bucket)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, "#!/bin/sh\necho 'placeholder: LabPipe handlers run locally through the runner' >&2\nexit 1\n")
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())


def default_endpoint():
    env = os.environ.get("AWS_ENDPOINT_URL")
    if env:
        return env
    port_file = REPO / ".labpipe" / "stack" / "port"
    if port_file.is_file():
        return f"http://127.0.0.1:{port_file.read_text().strip()}"
    raise DeployError("no emulator endpoint: pass --endpoint, or start one with 'scripts/stack.sh start'")


def deploy(endpoint, stack, overrides, timeout, template_path=TEMPLATE, region="us-east-1"):
    host = urlparse(endpoint).hostname
    if host not in LOCAL_HOSTS:
        raise DeployError(f"refusing endpoint {endpoint}: this script is for the local emulator only (deploy to AWS with CloudFormation)")
    if not stack or not stack.replace("-", "").isalnum() or stack.lower() != stack or not stack[0].isalpha():
        raise DeployError(f"stack name {stack!r} must be lowercase letters, digits and '-', starting with a letter (it is part of the bucket names)")

    session = boto3.session.Session(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        region_name=region,
    )
    cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60, s3={"addressing_style": "path"})
    orig_client = session.client

    def client(name, **kw):
        return orig_client(name, endpoint_url=endpoint, config=cfg, **kw)

    session.client = client  # every client of this session talks to the emulator
    cf, s3 = session.client("cloudformation"), session.client("s3")

    body, template = load_template(template_path)
    params = {k: str(v["Default"]) for k, v in template.get("Parameters", {}).items() if "Default" in v}
    params["LambdaCodeBucket"] = f"{stack}-lambda-code-local"
    params["AlarmEmail"] = "none"  # required by the template; nobody to mail on the emulator
    params.update(overrides)
    unknown = set(overrides) - set(template.get("Parameters", {}))
    if unknown:
        raise DeployError(f"unknown template parameter(s): {', '.join(sorted(unknown))}")

    upload_placeholder_code(s3, params["LambdaCodeBucket"], {params["IngestCodeKey"], params["PreprocessCodeKey"]})

    cf_params = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(params.items())]
    caps = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
    t0 = time.monotonic()
    existing = find_stack(cf, stack)
    if existing and existing["StackStatus"] in ("ROLLBACK_COMPLETE", "DELETE_COMPLETE"):
        log(f"stack {stack} is {existing['StackStatus']}: deleting it first")
        cf.delete_stack(StackName=stack)
        existing = None
    if existing is None:
        log(f"creating stack {stack} at {endpoint}")
        cf.create_stack(StackName=stack, TemplateBody=body, Parameters=cf_params, Capabilities=caps)
        summary = wait_stack(cf, stack, timeout)
    else:
        current_body = cf.get_template(StackName=stack)["TemplateBody"]
        current_params = {p["ParameterKey"]: p.get("ParameterValue") for p in existing.get("Parameters", [])}
        if (current_body if isinstance(current_body, str) else None) == body and current_params == params:
            log(f"stack {stack} is {existing['StackStatus']} with this template and parameters: nothing to update")
            summary = wait_stack(cf, stack, timeout)
        else:
            log(f"updating stack {stack}")
            try:
                cf.update_stack(StackName=stack, TemplateBody=body, Parameters=cf_params, Capabilities=caps)
            except ClientError as e:
                if "No updates are to be performed" not in str(e):
                    raise
            summary = wait_stack(cf, stack, timeout)
    log(f"stack {stack}: {summary['StackStatus']} in {time.monotonic() - t0:.1f}s")

    physical = {}
    for r in cf.describe_stack_resources(StackName=stack)["StackResources"]:
        # moto lists some resources (policies, alarms) without a logical id.
        if r.get("LogicalResourceId") and r.get("PhysicalResourceId"):
            physical[r["LogicalResourceId"]] = r["PhysicalResourceId"]
    account = session.client("sts").get_caller_identity()["Account"]
    pseudo = {
        "AWS::StackName": stack,
        "AWS::AccountId": account,
        "AWS::Region": region,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackId": summary["StackId"],
    }
    log("EMULATOR-ONLY step: applying what moto's CloudFormation ignores (never done on AWS)")
    emulator_only_step(session, template, params, pseudo, physical)

    return {o["OutputKey"]: o["OutputValue"] for o in summary.get("Outputs", [])}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", help="emulator URL (default: $AWS_ENDPOINT_URL, else the scripts/stack.sh instance)")
    ap.add_argument("--stack", default="labpipe", help="stack name, lowercase (default: labpipe)")
    ap.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="template parameter override")
    ap.add_argument("--outputs", default=str(REPO / ".labpipe" / "stack" / "outputs.json"), help="where to write the outputs JSON")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the stack (default 120)")
    args = ap.parse_args(argv)
    try:
        overrides = {}
        for p in args.param:
            if "=" not in p:
                raise DeployError(f"--param needs KEY=VALUE, got {p!r}")
            k, v = p.split("=", 1)
            overrides[k] = v
        endpoint = args.endpoint or default_endpoint()
        outputs = deploy(endpoint, args.stack, overrides, args.timeout, region=args.region)
    except (DeployError, ClientError) as e:
        print(f"deploy-local: error: {e}", file=sys.stderr)
        return 1
    text = json.dumps(outputs, indent=2, sort_keys=True)
    out = Path(args.outputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    log(f"outputs written to {out}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
