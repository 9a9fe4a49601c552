// Typed calls into the Rust side. Every command rejects with an AppError `{code, message, actions}`.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { AppError } from "./bindings/AppError";
import type { AppInfo } from "./bindings/AppInfo";
import type { CatalogSnapshot } from "./bindings/CatalogSnapshot";
import type { CleanReport } from "./bindings/CleanReport";
import type { Credentials } from "./bindings/Credentials";
import type { CredentialsView } from "./bindings/CredentialsView";
import type { Eligibility } from "./bindings/Eligibility";
import type { FilterResult } from "./bindings/FilterResult";
import type { LogsView } from "./bindings/LogsView";
import type { PendingSession } from "./bindings/PendingSession";
import type { PipelineState } from "./bindings/PipelineState";
import type { Probe } from "./bindings/Probe";
import type { SessionDetail } from "./bindings/SessionDetail";
import type { Settings } from "./bindings/Settings";
import type { TransferView } from "./bindings/TransferView";
import type { WatchInfo } from "./bindings/WatchInfo";

export function isAppError(e: unknown): e is AppError {
  return typeof e === "object" && e !== null && "code" in e && "message" in e;
}

/** Any rejection as an AppError (a plain string from Tauri itself becomes code `internal`, offering nothing). */
export function asAppError(e: unknown): AppError {
  if (isAppError(e)) return e;
  return { code: "internal", message: String(e), column: null, width: null, actions: { open_settings: false } };
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw asAppError(e);
  }
}

export const api = {
  appInfo: () => call<AppInfo>("app_info"),
  getSettings: () => call<Settings>("get_settings"),
  saveSettings: (settings: Settings) => call<Settings>("save_settings", { settings }),
  getCredentials: () => call<CredentialsView>("get_credentials"),
  saveCredentials: (credentials: Credentials) => call<CredentialsView>("save_credentials", { credentials }),
  clearCredentials: () => call<CredentialsView>("clear_credentials"),
  testConnection: (settings?: Settings) => call<Probe[]>("test_connection", { settings: settings ?? null }),
  listPending: () => call<PendingSession[]>("list_pending"),
  recheckPending: () => call<PendingSession[]>("recheck_pending"),
  watchInfo: () => call<WatchInfo | null>("watch_info"),
  uploadSessions: (sessions: string[]) => call<number>("upload_sessions", { sessions }),
  reviseSession: (session: string, reason: string) => call<boolean>("revise_session", { session, reason }),
  checkDiskCleanup: (settings: Settings, days: number) => call<CleanReport>("check_disk_cleanup", { settings, days }),
  uploadAllReady: () => call<number>("upload_all_ready"),
  listPipeline: () => call<Record<string, PipelineState>>("list_pipeline"),
  listEligibility: () => call<Record<string, Eligibility>>("list_eligibility"),
  listTransfers: () => call<TransferView[]>("list_transfers"),
  cancelTransfer: (session: string) => call<void>("cancel_transfer", { session }),
  pauseTransfer: (session: string) => call<void>("pause_transfer", { session }),
  resumeTransfer: (session: string) => call<void>("resume_transfer", { session }),
  clearFinishedTransfers: () => call<void>("clear_finished_transfers"),
  loadCatalog: (refresh: boolean) => call<CatalogSnapshot>("load_catalog", { refresh }),
  filterCatalog: (filter: string) => call<FilterResult>("filter_catalog", { filter }),
  sessionDetail: (session: string) => call<SessionDetail>("session_detail", { session }),
  readLogs: (limit?: number) => call<LogsView>("read_logs", { limit: limit ?? null }),
  openLogFolder: () => call<void>("open_log_folder"),
};

export function onPending(f: (rows: PendingSession[]) => void): Promise<UnlistenFn> {
  return listen<PendingSession[]>("pending", (e) => f(e.payload));
}

export function onWatch(f: (info: WatchInfo | null) => void): Promise<UnlistenFn> {
  return listen<WatchInfo | null>("watch", (e) => f(e.payload));
}

export function onPipeline(f: (states: Record<string, PipelineState>) => void): Promise<UnlistenFn> {
  return listen<Record<string, PipelineState>>("pipeline", (e) => f(e.payload));
}

/** Whether each pending session may be uploaded, and why not; sent when it changes. */
export function onEligibility(f: (e: Record<string, Eligibility>) => void): Promise<UnlistenFn> {
  return listen<Record<string, Eligibility>>("eligibility", (e) => f(e.payload));
}

/** Sessions of the loaded catalog whose entries the pipeline poller replaced or added. */
export function onCatalogChanged(f: (sessions: string[]) => void): Promise<UnlistenFn> {
  return listen<string[]>("catalog-changed", (e) => f(e.payload));
}

export function onTransfers(f: (rows: TransferView[]) => void): Promise<UnlistenFn> {
  return listen<TransferView[]>("transfers", (e) => f(e.payload));
}

/** Copies text; falls back to a hidden textarea where the Clipboard API is not allowed. */
export async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    return;
  } catch {
    const ta = document.createElement("textarea");
    ta.value = text;
    ta.style.position = "fixed";
    ta.style.opacity = "0";
    document.body.appendChild(ta);
    ta.select();
    document.execCommand("copy");
    ta.remove();
  }
}
