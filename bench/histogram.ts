/**
 * A small log-linear latency histogram (the HdrHistogram idea, cut down to what the bench needs).
 *
 * Values are whole microseconds. Below 256 µs every value has its own bucket (exact); above, each
 * power-of-two range [2^m, 2^(m+1)) is split into 128 equal buckets, so a bucket is at most 1/128 of
 * its value wide: any percentile is reported within 0.8 % of the true sample, which is far inside the
 * noise of a VM and exact enough for p99 and p99.9. Recording is O(1) with no allocation; histograms
 * from several load-generator processes merge by adding counts; over IPC they travel as sparse
 * [index, count] pairs.
 *
 * Why not keep every sample: a 64-client run at 50k ops/s for 20 s is a million samples per repeat,
 * and the percentiles of a merged set would need them all in one process.
 */
import { assert } from "../src/core/assert.js";

/** Values below 2 × SUB_BUCKETS are exact. */
const SUB_BITS = 7;
const SUB_BUCKETS = 1 << SUB_BITS; // 128
const EXACT_LIMIT = 2 * SUB_BUCKETS; // 256
/** Largest recordable value: 2^40 µs ≈ 12.7 days. Anything larger is clamped (and counted). */
const MAX_MSB = 40;
const BUCKET_COUNT = EXACT_LIMIT + (MAX_MSB - SUB_BITS) * SUB_BUCKETS;
export const MAX_RECORDABLE_US = 2 ** (MAX_MSB + 1) - 1;

/** The serialized form: what a load generator sends to the harness. */
export interface HistogramData {
  readonly buckets: ReadonlyArray<readonly [index: number, count: number]>;
  readonly count: number;
  readonly minUs: number;
  readonly maxUs: number;
  readonly sumUs: number;
  readonly clamped: number;
}

/** Bucket index of a whole, non-negative value. Exported for the tests. */
export function bucketIndex(valueUs: number): number {
  if (valueUs < EXACT_LIMIT) return valueUs;
  // Position of the highest set bit. Math.clz32 covers 32 bits; larger values (> 35 min) use log2,
  // corrected by one step if rounding put it off by one.
  let msb = valueUs < 2 ** 32 ? 31 - Math.clz32(valueUs) : Math.floor(Math.log2(valueUs));
  if (2 ** msb > valueUs) msb--;
  else if (2 ** (msb + 1) <= valueUs) msb++;
  const shift = msb - SUB_BITS;
  const top = Math.floor(valueUs / 2 ** shift);
  assert(top >= SUB_BUCKETS && top < 2 * SUB_BUCKETS, `histogram: bad sub-bucket for ${valueUs}`);
  return EXACT_LIMIT + (shift - 1) * SUB_BUCKETS + (top - SUB_BUCKETS);
}

/** Lowest value that falls in bucket `index`, and the bucket's width. */
export function bucketRange(index: number): { lowUs: number; widthUs: number } {
  assert(index >= 0 && index < BUCKET_COUNT, `histogram bucket ${index} out of range`);
  if (index < EXACT_LIMIT) return { lowUs: index, widthUs: 1 };
  const shift = Math.floor((index - EXACT_LIMIT) / SUB_BUCKETS) + 1;
  const top = ((index - EXACT_LIMIT) % SUB_BUCKETS) + SUB_BUCKETS;
  return { lowUs: top * 2 ** shift, widthUs: 2 ** shift };
}

export class Histogram {
  private readonly counts = new Float64Array(BUCKET_COUNT);
  private n = 0;
  private min = Number.POSITIVE_INFINITY;
  private max = 0;
  private sum = 0;
  private clampedCount = 0;

  get count(): number {
    return this.n;
  }

  /** Records one latency in microseconds (rounded to a whole microsecond, clamped to the range). */
  record(valueUs: number): void {
    assert(Number.isFinite(valueUs), "histogram value must be finite");
    let v = Math.round(valueUs < 0 ? 0 : valueUs);
    if (v > MAX_RECORDABLE_US) {
      v = MAX_RECORDABLE_US;
      this.clampedCount++;
    }
    this.counts[bucketIndex(v)]! += 1;
    this.n++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  merge(other: HistogramData): void {
    for (const [index, count] of other.buckets) {
      assert(Number.isInteger(index) && index >= 0 && index < BUCKET_COUNT, `merged bucket ${index} out of range`);
      assert(count > 0, "merged bucket counts are positive");
      this.counts[index]! += count;
    }
    if (other.count === 0) return;
    this.n += other.count;
    this.sum += other.sumUs;
    this.clampedCount += other.clamped;
    if (other.minUs < this.min) this.min = other.minUs;
    if (other.maxUs > this.max) this.max = other.maxUs;
  }

  static from(data: HistogramData): Histogram {
    const h = new Histogram();
    h.merge(data);
    return h;
  }

  toData(): HistogramData {
    const buckets: Array<[number, number]> = [];
    for (let i = 0; i < BUCKET_COUNT; i++) {
      const c = this.counts[i]!;
      if (c > 0) buckets.push([i, c]);
    }
    return {
      buckets, count: this.n, minUs: this.n === 0 ? 0 : this.min, maxUs: this.max, sumUs: this.sum,
      clamped: this.clampedCount,
    };
  }

  meanUs(): number {
    return this.n === 0 ? 0 : this.sum / this.n;
  }

  /**
   * The value at quantile q ∈ [0, 1]: the smallest recorded value such that at least q of the samples
   * are ≤ it (nearest rank), reported as the middle of its bucket and clamped to the exact min/max.
   */
  quantileUs(q: number): number {
    assert(q >= 0 && q <= 1, `quantile ${q} outside [0, 1]`);
    if (this.n === 0) return 0;
    if (q === 0) return this.min;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < BUCKET_COUNT; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        const { lowUs, widthUs } = bucketRange(i);
        const mid = lowUs + (widthUs - 1) / 2;
        return Math.min(this.max, Math.max(this.min, mid));
      }
    }
    return this.max;
  }

  /**
   * The cumulative distribution as at most `maxPoints` (latencyUs, fraction ≤ it) points, for the
   * report's CDF chart. Points are the upper edges of non-empty buckets, thinned evenly by rank so
   * the tail (where the interesting part is) keeps its resolution.
   */
  cdf(maxPoints = 200): Array<[latencyUs: number, fraction: number]> {
    assert(maxPoints >= 2, "a CDF needs at least two points");
    const points: Array<[number, number]> = [];
    if (this.n === 0) return points;
    let seen = 0;
    for (let i = 0; i < BUCKET_COUNT; i++) {
      const c = this.counts[i]!;
      if (c === 0) continue;
      seen += c;
      const { lowUs, widthUs } = bucketRange(i);
      points.push([Math.min(this.max, lowUs + widthUs - 1), seen / this.n]);
    }
    if (points.length <= maxPoints) return points;
    // Keep the points whose fraction crosses each of maxPoints "nines-spaced" levels: dense near 1.
    const kept: Array<[number, number]> = [];
    let next = 0;
    for (const p of points) {
      const level = 1 - Math.pow(10, -4 * (next / (maxPoints - 1))); // 0 … 0.9999
      if (p[1] >= level || p === points[points.length - 1]) {
        kept.push(p);
        while (next < maxPoints - 1 && 1 - Math.pow(10, -4 * (next / (maxPoints - 1))) <= p[1]) next++;
      }
    }
    return kept;
  }
}
