/**
 * The arithmetic of the report: medians of repeats, ratios, and rounding for display. Pure functions,
 * no I/O, so the tests can pin them down.
 *
 * Why medians: on a shared 2-core VM one repeat in three is routinely disturbed by a neighbour; the
 * median ignores it where a mean would be dragged. The spread (min–max of the repeats, relative to the
 * median) is reported beside it so a reader sees when a figure is not to be trusted.
 */
import { assert } from "../src/core/assert.js";

/** Median of finite numbers; null for an empty list or when any entry is null (a figure not measured). */
export function median(values: ReadonlyArray<number | null>): number | null {
  if (values.length === 0) return null;
  const nums: number[] = [];
  for (const v of values) {
    if (v === null || !Number.isFinite(v)) return null;
    nums.push(v);
  }
  nums.sort((a, b) => a - b);
  const mid = Math.floor(nums.length / 2);
  return nums.length % 2 === 1 ? nums[mid]! : (nums[mid - 1]! + nums[mid]!) / 2;
}

/** (max − min) / median of the repeats: 0.05 means the repeats lie within 5 % of each other. */
export function relativeSpread(values: readonly number[]): number | null {
  const m = median(values);
  if (m === null || m === 0 || values.length < 2) return values.length === 1 ? 0 : null;
  return (Math.max(...values) - Math.min(...values)) / Math.abs(m);
}

/** a / b, or null when either is missing or b is zero. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return null;
  return a / b;
}

/** Index of the repeat whose value is the median (the lower middle for an even count). */
export function medianIndex(values: readonly number[]): number {
  assert(values.length > 0, "median of no repeats");
  const order = values.map((v, i) => [v, i] as const).sort((x, y) => x[0] - y[0]);
  return order[Math.floor((order.length - 1) / 2)]![1];
}

// ------------------------------------------------------------------------------------------- display

/** 3 significant digits, thousands separated: 12345 → "12,300", 1.234 → "1.23". */
export function fmtNum(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  if (v === 0) return "0";
  const mag = Math.floor(Math.log10(Math.abs(v)));
  const decimals = Math.max(0, digits - 1 - mag);
  const rounded = Number(v.toPrecision(digits));
  return rounded.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

/** Microseconds as a human latency: 850 → "850 µs", 1234 → "1.23 ms", 2_500_000 → "2.50 s". */
export function fmtUs(us: number | null | undefined): string {
  if (us === null || us === undefined || !Number.isFinite(us)) return "–";
  if (us < 1000) return `${fmtNum(us)} µs`;
  if (us < 1_000_000) return `${fmtNum(us / 1000)} ms`;
  return `${fmtNum(us / 1_000_000)} s`;
}

export function fmtBytes(b: number | null | undefined): string {
  if (b === null || b === undefined || !Number.isFinite(b)) return "–";
  if (b < 1024) return `${fmtNum(b)} B`;
  if (b < 1024 * 1024) return `${fmtNum(b / 1024)} KiB`;
  if (b < 1024 ** 3) return `${fmtNum(b / 1024 ** 2)} MiB`;
  return `${fmtNum(b / 1024 ** 3)} GiB`;
}

export function fmtRatio(r: number | null | undefined): string {
  if (r === null || r === undefined || !Number.isFinite(r)) return "–";
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

export function fmtDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
