/**
 * Hand-written SVG line charts for the report: no chart library, a few hundred bytes of markup per
 * series, readable on GitHub (light background, system fonts, no scripts, no external resources).
 *
 * One function, `lineChart`, draws every chart of the report: each axis is linear or logarithmic
 * with explicit or computed ticks, and each series is a polyline with point markers (dashed for a
 * reference line such as the in-process SQLite bound).
 */
import { assert } from "../src/core/assert.js";

export type Scale = "linear" | "log";

export interface Axis {
  readonly label: string;
  readonly scale: Scale;
  /** Tick positions (data units); computed when absent. */
  readonly ticks?: readonly number[];
  readonly format?: (v: number) => string;
  /** Forced domain; otherwise from the data (and the ticks), linear axes starting at 0. */
  readonly min?: number;
  readonly max?: number;
}

export interface Series {
  readonly name: string;
  readonly color: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
  readonly dashed?: boolean;
  readonly markers?: boolean;
}

export interface ChartSpec {
  readonly title: string;
  readonly x: Axis;
  readonly y: Axis;
  readonly series: readonly Series[];
  /** Width of the plot and its axes; the legend adds its own width. */
  readonly width?: number;
  readonly height?: number;
  /** A line under the title. */
  readonly note?: string;
}

export const SYSTEM_COLORS: Readonly<Record<string, string>> = {
  borealis: "#4c51bf",
  "borealis-hrana": "#9f7aea",
  postgres: "#c05621",
  sqlite: "#2f855a",
};

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** 0, 1, 2, 5 × 10^k steps: about `count` ticks from 0 to ≥ max. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 0.999 && ticks.length < 50; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Powers of ten covering [min, max]; with 1-2-5 steps between them when the range is narrow. */
export function decadeTicks(min: number, max: number): number[] {
  assert(min > 0 && max >= min, "log axis needs a positive domain");
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const steps = hi - lo <= 2 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let e = lo; e <= hi && ticks.length < 40; e++) for (const m of steps) ticks.push(Number((m * 10 ** e).toPrecision(6)));
  return ticks;
}

