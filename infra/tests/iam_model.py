"""The template's IAM, read statically: which statements a role has, and
whether they allow one request as AWS's policy evaluation would (explicit
Deny wins, then an Allow whose action, resource and conditions match).

It evaluates the condition operators the template uses (Null, Bool,
BoolIfExists, StringEquals, StringNotEquals, StringLike, ArnEquals,
ArnNotEquals) against a request context the caller states (e.g.
{"s3:if-none-match": "*"}); a key the context lacks is absent, as in AWS: an
operator on an absent key is false, except Null, the IfExists forms and the
negated operators (true).
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
"""

import fnmatch
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "infra"))

from deploy_local import load_template  # noqa: E402

TEMPLATE = REPO / "infra" / "template.yaml"
PSEUDO = {
    "AWS::StackName": "labpipe",
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
}
ROLES = ("UploaderRole", "ResearcherRole", "Ec2ReaderRole", "IngestFunctionRole", "PreprocessFunctionRole", "BreakGlassRole")


class Template:
    def __init__(self, path=TEMPLATE):
        self.text, self.doc = load_template(path)
        self.resources = self.doc["Resources"]
        self.params = {k: v.get("Default") for k, v in self.doc.get("Parameters", {}).items()}

    # ------------------------------------------------------------ resolve
    def physical(self, logical):
        res = self.resources[logical]
        props = res.get("Properties", {})
        kind = res["Type"]
        if kind == "AWS::S3::Bucket":
            return self.resolve(props["BucketName"])
        if kind == "AWS::Logs::LogGroup":
            return self.resolve(props["LogGroupName"])
        return logical  # a stand-in name, stable across the template

    def arn(self, logical):
        kind = self.resources[logical]["Type"]
        p, region, account = PSEUDO["AWS::Partition"], PSEUDO["AWS::Region"], PSEUDO["AWS::AccountId"]
        name = self.physical(logical)
        return {
            "AWS::S3::Bucket": f"arn:{p}:s3:::{name}",
            "AWS::DynamoDB::Table": f"arn:{p}:dynamodb:{region}:{account}:table/{name}",
            "AWS::SQS::Queue": f"arn:{p}:sqs:{region}:{account}:{name}",
            "AWS::Logs::LogGroup": f"arn:{p}:logs:{region}:{account}:log-group:{name}:*",
            "AWS::IAM::Role": f"arn:{p}:iam::{account}:role/{name}",
            "AWS::IAM::ManagedPolicy": f"arn:{p}:iam::{account}:policy/{name}",
        }[kind]

    def ref(self, name):
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.params:
            return str(self.params[name])
        return self.physical(name)

    def resolve(self, node):
        if isinstance(node, list):
            return [self.resolve(x) for x in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, val), = node.items()
            if key == "Ref":
                return self.ref(val)
            if key == "Fn::GetAtt":
                logical, attr = val if isinstance(val, list) else val.split(".", 1)
                if attr == "Arn":
                    return self.arn(logical)
                return f"{logical}.{attr}"
            if key == "Fn::Sub":
                text = val if isinstance(val, str) else val[0]
                out, i = [], 0
                while (j := text.find("${", i)) >= 0:
                    out.append(text[i:j])
                    k = text.index("}", j)
                    expr = text[j + 2 : k]
                    if "." in expr and not expr.startswith("AWS::"):
                        out.append(self.resolve({"Fn::GetAtt": expr}))
                    else:
                        out.append(self.ref(expr))
                    i = k + 1
                out.append(text[i:])
                return "".join(out)
        return {k: self.resolve(v) for k, v in node.items()}

    # ----------------------------------------------------------- policies
    def role_statements(self, role):
        """Every identity-policy statement of a role: inline and managed
        policies of the template, resolved."""
        props = self.resources[role]["Properties"]
        out = []
        for pol in props.get("Policies", []):
            out += self.resolve(pol["PolicyDocument"])["Statement"]
        for ref in props.get("ManagedPolicyArns", []):
            logical = ref["Ref"]
            out += self.resolve(self.resources[logical]["Properties"]["PolicyDocument"])["Statement"]
        return out

    def bucket_policy_statements(self):
        out = []
        for res in self.resources.values():
            if res["Type"] == "AWS::S3::BucketPolicy":
                out += self.resolve(res["Properties"]["PolicyDocument"])["Statement"]
        return out

    def evaluate(self, role, action, resource, context=None):
        """("allow" | "deny" | "implicit-deny", Sid that decided) for `role`
        making a request `action` on `resource` with `context`."""
        return self.evaluate_principal(self.arn(role), self.role_statements(role), action, resource, context)

    def evaluate_principal(self, principal_arn, identity, action, resource, context=None):
        """The same for any principal (e.g. the deploy role of infra/deploy-role.yaml, an
        administrator) with the identity-policy statements given."""
        ctx = {"aws:PrincipalArn": principal_arn, "aws:SecureTransport": "true", **(context or {})}
        bucket = [s for s in self.bucket_policy_statements() if s["Effect"] == "Deny"]
        for s in identity + bucket:
            if s["Effect"] == "Deny" and matches(s, action, resource, ctx):
                return "deny", s.get("Sid", "?")
        for s in identity:
            if s["Effect"] == "Allow" and matches(s, action, resource, ctx):
                return "allow", s.get("Sid", "?")
        return "implicit-deny", None

    def allowing_sids(self, role, action, resource, context=None):
        ctx = {"aws:PrincipalArn": self.arn(role), "aws:SecureTransport": "true", **(context or {})}
        return [s.get("Sid") for s in self.role_statements(role) if s["Effect"] == "Allow" and matches(s, action, resource, ctx)]


def _as_list(v):
    return v if isinstance(v, list) else [v]


def _glob(pattern, action):
    """IAM action names match case-insensitively, `*` as a wildcard."""
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


def matches(statement, action, resource, ctx):
    if "Action" in statement and not any(_glob(a, action) for a in _as_list(statement["Action"])):
        return False
    if "NotAction" in statement and any(_glob(a, action) for a in _as_list(statement["NotAction"])):
        return False
    if "Resource" in statement and not any(fnmatch.fnmatchcase(resource, r) for r in _as_list(statement["Resource"])):
        return False
    return conditions_hold(statement.get("Condition", {}), ctx)


NEGATED = {"StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike"}


def conditions_hold(conditions, ctx):
    """AWS's rules for a key the request lacks: `…IfExists` holds, `Null` tests for it, a
    negated operator (StringNotEquals, ArnNotEquals, …) holds, every other operator fails.
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html"""
    for op, keys in conditions.items():
        base = op.removesuffix("IfExists")
        for key, expected in keys.items():
            expected = [str(e) for e in _as_list(expected)]
            present = key in ctx
            value = str(ctx.get(key, ""))
            if op == "Null":
                if (expected[0].lower() == "true") != (not present):
                    return False
                continue
            if not present:
                if base != op or base in NEGATED:
                    continue  # IfExists, or a negated operator: true on an absent key
                return False
            if base == "Bool":
                if value.lower() not in [e.lower() for e in expected]:
                    return False
            elif base in ("StringEquals", "ArnEquals"):
                if value not in expected:
                    return False
            elif base in ("StringLike", "ArnLike"):
                if not any(fnmatch.fnmatchcase(value, e) for e in expected):
                    return False
            elif base in ("ArnNotEquals", "StringNotEquals"):
                if value in expected:
                    return False
            else:
                raise AssertionError(f"condition operator {op} is not modelled here: add it")
    return True
