// App-wide state, kept current by events from the Rust side.
import type { AppInfo } from "./bindings/AppInfo";
import type { PendingSession } from "./bindings/PendingSession";
import type { PipelineState } from "./bindings/PipelineState";
import type { Settings } from "./bindings/Settings";
import type { TransferView } from "./bindings/TransferView";
import { api, onPending, onPipeline, onTransfers } from "./api";

export const app = $state({
  info: null as AppInfo | null,
  settings: null as Settings | null,
  pending: [] as PendingSession[],
  transfers: [] as TransferView[],
  /** What the catalog says about the lab folder's sessions, by session. */
  pipeline: {} as Record<string, PipelineState>,
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
  const [info, settings, pending, transfers, pipeline] = await Promise.all([
    api.appInfo(),
    api.getSettings(),
    api.listPending(),
    api.listTransfers(),
    api.listPipeline(),
  ]);
  app.pipeline = pipeline;
  app.info = info;
  app.settings = settings;
  app.pending = pending;
  app.transfers = transfers;
}
