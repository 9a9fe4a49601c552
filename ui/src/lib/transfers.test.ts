import { describe, expect, it } from "vitest";
import { actions, isActive, queueSummary, retriesText, stateLabel } from "./transfers";

describe("transfers", () => {
  it.each([
    [0, "connection reset", ""],
    [1, "connection reset", "1 retry — connection reset"],
    [2, "HTTP 503 SlowDown", "2 retries — HTTP 503 SlowDown"],
    [3, null, "3 retries"],
  ])("retriesText(%d, %s) = %s", (n, reason, want) => expect(retriesText(n, reason)).toBe(want));

  it("offers pause while waiting or uploading, resume only when paused", () => {
    expect(actions("running")).toEqual({ pause: true, resume: false, cancel: true, again: false });
    expect(actions("queued")).toEqual({ pause: true, resume: false, cancel: true, again: false });
    expect(actions("paused")).toEqual({ pause: false, resume: true, cancel: true, again: false });
    expect(actions("failed")).toEqual({ pause: false, resume: false, cancel: false, again: true });
    expect(actions("cancelled").again).toBe(true);
    expect(actions("done")).toEqual({ pause: false, resume: false, cancel: false, again: false });
  });

  it("a paused transfer is still active, a finished one is not", () => {
    expect(isActive("paused")).toBe(true);
    expect(isActive("done")).toBe(false);
    expect(stateLabel("paused")).toBe("paused");
    expect(stateLabel("running")).toBe("uploading");
    expect(stateLabel("something new")).toBe("something new");
  });

  it("sums up the queue", () => {
    expect(queueSummary(["running", "queued", "paused", "done"])).toBe("2 in the queue · 1 paused");
    expect(queueSummary(["paused"])).toBe("1 paused");
    expect(queueSummary(["done", "failed"])).toBeNull();
  });
});
