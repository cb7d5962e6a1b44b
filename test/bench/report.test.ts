/**
 * The report from a synthetic run: medians and ratios in the summary, a system that failed to start
 * named with its reason (never silently missing), well-formed SVG charts, and the JSON round trip.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Histogram } from "../../bench/histogram.js";
import type { RunResult } from "../../bench/harness.js";
import { renderMarkdown, terminalSummary, writeReport } from "../../bench/report.js";
import { RESULTS_SCHEMA, summarize, withRatios, type ResultsFile, type SummaryRow } from "../../bench/results.js";
import type { SystemName } from "../../bench/systems/system.js";
import type { WorkloadName } from "../../bench/workloads/workload.js";

function fakeRun(opsPerSec: number, latencyUs: number, commitsPerOp = 1): RunResult {
  const h = new Histogram();
  for (let i = 0; i < 1000; i++) h.record(latencyUs * (0.5 + (i % 100) / 100));
  const ops = opsPerSec * 10;
  const mem = { largestPeakRssBytes: 50 << 20, largestProcess: "server", sumPeakRssBytes: 80 << 20, processes: 3, top: [] };
  return {
    ok: true, error: null, errorSamples: [], elapsedMs: 10_000, ops, opsPerSec, errors: 0, retries: 2, commits: ops * commitsPerOp,
    rows: 0, rowsPerSec: null,
    latency: { p50Us: h.quantileUs(0.5), p95Us: h.quantileUs(0.95), p99Us: h.quantileUs(0.99), p999Us: h.quantileUs(0.999), maxUs: h.toData().maxUs, meanUs: h.meanUs() },
    serverCpuPerOpUs: 100, clientCpuPerOpUs: 50, serverCores: 1, logBytesPerCommit: 200, logRecordsPerCommit: 2,
    internalNetBytesPerCommit: null, netBytesPerOp: 300, server: mem, client: mem, loadgenProcesses: 2, extraCounters: {},
    maxSeq: ops, histogram: h,
  };
}

function fakeResults(): ResultsFile {
  const rows: SummaryRow[] = [];
  const add = (s: SystemName, w: WorkloadName, c: number, runs: RunResult[]): void => { rows.push(summarize(s, w, c, runs)); };
  for (const c of [1, 32]) {
    add("postgres", "write", c, [fakeRun(1000 * c, 500), fakeRun(1100 * c, 480), fakeRun(900 * c, 520)]);
    add("borealis", "write", c, [fakeRun(2000 * c, 400), fakeRun(2100 * c, 380), fakeRun(1900 * c, 420)]);
  }
  add("sqlite", "write", 1, [fakeRun(5000, 200)]);
  return {
    schema: RESULTS_SCHEMA,
    startedAt: "2026-11-21T00:00:00.000Z", finishedAt: "2026-11-21T00:10:00.000Z", durationMs: 600_000,
    command: "node dist/bench/run.js",
    machine: { cpuModel: "Test CPU", cores: 2, memoryBytes: 24 << 30, os: "Debian", kernel: "6.1", node: "v20", loadAverageAtStart: [0, 0, 0], loadAverageAtEnd: [1, 1, 1] },
    config: {
      quick: false, systems: ["borealis", "postgres", "sqlite"], workloads: ["write"], clients: [1, 32], warmupMs: 5000, durationMs: 10_000,
      repeats: 3, loadgenProcesses: 2, restartRecords: [1000, 100_000],
      params: { preloadRows: 100, accounts: 10, bulkRows: 100, batchRows: 10, batchesPerTxn: 2, mixReadPercent: 90, maxAttempts: 5 },
    },
    systems: [
      { name: "borealis", title: "Borealis", status: "ok", reason: null, failureKind: null, version: "Borealis 0.1", clientLibrary: "@libsql/client", clientModel: "network", settings: {}, startMs: 1000 },
      { name: "postgres", title: "PostgreSQL", status: "ok", reason: null, failureKind: null, version: "PostgreSQL 15", clientLibrary: "pg", clientModel: "network", settings: { fsync: "on" }, startMs: 900 },
      { name: "sqlite", title: "SQLite", status: "failed", reason: "disk on fire", failureKind: "failed", version: null, clientLibrary: "better-sqlite3", clientModel: "in-process", settings: {}, startMs: null },
    ],
    workloads: [{ name: "write", title: "Single-row durable writes", description: "INSERT", kind: "timed" }],
    results: withRatios(rows),
    restart: [
      { system: "postgres", targetRecords: 1000, records: 1003, recordsSource: "pg_waldump", logBytes: 100_000, rows: 500, restartMs: 250, repeatsMs: [250], method: "SIGQUIT", error: null },
      { system: "postgres", targetRecords: 100_000, records: 100_010, recordsSource: "pg_waldump", logBytes: 10_000_000, rows: 50_000, restartMs: 900, repeatsMs: [900], method: "SIGQUIT", error: null },
    ],
    checks: [],
  };
}

describe("report", () => {
  it("summarizes repeats by their median and divides by PostgreSQL's median", () => {
    const r = fakeResults();
    const pg = r.results.find((x) => x.system === "postgres" && x.clients === 32)!;
    const b = r.results.find((x) => x.system === "borealis" && x.clients === 32)!;
    assert.equal(pg.opsPerSec, 32_000);
    assert.equal(b.opsPerSec, 64_000);
    assert.equal(b.vsPostgres?.opsPerSec, 2);
    assert.equal(b.okRepeats, 3);
    assert.ok(Math.abs(pg.opsPerSecSpread! - 0.2) < 1e-9);
    assert.equal(b.retries, 6);
  });

  it("names a system that failed to start, with its reason, in the report and the terminal", () => {
    const r = fakeResults();
    const { markdown } = renderMarkdown(r);
    assert.match(markdown, /SQLite: failed to start: disk on fire/);
    assert.match(terminalSummary(r), /SQLite: failed to start: disk on fire/);
    assert.match(markdown, /\| workload \| clients \| system \| ops\/s \| ×PG \|/);
    assert.match(markdown, /Restart after a crash, by log length/);
  });

  it("writes results.json, report.md and well-formed SVG charts", () => {
    const dir = mkdtempSync(join(tmpdir(), "bench-report-test-"));
    try {
      const files = writeReport(dir, fakeResults());
      const back = JSON.parse(readFileSync(files.json, "utf8")) as ResultsFile;
      assert.equal(back.schema, RESULTS_SCHEMA);
      assert.equal(back.results.length, 5);
      const charts = readdirSync(join(dir, "charts")).sort();
      assert.deepEqual(charts, ["latency-write.svg", "restart.svg", "throughput-write.svg"]);
      for (const c of charts) {
        const svg = readFileSync(join(dir, "charts", c), "utf8");
        assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
        assert.match(svg, /<\/svg>\n$/);
        assert.doesNotMatch(svg, /NaN|Infinity|undefined/);
      }
      const md = readFileSync(files.markdown, "utf8");
      for (const c of charts) assert.ok(md.includes(`charts/${c}`), `report links ${c}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
