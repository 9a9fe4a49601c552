// Level filter and search of the Logs view.
import type { LogLine } from "./bindings/LogLine";

export const LEVELS = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"] as const;
export type Level = (typeof LEVELS)[number];

/** Lines at `min` or more severe, containing every word of `search` (case-insensitive). */
export function filterLogs(lines: LogLine[], min: Level, search: string): LogLine[] {
  const rank = LEVELS.indexOf(min);
  const words = search.toLowerCase().split(/\s+/).filter(Boolean);
  return lines.filter((l) => {
    const r = LEVELS.indexOf(l.level as Level);
    if (r > rank) return false;
    if (words.length === 0) return true;
    const hay = `${l.message} ${l.target}`.toLowerCase();
    return words.every((w) => hay.includes(w));
  });
}

/** `2026-11-26T08:10:33.123456Z` → `2026-11-26 08:10:33` in local time. */
export function logTime(ts: string): string {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return ts;
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
