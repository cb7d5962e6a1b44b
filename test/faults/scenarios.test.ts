/**
 * Regression scenarios for bugs the fault runs found, each as a short deterministic story on a real
 * cluster (processes on loopback). Each test names the bug it guards.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { ProcessCluster } from "../../src/testing/process-cluster.js";
import { waitForConvergence } from "../../src/faults/runner.js";

/**
 * Bug 1 (found by `npm run faults`, seed 11, bank with every fault): a storage node that was down
 * while the writer recovered could never catch up. Recovery starts new LSNs above a truncation range
 * (VDL + LAL, 10,000,000 LSNs), and storage retention trailed knownVdl by 1,000,000 LSNs — so right
 * after any recovery the retention point jumped past every record of the old epoch, and `readRecords`
 * refused the lagging segment's catch-up ("records after … are below retention"). The segment stayed
 * behind for good; two such segments plus one node down left a PG without a write quorum, and the
 * next recovery failed. Fix: the retention window counts only LSNs a writer allocated, skipping
 * recoveries' truncation ranges.
 */
test("a node that missed a writer recovery catches up, and then counts toward the write quorum", { timeout: 180_000 }, async (t) => {
  const cluster = await ProcessCluster.start({ cacheMb: 32, commitTimeoutMs: 8000 });
  t.after(() => cluster.destroy());
  let db = createClient({ url: cluster.writerUrl });
  await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
  for (let i = 1; i <= 20; i++) await db.execute({ sql: "INSERT INTO t VALUES (?, ?)", args: [i, `row ${i}`] });

  // n1 goes down and misses some commits; the writer crashes (its outbox, which still held them for
  // n1, is gone) and recovers without n1: a new epoch, new LSNs above the truncation range.
  await cluster.kill(cluster.node("n1"));
  for (let i = 21; i <= 40; i++) await db.execute({ sql: "INSERT INTO t VALUES (?, ?)", args: [i, `row ${i}`] });
  db.close();
  await cluster.kill(cluster.writer);
  await cluster.startWriter();
  db = createClient({ url: cluster.writerUrl });
  for (let i = 41; i <= 60; i++) await db.execute({ sql: "INSERT INTO t VALUES (?, ?)", args: [i, `row ${i}`] });
  // Let the other nodes sort the new records into their page stores (retention moves with sorting).
  await new Promise((r) => setTimeout(r, 1500));
  await cluster.startNode("n1");
  for (let i = 61; i <= 70; i++) await db.execute({ sql: "INSERT INTO t VALUES (?, ?)", args: [i, `row ${i}`] });

  const converged = await waitForConvergence(cluster, 20_000);
  assert.ok(converged.converged, `every segment caught up: ${converged.detail}`);

  // Two other nodes down: n1 is now needed for a write quorum (4 of 6).
  await cluster.kill(cluster.node("n3"));
  await cluster.kill(cluster.node("n5"));
  await db.execute({ sql: "INSERT INTO t VALUES (?, ?)", args: [71, "row 71"] });
  const rows = await db.execute("SELECT count(*) AS n FROM t");
  assert.equal(Number(rows.rows[0]!["n"]), 71);
  assert.equal((await db.execute("PRAGMA integrity_check")).rows[0]![0], "ok");
  db.close();
});
