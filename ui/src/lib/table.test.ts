import { describe, expect, it } from "vitest";
import type { CatalogRow } from "./bindings/CatalogRow";
import type { MetaColumn } from "./bindings/MetaColumn";
import type { Status } from "./bindings/Status";
import type { TextColumn } from "./bindings/TextColumn";
import { distinctValues, everyRow, histogram, inOrder, metaAt, nextSort, numericFields, sortOrder, statusCounts, textAt, valueAt, visibleRange, type Catalog } from "./table";

const STATUSES: Status[] = ["DETECTED", "CHECKED", "UPLOADING", "UPLOADED", "CATALOGED", "PROCESSING", "PROCESSED", "REJECTED", "FAILED"];

function text(values: (string | null | undefined)[]): TextColumn {
  const dict: string[] = [];
  const codes = values.map((v) => {
    if (v === null || v === undefined) return 0;
    let k = dict.indexOf(v);
    if (k < 0) k = dict.push(v) - 1;
    return k + 1;
  });
  return { values: dict, codes };
}

/** The columns the Rust side would send for these rows (crates/lab/src/sessions/mod.rs). */
function catalogOf(rows: CatalogRow[]): Catalog {
  const fields = [...new Set(rows.flatMap((r) => Object.keys(r.metadata)))];
  const metadata: Record<string, MetaColumn> = {};
  for (const f of fields) {
    const vals = rows.map((r) => r.metadata[f]);
    if (vals.every((v) => v === undefined || typeof v === "number")) metadata[f] = { kind: "number", values: vals.map((v) => (v === undefined ? null : (v as number))) };
    else if (vals.every((v) => v === undefined || typeof v === "string")) metadata[f] = { kind: "text", ...text(vals as (string | undefined)[]) };
    else metadata[f] = { kind: "mixed", values: vals.map((v) => v ?? null) };
  }
  return {
    count: rows.length,
    statuses: STATUSES,
    columns: {
      session: rows.map((r) => r.session),
      recorded_at: rows.map((r) => r.recorded_at),
      status: rows.map((r) => STATUSES.indexOf(r.status)),
      status_step: text(rows.map((r) => r.status_step)),
      status_message: text(rows.map((r) => r.status_message)),
      total_bytes: rows.map((r) => r.total_bytes),
      file_count: rows.map((r) => r.file_count),
      pipeline_version: rows.map((r) => r.pipeline_version),
      metadata,
    },
  };
}

const row = (session: string, fatigue: number | undefined, model: string, bytes = 1): CatalogRow => ({
  session,
  recorded_at: `${session.slice(0, 4)}-${session.slice(4, 6)}-${session.slice(6, 8)} 00:00:00`,
  status: "PROCESSED",
  status_step: null,
  status_message: null,
  total_bytes: bytes,
  file_count: 2,
  pipeline_version: 1,
  metadata: fatigue === undefined ? { hardware_model: model } : { fatigue, hardware_model: model },
});

const rows = catalogOf([row("20210301_000000", 3, "X200", 5), row("20210302_000000", 9, "X100", 1), row("20210303_000000", undefined, "X200", 3)]);

