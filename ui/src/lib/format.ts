// Formatting shared by every view: sizes, rates, durations, percentages.

const UNITS = ["B", "kB", "MB", "GB", "TB"];

/** Decimal units, as the CLI prints them: 600 MB, 1.5 GB. */
export function bytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "–";
  let i = 0;
  let v = n;
  while (v >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  const digits = i === 0 || v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${v.toFixed(digits)} ${UNITS[i]}`;
}

export function rate(bytesPerSec: number): string {
  if (!Number.isFinite(bytesPerSec) || bytesPerSec <= 0) return "–";
  return `${bytes(bytesPerSec)}/s`;
}

/** 42 s, 3 min 5 s, 1 h 02 min. */
export function duration(secs: number | null | undefined): string {
  if (secs === null || secs === undefined || !Number.isFinite(secs) || secs < 0) return "–";
  const s = Math.round(secs);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h} h ${String(m).padStart(2, "0")} min`;
}

export function percent(done: number, total: number): number {
  if (!(total > 0)) return done > 0 ? 100 : 0;
  return Math.max(0, Math.min(100, (done / total) * 100));
}

export function percentText(done: number, total: number): string {
  const p = percent(done, total);
  return p >= 99.95 || p === 0 ? `${p.toFixed(0)} %` : `${p.toFixed(1)} %`;
}

/** Numbers without a pointless `.0`, with thousands grouped. */
export function num(n: number): string {
  if (!Number.isFinite(n)) return "–";
  return Number.isInteger(n) ? n.toLocaleString("en-US") : n.toLocaleString("en-US", { maximumFractionDigits: 3 });
}

export function metaValue(v: number | string | undefined): string {
  if (v === undefined) return "";
  return typeof v === "number" ? num(v) : v;
}
