"""Compares what the Windows build of labpipe (run under Wine) did with what the Linux build did.

Called by scripts/cross-windows.sh, one subcommand per comparison; each prints one line per
difference and a one-line result, and exits 1 when anything differs, so the stage fails on the
first platform difference instead of hoping there is none.

  check LINUX.json WINDOWS.json [SESSION…]
                                       `labpipe check --json` of the same folders (but SESSION…)
  tree LINUX_DIR WINDOWS_DIR           two generated lab folders, file by file (names, bytes)
  buckets ENDPOINT LINUX_B WINDOWS_B   every object of two buckets: keys, bytes, checksums,
                                       manifests (all but created_at and uploaded_by's values)
  summary LINUX.jsonl WINDOWS.jsonl    the closing `summary` events of two `upload --json` runs
"""

import hashlib
import json
import os
import re
import sys


def fail_or_pass(what, diffs):
    for d in diffs[:40]:
        print(f"  differs: {d}")
    if len(diffs) > 40:
        print(f"  … and {len(diffs) - 40} more differences")
    if diffs:
        print(f"{what}: {len(diffs)} difference(s) between the Linux and the Windows build")
        return 1
    return 0


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def normalise_report(r):
    """A check report with its path in `/` form, the only field allowed to differ by platform, and
    the age of a just-written file (`changed 2 s ago`) left out: the two runs are seconds apart."""
    r = dict(r)
    r["path"] = r.get("path", "").replace("\\", "/")
    r["findings"] = [
        {**f, "message": re.sub(r"changed \d+ s ago", "changed N s ago", f.get("message", ""))}
        for f in r.get("findings", [])
    ]
    return r


def cmd_check(linux_path, windows_path, skip=()):
    linux = {r["session"]: normalise_report(r) for r in load_json(linux_path) if r["session"] not in skip}
    windows = {r["session"]: normalise_report(r) for r in load_json(windows_path) if r["session"] not in skip}
    for s in skip:
        print(f"check: {s} not compared (a unix symlink, which Wine shows as its target)")
    diffs = []
    for s in sorted(set(linux) | set(windows)):
        if s not in windows:
            diffs.append(f"{s}: only the Linux build reports it")
        elif s not in linux:
            diffs.append(f"{s}: only the Windows build reports it")
        elif linux[s] != windows[s]:
            for k in sorted(set(linux[s]) | set(windows[s])):
                if linux[s].get(k) != windows[s].get(k):
                    diffs.append(f"{s}.{k}: linux {json.dumps(linux[s].get(k))} windows {json.dumps(windows[s].get(k))}")
    rc = fail_or_pass("check", diffs)
    if rc == 0:
        verdicts = {}
        for r in linux.values():
            verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
        counts = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
        print(f"check: {len(linux)} sessions, verdicts, findings and metadata equal ({counts})")
    return rc


def tree(root):
    """relative `/` path → (size, SHA-256) of every regular file under root (symlinks skipped)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                continue
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            h = hashlib.sha256()
            with open(full, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            out[rel] = (os.path.getsize(full), h.hexdigest())
    return out


def cmd_tree(linux_dir, windows_dir, skip=()):
    linux, windows = tree(linux_dir), tree(windows_dir)
    # Sessions the generator writes only where the platform allows (symbolic links: unix).
    for prefix in skip:
        linux = {k: v for k, v in linux.items() if not k.startswith(prefix + "/")}
    diffs = []
    for p in sorted(set(linux) | set(windows)):
        if linux.get(p) != windows.get(p):
            diffs.append(f"{p}: linux {linux.get(p)} windows {windows.get(p)}")
    rc = fail_or_pass("generate", diffs)
    if rc == 0:
        total = sum(size for size, _ in linux.values())
        print(f"generate: {len(linux)} files, {total} bytes, byte-identical")
    return rc


def objects(s3, bucket):
    """key → (bytes, SHA-256, stored CRC64NVME, content type) of every object in the bucket."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            got = s3.get_object(Bucket=bucket, Key=o["Key"], ChecksumMode="ENABLED")
            body = got["Body"].read()
            out[o["Key"]] = {
                "body": body,
                "sha256": hashlib.sha256(body).hexdigest(),
                "crc64nvme": got.get("ChecksumCRC64NVME"),
                "content_type": got.get("ContentType"),
            }
    return out


