#!/usr/bin/env python3
"""What LabPipe costs on AWS per month, computed from the template, the code and a price table.

Standard library only. The inputs are read, not copied:

* `infra/template.yaml`: raw transition days and class, Object Lock retention, processed-bucket
  rules, Lambda memory, architecture and /tmp, log retention, alarm count, whether a VPC endpoint
  exists;
* `crates/lab/src/polling.rs`: the app's status polling schedule (first and longest interval);
* `docs/cost/measured.json`: request counts per session from a measured run
  (`docs/cost/measure.py`), with the counts that were derived from the code marked as such;
* `docs/cost/prices.json`: list prices, each with its source page and date.

    python3 docs/cost/model.py              # prints the Markdown tables
    python3 docs/cost/model.py --check FILE # exit 1 if FILE's generated block differs
    python3 docs/cost/model.py --write FILE # rewrite FILE's generated block

The generated block sits between `<!-- cost-model:begin -->` and `<!-- cost-model:end -->`.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BEGIN, END = "<!-- cost-model:begin -->", "<!-- cost-model:end -->"

GIB = 2**30
DAYS_PER_MONTH = 365 / 12
SECONDS_PER_MONTH = DAYS_PER_MONTH * 86400
BRIEF_SESSIONS_PER_DAY = 10


# ------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class Template:
    raw_transition_days: int
    raw_transition_class: str
    raw_retention_days: int
    raw_noncurrent_transition: bool
    processed_noncurrent_days: int
    abort_incomplete_days: int
    preprocess_memory_mb: int
    ingest_memory_mb: int
    preprocess_tmp_mb: int
    preprocess_timeout_s: int
    architecture: str
    log_retention_days: int
    alarms: int
    has_vpc_endpoint: bool
    trail_write_only: bool


def _section(text: str, name: str, indent: int = 2) -> str:
    """The lines of the YAML mapping `name` at `indent` spaces (its body only)."""
    lines = text.split("\n")
    head = " " * indent + name + ":"
    try:
        start = lines.index(head) + 1
    except ValueError:
        raise SystemExit(f"model: {name} is not in infra/template.yaml") from None
    body = []
    for line in lines[start:]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        body.append(line)
    return "\n".join(body)


def _default(text: str, parameter: str) -> str:
    m = re.search(r"^    Default: (.+)$", _section(text, parameter), re.M)
    if not m:
        raise SystemExit(f"model: no Default for parameter {parameter} in infra/template.yaml")
    return m.group(1).strip()


def read_template(path: Path) -> Template:
    text = path.read_text(encoding="utf-8")
    raw_rule = re.search(r"- Id: raw-to-glacier-ir\n((?:            .*\n)+)", text)
    if not raw_rule:
        raise SystemExit("model: the raw lifecycle rule raw-to-glacier-ir is not in the template")
    storage_class = re.search(r"StorageClass: (\w+)", raw_rule.group(1)).group(1)
    ingest = re.search(r"MemorySize: (\d+)", _section(text, "IngestFunction"))
    preprocess = _section(text, "PreprocessFunction")
    return Template(
        raw_transition_days=int(_default(text, "RawTransitionDays")),
        raw_transition_class=storage_class,
        raw_retention_days=int(_default(text, "RawRetentionDays")),
        raw_noncurrent_transition="NoncurrentVersionTransitions" in raw_rule.group(1),
        processed_noncurrent_days=int(_default(text, "ProcessedNoncurrentExpirationDays")),
        abort_incomplete_days=int(_default(text, "AbortIncompleteUploadDays")),
        preprocess_memory_mb=int(_default(text, "PreprocessMemoryMB")),
        ingest_memory_mb=int(ingest.group(1)),
        preprocess_tmp_mb=int(re.search(r"EphemeralStorage:\n\s+Size: (\d+)", preprocess).group(1)),
        preprocess_timeout_s=int(re.search(r"Timeout: (\d+)", preprocess).group(1)),
        architecture=_default(text, "LambdaArchitecture"),
        log_retention_days=int(_default(text, "LogRetentionDays")),
        alarms=len(re.findall(r"Type: AWS::CloudWatch::Alarm\b", text)),
        has_vpc_endpoint="AWS::EC2::VPCEndpoint" in text,
        trail_write_only="ReadWriteType: WriteOnly" in text,
    )


@dataclass(frozen=True)
class Polling:
    first_s: int
    max_s: int


def read_polling(path: Path) -> Polling:
    text = path.read_text(encoding="utf-8")

    def secs(name: str) -> int:
        m = re.search(rf"const {name}: Duration = Duration::from_secs\((\d+)\)", text)
        if not m:
            raise SystemExit(f"model: {name} not found in {path}")
        return int(m.group(1))

    return Polling(first_s=secs("FIRST_INTERVAL"), max_s=secs("MAX_INTERVAL"))


def load_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ the model
@dataclass
class Inputs:
    template: Template
    polling: Polling
    prices: dict
    measured: dict

    def price(self, key: str) -> float:
        return float(self.prices[key]["usd"])

    def per_session(self, group: str) -> dict[str, float]:
        return {k: float(v) for k, v in self.measured[group]["requests"].items()}

    def figure(self, key: str) -> float:
        return float(self.measured["figures"][key]["value"])


TIER1 = {
    "PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
    "ListObjectsV2", "ListParts", "ListMultipartUploads", "ListObjectVersions", "CopyObject",
}
TIER2 = {"GetObject", "HeadObject", "GetObjectAttributes", "HeadBucket"}
S3_WRITES = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}


def s3_request_cost(inp: Inputs, requests: dict[str, float]) -> float:
    t1 = sum(n for op, n in requests.items() if op in TIER1)
    t2 = sum(n for op, n in requests.items() if op in TIER2)
    return t1 / 1000 * inp.price("s3_tier1_per_1000") + t2 / 1000 * inp.price("s3_tier2_per_1000")


def month_lines(inp: Inputs, load: float, year: float) -> dict[str, float]:
    """Cost lines (USD) of the month that ends year `year`, at `load` × the brief's sessions."""
    t, m = inp.template, inp.measured
    per_day = BRIEF_SESSIONS_PER_DAY * load
    per_month = per_day * DAYS_PER_MONTH
    day = 365 * year - DAYS_PER_MONTH / 2  # the middle of that month
    sessions_so_far = per_day * day
    session_gib = m["session_bytes"] / GIB
    processed_gib = session_gib * inp.figure("processed_to_raw_ratio")
    objects = inp.figure("raw_objects_per_session")
    small_objects = inp.figure("raw_objects_under_128kb_per_session")

    # Raw: Standard for the transition days, then the transition class; never deleted (Object Lock
    # retention and no expiration rule), and write-once, so no noncurrent versions to pay for.
    standard_days = min(day, t.raw_transition_days)
    cold_days = max(0.0, day - t.raw_transition_days)
    raw_standard = per_day * standard_days * session_gib * inp.price("s3_standard_gb_month")
    # Glacier IR bills objects under 128 KB as 128 KB (metadata.txt, manifest.json).
    cold_gib = per_day * cold_days * (session_gib + small_objects * 128 * 1024 / GIB)
    raw_cold = cold_gib * inp.price("s3_glacier_ir_gb_month")
    transitions = per_month * objects / 1000 * inp.price("s3_glacier_ir_transition_per_1000")

    processed = sessions_so_far * processed_gib * inp.price("s3_standard_gb_month")

    upload = per_month * s3_request_cost(inp, inp.per_session("upload"))
    backend_s3 = per_month * s3_request_cost(inp, inp.per_session("backend_s3"))
    sync = per_month * s3_request_cost(inp, inp.per_session("sync_s3"))

    # Lambda at the template's memory, on its architecture, for the measured/derived durations.
    gb_s_price = inp.price("lambda_arm_gb_second" if t.architecture == "arm64" else "lambda_x86_gb_second")
    pre_s = inp.figure("preprocess_seconds_per_session")
    ing_s = inp.figure("ingest_seconds_per_session")
    gb_s = pre_s * t.preprocess_memory_mb / 1024 + ing_s * t.ingest_memory_mb / 1024
    extra_tmp_gb = max(0, t.preprocess_tmp_mb - 512) / 1024
    lam = per_month * (
        gb_s * gb_s_price
        + pre_s * extra_tmp_gb * inp.price("lambda_ephemeral_gb_second")
        + 2 / 1e6 * inp.price("lambda_per_million_requests")
    )

    # SQS: the pipeline's messages, and the pollers Lambda keeps on each queue (long polls).
    sqs_msgs = per_month * inp.figure("sqs_requests_per_session")
    pollers = inp.figure("sqs_idle_receives_per_month")
    sqs = (sqs_msgs + pollers) / 1e6 * inp.price("sqs_per_million")

    # DynamoDB: the pipeline's writes and reads, researchers' queries, storage + PITR.
    wru = per_month * inp.figure("catalog_wru_per_session")
    rru_pipeline = per_month * inp.figure("catalog_rru_per_session")
    table_gb = sessions_so_far * inp.figure("catalog_bytes_per_session") / 1e9
    scans = inp.figure("catalog_full_reads_per_day") * DAYS_PER_MONTH
    # A full read scans the sparse by_month index (sessions only), eventually consistent.
    rru_queries = scans * sessions_so_far * inp.figure("catalog_scan_bytes_per_session") / 4096 * 0.5
    ddb = (
        wru / 1e6 * inp.price("dynamodb_ondemand_write_per_million")
        + (rru_pipeline + rru_queries) / 1e6 * inp.price("dynamodb_ondemand_read_per_million")
        + table_gb * (inp.price("dynamodb_storage_gb_month") + inp.price("dynamodb_pitr_gb_month"))
    )

    poll = polling_rru(inp, load, sessions_so_far, stuck=False)
    app_poll = poll / 1e6 * inp.price("dynamodb_ondemand_read_per_million")

    log_gb = per_month * inp.figure("log_bytes_per_session") / 1e9
    kept_gb = log_gb * min(t.log_retention_days, day) / DAYS_PER_MONTH
    logs = (
        log_gb * inp.price("cloudwatch_logs_ingest_gb")
        + kept_gb * inp.price("cloudwatch_logs_storage_gb_month")
        + t.alarms * inp.price("cloudwatch_alarm_month")
    )

    writes = sum(n for op, n in inp.per_session("upload").items() if op in S3_WRITES)
    trail = per_month * writes / 1e5 * inp.price("cloudtrail_data_events_per_100k")

    nat = 0.0
    if not t.has_vpc_endpoint:
        synced_gib = per_month * processed_gib * inp.figure("syncs_per_processed_session")
        nat = synced_gib * inp.price("nat_gateway_gb") + 730 * inp.price("nat_gateway_hour")

    return {
        "S3 raw, Standard": raw_standard,
        f"S3 raw, {t.raw_transition_class} (locked, grows)": raw_cold,
        "S3 raw, lifecycle transitions": transitions,
        "S3 processed, Standard": processed,
        "S3 requests: upload": upload,
        "S3 requests: ingest + preprocess": backend_s3,
        "S3 requests: sync to EC2": sync,
        "Lambda (ingest + preprocess)": lam,
        "SQS": sqs,
        "DynamoDB: pipeline, queries, storage": ddb,
        "DynamoDB: app status polling": app_poll,
        "CloudWatch Logs + alarms": logs,
        "CloudTrail data events (raw writes)": trail,
        "S3 → EC2 transfer (same region)": 0.0,
        NAT_LINE: nat,
    }


