// State logic of the Sessions table: reading the catalog's columns, sorting, the virtual window,
// facet values, the histogram.
//
// The catalog arrives column by column (`CatalogSnapshot.columns`: one array per field, repeated
// text as a dictionary and one code per session) and a row is only an index into those arrays
// (crates/lab/src/sessions/mod.rs says why: a quarter of the JSON of row objects, each with its own
// metadata object; arrays of numbers and codes take a few bytes per cell).
import type { CatalogColumns } from "./bindings/CatalogColumns";
import type { MetaColumn } from "./bindings/MetaColumn";
import type { Status } from "./bindings/Status";
import type { TextColumn } from "./bindings/TextColumn";

export type SortKey = "session" | "recorded_at" | "status" | "total_bytes" | "file_count" | `m:${string}`;
export interface Sort {
  key: SortKey;
  dir: 1 | -1;
}

/** The columns of a snapshot with the status names their codes point to. */
export interface Catalog {
  count: number;
  columns: CatalogColumns;
  statuses: Status[];
}

/** Row `i` of a text column (`codes[i]` is 1 + the index of its value, 0 for none). */
export function textAt(col: TextColumn | Extract<MetaColumn, { kind: "text" }>, i: number): string | undefined {
  const c = col.codes[i];
  return c ? col.values[c - 1] : undefined;
}

/** Row `i` of a metadata column; `undefined` when the session has no value. */
export function metaAt(col: MetaColumn | undefined, i: number): number | string | undefined {
  if (!col) return undefined;
  if (col.kind === "text") return textAt(col, i);
  return col.values[i] ?? undefined;
}

export function statusAt(cat: Catalog, i: number): Status {
  return cat.statuses[cat.columns.status[i]];
}

/** The value of row `i` in the column `key`. */
export function valueAt(cat: Catalog, i: number, key: SortKey): number | string | undefined {
  const c = cat.columns;
  switch (key) {
    case "session":
      return c.session[i];
    case "recorded_at":
      return c.recorded_at[i];
    case "status":
      return statusAt(cat, i);
    case "total_bytes":
      return c.total_bytes[i];
    case "file_count":
      return c.file_count[i];
    default:
      return metaAt(c.metadata[key.slice(2)], i);
  }
}

/**
 * Text in reading order ("S2" before "S10"). One collator for every comparison: `localeCompare`
 * with options sets one up on each call, which made sorting 10,000 rows take 100–500 ms.
 */
const collator = new Intl.Collator("en", { numeric: true });

/** Compares two values; missing values sort last in either direction. */
export function compareValues(a: number | string | undefined, b: number | string | undefined, dir: 1 | -1): number {
  if (a === undefined || b === undefined) return a === b ? 0 : a === undefined ? 1 : -1;
  if (typeof a === "number" && typeof b === "number") return (a - b) * dir;
  return collator.compare(String(a), String(b)) * dir;
}

/**
 * Each row's sort key as a number, when the column allows it: a dictionary column's code ranked by
 * its value (each distinct value compared once, not once per comparison of two rows), the status
 * by its name. `undefined` for columns of distinct values, compared value by value.
 */
function rankedKeys(cat: Catalog, key: SortKey): (number | undefined)[] | undefined {
  const rank = (values: string[], codes: number[]) => {
    const byValue = values.map((v, k) => ({ v, k })).sort((x, y) => collator.compare(x.v, y.v));
    const of = new Array<number>(values.length + 1);
    byValue.forEach((x, r) => (of[x.k + 1] = r));
    return codes.map((c) => (c ? of[c] : undefined));
  };
  if (key === "status") {
    return rank(
      cat.statuses,
      cat.columns.status.map((s) => s + 1),
    );
  }
  if (key.startsWith("m:")) {
    const col = cat.columns.metadata[key.slice(2)];
    if (!col) return new Array(cat.count).fill(undefined);
    if (col.kind === "text") return rank(col.values, col.codes);
    if (col.kind === "number") return col.values.map((v) => v ?? undefined);
  }
  if (key === "total_bytes" || key === "file_count") return cat.columns[key];
  return undefined;
}

/**
 * Every row's index in the column's order (stable: ties keep their catalog order). Computed once
 * per catalog and sort; each filter result is then put in this order by `inOrder`, in time
 * linear in the catalog size, instead of being sorted again on every keystroke.
 */
