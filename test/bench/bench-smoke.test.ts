/**
 * CI's smoke test of `npm run bench -- --quick`: the bench runs end to end against every system
 * (Borealis through `borealis up` and its GET /metrics, with both client models — @libsql/client and
 * the lean Hrana client — on the one cluster; PostgreSQL, installed by the bench if missing; SQLite;
 * BENCH_SMOKE_SYSTEMS overrides, e.g. "postgres,sqlite") into a temporary directory, and
 * produces results.json and report.md of the expected structure. It never checks a speed: only that
 * every figure was produced. PostgreSQL is skipped — with the reason printed — only when it cannot be
 * installed.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { RESULTS_SCHEMA, type ResultsFile } from "../../bench/results.js";
import type { SystemName } from "../../bench/systems/system.js";

const RUN_JS = fileURLToPath(new URL("../../bench/run.js", import.meta.url));
const SYSTEMS = (process.env.BENCH_SMOKE_SYSTEMS ?? "borealis,borealis-hrana,postgres,sqlite").split(",") as SystemName[];
const TIMED = ["write", "read", "mix", "transfer"] as const;
const QUICK_CLIENTS = [1, 32];
const QUICK_LIMIT_MS = 120_000;

describe("bench --quick (smoke)", () => {
  it("produces results.json and report.md with every figure, in under two minutes", async (t) => {
    const out = mkdtempSync(join(tmpdir(), "bench-smoke-"));
    try {
      const t0 = performance.now();
      const run = await new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn(process.execPath, [RUN_JS, "--quick", "--systems", SYSTEMS.join(","), "--out", out], { stdio: ["ignore", "pipe", "pipe"] });
        let output = "";
        child.stdout.on("data", (d: Buffer) => (output += d.toString()));
        child.stderr.on("data", (d: Buffer) => (output += d.toString()));
        child.on("close", (code) => resolve({ code, output }));
      });
      const elapsedMs = performance.now() - t0;
      assert.ok(existsSync(join(out, "results.json")), `results.json written:\n${run.output}`);
      assert.ok(existsSync(join(out, "report.md")), "report.md written");
      const r = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as ResultsFile;
      assert.equal(r.schema, RESULTS_SCHEMA);
      assert.equal(r.config.quick, true);
      assert.deepEqual(r.systems.map((s) => s.name), SYSTEMS);

      const measured: SystemName[] = [];
      for (const s of r.systems) {
        if (s.status === "ok") {
          measured.push(s.name);
          continue;
        }
        if (s.name === "postgres" && s.failureKind === "not-installable") {
          t.diagnostic(`PostgreSQL skipped: it cannot be installed here: ${s.reason}`);
          continue;
        }
        assert.fail(`${s.title} failed to start: ${s.reason}\n${run.output}`);
      }
      assert.ok(measured.includes("sqlite"), "SQLite is always measured");
      // A requested system that could not start makes the run exit 1; otherwise it must succeed.
      assert.equal(run.code, measured.length === SYSTEMS.length ? 0 : 1, run.output);

      const borealis = r.systems.find((s) => s.name === "borealis");
      if (borealis?.status === "ok") assert.equal(borealis.settings.metrics, "GET /metrics", "Borealis serves GET /metrics");
      const lean = r.systems.find((s) => s.name === "borealis-hrana");
      if (lean?.status === "ok") {
        assert.match(lean.clientLibrary, /lean Hrana/);
        if (borealis?.status === "ok") assert.equal(lean.settings.endpoint, borealis.settings.endpoint, "the two Borealis rows share one cluster");
      }
      for (const name of measured) {
        const inProcess = r.systems.find((s) => s.name === name)!.clientModel === "in-process";
        for (const w of TIMED) {
          for (const c of inProcess ? [1] : QUICK_CLIENTS) {
            const row = r.results.find((x) => x.system === name && x.workload === w && x.clients === c);
            assert.ok(row !== undefined, `${name} ${w} @${c}: a row`);
            assert.equal(row.okRepeats, 1, `${name} ${w} @${c}: measured (${row.errorSamples.join("; ")})`);
            assert.ok((row.opsPerSec ?? 0) > 0, `${name} ${w} @${c}: ops/s produced`);
            for (const p of [row.p50Us, row.p95Us, row.p99Us]) assert.ok(p !== null && p >= 0, `${name} ${w} @${c}: percentiles`);
            assert.ok(row.p50Us! <= row.p99Us!, "p50 ≤ p99");
            assert.ok(row.serverCpuPerOpUs !== null, `${name} ${w} @${c}: CPU per op`);
            assert.ok(row.serverPeakRssBytes !== null && row.serverPeakRssBytes > 0, `${name} ${w} @${c}: peak memory`);
            assert.ok(row.cdf.length > 0, `${name} ${w} @${c}: latency distribution`);
            // Borealis reports its redo, and the writer↔storage traffic, through GET /metrics.
            if (w !== "read") assert.ok(row.logBytesPerCommit !== null && row.logBytesPerCommit > 0, `${name} ${w} @${c}: log bytes per commit`);
            const isBorealis = name === "borealis" || name === "borealis-hrana";
            if (w !== "read" && isBorealis) {
              assert.ok(row.logRecordsPerCommit !== null && row.logRecordsPerCommit > 0, `${name} ${w} @${c}: redo records per commit`);
              assert.ok(row.internalNetBytesPerCommit !== null && row.internalNetBytesPerCommit >= row.logBytesPerCommit!, `${name} ${w} @${c}: storage bytes per commit (the redo goes to six segments)`);
            }
            if (w === "write" && isBorealis) t.diagnostic(`${name} write @${c}: ${Math.round(row.opsPerSec!)} ops/s, client CPU/op ${Math.round(row.clientCpuPerOpUs ?? 0)} µs, ${Math.round(row.logBytesPerCommit!)} redo B/commit, ${Math.round(row.internalNetBytesPerCommit!)} storage B/commit`);
            if (!inProcess) assert.ok((row.netBytesPerOp ?? 0) > 0, `${name} ${w} @${c}: network bytes per op`);
            if (name !== "postgres" && measured.includes("postgres")) assert.ok(row.vsPostgres !== null, `${name} ${w} @${c}: ratio to PostgreSQL`);
          }
        }
        const bulk = r.results.find((x) => x.system === name && x.workload === "bulk");
        assert.ok(bulk !== undefined && bulk.okRepeats === 1 && (bulk.rowsPerSec ?? 0) > 0, `${name}: bulk load measured`);
        const restart = r.restart.filter((p) => p.system === name);
        // One cluster, one restart figure: under "borealis" when both Borealis rows run.
        const sharedRestart = name === "borealis-hrana" && measured.includes("borealis");
        assert.equal(restart.length, sharedRestart ? 0 : r.config.restartRecords.length, `${name}: a restart point per log length`);
        for (const p of restart) assert.ok(p.error === null && p.restartMs !== null && (p.records ?? 0) > 0, `${name}: restart ${JSON.stringify(p)}`);
        if (name.startsWith("borealis")) for (const p of restart) assert.match(p.recordsSource ?? "", /^GET \/metrics/, "Borealis's log length counted exactly");
      }
      for (const c of r.checks) assert.ok(c.ok, `check ${c.system} ${c.workload}: ${c.message}`);

      const md = readFileSync(join(out, "report.md"), "utf8");
      assert.match(md, /^# Borealis benchmarks/);
      assert.match(md, /## Summary/);
      for (const name of measured) assert.ok(md.includes(r.systems.find((s) => s.name === name)!.title), `report names ${name}`);
      for (const w of TIMED) {
        for (const kind of ["throughput", "latency"]) {
          const chart = `charts/${kind}-${w}.svg`;
          assert.ok(md.includes(chart) && existsSync(join(out, chart)), `${chart} written and linked`);
        }
      }
      assert.ok(existsSync(join(out, "charts", "restart.svg")), "restart chart");
      assert.match(run.output, /workload\s+clients\s+system\s+ops\/s/, "summary table in the terminal");
      // A limit of the quick mode, not a speed of a system: it is what makes it usable in CI.
      t.diagnostic(`the quick bench took ${Math.round(elapsedMs / 1000)} s`);
      if (elapsedMs > QUICK_LIMIT_MS) t.diagnostic(`warning: the quick bench took ${Math.round(elapsedMs / 1000)} s (target < 120 s)`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