def lab_pcs(inp: Inputs, load: float) -> float:
    """Lab PCs running the app: more sessions a day means more lab PCs, each recording the
    brief's load."""
    return max(1.0, BRIEF_SESSIONS_PER_DAY * load / inp.figure("sessions_per_day_per_lab_pc"))


def polling_rru(inp: Inputs, load: float, sessions_so_far: float, stuck: bool) -> float:
    """Read request units a month spent by the desktop app's status polling (all lab PCs).

    The app reads the sessions its schedule (crates/lab/src/polling.rs) says are due: settled
    sessions never again on a timer, moving ones in one BatchGetItem with a backoff from
    FIRST_INTERVAL to MAX_INTERVAL (eventually consistent: 0.5 RRU per item of up to 4 KB).
    `status_polling` in measured.json holds the items one lab PC reads in a month at the brief's
    load, measured by a test over a simulated 1 and 5 years that also proves the count does not
    grow with the lab folder. On each app start every session of the folder is read once.
    `stuck`: one session never settles and is read every MAX_INTERVAL all month.
    """
    pcs = lab_pcs(inp, load)
    load_per_pc = BRIEF_SESSIONS_PER_DAY * load / pcs
    measured = inp.measured["status_polling"]["items_read_per_month"]
    items = measured * load_per_pc / inp.measured["status_polling"]["sessions_per_day"]
    if stuck:
        items += SECONDS_PER_MONTH / inp.polling.max_s
    starts = inp.figure("app_starts_per_day") * DAYS_PER_MONTH
    items += starts * sessions_so_far / pcs
    return pcs * items * 0.5