export function sortOrder(cat: Catalog, sort: Sort): number[] {
  const idx = Array.from({ length: cat.count }, (_, i) => i);
  const ranked = rankedKeys(cat, sort.key);
  if (ranked) return idx.sort((x, y) => compareValues(ranked[x], ranked[y], sort.dir) || x - y);
  if (sort.key === "recorded_at") {
    // `YYYY-MM-DD HH:MM:SS`: fixed-width digits, so code-unit order is reading order (and the
    // collator, the bulk of sorting 100,000 rows, is not needed).
    const v = cat.columns.recorded_at;
    return idx.sort((x, y) => (v[x] < v[y] ? -sort.dir : v[x] > v[y] ? sort.dir : x - y));
  }
  const values = idx.map((i) => valueAt(cat, i, sort.key));
  return idx.sort((x, y) => compareValues(values[x], values[y], sort.dir) || x - y);
}

/** Every row of a catalog of `rowCount` sessions: what a filter result without indexes means. */
export function everyRow(rowCount: number): number[] {
  return Array.from({ length: rowCount }, (_, i) => i);
}

/** The row indexes `indexes` (each at most once) in `order`, a `sortOrder` of all `rowCount` rows. */
export function inOrder(order: number[], indexes: number[], rowCount: number): number[] {
  // Every row matches (an empty filter): the order itself.
  if (indexes.length === rowCount) return order;
  const wanted = new Uint8Array(rowCount);
  for (const i of indexes) wanted[i] = 1;
  const out: number[] = [];
  for (const i of order) if (wanted[i]) out.push(i);
  return out;
}

export function nextSort(current: Sort, key: SortKey): Sort {
  return current.key === key ? { key, dir: current.dir === 1 ? -1 : 1 } : { key, dir: 1 };
}

/** Which rows a virtual list draws: the visible ones plus some overscan on each side. */
export function visibleRange(
  scrollTop: number,
  viewport: number,
  rowHeight: number,
  count: number,
  overscan = 8,
): { start: number; end: number } {
  const first = Math.floor(Math.max(0, scrollTop) / rowHeight);
  const visible = Math.ceil(viewport / rowHeight);
  const start = Math.min(count, Math.max(0, first - overscan));
  const end = Math.min(count, first + visible + overscan);
  return { start, end: Math.max(start, end) };
}

/** Distinct text values of a metadata field, most frequent first. */
export function distinctValues(cat: Catalog, field: string): { value: string; count: number }[] {
  const col = cat.columns.metadata[field];
  const counts = new Map<string, number>();
  if (col?.kind === "text") {
    const byCode = new Array<number>(col.values.length + 1).fill(0);
    for (const c of col.codes) byCode[c]++;
    col.values.forEach((v, k) => byCode[k + 1] && counts.set(v, byCode[k + 1]));
  } else if (col?.kind === "mixed") {
    for (const v of col.values) if (typeof v === "string") counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  return [...counts.entries()]
    .map(([value, count]) => ({ value, count }))
    .sort((a, b) => b.count - a.count || a.value.localeCompare(b.value));
}

/** How many sessions have each status, in the given (pipeline) order; absent ones left out. */
export function statusCounts(cat: Catalog): { status: Status; count: number }[] {
  const counts = new Array<number>(cat.statuses.length).fill(0);
  for (const s of cat.columns.status) counts[s]++;
  return cat.statuses.map((status, k) => ({ status, count: counts[k] })).filter((s) => s.count > 0);
}

export interface Bin {
  lo: number;
  hi: number;
  count: number;
}

/** A histogram of a numeric field over the given rows, with `bins` equal-width bins. */
export function histogram(cat: Catalog, indexes: number[], field: string, bins = 12): Bin[] {
  const col = cat.columns.metadata[field];
  if (!col || col.kind === "text") return [];
  const values: number[] = [];
  for (const i of indexes) {
    const v = col.values[i];
    if (typeof v === "number" && Number.isFinite(v)) values.push(v);
  }
  if (values.length === 0) return [];
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === hi) return [{ lo, hi, count: values.length }];
  const width = (hi - lo) / bins;
  const out: Bin[] = Array.from({ length: bins }, (_, k) => ({ lo: lo + k * width, hi: lo + (k + 1) * width, count: 0 }));
  for (const v of values) out[Math.min(bins - 1, Math.floor((v - lo) / width))].count++;
  return out;
}

/** The numeric metadata fields: those with a number in one of the first `limit` rows. */
export function numericFields(cat: Catalog, limit = 200): string[] {
  const n = Math.min(limit, cat.count);
  return Object.entries(cat.columns.metadata)
    .filter(([, col]) => col !== undefined && col.kind !== "text" && col.values.slice(0, n).some((v) => typeof v === "number"))
    .map(([k]) => k)
    .sort();
}
