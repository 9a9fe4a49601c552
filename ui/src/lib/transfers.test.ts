import { describe, expect, it } from "vitest";
import type { TransferView } from "./bindings/TransferView";
import type { TransferState } from "./bindings/TransferState";
import { queueSummary, retriesText, stateLabel } from "./transfers";

const t = (state: TransferState, active: boolean) => ({ state, actions: { pause: false, resume: false, cancel: false, again: false, correct: false, active } }) as TransferView;

describe("transfers", () => {
  it.each([
    [0, "connection reset", ""],
    [1, "connection reset", "1 retry — connection reset"],
    [2, "HTTP 503 SlowDown", "2 retries — HTTP 503 SlowDown"],
    [3, null, "3 retries"],
  ])("retriesText(%d, %s) = %s", (n, reason, want) => expect(retriesText(n, reason)).toBe(want));

  it("names every state", () => {
    expect(stateLabel("paused")).toBe("paused");
    expect(stateLabel("running")).toBe("uploading");
    expect(stateLabel("interrupted")).toBe("interrupted");
  });

  it("sums up the queue from what the Rust side marks active", () => {
    expect(queueSummary([t("running", true), t("queued", true), t("paused", true), t("done", false)])).toBe("2 in the queue · 1 paused");
    expect(queueSummary([t("paused", true)])).toBe("1 paused");
    expect(queueSummary([t("done", false), t("failed", false)])).toBeNull();
  });
});
