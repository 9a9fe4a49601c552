// State logic of the Transfers view: what a state is called, which buttons it offers, and how
// retries read. The states themselves are decided in Rust (src-tauri/src/transfers.rs).

const LABEL: Record<string, string> = {
  queued: "waiting",
  running: "uploading",
  paused: "paused",
  done: "done",
  failed: "failed",
  cancelled: "cancelled",
};

export function stateLabel(state: string): string {
  return LABEL[state] ?? state;
}

/** Not finished: waiting, uploading or held by a pause. */
export function isActive(state: string): boolean {
  return state === "queued" || state === "running" || state === "paused";
}

export interface TransferActions {
  /** Hold it: a running upload stops, keeping what is already in the cloud. */
  pause: boolean;
  /** Back into the queue after a pause. */
  resume: boolean;
  /** Take it off the active list. */
  cancel: boolean;
  /** Upload a failed or cancelled session again (it resumes from the journal too). */
  again: boolean;
}

export function actions(state: string): TransferActions {
  return {
    pause: state === "queued" || state === "running",
    resume: state === "paused",
    cancel: isActive(state),
    again: state === "failed" || state === "cancelled",
  };
}

/** "1 retry — connection reset", "2 retries — HTTP 503 SlowDown"; empty when nothing was retried. */
export function retriesText(count: number, lastReason: string | null | undefined): string {
  if (!(count > 0)) return "";
  const n = count === 1 ? "1 retry" : `${count} retries`;
  return lastReason ? `${n} — ${lastReason}` : n;
}

/** The header line: "2 in the queue · 1 paused", or null when nothing is active. */
export function queueSummary(states: string[]): string | null {
  const waiting = states.filter((s) => s === "queued" || s === "running").length;
  const paused = states.filter((s) => s === "paused").length;
  const parts = [waiting ? `${waiting} in the queue` : "", paused ? `${paused} paused` : ""].filter(Boolean);
  return parts.length ? parts.join(" · ") : null;
}
