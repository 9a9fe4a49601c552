import { describe, expect, it } from "vitest";
import type { PendingSession } from "./bindings/PendingSession";
import type { TransferView } from "./bindings/TransferView";
import type { PipelineState } from "./bindings/PipelineState";
import { canUpload, counts, findingPlace, pipelineLabel, readyToUpload, sortPending } from "./pending";

const p = (session: string, verdict: string, recorded_at: string | null): PendingSession => ({
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

const t = (session: string, state: string) => ({ session, state }) as TransferView;

describe("pending", () => {
  const rows = [p("20210301_101010", "pass", "2021-03-01 10:10:10"), p("bad_name", "fail", null), p("20210302_101010", "wait", "2021-03-02 10:10:10")];

  it("orders newest first, undated last", () => {
    expect(sortPending(rows).map((r) => r.session)).toEqual(["20210302_101010", "20210301_101010", "bad_name"]);
  });

  it("counts verdicts", () => {
    expect(counts(rows)).toEqual({ pass: 1, warn: 0, wait: 1, fail: 1 });
  });

  it("offers upload only for ready sessions not already on their way", () => {
    expect(canUpload(rows[0], null)).toBe(true);
    expect(canUpload(rows[0], "failed")).toBe(true);
    expect(canUpload(rows[0], "running")).toBe(false);
    expect(canUpload(rows[1], null)).toBe(false);
    expect(readyToUpload(rows, [t("20210301_101010", "done")])).toEqual([]);
    expect(readyToUpload(rows, []).map((r) => r.session)).toEqual(["20210301_101010"]);
  });

  it("never offers upload for a session the pipeline knows, or one paused", () => {
    const processed: PipelineState = { status: "PROCESSED", step: "preprocess", message: null, pipeline_version: 2 };
    expect(canUpload(rows[0], null, processed)).toBe(false);
    expect(canUpload(rows[0], "failed", processed)).toBe(false);
    expect(canUpload(rows[0], "paused")).toBe(false);
    expect(readyToUpload(rows, [], { "20210301_101010": processed })).toEqual([]);
    expect(readyToUpload(rows, [], { other: processed }).map((r) => r.session)).toEqual(["20210301_101010"]);
  });

  it("puts the pipeline status in words", () => {
    const s = (status: string, v: number | null = null): PipelineState => ({ status, step: null, message: null, pipeline_version: v });
    expect(pipelineLabel(s("PROCESSED", 2))).toEqual({ text: "processed (v2)", tone: "pass" });
    expect(pipelineLabel(s("UPLOADED")).text).toBe("uploaded, waiting for the pipeline");
    expect(pipelineLabel(s("FAILED")).tone).toBe("fail");
    expect(pipelineLabel(s("SOMETHING_NEW")).text).toBe("something_new");
  });

  it("says where a finding is", () => {
    expect(findingPlace({ file: "metadata.txt", line: 4 })).toBe("metadata.txt, line 4");
    expect(findingPlace({ file: "a.bin", line: null })).toBe("a.bin");
    expect(findingPlace({ file: null, line: null })).toBe("");
  });
});
