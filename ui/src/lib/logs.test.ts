import { describe, expect, it } from "vitest";
import { filterLogs, logTime } from "./logs";

const l = (level: string, message: string) => ({ timestamp: "", level, target: "labpipe_app", message });

describe("logs", () => {
  const lines = [l("INFO", "watching lab folder"), l("ERROR", "upload failed session=2021"), l("DEBUG", "tick")];
  it("filters by level and words", () => {
    expect(filterLogs(lines, "INFO", "").length).toBe(2);
    expect(filterLogs(lines, "ERROR", "").map((x) => x.message)).toEqual(["upload failed session=2021"]);
    expect(filterLogs(lines, "TRACE", "FAILED 2021").length).toBe(1);
    expect(filterLogs(lines, "TRACE", "labpipe_app").length).toBe(3);
  });
  it("formats times and keeps unparseable ones", () => {
    expect(logTime("nope")).toBe("nope");
    expect(logTime("2026-11-26T08:10:33Z")).toMatch(/^2026-11-2\d \d\d:10:33$/);
  });
});
