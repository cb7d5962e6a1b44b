/**
 * The short version of `npm run faults` for CI: real processes on loopback (control plane, six
 * storage nodes, the writer), a bank run with storage-node and writer kill -9s, and a list-append run
 * with kills, partitions through the fault proxies and bytes flipped in stopped nodes' files. Each run
 * must pass its checker (bank totals; Elle-style list-append with real-time edges), the final reads
 * after a kill -9 of the writer, and PRAGMA integrity_check. The long runs are `npm run faults`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { runOne, type RunResult } from "../../src/faults/runner.js";

function explain(r: RunResult): string {
  return JSON.stringify({
    checker: r.checker, integrity: r.integrityCheck, finalReadsOk: r.finalReadsOk, problems: r.nemesis.problems,
    error: r.error, ops: r.ops, dir: r.dir,
  }, null, 2);
}

test("faults (short): bank under storage-node and writer kill -9", { timeout: 240_000 }, async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), "borealis-faults-"));
  const r = await runOne({ workload: "bank", faults: ["kill", "writer"], durationS: 12, seed: 1, dir, quick: true, concurrency: 4, opTimeoutMs: 8000 });
  t.diagnostic(`bank: ${JSON.stringify(r.ops)}; ${r.nemesis.episodes} episodes; writer restarts ${r.nemesis.writerRestartsMs.join("/")} ms`);
  assert.ok(r.valid, explain(r));
  assert.ok((r.ops["transfer"]?.ok ?? 0) > 0 && (r.ops["read"]?.ok ?? 0) > 0, "the workload made progress");
  await rm(dir, { recursive: true, force: true });
});

test("faults (short): list-append under kills, partitions and flipped bytes", { timeout: 240_000 }, async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), "borealis-faults-"));
  const r = await runOne({ workload: "list-append", faults: ["kill", "partition", "corrupt"], durationS: 15, seed: 2, dir, quick: true, concurrency: 4, opTimeoutMs: 8000 });
  t.diagnostic(`list-append: ${JSON.stringify(r.ops)}; ${JSON.stringify(r.nemesis.byKind)}; corruptions ${JSON.stringify(r.nemesis.corruptions)}`);
  assert.ok(r.valid, explain(r));
  assert.ok((r.ops["txn"]?.ok ?? 0) > 0, "the workload made progress");
  await rm(dir, { recursive: true, force: true });
});
