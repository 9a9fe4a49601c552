// State logic of the Pending view: order, counts, what a row may do.
import type { PendingSession } from "./bindings/PendingSession";
import type { PipelineState } from "./bindings/PipelineState";
import type { TransferView } from "./bindings/TransferView";

export type Verdict = "pass" | "warn" | "wait" | "fail";

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
  for (const r of rows) c[r.verdict as Verdict]++;
  return c;
}

/** The upload state of a session from the transfer list: queued, running, done, failed, cancelled. */
export function transferState(transfers: TransferView[], session: string): string | null {
  return transfers.find((t) => t.session === session)?.state ?? null;
}

/**
 * A session may be uploaded when its checks let it, it is not on its way already and the
 * pipeline does not know it (raw data is write-once: a session in the catalog is never sent again).
 */
export function canUpload(row: PendingSession, state: string | null, pipeline: PipelineState | null = null): boolean {
  if (pipeline) return false;
  return (row.verdict === "pass" || row.verdict === "warn") && !["queued", "running", "paused", "done"].includes(state ?? "");
}

/** The sessions "Upload all ready" would queue. */
export function readyToUpload(rows: PendingSession[], transfers: TransferView[], pipeline: Record<string, PipelineState> = {}): PendingSession[] {
  return rows.filter((r) => canUpload(r, transferState(transfers, r.session), pipeline[r.session] ?? null));
}

/** Where a session is in the pipeline, in words, and the badge class that goes with it. */
export function pipelineLabel(p: PipelineState): { text: string; tone: "pass" | "warn" | "fail" | "wait" } {
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
export function findingPlace(f: { file: string | null; line: number | null }): string {
  if (f.file && f.line) return `${f.file}, line ${f.line}`;
  return f.file ?? "";
}
