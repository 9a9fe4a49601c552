import { describe, expect, it } from "vitest";
import { combine, emptyFacets, facetFilter, quote, shellQuote, syncCommand, typedColumn } from "./query";

describe("facets to filter", () => {
  it("writes nothing for empty facets", () => {
    expect(facetFilter(emptyFacets())).toBe("");
    expect(combine("  fatigue > 3 ", emptyFacets())).toBe("fatigue > 3");
  });

  it("writes each facet", () => {
    const f = { from: "2021-03-01", to: "2021-03-31", statuses: ["PROCESSED", "FAILED"], models: ['X"200'] };
    expect(facetFilter(f)).toBe(
      'date >= 2021-03-01 and date <= 2021-03-31 and status in (processed, failed) and hardware_model = "X\\"200"',
    );
    expect(combine("fatigue > 3", { ...emptyFacets(), statuses: ["PROCESSED"] })).toBe(
      "(fatigue > 3) and status = processed",
    );
  });

  it("ignores half-typed dates", () => {
    expect(facetFilter({ ...emptyFacets(), from: "2021-03" })).toBe("");
  });

  it("maps error columns back into the typed text", () => {
    const f = { ...emptyFacets(), statuses: ["FAILED"] };
    expect(typedColumn("fatige > 3", emptyFacets(), 0)).toBe(0);
    expect(typedColumn("  fatige > 3", emptyFacets(), 0)).toBe(2);
    expect(typedColumn("fatige > 3", f, 1)).toBe(0);
    expect(typedColumn("fatige > 3", f, 30)).toBeNull();
  });

  it("quotes strings and shell words", () => {
    expect(quote("a\\b")).toBe('"a\\\\b"');
    expect(shellQuote("plain/dir")).toBe("plain/dir");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(syncCommand('fatigue > 3 and hardware_model = "X200"', "/data/x")).toBe(
      `labpipe sync --where 'fatigue > 3 and hardware_model = "X200"' --dest /data/x`,
    );
    expect(syncCommand("")).toBe("labpipe sync --dest ./labpipe-data");
  });
});
