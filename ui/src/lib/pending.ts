// Words and order for the Pending view. Whether a session may be uploaded is decided in Rust
// (labpipe_lab::ready) and arrives as an `Eligibility`; this file only puts things into words.
import type { Eligibility } from "./bindings/Eligibility";
import type { PendingSession } from "./bindings/PendingSession";
import type { PipelineState } from "./bindings/PipelineState";
import type { Finding } from "./bindings/Finding";
import { stateLabel } from "./transfers";

/** Newest recording first; folders without a valid date last, by name. */
export function sortPending(rows: PendingSession[]): PendingSession[] {
  return [...rows].sort((a, b) => {
    if (a.recorded_at && b.recorded_at) return b.recorded_at.localeCompare(a.recorded_at);
    if (a.recorded_at) return -1;
    if (b.recorded_at) return 1;
    return a.session.localeCompare(b.session);
  });
}

/** What the Pending header counts: each row once, by what can still be done with it. */
export type Standing = "ready" | "uploading" | "uploaded" | "changed" | "conflict" | "wait" | "blocked" | "checking";

export const STANDINGS: { key: Standing; label: string; badge: string }[] = [
  { key: "ready", label: "ready to upload", badge: "pass" },
  { key: "uploading", label: "uploading", badge: "wait" },
  { key: "uploaded", label: "uploaded", badge: "pass" },
  { key: "changed", label: "changed since upload", badge: "warn" },
  { key: "conflict", label: "name conflict", badge: "fail" },
  { key: "wait", label: "still being written", badge: "wait" },
  { key: "blocked", label: "blocked by checks", badge: "fail" },
  { key: "checking", label: "checking", badge: "wait" },
];

/** Where a row stands, from the eligibility the Rust side sent: "ready" is exactly what
 * "Upload all ready" takes. */
export function standing(e: Eligibility | undefined): Standing {
  if (!e) return "checking";
  switch (e.kind) {
    case "ready": return "ready";
    case "blocked": return e.verdict === "wait" ? "wait" : "blocked";
    case "on_its_way": return e.state === "done" ? "uploaded" : "uploading";
    case "uploaded": return "uploaded";
    case "changed_since_upload": return "changed";
    case "name_conflict": return "conflict";
  }
}

/** The header's counts; kinds without a row are left out. */
export function counts(rows: PendingSession[], eligibility: Record<string, Eligibility>): { key: Standing; label: string; badge: string; n: number }[] {
  const n: Record<string, number> = {};
  for (const r of rows) {
    const k = standing(eligibility[r.session]);
    n[k] = (n[k] ?? 0) + 1;
  }
  return STANDINGS.filter((s) => n[s.key]).map((s) => ({ ...s, n: n[s.key] }));
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
    case "changed_since_upload": return "Changed since upload: upload it as a correction";
    case "name_conflict": return "Another recording already uses this name: it is not uploaded under it";
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
