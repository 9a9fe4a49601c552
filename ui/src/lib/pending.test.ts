import { describe, expect, it } from "vitest";
import type { PendingSession } from "./bindings/PendingSession";
import type { PipelineState } from "./bindings/PipelineState";
import type { Status } from "./bindings/Status";
import type { Verdict } from "./bindings/Verdict";
import type { Eligibility } from "./bindings/Eligibility";
import { counts, eligibilityText, findingPlace, pipelineLabel, problems, sortPending } from "./pending";

const p = (session: string, verdict: Verdict, recorded_at: string | null): PendingSession => ({
  session,
  path: `/lab/${session}`,
  verdict,
  recorded_at,
  total_bytes: 1,
  file_count: 1,
  findings: [],
  metadata: {},
  checked_at: "10:00:00",
});

describe("pending", () => {
  const rows = [p("20210301_101010", "pass", "2021-03-01 10:10:10"), p("bad_name", "fail", null), p("20210302_101010", "wait", "2021-03-02 10:10:10")];

  it("orders newest first, undated last", () => {
    expect(sortPending(rows).map((r) => r.session)).toEqual(["20210302_101010", "20210301_101010", "bad_name"]);
  });

  it("counts what can still be uploaded as ready, and the rest by where it stands", () => {
    const all = [
      p("20210301_000001", "pass", null),
      p("20210301_000002", "pass", null),
      p("20210301_000003", "pass", null),
      p("20210301_000004", "pass", null),
      p("20210301_000005", "pass", null),
      p("20210301_000006", "wait", null),
    ];
    const e: Record<string, Eligibility> = {
      "20210301_000001": { kind: "ready", again: false },
      "20210301_000002": { kind: "uploaded", status: "PROCESSED" },
      "20210301_000003": { kind: "on_its_way", state: "done" },
      "20210301_000004": { kind: "name_conflict", reason: "r", advice: "a" },
      "20210301_000005": { kind: "changed_since_upload", status: "PROCESSED", reason: "r", advice: "a" },
      "20210301_000006": { kind: "blocked", verdict: "wait" },
    };
    expect(counts(all, e).map((c) => [c.key, c.n])).toEqual([
      ["ready", 1],
      ["uploaded", 2],
      ["changed", 1],
      ["conflict", 1],
      ["wait", 1],
    ]);
    expect(counts(rows, {}).map((c) => [c.key, c.n])).toEqual([["checking", 3]]);
  });

  it("shows errors before warnings and leaves notes out", () => {
    const found = problems([
      { check: "size", severity: "warning", message: "unusually small" },
      { check: "litter", severity: "info", message: ".DS_Store ignored" },
      { check: "metadata", severity: "error", file: "metadata.txt", line: 4, message: "fatigue is missing" },
    ]);
    expect(found.map((f) => f.check)).toEqual(["metadata", "size"]);
  });

  it("puts the Rust side's eligibility into words", () => {
    expect(eligibilityText({ kind: "ready", again: false })).toBe("Upload this session");
    expect(eligibilityText({ kind: "ready", again: true })).toContain("again");
    expect(eligibilityText({ kind: "blocked", verdict: "fail" })).toBe("Fix the problems first");
    expect(eligibilityText({ kind: "blocked", verdict: "wait" })).toContain("Still being written");
    expect(eligibilityText({ kind: "on_its_way", state: "running" })).toBe("Already on its way (uploading)");
    expect(eligibilityText({ kind: "uploaded", status: "PROCESSED" })).toContain("Already uploaded");
    expect(eligibilityText({ kind: "name_conflict", reason: "r", advice: "a" })).toContain("Another recording");
    expect(eligibilityText({ kind: "changed_since_upload", status: "PROCESSED", reason: "r", advice: "a" })).toContain("correction");
    expect(eligibilityText(undefined)).toBe("Checking…");
  });

  it("puts the pipeline status in words", () => {
    const s = (status: Status, v: number | null = null): PipelineState => ({ status, step: null, message: null, pipeline_version: v, stuck: null });
    expect(pipelineLabel(s("PROCESSED", 2))).toEqual({ text: "processed (v2)", tone: "pass" });
    expect(pipelineLabel(s("UPLOADED")).text).toBe("uploaded, waiting for the pipeline");
    expect(pipelineLabel(s("FAILED")).tone).toBe("fail");
    expect(pipelineLabel(s("DETECTED")).text).toBe("detected");
    // A session the pipeline stopped moving is not "queued": it needs someone.
    expect(pipelineLabel({ ...s("CATALOGED"), stuck: "waited to be processed for 3 h" })).toEqual({ text: "stuck in the pipeline", tone: "fail" });
  });

  it("says where a finding is", () => {
    expect(findingPlace({ file: "metadata.txt", line: 4 })).toBe("metadata.txt, line 4");
    expect(findingPlace({ file: "a.bin" })).toBe("a.bin");
    expect(findingPlace({})).toBe("");
  });
});
