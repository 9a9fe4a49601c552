// Words for the Transfers view. The states and what each allows (`TransferView.actions`) are
// decided in Rust (labpipe_lab::progress); this file only puts them into words.
import type { TransferState } from "./bindings/TransferState";
import type { TransferView } from "./bindings/TransferView";

const LABEL: Record<TransferState, string> = {
  queued: "waiting",
  running: "uploading",
  paused: "paused",
  interrupted: "interrupted",
  done: "done",
  failed: "failed",
  cancelled: "cancelled",
};

export function stateLabel(state: TransferState): string {
  return LABEL[state] ?? state;
}

/** "1 retry — connection reset", "2 retries — HTTP 503 SlowDown"; empty when nothing was retried. */
export function retriesText(count: number, lastReason: string | null | undefined): string {
  if (!(count > 0)) return "";
  const n = count === 1 ? "1 retry" : `${count} retries`;
  return lastReason ? `${n} — ${lastReason}` : n;
}

/** The header line: "2 in the queue · 1 paused", or null when nothing is active. */
export function queueSummary(transfers: TransferView[]): string | null {
  const active = transfers.filter((t) => t.actions.active);
  const paused = active.filter((t) => t.state === "paused").length;
  const waiting = active.length - paused;
  const parts = [waiting ? `${waiting} in the queue` : "", paused ? `${paused} paused` : ""].filter(Boolean);
  return parts.length ? parts.join(" · ") : null;
}
