import { describe, expect, it } from "vitest";
import { bytes, duration, metaValue, num, percent, percentText, rate } from "./format";

describe("format", () => {
  it.each([
    [0, "0 B"],
    [999, "999 B"],
    [1000, "1.00 kB"],
    [600_000_000, "600 MB"],
    [1_536_000_000, "1.54 GB"],
    [-1, "–"],
  ])("bytes(%d) = %s", (n, want) => expect(bytes(n)).toBe(want));

  it("rates and durations", () => {
    expect(rate(25_000_000)).toBe("25.0 MB/s");
    expect(rate(0)).toBe("–");
    expect(duration(42.4)).toBe("42 s");
    expect(duration(185)).toBe("3 min 5 s");
    expect(duration(3720)).toBe("1 h 02 min");
    expect(duration(null)).toBe("–");
  });

  it("percentages never leave 0..100", () => {
    expect(percent(50, 200)).toBe(25);
    expect(percent(300, 200)).toBe(100);
    expect(percent(0, 0)).toBe(0);
    expect(percentText(1, 3)).toBe("33.3 %");
    expect(percentText(3, 3)).toBe("100 %");
  });

  it("numbers", () => {
    expect(num(10000)).toBe("10,000");
    expect(num(3.5)).toBe("3.5");
    expect(metaValue("X200")).toBe("X200");
    expect(metaValue(2)).toBe("2");
  });
});
