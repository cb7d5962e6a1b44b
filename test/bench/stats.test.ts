/** The report's arithmetic: medians, spread, ratios, formatting, and the summary of repeats. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { fmtBytes, fmtNum, fmtRatio, fmtUs, median, medianIndex, ratio, relativeSpread } from "../../bench/stats.js";
import { niceTicks, decadeTicks, ninesOf } from "../../bench/svg.js";

describe("stats", () => {
  it("median of odd and even counts; null when empty or a figure is missing", () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([]), null);
    assert.equal(median([1, null, 3]), null);
  });

  it("median index picks the repeat holding the median", () => {
    assert.equal(medianIndex([30, 10, 20]), 2);
    assert.equal(medianIndex([5]), 0);
  });

  it("spread is (max − min) / median", () => {
    assert.equal(relativeSpread([90, 100, 110]), 0.2);
    assert.equal(relativeSpread([7]), 0);
  });

  it("ratio is null when either side is missing or the base is zero", () => {
    assert.equal(ratio(50, 100), 0.5);
    assert.equal(ratio(null, 100), null);
    assert.equal(ratio(1, 0), null);
  });

  it("formats three significant digits and units", () => {
    assert.equal(fmtNum(12_345), "12,300");
    assert.equal(fmtNum(1.234), "1.23");
    assert.equal(fmtNum(null), "–");
    assert.equal(fmtUs(850), "850 µs");
    assert.equal(fmtUs(1_234), "1.23 ms");
    assert.equal(fmtUs(2_500_000), "2.50 s");
    assert.equal(fmtBytes(2048), "2.00 KiB");
    assert.equal(fmtRatio(1.5), "1.50×");
  });
});

describe("chart axes", () => {
  it("nice ticks reach the maximum in 1-2-5 steps", () => {
    assert.deepEqual(niceTicks(9_000), [0, 2000, 4000, 6000, 8000, 10000]);
    const t = niceTicks(37);
    assert.ok(t[t.length - 1]! >= 37);
  });

  it("decade ticks cover a log domain", () => {
    assert.deepEqual(decadeTicks(30, 5000), [10, 100, 1000, 10000]);
    assert.deepEqual(decadeTicks(1000, 10_000), [1000, 2000, 5000, 10000, 20000, 50000]);
  });

  it("the nines axis puts p90 at 1 and p99 at 2", () => {
    assert.ok(Math.abs(ninesOf(0.9) - 1) < 1e-9);
    assert.ok(Math.abs(ninesOf(0.99) - 2) < 1e-9);
    assert.equal(ninesOf(0), 0);
  });
});