describe("sessions table", () => {
  it("reads cells by row index", () => {
    expect(valueAt(rows, 1, "session")).toBe("20210302_000000");
    expect(valueAt(rows, 1, "recorded_at")).toBe("2021-03-02 00:00:00");
    expect(valueAt(rows, 0, "status")).toBe("PROCESSED");
    expect(valueAt(rows, 0, "total_bytes")).toBe(5);
    expect(valueAt(rows, 1, "m:fatigue")).toBe(9);
    expect(valueAt(rows, 2, "m:fatigue")).toBeUndefined();
    expect(valueAt(rows, 1, "m:hardware_model")).toBe("X100");
    expect(valueAt(rows, 1, "m:nothing")).toBeUndefined();
    expect(textAt({ values: ["a", "b"], codes: [2, 0, 1] }, 0)).toBe("b");
    expect(textAt({ values: ["a", "b"], codes: [2, 0, 1] }, 1)).toBeUndefined();
    expect(metaAt({ kind: "mixed", values: [1, "x", null] }, 1)).toBe("x");
    expect(metaAt({ kind: "mixed", values: [1, "x", null] }, 2)).toBeUndefined();
  });

  it("sorts by built-in and metadata columns, missing values last", () => {
    expect(sortOrder(rows, { key: "total_bytes", dir: 1 })).toEqual([1, 2, 0]);
    expect(sortOrder(rows, { key: "m:fatigue", dir: -1 })).toEqual([1, 0, 2]);
    expect(sortOrder(rows, { key: "m:fatigue", dir: 1 })).toEqual([0, 1, 2]);
    expect(nextSort({ key: "session", dir: 1 }, "session")).toEqual({ key: "session", dir: -1 });
    expect(nextSort({ key: "session", dir: -1 }, "status")).toEqual({ key: "status", dir: 1 });
  });

  it("puts filter results in the column's order, reading numbers in text as numbers", () => {
    const subjects = catalogOf(["S10", "S2", "S1"].map((s, i) => ({ ...row(`2021030${i + 1}_000000`, i, "X200"), metadata: { subject_id: s } })));
    const order = sortOrder(subjects, { key: "m:subject_id", dir: 1 });
    expect(order).toEqual([2, 1, 0]);
    expect(inOrder(order, [0, 2], subjects.count)).toEqual([2, 0]);
    expect(inOrder(order, [], subjects.count)).toEqual([]);
    expect(inOrder(order, [0, 1, 2], subjects.count)).toEqual([2, 1, 0]);
    expect(inOrder(sortOrder(subjects, { key: "m:subject_id", dir: -1 }), [1, 0], subjects.count)).toEqual([0, 1]);
    const names = catalogOf(Array.from({ length: 3 }, () => row(`20210301_000000`, 1, "X200")).map((r, i) => ({ ...r, session: ["S10", "S2", "S1"][i], status: (["FAILED", "CATALOGED", "PROCESSED"] as Status[])[i] })));
    expect(sortOrder(names, { key: "session", dir: 1 })).toEqual([2, 1, 0]);
    expect(sortOrder(names, { key: "status", dir: 1 })).toEqual([1, 0, 2]);
    expect(sortOrder(names, { key: "recorded_at", dir: -1 })).toEqual([0, 1, 2]);
  });

  it("reads a filter result without indexes as every row", () => {
    expect(everyRow(4)).toEqual([0, 1, 2, 3]);
    expect(everyRow(0)).toEqual([]);
  });

  it("draws only the visible window", () => {
    expect(visibleRange(0, 300, 30, 10_000)).toEqual({ start: 0, end: 18 });
    expect(visibleRange(30_000, 300, 30, 10_000)).toEqual({ start: 992, end: 1018 });
    expect(visibleRange(1e9, 300, 30, 10)).toEqual({ start: 10, end: 10 });
  });

  it("counts facet values and bins numbers", () => {
    expect(distinctValues(rows, "hardware_model")).toEqual([
      { value: "X200", count: 2 },
      { value: "X100", count: 1 },
    ]);
    const h = histogram(rows, [0, 1, 2], "fatigue", 3);
    expect(h.map((b) => b.count)).toEqual([1, 0, 1]);
    expect(h[0].lo).toBe(3);
    expect(histogram(rows, [], "fatigue")).toEqual([]);
    expect(numericFields(rows)).toEqual(["fatigue"]);
    expect(histogram(rows, [0, 1, 2], "hardware_model")).toEqual([]);
    expect(statusCounts(rows)).toEqual([{ status: "PROCESSED", count: 3 }]);
  });

  // No wall-clock limits (they fail on a busy machine, not on slow code): ordering a filter result
  // by the sorted index must beat sorting that result again, measured in the same run.
  it("sorts 10,000 rows, and orders a filter result faster than sorting it again", () => {
    const manyRows = Array.from({ length: 10_000 }, (_, i) => row(`2021${String((i % 12) + 1).padStart(2, "0")}${String((i % 28) + 1).padStart(2, "0")}_000000`, (i * 7) % 11, "X200", i));
    const many = catalogOf(manyRows);
    const idx = manyRows.map((_, i) => i);
    const byFatigue = sortOrder(many, { key: "m:fatigue", dir: 1 });
    for (let k = 1; k < byFatigue.length; k++) expect(Number(manyRows[byFatigue[k - 1]].metadata.fatigue) <= Number(manyRows[byFatigue[k]].metadata.fatigue)).toBe(true);
    const order = sortOrder(many, { key: "recorded_at", dir: -1 });
    const evens = idx.filter((i) => i % 2 === 0);
    const half = inOrder(order, evens, many.count);
    expect(half).toHaveLength(5_000);
    for (let k = 1; k < half.length; k++) expect(manyRows[half[k - 1]].recorded_at >= manyRows[half[k]].recorded_at).toBe(true);

    const median = (f: () => void) => {
      const times = Array.from({ length: 7 }, () => {
        const t = performance.now();
        f();
        return performance.now() - t;
      }).sort((a, b) => a - b);
      return times[3];
    };
    const subset = catalogOf(evens.map((i) => manyRows[i]));
    const resort = median(() => sortOrder(subset, { key: "recorded_at", dir: -1 }));
    const reuse = median(() => inOrder(order, evens, many.count));
    expect(reuse).toBeLessThan(resort);
  });
});
