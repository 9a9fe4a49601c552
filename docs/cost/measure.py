#!/usr/bin/env python3
"""Measures the S3 requests of uploading one session, for the cost model (standard library only).

Starts a private emulator with `moto_server` of tests/python/local_emulator.py, as the Python
test suites do (its request log, `moto.log` in the run's temp folder, is what is counted),
deploys infra/template.yaml to it with scripts/deploy-local.sh, generates one session of the
brief's size with the built `labpipe dev generate`, uploads it with `labpipe upload --json`, and
counts the S3 operations in the emulator's log. Writes the counts, the object count and the date
into docs/cost/measured.json (group `upload`, `measured_run`); the other groups keep their
derived values. The emulator is stopped on exit.

    python3 docs/cost/measure.py [--bin PATH/TO/labpipe] [--size-mb 600]
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests" / "python"))
from local_emulator import VENV_BIN, moto_server  # noqa: E402

LINE = re.compile(r'"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/[\d.]+" (\d{3})')


def s3_operation(method: str, target: str) -> str | None:
    """The S3 operation of one path-style request line, or None for other services."""
    path, _, query = target.partition("?")
    params = dict(p.partition("=")[::2] for p in query.split("&") if p)
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0].startswith("moto-api"):
        return None
    on_key = len(parts) > 1
    if method == "PUT":
        if "partNumber" in params:
            return "UploadPart"
        return "PutObject" if on_key else "CreateBucket-or-config"
    if method == "POST":
        if "uploads" in params:
            return "CreateMultipartUpload"
        if "uploadId" in params:
            return "CompleteMultipartUpload"
        return "PostObject" if on_key else "DeleteObjects-or-other"
    if method == "HEAD":
        return "HeadObject" if on_key else "HeadBucket"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in params else "DeleteObject"
    if on_key:
        if "attributes" in params:
            return "GetObjectAttributes"
        if "uploadId" in params:
            return "ListParts"
        return "GetObject"
    if "uploads" in params:
        return "ListMultipartUploads"
    if "versions" in params:
        return "ListObjectVersions"
    if params.get("list-type") == "2":
        return "ListObjectsV2"
    return "ListObjects-or-config"


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def count(log: str, start: int, bucket: str) -> collections.Counter:
    """S3 operations on `bucket` in the request log after offset `start`."""
    ops: collections.Counter = collections.Counter()
    for line in log[start:].splitlines():
        m = LINE.search(ANSI.sub("", line))
        if not m or not (m.group(2) + "/").startswith(f"/{bucket}/") and not m.group(2).startswith(f"/{bucket}?"):
            continue  # other buckets; POST / is DynamoDB, SQS and the other JSON services
        op = s3_operation(m.group(1), m.group(2))
        if op:
            ops[op] += 1
    return ops


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_bin = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "debug" / "labpipe"
    parser.add_argument("--bin", type=Path, default=default_bin)
    parser.add_argument("--size-mb", type=int, default=600)
    args = parser.parse_args(argv)
    moto = VENV_BIN / "moto_server"
    if not args.bin.exists() or not moto.exists():
        print(f"measure: need {args.bin} (cargo build -p labpipe-cli) and {moto}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="labpipe-cost-"))
    try:
        with moto_server(work) as endpoint:
            return measure(args, endpoint, work / "moto.log", work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, endpoint: str, log_path: Path, work: Path) -> int:
    """Deploys, generates, uploads and counts on the emulator at `endpoint`, whose request log is
    `log_path`; writes measured.json."""
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="test",
               AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1")
    subprocess.run(
        ["bash", str(REPO / "scripts" / "deploy-local.sh"), "--endpoint", endpoint,
         "--outputs", str(work / "outputs.json")],
        env=env, capture_output=True, text=True, timeout=300, check=True,
    )
    outputs = json.loads((work / "outputs.json").read_text())
    lab = work / "lab"
    subprocess.run([str(args.bin), "dev", "generate", "--out", str(lab), "--count", "1",
                    "--size-mb", str(args.size_mb), "--seed", "7"], env=env, check=True,
                   capture_output=True, timeout=300)
    session = next(lab.iterdir())
    # The checks make a folder changed within the quiet period (60 s) wait: age it instead.
    old = time.time() - 600
    for p in [session, *session.rglob("*")]:
        os.utime(p, (old, old))
    start = len(log_path.read_text(errors="replace"))
    up = subprocess.run([str(args.bin), "upload", str(session), "--json", "--bucket", outputs["RawBucket"],
                         "--journal", str(work / "journal.db")], env=env, capture_output=True, text=True, timeout=900)
    if up.returncode != 0:
        print(up.stdout[-2000:], up.stderr[-2000:], file=sys.stderr)
        return 1
    time.sleep(1)
    ops = count(log_path.read_text(errors="replace"), start, outputs["RawBucket"])
    files = [p for p in session.rglob("*") if p.is_file()]
    measured = json.loads((HERE / "measured.json").read_text(encoding="utf-8"))
    measured["measured_run"] = {
        "date": datetime.date.today().isoformat(),
        "command": "python3 docs/cost/measure.py",
        "what": f"one generated {args.size_mb} MB session ({len(files)} files, "
                f"{sum(p.stat().st_size for p in files):,} bytes), uploaded with `labpipe upload --json` "
                "(default 16 MiB parts) to the emulator; S3 operations counted in its request log",
    }
    source = "measured (measured_run)"
    if ops.get("HeadObject"):
        # The emulator returns no checksum from CompleteMultipartUpload, so the upload reads
        # each completed object back once; AWS returns it (docs/upload.md). Kept, not
        # subtracted: the model then errs on the high side by a few HEADs.
        source += (f"; the {ops['HeadObject']} HeadObject are the emulator's (no checksum from "
                   "CompleteMultipartUpload), none on AWS")
    measured["upload"] = {"source": source, "requests": dict(sorted(ops.items()))}
    measured["figures"]["raw_objects_per_session"]["value"] = len(files) + 1
    measured["figures"]["raw_objects_per_session"]["kind"] = "measured"
    (HERE / "measured.json").write_text(json.dumps(measured, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(measured["upload"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