def manifest_without_time(body):
    m = json.loads(body)
    m.pop("created_at", None)
    # The uploading machine (host, user, rig) differs by machine by design; its shape is the
    # same type on both (labpipe_core::UploadedBy) and is required to be present on both.
    if ("uploaded_by" in m) is not True:
        raise SystemExit("a manifest without uploaded_by: every upload records its machine")
    m["uploaded_by"] = sorted(m["uploaded_by"])
    # Version ids are the bucket's, unique per object; both buckets are unversioned, so absent.
    return m


def cmd_buckets(endpoint, linux_bucket, windows_bucket):
    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}),
    )
    linux, windows = objects(s3, linux_bucket), objects(s3, windows_bucket)
    diffs = []
    for key in sorted(set(linux) | set(windows)):
        a, b = linux.get(key), windows.get(key)
        if a is None or b is None:
            diffs.append(f"{key}: only in the {'Windows' if a is None else 'Linux'} build's bucket")
            continue
        if key.endswith("/manifest.json"):
            ma, mb = manifest_without_time(a["body"]), manifest_without_time(b["body"])
            if ma != mb:
                for k in sorted(set(ma) | set(mb)):
                    if ma.get(k) != mb.get(k):
                        diffs.append(f"{key} field {k}: linux {json.dumps(ma.get(k))[:200]} windows {json.dumps(mb.get(k))[:200]}")
            continue
        for field in ("sha256", "crc64nvme", "content_type"):
            if a[field] != b[field]:
                diffs.append(f"{key} {field}: linux {a[field]} windows {b[field]}")
    rc = fail_or_pass("upload", diffs)
    if rc == 0:
        data = [k for k in linux if not k.endswith("/manifest.json")]
        sessions = {k.split("/")[1] for k in linux}
        total = sum(len(linux[k]["body"]) for k in data)
        print(
            f"upload: {len(sessions)} sessions, {len(data)} objects + {len(linux) - len(data)} manifests, "
            f"{total} bytes; keys, bytes, SHA-256, CRC64NVME and manifests (but created_at and uploaded_by's values) equal"
        )
        if not data:
            print("upload: nothing was uploaded, so nothing was compared")
            return 1
    return rc


def last_summary(path):
    summary = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                ev = json.loads(line)
                if ev.get("event") == "summary":
                    summary = ev
    if summary is None:
        raise SystemExit(f"{path}: no summary event; the run's output is above")
    return summary


def cmd_summary(linux_path, windows_path):
    a, b = last_summary(linux_path), last_summary(windows_path)
    # Seconds and rates are the machine's; retries depend on the emulator's mood.
    ignore = {"event", "seconds", "retries", "bytes_per_sec", "elapsed_secs"}
    diffs = [
        f"summary {k}: linux {a.get(k)} windows {b.get(k)}"
        for k in sorted(set(a) | set(b))
        if k not in ignore and a.get(k) != b.get(k)
    ]
    rc = fail_or_pass("summary", diffs)
    if rc == 0:
        shown = {k: v for k, v in a.items() if k not in ignore}
        print(f"summary: equal {json.dumps(shown, sort_keys=True)}")
    return rc


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "check" and len(args) >= 2:
        return cmd_check(args[0], args[1], skip=args[2:])
    if cmd == "tree" and len(args) >= 2:
        return cmd_tree(args[0], args[1], skip=args[2:])
    if cmd == "buckets" and len(args) == 3:
        return cmd_buckets(*args)
    if cmd == "summary" and len(args) == 2:
        return cmd_summary(*args)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
