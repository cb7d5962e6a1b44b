/**
 * The writer's `GET /metrics` (src/compute/writer-metrics.ts): the records-since-materialization
 * arithmetic, then the route on a real cluster (seven processes on loopback) — the counters are there,
 * name the writer's process, and grow with commits as they should.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { Lsn, PgId } from "../../src/core/types.js";
import type { SegmentState } from "../../src/wire/messages.js";
import { recordsSinceMaterialization, type WriterMetrics } from "../../src/compute/writer-metrics.js";
import { ProcessCluster } from "../../src/testing/process-cluster.js";

const state = (materializedLsn: number): SegmentState => ({ materializedLsn: Lsn(materializedLsn) } as unknown as SegmentState);
const noTruncation = { vdl: Lsn(0), firstNewLsn: Lsn(1) };

describe("recordsSinceMaterialization", () => {
  it("counts each PG's records above its segments' lowest materialized point", () => {
    const pg = (pgId: number, lastLsn: number, ...m: Array<number | null>) => ({
      pgId: PgId(pgId), lastLsn: Lsn(lastLsn), states: m.map((x) => (x === null ? null : state(x))),
    });
    assert.equal(recordsSinceMaterialization([pg(0, 1000, 990, 950, 1000, null, 980, 999)], noTruncation), 50);
    assert.equal(recordsSinceMaterialization([pg(0, 1000, 1000, 1000)], noTruncation), 0);
    assert.equal(recordsSinceMaterialization([pg(0, 100, 90), pg(1, 200, 150)], noTruncation), 60);
    // A PG none of whose segments answered: no figure rather than a wrong one.
    assert.equal(recordsSinceMaterialization([pg(0, 100, 90), pg(1, 200, null, null)], noTruncation), null);
    assert.equal(recordsSinceMaterialization([], noTruncation), 0);
  });

  it("skips the LSNs this writer's recovery truncated: no record has one", () => {
    // Recovered at VDL 500, new LSNs from 1501: records 401..500 and 1501..1600 are above 400.
    const truncation = { vdl: Lsn(500), firstNewLsn: Lsn(1501) };
    const pg = (lastLsn: number, m: number) => [{ pgId: PgId(0), lastLsn: Lsn(lastLsn), states: [state(m)] }];
    assert.equal(recordsSinceMaterialization(pg(1600, 400), truncation), 200);
    assert.equal(recordsSinceMaterialization(pg(1600, 500), truncation), 100);
    assert.equal(recordsSinceMaterialization(pg(1600, 1550), truncation), 50);
    assert.equal(recordsSinceMaterialization(pg(500, 450), truncation), 50);
  });
});

async function getMetrics(url: string): Promise<WriterMetrics> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  return (await res.json()) as WriterMetrics;
}

describe("the writer's GET /metrics over a real cluster", () => {
  it("reports redo, commits and storage traffic that grow with commits, and the writer's pid", { timeout: 120_000 }, async (t) => {
    const cluster = await ProcessCluster.start({ cacheMb: 32 });
    t.after(() => cluster.destroy());
    const url = cluster.writerUrl;
    const db = createClient({ url });
    t.after(() => db.close());

    const m0 = await getMetrics(url);
    for (const k of ["redoBytes", "redoRecords", "mtrs", "commits", "storageNetBytes", "storageBytesSent", "storageBytesReceived", "pgs", "vdl"] as const) {
      assert.equal(typeof m0[k], "number", `${k} is a number`);
    }
    assert.deepEqual(m0.processes, [{ role: "writer", pid: cluster.writer.pid }]);
    assert.equal(m0.pgs, 1);
    // Recovery already spoke to the storage nodes.
    assert.ok(m0.storageBytesSent > 0 && m0.storageBytesReceived > 0, "recovery's traffic counted");
    assert.equal(m0.storageNetBytes, m0.storageBytesSent + m0.storageBytesReceived);
    assert.equal(typeof m0.recordsSinceMaterialization, "number");

    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    const commits = 200;
    for (let i = 1; i <= commits; i++) await db.execute({ sql: "INSERT INTO t (id, v) VALUES (?, ?)", args: [i, "x".repeat(100)] });
    const m1 = await getMetrics(url);

    // Sequential autocommit statements: each one a commit, acknowledged before its answer came back.
    assert.equal(m1.commits - m0.commits, commits + 1, "every commit counted once");
    assert.equal(m1.mtrs - m0.mtrs, commits + 1, "one MTR per commit (no group commit without concurrency)");
    const records = m1.redoRecords - m0.redoRecords;
    const bytes = m1.redoBytes - m0.redoBytes;
    assert.ok(records >= 2 * commits, `≥ 2 redo records per single-row commit (${records})`);
    const perCommit = bytes / (commits + 1);
    assert.ok(perCommit > 100 && perCommit < 2000, `redo bytes per single-row commit: ${perCommit.toFixed(0)}`);
    // Each record goes to six segments; each commit's records reached a write quorum at least.
    const sent = m1.storageBytesSent - m0.storageBytesSent;
    assert.ok(sent >= 4 * bytes, `bytes sent to storage (${sent}) ≥ 4 × the redo (${bytes})`);
    assert.ok(m1.storageBytesReceived > m0.storageBytesReceived, "acknowledgements counted");
    assert.ok(m1.vdl > m0.vdl);
    t.diagnostic(`redo ${perCommit.toFixed(0)} B/commit, ${(records / (commits + 1)).toFixed(2)} records/commit, storage ${(sent / (commits + 1)).toFixed(0)} B sent/commit`);

    // Storage sorts records into its page store in the background (within ~200 ms): the backlog is a
    // gauge that stays far below the log written (the last commits' records may stay above it until a
    // later write tells the segments a newer VDL).
    assert.ok(m1.recordsSinceMaterialization !== null && m1.recordsSinceMaterialization >= 0);
    const deadline = Date.now() + 15_000;
    let backlog: number | null = m1.recordsSinceMaterialization;
    while (Date.now() < deadline) {
      backlog = (await getMetrics(url)).recordsSinceMaterialization;
      if (backlog !== null && backlog < records / 4) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(backlog !== null && backlog < records / 4, `records above the materialized point come down: ${backlog} of ${records}`);
    t.diagnostic(`records since materialization: ${m1.recordsSinceMaterialization} right after the commits, ${backlog} later`);
  });
});
