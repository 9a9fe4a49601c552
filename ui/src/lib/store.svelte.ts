// App-wide state, kept current by events from the Rust side.
import type { AppInfo } from "./bindings/AppInfo";
import type { Eligibility } from "./bindings/Eligibility";
import type { PendingSession } from "./bindings/PendingSession";
import type { PipelineState } from "./bindings/PipelineState";
import type { Settings } from "./bindings/Settings";
import type { TransferView } from "./bindings/TransferView";
import type { WatchInfo } from "./bindings/WatchInfo";
import { api, onEligibility, onPending, onPipeline, onTransfers, onWatch } from "./api";

export const app = $state({
  info: null as AppInfo | null,
  settings: null as Settings | null,
  pending: [] as PendingSession[],
  /** How the lab folder is watched: native events, or polling and why. */
  watch: null as WatchInfo | null,
  transfers: [] as TransferView[],
  /** What the catalog says about the lab folder's sessions, by session. */
  pipeline: {} as Record<string, PipelineState>,
  /** Whether each pending session may be uploaded and why not, as the Rust side decided. */
  eligibility: {} as Record<string, Eligibility>,
  toast: "" as string,
});

let toastTimer: ReturnType<typeof setTimeout> | undefined;
export function toast(text: string) {
  app.toast = text;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (app.toast = ""), 3500);
}

export async function startStore(): Promise<void> {
  await onPending((rows) => (app.pending = rows));
  await onTransfers((rows) => (app.transfers = rows));
  await onPipeline((states) => (app.pipeline = states));
  await onEligibility((e) => (app.eligibility = e));
  await onWatch((w) => (app.watch = w));
  const [info, settings, pending, transfers, pipeline, eligibility, watch] = await Promise.all([
    api.appInfo(),
    api.getSettings(),
    api.listPending(),
    api.listTransfers(),
    api.listPipeline(),
    api.listEligibility(),
    api.watchInfo(),
  ]);
  app.watch = watch;
  app.pipeline = pipeline;
  app.eligibility = eligibility;
  app.info = info;
  app.settings = settings;
  app.pending = pending;
  app.transfers = transfers;
}