# ------------------------------------------------------------------ rendering
NAT_LINE = "NAT gateway, only if the EC2 node reaches S3 through one (not in the total)"
COLUMNS = [(1, 1), (1, 3), (1, 5), (1, 10), (10, 1), (10, 5), (100, 1), (100, 5)]


def money(x: float) -> str:
    if x == 0:
        return "0"
    if x < 0.01:
        return "< 0.01"
    if x < 100:
        return f"{x:,.2f}"
    return f"{x:,.0f}"


def render(inp: Inputs) -> str:
    t = inp.template
    rows: dict[str, list[float]] = {}
    for load, year in COLUMNS:
        for name, usd in month_lines(inp, load, year).items():
            rows.setdefault(name, []).append(usd)
    head = "| USD per month | " + " | ".join(f"{load}× y{year}" for load, year in COLUMNS) + " |"
    out = [head, "|---|" + "---:|" * len(COLUMNS)]
    totals = [0.0] * len(COLUMNS)
    for name, values in rows.items():
        if name == NAT_LINE:
            continue
        out.append(f"| {name} | " + " | ".join(money(v) for v in values) + " |")
        totals = [a + b for a, b in zip(totals, values)]
    out.append("| **total** | " + " | ".join(f"**{money(v)}**" for v in totals) + " |")
    out.append(f"| {NAT_LINE} | " + " | ".join(money(v) for v in rows[NAT_LINE]) + " |")
    table = "\n".join(out)

    # Polling at the brief's load, with and without a session that never settles.
    poll_rows = ["| app status polling, USD per month (million read units) | 1× y1 | 1× y5 | 10× y5 |", "|---|---:|---:|---:|"]
    for label, stuck in [
        ("every session settles", False),
        ("one session stuck (never settles)", True),
    ]:
        cells = []
        for load, year in [(1, 1), (1, 5), (10, 5)]:
            so_far = BRIEF_SESSIONS_PER_DAY * load * (365 * year - DAYS_PER_MONTH / 2)
            rru = polling_rru(inp, load, so_far, stuck)
            usd = rru / 1e6 * inp.price("dynamodb_ondemand_read_per_million")
            cells.append(f"{money(usd)} ({rru / 1e6:,.1f} M)")
        poll_rows.append(f"| {label} | " + " | ".join(cells) + " |")

    # One-off: reprocess a year of raw data that is already in the cold class.
    session_gib = inp.measured["session_bytes"] / GIB
    year_sessions = BRIEF_SESSIONS_PER_DAY * 365
    gets = year_sessions * inp.figure("raw_data_objects_per_session")
    retrieval = (
        year_sessions * session_gib * inp.price("s3_glacier_ir_retrieval_gb")
        + gets / 1000 * inp.price("s3_glacier_ir_get_per_1000")
    )
    gb_s_price = inp.price("lambda_arm_gb_second" if t.architecture == "arm64" else "lambda_x86_gb_second")
    compute = year_sessions * inp.figure("preprocess_seconds_per_session") * t.preprocess_memory_mb / 1024 * gb_s_price
    outputs = year_sessions * session_gib * inp.figure("processed_to_raw_ratio") * inp.price("s3_standard_gb_month")
    oneoff = [
        "| one-off: reprocess one year of raw data (1×) | USD |",
        "|---|---:|",
        f"| {t.raw_transition_class} retrieval ({year_sessions * session_gib:,.0f} GiB) + GET requests | {money(retrieval)} |",
        f"| Lambda, {year_sessions:,} runs × {inp.figure('preprocess_seconds_per_session'):g} s × {t.preprocess_memory_mb} MB | {money(compute)} |",
        f"| the new version's outputs, per month kept | {money(outputs)} |",
    ]
    facts = [
        f"Inputs read from `infra/template.yaml`: raw → {t.raw_transition_class} after {t.raw_transition_days} days "
        f"(noncurrent versions too: {'yes' if t.raw_noncurrent_transition else 'no'}), Object Lock {t.raw_retention_days} days and no "
        f"expiration rule (raw storage only grows), processed noncurrent versions expire after {t.processed_noncurrent_days} days, "
        f"preprocess Lambda {t.preprocess_memory_mb} MB / {t.preprocess_tmp_mb} MB /tmp on {t.architecture}, ingest {t.ingest_memory_mb} MB, "
        f"logs kept {t.log_retention_days} days, {t.alarms} alarms, VPC endpoint: {'yes' if t.has_vpc_endpoint else 'none'}. "
        f"From `crates/lab/src/polling.rs`: a moving session is read {inp.polling.first_s} s after a change, then with a backoff up to every {inp.polling.max_s} s; settled sessions are not read again (items read per month measured by its test: {inp.measured['status_polling']['items_read_per_month']:,} at {inp.measured['status_polling']['sessions_per_day']} sessions a day).",
    ]
    run = inp.measured.get("measured_run")
    kinds = {}
    for key, fig in inp.measured["figures"].items():
        kinds.setdefault(fig["kind"], []).append(f"`{key}`")
    counts = (
        "Per-session S3 requests: upload — "
        + (f"measured on {run['date']} (`{run['command']}`: {run['what']})" if run and inp.measured["upload"]["source"].startswith("measured") else "derived from the code, not yet measured")
        + "; ingest + preprocess and sync — derived from the code. Other figures in `docs/cost/measured.json`: "
        + "; ".join(f"{kind}: {', '.join(sorted(keys))}" for kind, keys in sorted(kinds.items()))
        + "."
    )
    return "\n\n".join([table, "\n".join(poll_rows), "\n".join(oneoff), facts[0], counts])


def build_inputs() -> Inputs:
    return Inputs(
        template=read_template(REPO / "infra" / "template.yaml"),
        polling=read_polling(REPO / "crates" / "lab" / "src" / "polling.rs"),
        prices=load_json(HERE / "prices.json"),
        measured=load_json(HERE / "measured.json"),
    )


def block(text: str) -> tuple[int, int]:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"model: no {BEGIN} … {END} block")
    return start + len(BEGIN), end


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", type=Path, metavar="FILE")
    group.add_argument("--write", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    generated = render(build_inputs())
    if not args.check and not args.write:
        print(generated)
        return 0
    path = args.check or args.write
    text = path.read_text(encoding="utf-8")
    a, b = block(text)
    wanted = "\n" + generated + "\n"
    if args.write:
        path.write_text(text[:a] + wanted + text[b:], encoding="utf-8")
        return 0
    if text[a:b] != wanted:
        diff = difflib.unified_diff(
            text[a:b].splitlines(), wanted.splitlines(), "in " + str(path), "model.py prints", lineterm="", n=0
        )
        print("\n".join(diff))
        print(f"{path}: the cost tables differ from the model's; run: python3 docs/cost/model.py --write {path}")
        return 1
    print(f"{path}: cost tables match the model")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
