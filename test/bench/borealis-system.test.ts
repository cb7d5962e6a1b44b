/**
 * The bench's Borealis system module, without the real cluster:
 * - a start failure is reported — "Borealis: failed to start: <reason>" in report.md and the
 *   terminal, status "failed" in results.json — and the other systems are still measured;
 * - against a stand-in Hrana server (borealis-standin.ts), workloads run through @libsql/client and
 *   through the lean Hrana client (the `borealis-hrana` row) on the one cluster both rows share,
 *   client network bytes are counted, and the process group is stopped afterwards.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ResultsFile } from "../../bench/results.js";

const RUN_JS = fileURLToPath(new URL("../../bench/run.js", import.meta.url));
const STANDIN_JS = fileURLToPath(new URL("./borealis-standin.js", import.meta.url));

function runBench(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [RUN_JS, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.on("close", (code) => resolve({ code, output }));
  });
}

const SHORT = ["--quick", "--duration", "0.5", "--warmup", "0.2", "--preload-rows", "500"];

describe("bench: Borealis system module", () => {
  it("reports a start failure by name and reason, and still measures the others", async () => {
    const out = mkdtempSync(join(tmpdir(), "bench-borealis-fail-"));
    try {
      const r = await runBench([...SHORT, "--systems", "borealis,borealis-hrana,sqlite", "--workloads", "read", "--clients", "1", "--out", out], {
        BOREALIS_BENCH_COMMAND: JSON.stringify([process.execPath, "-e", "console.error('no cluster today'); process.exit(3)"]),
      });
      assert.equal(r.code, 1, `a requested system that cannot start fails the run:\n${r.output}`);
      assert.match(r.output, /Borealis: failed to start: .*no cluster today/);
      const md = readFileSync(join(out, "report.md"), "utf8");
      assert.match(md, /Borealis: failed to start: .*no cluster today/);
      const results = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as ResultsFile;
      for (const name of ["borealis", "borealis-hrana"]) {
        const b = results.systems.find((s) => s.name === name)!;
        assert.equal(b.status, "failed", name);
        assert.match(b.reason ?? "", /no cluster today/, `${name}: the cluster's start failure, once for both rows`);
      }
      assert.match(r.output, /Borealis \(lean Hrana client\): failed to start: .*no cluster today/);
      assert.ok(results.results.some((x) => x.system === "sqlite" && x.okRepeats === 1), "SQLite was measured");
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it("drives a Hrana endpoint through @libsql/client and the lean client, on one cluster, and stops what it started", async () => {
    const out = mkdtempSync(join(tmpdir(), "bench-borealis-standin-"));
    try {
      // The stand-in engine opens a SQLite connection per request: slow, so longer runs than SHORT.
      const r = await runBench(["--quick", "--duration", "2", "--warmup", "0.3", "--preload-rows", "500", "--systems", "borealis,borealis-hrana", "--workloads", "write,read,transfer", "--clients", "1,3", "--out", out], {
        BOREALIS_BENCH_COMMAND: JSON.stringify([process.execPath, STANDIN_JS]),
      });
      assert.equal(r.code, 0, r.output);
      const results = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as ResultsFile;
      const [libsql, lean] = results.systems;
      assert.equal(libsql?.status, "ok");
      assert.equal(lean?.status, "ok");
      assert.match(libsql!.clientLibrary, /@libsql\/client/);
      assert.match(lean!.clientLibrary, /lean Hrana/);
      assert.equal(lean!.settings.endpoint, libsql!.settings.endpoint, "one stand-in cluster serves both rows");
      assert.equal((r.output.match(/\[start\] borealis starting/g) ?? []).length, 1, "the cluster is started once");
      for (const system of ["borealis", "borealis-hrana"] as const) {
        for (const w of ["write", "read", "transfer"] as const) {
          for (const c of [1, 3]) {
            const row = results.results.find((x) => x.system === system && x.workload === w && x.clients === c);
            assert.ok(row !== undefined && row.okRepeats === 1, `${system} ${w} @${c} measured: ${row?.errorSamples.join("; ")}`);
            assert.ok((row.netBytesPerOp ?? 0) > 0, `${system} ${w} @${c}: client bytes counted`);
            assert.ok(row.p50Us !== null && row.p99Us !== null && row.p50Us <= row.p99Us);
          }
        }
      }
      assert.ok(results.checks.every((c) => c.ok), JSON.stringify(results.checks));
      // The stand-in (started detached, its own group) is gone.
      const ps = await new Promise<string>((resolve) => {
        const p = spawn("ps", ["-eo", "args"], { stdio: ["ignore", "pipe", "ignore"] });
        let s = "";
        p.stdout.on("data", (d: Buffer) => (s += d.toString()));
        p.on("close", () => resolve(s));
      });
      assert.ok(!ps.split("\n").some((l) => l.includes(STANDIN_JS) && l.includes(" up ")), "stand-in stopped");
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
