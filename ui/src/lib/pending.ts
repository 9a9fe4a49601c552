// Words and order for the Pending view. Whether a session may be uploaded is decided in Rust
// (labpipe_lab::ready) and arrives as an `Eligibility`; this file only puts things into words.
import type { Eligibility } from "./bindings/Eligibility";
import type { PendingSession } from "./bindings/PendingSession";
import type { PipelineState } from "./bindings/PipelineState";
import type { Verdict } from "./bindings/Verdict";
import type { Finding } from "./bindings/Finding";
import { stateLabel } from "./transfers";

export const VERDICTS: Verdict[] = ["pass", "warn", "wait", "fail"];

export const VERDICT_LABEL: Record<Verdict, string> = {
  pass: "ready",
  warn: "ready, with warnings",
  wait: "still being written",
  fail: "blocked",
};

/** Newest recording first; folders without a valid date last, by name. */
export function sortPending(rows: PendingSession[]): PendingSession[] {
  return [...rows].sort((a, b) => {
    if (a.recorded_at && b.recorded_at) return b.recorded_at.localeCompare(a.recorded_at);
    if (a.recorded_at) return -1;
    if (b.recorded_at) return 1;
    return a.session.localeCompare(b.session);
  });
}

export function counts(rows: PendingSession[]): Record<Verdict, number> {
  const c: Record<Verdict, number> = { pass: 0, warn: 0, wait: 0, fail: 0 };
  for (const r of rows) c[r.verdict]++;
  return c;
}

/** The findings worth showing on the row itself: errors and warnings, errors first. */
export function problems(findings: Finding[]): Finding[] {
  const rank = { error: 0, warning: 1, info: 2 } as const;
  return findings.filter((f) => f.severity !== "info").sort((a, b) => rank[a.severity] - rank[b.severity]);
}

/** Why the Upload button is off (its tooltip), or what it does. */
export function eligibilityText(e: Eligibility | undefined): string {
  if (!e) return "Checking…";
  switch (e.kind) {
    case "ready": return e.again ? "Upload again; it continues from where it stopped" : "Upload this session";
    case "blocked": return e.verdict === "wait" ? "Still being written; checked again when quiet" : "Fix the problems first";
    case "on_its_way": return `Already on its way (${stateLabel(e.state)})`;
    case "uploaded": return "Already uploaded: raw data is kept as it was sent";
  }
}

/** Where a session is in the pipeline, in words, and the badge class that goes with it. */
export function pipelineLabel(p: PipelineState): { text: string; tone: "pass" | "warn" | "fail" | "wait" } {
  if (p.stuck) return { text: "stuck in the pipeline", tone: "fail" };
  switch (p.status) {
    case "UPLOADED": return { text: "uploaded, waiting for the pipeline", tone: "wait" };
    case "CATALOGED": return { text: "in the catalog, queued for processing", tone: "wait" };
    case "PROCESSING": return { text: "processing…", tone: "wait" };
    case "PROCESSED": return { text: p.pipeline_version ? `processed (v${p.pipeline_version})` : "processed", tone: "pass" };
    case "FAILED": return { text: "failed in the pipeline", tone: "fail" };
    case "REJECTED": return { text: "rejected", tone: "fail" };
    default: return { text: p.status.toLowerCase(), tone: "wait" };
  }
}

/** Where a finding points, in words: "metadata.txt, line 4". */
export function findingPlace(f: { file?: string | null; line?: number | null }): string {
  if (f.file && f.line) return `${f.file}, line ${f.line}`;
  return f.file ?? "";
}