function shortNumber(v: number): string {
  if (v >= 1e9) return `${Number((v / 1e9).toPrecision(3))}G`;
  if (v >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (v >= 1e3) return `${Number((v / 1e3).toPrecision(3))}k`;
  return String(Number(v.toPrecision(3)));
}

interface Mapped {
  readonly toPx: (v: number) => number;
  readonly ticks: readonly number[];
}

function mapAxis(axis: Axis, values: readonly number[], from: number, to: number): Mapped {
  const data = values.filter((v) => Number.isFinite(v) && (axis.scale === "linear" || v > 0));
  if (axis.scale === "log") {
    // Without a forced domain, snap outwards to the nearest ticks so both ends carry a label.
    const dMin = data.length > 0 ? Math.min(...data) : 1;
    const dMax = data.length > 0 ? Math.max(...data) : 10;
    const candidates = axis.ticks ?? decadeTicks(dMin, Math.max(dMax, dMin));
    const lo = axis.min ?? Math.min(dMin, ...candidates.filter((t) => t <= dMin * 1.0001).slice(-1));
    const hi = axis.max ?? Math.max(dMax, ...candidates.filter((t) => t >= dMax * 0.9999).slice(0, 1));
    const min = Number.isFinite(lo) && lo > 0 ? lo : 1;
    const max = Number.isFinite(hi) && hi > min ? hi : min * 10;
    const ticks = (axis.ticks ?? decadeTicks(min, max)).filter((t) => t >= min * 0.999 && t <= max * 1.001);
    const a = Math.log10(min);
    const b = Math.log10(max);
    return { toPx: (v) => from + ((Math.log10(Math.max(v, min)) - a) / (b - a)) * (to - from), ticks };
  }
  const maxData = Math.max(0, ...data);
  const ticks = axis.ticks ?? niceTicks(axis.max ?? maxData);
  const min = axis.min ?? 0;
  const max = axis.max ?? Math.max(ticks[ticks.length - 1] ?? 1, maxData, min + 1e-9);
  return { toPx: (v) => from + ((v - min) / (max - min)) * (to - from), ticks: ticks.filter((t) => t >= min && t <= max) };
}

export function lineChart(spec: ChartSpec): string {
  const width = (spec.width ?? 520) + 50 + 7 * Math.max(8, ...spec.series.map((s) => s.name.length));
  const height = spec.height ?? 360;
  // The legend sits right of the plot; its width follows the longest name (≈ 7 px per character).
  const legendWidth = 50 + 7 * Math.max(8, ...spec.series.map((s) => s.name.length));
  const m = { left: 70, right: legendWidth, top: spec.note === undefined ? 40 : 56, bottom: 50 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const xs = spec.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = spec.series.flatMap((s) => s.points.map((p) => p[1]));
  const X = mapAxis(spec.x, xs, m.left, m.left + plotW);
  const Y = mapAxis(spec.y, ys, m.top + plotH, m.top);
  const fx = spec.x.format ?? shortNumber;
  const fy = spec.y.format ?? shortNumber;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${m.left}" y="22" font-size="15" font-weight="600" fill="#1a202c">${esc(spec.title)}</text>`);
  if (spec.note !== undefined) out.push(`<text x="${m.left}" y="40" fill="#4a5568">${esc(spec.note)}</text>`);
  // Grid and ticks.
  for (const t of Y.ticks) {
    const y = Y.toPx(t).toFixed(1);
    out.push(`<line x1="${m.left}" x2="${m.left + plotW}" y1="${y}" y2="${y}" stroke="#e2e8f0"/>`);
    out.push(`<text x="${m.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#4a5568">${esc(fy(t))}</text>`);
  }
  for (const t of X.ticks) {
    const x = X.toPx(t).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${m.top}" y2="${m.top + plotH}" stroke="#edf2f7"/>`);
    out.push(`<text x="${x}" y="${m.top + plotH + 18}" text-anchor="middle" fill="#4a5568">${esc(fx(t))}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#a0aec0"/>`);
  out.push(`<text x="${m.left + plotW / 2}" y="${height - 10}" text-anchor="middle" fill="#2d3748">${esc(spec.x.label)}</text>`);
  out.push(`<text transform="translate(16 ${m.top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#2d3748">${esc(spec.y.label)}</text>`);
  // Series.
  spec.series.forEach((s, i) => {
    const pts = s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]) && (spec.y.scale === "linear" || p[1] > 0));
    if (pts.length > 0) {
      const d = pts.map((p) => `${X.toPx(p[0]).toFixed(1)},${Y.toPx(p[1]).toFixed(1)}`).join(" ");
      out.push(`<polyline points="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="6 4"' : ""}/>`);
      if (s.markers !== false) {
        for (const p of pts) out.push(`<circle cx="${X.toPx(p[0]).toFixed(1)}" cy="${Y.toPx(p[1]).toFixed(1)}" r="3" fill="${s.color}"/>`);
      }
    }
    const ly = m.top + 10 + i * 20;
    const lx = m.left + plotW + 14;
    out.push(`<line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="6 4"' : ""}/>`);
    out.push(`<text x="${lx + 28}" y="${ly}" dominant-baseline="middle" fill="#1a202c">${esc(s.name)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/** Percentile → position on a "nines" axis: 0 → 0, 0.9 → 1, 0.99 → 2, 0.999 → 3. */
export function ninesOf(fraction: number): number {
  return -Math.log10(Math.max(1e-6, 1 - Math.min(fraction, 1 - 1e-6))) + 0; // + 0: no -0 for p0
}

export function ninesLabel(n: number): string {
  const p = (1 - 10 ** -n) * 100;
  return n === 0 ? "0%" : `${Number(p.toPrecision(n + 2))}%`;
}

/** Microseconds, short: 850 → "850µs", 1500 → "1.5ms", 2e6 → "2s". */
export function usLabel(us: number): string {
  if (us < 1000) return `${Number(us.toPrecision(3))}µs`;
  if (us < 1e6) return `${Number((us / 1000).toPrecision(3))}ms`;
  return `${Number((us / 1e6).toPrecision(3))}s`;
}
