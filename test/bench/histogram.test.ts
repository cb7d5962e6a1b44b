/**
 * The log-linear histogram against exact percentiles of the same samples: every quantile within the
 * bucket width (≤ 1/128 of the value), exact below 256 µs, merging equal to recording everything in
 * one, and the bucket arithmetic consistent at every boundary.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { bucketIndex, bucketRange, Histogram, MAX_RECORDABLE_US } from "../../bench/histogram.js";

function exactQuantile(sorted: readonly number[], q: number): number {
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1]!;
}

describe("histogram buckets", () => {
  it("are exact below 256 and contiguous above", () => {
    for (let v = 0; v < 256; v++) assert.equal(bucketIndex(v), v);
    let previous = bucketIndex(255);
    for (const v of [256, 257, 511, 512, 513, 1023, 1024, 65_535, 65_536, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 40, MAX_RECORDABLE_US]) {
      const i = bucketIndex(v);
      const { lowUs, widthUs } = bucketRange(i);
      assert.ok(lowUs <= v && v < lowUs + widthUs, `${v} in [${lowUs}, ${lowUs + widthUs})`);
      assert.ok(widthUs <= Math.max(1, lowUs / 128), `bucket of ${v} is at most 1/128 wide`);
      assert.ok(i >= previous, "indexes grow with values");
      previous = i;
    }
  });

  it("place every value in the bucket whose range holds it (property)", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: MAX_RECORDABLE_US }), (v) => {
      const { lowUs, widthUs } = bucketRange(bucketIndex(v));
      return lowUs <= v && v < lowUs + widthUs;
    }), { numRuns: 20_000 });
  });
});

describe("histogram quantiles", () => {
  it("are within 1/128 of the exact sample (property)", () => {
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 0, max: 10_000_000 }), { minLength: 1, maxLength: 2_000 }),
      fc.constantFrom(0.5, 0.9, 0.95, 0.99, 0.999, 1),
      (values, q) => {
        const h = new Histogram();
        for (const v of values) h.record(v);
        const exact = exactQuantile([...values].sort((a, b) => a - b), q);
        const got = h.quantileUs(q);
        return Math.abs(got - exact) <= Math.max(0.5, exact / 128);
      },
    ), { numRuns: 500 });
  });

  it("keep count, min, max and mean exact", () => {
    const h = new Histogram();
    for (const v of [3, 1000, 250_000, 7]) h.record(v);
    const d = h.toData();
    assert.equal(d.count, 4);
    assert.equal(d.minUs, 3);
    assert.equal(d.maxUs, 250_000);
    assert.equal(h.meanUs(), (3 + 1000 + 250_000 + 7) / 4);
    assert.equal(h.quantileUs(0), 3);
    assert.equal(h.quantileUs(1), 250_000);
  });

  it("merge as if every sample had been recorded in one histogram", () => {
    const a = new Histogram();
    const b = new Histogram();
    const all = new Histogram();
    for (let i = 0; i < 5_000; i++) {
      const v = Math.floor((i * 7919) % 100_000);
      (i % 3 === 0 ? a : b).record(v);
      all.record(v);
    }
    const merged = Histogram.from(a.toData());
    merged.merge(b.toData());
    assert.deepEqual(merged.toData(), all.toData());
  });

  it("clamp values beyond the range and count them", () => {
    const h = new Histogram();
    h.record(MAX_RECORDABLE_US * 4);
    h.record(-5);
    assert.equal(h.toData().clamped, 1);
    assert.equal(h.toData().minUs, 0);
  });

  it("give a monotone CDF ending at 1, thinned to the requested size", () => {
    const h = new Histogram();
    for (let i = 1; i <= 100_000; i++) h.record(i);
    const cdf = h.cdf(50);
    assert.ok(cdf.length <= 50 && cdf.length >= 10, `${cdf.length} points`);
    for (let i = 1; i < cdf.length; i++) {
      assert.ok(cdf[i]![0] >= cdf[i - 1]![0] && cdf[i]![1] >= cdf[i - 1]![1], "monotone");
    }
    assert.equal(cdf[cdf.length - 1]![1], 1);
  });
});
