import { describe, expect, it } from "vitest";
import type { CatalogRow } from "./bindings/CatalogRow";
import { distinctValues, histogram, inOrder, nextSort, numericFields, sortOrder, visibleRange } from "./table";

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

const rows = [row("20210301_000000", 3, "X200", 5), row("20210302_000000", 9, "X100", 1), row("20210303_000000", undefined, "X200", 3)];

describe("sessions table", () => {
  it("sorts by built-in and metadata columns, missing values last", () => {
    expect(sortOrder(rows, { key: "total_bytes", dir: 1 })).toEqual([1, 2, 0]);
    expect(sortOrder(rows, { key: "m:fatigue", dir: -1 })).toEqual([1, 0, 2]);
    expect(sortOrder(rows, { key: "m:fatigue", dir: 1 })).toEqual([0, 1, 2]);
    expect(nextSort({ key: "session", dir: 1 }, "session")).toEqual({ key: "session", dir: -1 });
    expect(nextSort({ key: "session", dir: -1 }, "status")).toEqual({ key: "status", dir: 1 });
  });

  it("puts filter results in the column's order, reading numbers in text as numbers", () => {
    const subjects = ["S10", "S2", "S1"].map((s, i) => ({ ...row(`2021030${i + 1}_000000`, i, "X200"), metadata: { subject_id: s } }));
    const order = sortOrder(subjects, { key: "m:subject_id", dir: 1 });
    expect(order).toEqual([2, 1, 0]);
    expect(inOrder(order, [0, 2], subjects.length)).toEqual([2, 0]);
    expect(inOrder(order, [], subjects.length)).toEqual([]);
    expect(inOrder(sortOrder(subjects, { key: "m:subject_id", dir: -1 }), [1, 0], subjects.length)).toEqual([0, 1]);
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
  });

  // No wall-clock limits (they fail on a busy machine, not on slow code): ordering a filter result
  // by the sorted index must beat sorting that result again, measured in the same run.
  it("sorts 10,000 rows, and orders a filter result faster than sorting it again", () => {
    const many = Array.from({ length: 10_000 }, (_, i) => row(`2021${String((i % 12) + 1).padStart(2, "0")}${String((i % 28) + 1).padStart(2, "0")}_000000`, (i * 7) % 11, "X200", i));
    const idx = many.map((_, i) => i);
    const byFatigue = sortOrder(many, { key: "m:fatigue", dir: 1 });
    for (let k = 1; k < byFatigue.length; k++) expect(Number(many[byFatigue[k - 1]].metadata.fatigue) <= Number(many[byFatigue[k]].metadata.fatigue)).toBe(true);
    const order = sortOrder(many, { key: "recorded_at", dir: -1 });
    const evens = idx.filter((i) => i % 2 === 0);
    const half = inOrder(order, evens, many.length);
    expect(half).toHaveLength(5_000);
    for (let k = 1; k < half.length; k++) expect(many[half[k - 1]].recorded_at >= many[half[k]].recorded_at).toBe(true);

    const median = (f: () => void) => {
      const times = Array.from({ length: 7 }, () => {
        const t = performance.now();
        f();
        return performance.now() - t;
      }).sort((a, b) => a - b);
      return times[3];
    };
    const subset = evens.map((i) => many[i]);
    const resort = median(() => sortOrder(subset, { key: "recorded_at", dir: -1 }));
    const reuse = median(() => inOrder(order, evens, many.length));
    expect(reuse).toBeLessThan(resort);
  });
});
