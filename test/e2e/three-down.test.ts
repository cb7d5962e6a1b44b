/**
 * Three storage nodes down (beyond the write quorum, still a read quorum: invariant 12's "AZ+1"), on
 * a real cluster through `@libsql/client`, with a short commit timeout (--commit-timeout-ms):
 *
 * - a commit started while three are down is never acknowledged: it waits, then is answered
 *   COMMIT_OUTCOME_UNKNOWN (never a false acknowledgement, never "failed");
 * - reads of data committed before still answer, from storage (more data than the writer's cache), and
 *   do not see the unknown commit;
 * - the nodes come back: writes resume on the same writer, and the unknown commit is all there or not
 *   there at all — the same answer after a kill -9 and restart of the writer.
 *
 * - again three down and a commit waiting, but now the writer is killed (-9) before the timeout; the
 *   nodes and a new writer come back: recovery decides, and the commit is all there or not at all.
 *
 * Then `PRAGMA integrity_check` is ok and the writer's `/health` is ok. Which three nodes die (a whole
 * AZ plus one more) is drawn from a printed seed (replay with BOREALIS_SEED=<seed>).
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { LibsqlError, type InStatement, type ResultSet } from "@libsql/client";
import { ProcessCluster, type StorageProcess } from "../../src/testing/process-cluster.js";
import { Rng, assertHealthy, boundedClient, errorCode, seedFromEnv, sleep, waitFor, writerHealth } from "./helpers.js";

const COMMIT_TIMEOUT_MS = 3000;
const ROWS = 320;
// 320 × 16 KiB ≈ 5.2 MB: more than the writer's 4 MiB buffer pool, so reads go to storage. Zero
// blobs: new pages differ from zeros by little, so their redo is small and the setup quick.
const ROW_BYTES = 16 * 1024;
const MARKERS = [900_001, 900_002, 900_003, 900_004, 900_005];

let cluster: ProcessCluster | undefined;
after(() => cluster?.destroy());
const seed = seedFromEnv();
const rng = new Rng(seed);

/** A whole AZ and one more node, drawn from the seed. */
function threeVictims(c: ProcessCluster): StorageProcess[] {
  const az = ["a", "b", "c"][rng.int(3)]!;
  const others = c.nodes.filter((n) => n.az !== az);
  return [...c.nodes.filter((n) => n.az === az), others[rng.int(others.length)]!];
}

/** A client or a transaction. */
interface Executor {
  execute(stmt: InStatement): Promise<ResultSet>;
}

/** Row count, sum of v, and payload bytes (through hex(): every overflow page is read, not just sizes). */
async function totals(db: Executor): Promise<{ n: number; sum: number; bytes: number }> {
  const r = (await db.execute({ sql: "SELECT count(*) AS n, coalesce(sum(v), 0) AS s, coalesce(sum(length(hex(payload))) / 2, 0) AS b FROM t WHERE id <= ?", args: [ROWS] })).rows[0]!;
  return { n: Number(r["n"]), sum: Number(r["s"]), bytes: Number(r["b"]) };
}

async function markersPresent(db: Executor, markers: readonly number[] = MARKERS): Promise<number> {
  const r = await db.execute({ sql: `SELECT count(*) AS n FROM t WHERE id IN (${markers.map(() => "?").join(", ")})`, args: [...markers] });
  return Number(r.rows[0]!["n"]);
}

test("three storage nodes down: commits are not acknowledged, reads answer; back up: writes resume, the unknown commit is all or nothing", { timeout: 180_000 }, async (t) => {
  cluster = await ProcessCluster.start({ pgPages: 256, cacheMb: 4, commitTimeoutMs: COMMIT_TIMEOUT_MS });
  const c = cluster;
  let phaseStart = performance.now();
  const phase = (name: string) => {
    t.diagnostic(`${name}: ${(performance.now() - phaseStart).toFixed(0)} ms`);
    phaseStart = performance.now();
  };
  phase("cluster started");
  const db = boundedClient(c.writerUrl);
  t.after(() => db.close());

  await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, payload BLOB NOT NULL)");
  for (let first = 1; first <= ROWS; first += 40) {
    await db.execute({
      sql: "WITH RECURSIVE s(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM s WHERE i < ?) INSERT INTO t (id, v, payload) SELECT i, i, zeroblob(?) FROM s",
      args: [first, first + 39, ROW_BYTES],
    });
  }
  phase("inserts");
  const before = await totals(db);
  phase("first read");
  assert.deepEqual(before, { n: ROWS, sum: (ROWS * (ROWS + 1)) / 2, bytes: ROWS * ROW_BYTES });

  const victims = threeVictims(c);
  t.diagnostic(`seed ${seed}: killing ${victims.map((n) => `${n.name} (AZ ${n.az})`).join(", ")}`);
  const vdlBefore = (await writerHealth(c)).body.vdl;
  await Promise.all(victims.map((n) => c.kill(n)));

  // The commit: five rows and an update, in one transaction.
  const startedAt = performance.now();
  let settled: { ok: true } | { ok: false; error: unknown } | undefined;
  const commit = db.batch([
    ...MARKERS.map((id) => ({ sql: "INSERT INTO t (id, v, payload) VALUES (?, 0, x'00')", args: [id] })),
    "UPDATE t SET v = v + 1000000 WHERE id = 1",
  ], "write").then(() => { settled = { ok: true }; }, (error: unknown) => { settled = { ok: false, error }; });

  // It waits: not acknowledged, VDL stuck, the commit counted as waiting.
  await sleep(1000);
  assert.equal(settled, undefined, "not acknowledged while three are down");
  const waiting = (await writerHealth(c)).body as unknown as { vdl: number; waitingCommits: number; volumeStats: { pageReads: number } };
  assert.equal(waiting.vdl, vdlBefore, "VDL cannot advance without a write quorum");
  assert.ok(waiting.waitingCommits >= 1, "the commit is waiting for durability");

  // Reads of what was committed before answer, from storage, without the pending commit.
  assert.deepEqual(await totals(db), before, "reads of durable data answer with three nodes down");
  const rtx = await db.transaction("read");
  try {
    assert.deepEqual(await totals(rtx), before);
    assert.equal(await markersPresent(rtx), 0);
  } finally {
    rtx.close();
  }
  const during = (await writerHealth(c)).body as unknown as { vdl: number; volumeStats: { pageReads: number } };
  t.diagnostic(`page reads from storage with three nodes down: ${during.volumeStats.pageReads - waiting.volumeStats.pageReads}`);
  assert.ok(during.volumeStats.pageReads > waiting.volumeStats.pageReads, "the reads went to storage (the data outgrows the cache)");
  assert.equal(during.vdl, vdlBefore);

  await commit;
  const waitedMs = performance.now() - startedAt;
  const outcome = settled as { ok: true } | { ok: false; error: unknown } | undefined;
  assert.ok(outcome !== undefined && !outcome.ok, "never acknowledged");
  const error = outcome.error;
  t.diagnostic(`the commit was answered after ${waitedMs.toFixed(0)} ms: ${errorCode(error)}`);
  assert.ok(error instanceof LibsqlError && error.code === "COMMIT_OUTCOME_UNKNOWN", `expected COMMIT_OUTCOME_UNKNOWN, got ${errorCode(error)}`);
  assert.ok(waitedMs >= COMMIT_TIMEOUT_MS - 500, `answered after ${waitedMs.toFixed(0)} ms, before the commit timeout`);
  assert.deepEqual(await totals(db), before, "still answering reads after the timeout");

  phase("three down");
  // Back up. The same writer takes writes again once the segments have caught up.
  await Promise.all(victims.map((n) => c.startNode(n.name)));
  phase("nodes restarted");
  let attempts = 0;
  const lastErrors = new Map<string, number>();
  await waitFor("a write acknowledged after the nodes came back", async () => {
    attempts++;
    try {
      await db.execute({ sql: "INSERT INTO t (id, v, payload) VALUES (?, 0, x'01')", args: [800_000 + attempts] });
      return true;
    } catch (e) {
      lastErrors.set(errorCode(e), (lastErrors.get(errorCode(e)) ?? 0) + 1);
      await sleep(200);
      return false;
    }
  }, 30_000).catch(async (e: unknown) => {
    throw new Error(`${e instanceof Error ? e.message : String(e)}; errors: ${JSON.stringify([...lastErrors])}\n${await c.logTail(c.writer, 10)}`);
  });
  t.diagnostic(`writes resumed after ${attempts} attempt(s) (${JSON.stringify([...lastErrors])})`);

  phase("first write after");
  const present = await markersPresent(db);
  const row1 = Number((await db.execute("SELECT v FROM t WHERE id = 1")).rows[0]!["v"]);
  t.diagnostic(`the unknown commit is ${present === MARKERS.length ? "there" : "not there"} (${present} of ${MARKERS.length} rows)`);
  assert.ok(present === 0 || present === MARKERS.length, `${present} of ${MARKERS.length} rows of one transaction`);
  assert.equal(row1, present === 0 ? 1 : 1_000_001, "the transaction's update goes with its inserts");

  // The answer survives a crash of the writer: what was visible was durable.
  await c.kill(c.writer);
  await c.startWriter();
  phase("writer restarted");
  t.diagnostic(`writer startup after the restart: ${JSON.stringify(((await writerHealth(c)).body as unknown as { startup: unknown }).startup)}`);
  assert.equal(await markersPresent(db), present);
  assert.equal(Number((await db.execute("SELECT v FROM t WHERE id = 1")).rows[0]!["v"]), row1);
  const after = await totals(db);
  assert.equal(after.n, ROWS);
  assert.equal(after.bytes, ROWS * ROW_BYTES);
  await db.execute({ sql: "INSERT INTO t (id, v, payload) VALUES (?, 0, x'02')", args: [700_000] });
  await assertHealthy(c, db);
  phase("checks");
});

test("three down, a commit waiting, and the writer killed -9: after recovery the commit is all there or not at all", { timeout: 120_000 }, async (t) => {
  assert.ok(cluster !== undefined, "the first test started the cluster");
  const c = cluster;
  const db = boundedClient(c.writerUrl, 30_000);
  t.after(() => db.close());
  const markers = MARKERS.map((id) => id + 1000);
  const victims = threeVictims(c);
  t.diagnostic(`seed ${seed}: killing ${victims.map((n) => `${n.name} (AZ ${n.az})`).join(", ")}, then the writer`);
  await Promise.all(victims.map((n) => c.kill(n)));

  let outcome: string | undefined;
  const commit = db.batch([
    ...markers.map((id) => ({ sql: "INSERT INTO t (id, v, payload) VALUES (?, 0, x'00')", args: [id] })),
    "UPDATE t SET v = v + 1000000 WHERE id = 2",
  ], "write").then(() => { outcome = "acked"; }, (e: unknown) => { outcome = errorCode(e); });
  await waitFor("the commit waiting for durability", async () => (await writerHealth(c)).body.waitingCommits >= 1, 10_000);
  assert.equal(outcome, undefined, "not acknowledged while three are down");
  await c.kill(c.writer);
  await commit;
  t.diagnostic(`the client saw: ${outcome}`);
  assert.notEqual(outcome, "acked");

  // Nodes first, then a new writer: recovery needs a write quorum of every PG.
  await Promise.all(victims.map((n) => c.startNode(n.name)));
  const restartMs = await c.startWriter();
  const present = await markersPresent(db, markers);
  const row2 = Number((await db.execute("SELECT v FROM t WHERE id = 2")).rows[0]!["v"]);
  t.diagnostic(`writer back in ${restartMs.toFixed(0)} ms; the unknown commit is ${present === markers.length ? "there" : "not there"} (${present} of ${markers.length})`);
  assert.ok(present === 0 || present === markers.length, `${present} of ${markers.length} rows of one transaction`);
  assert.equal(row2, present === 0 ? 2 : 1_000_002, "the transaction's update goes with its inserts");
  await db.execute({ sql: "INSERT INTO t (id, v, payload) VALUES (?, 0, x'03')", args: [700_001] });
  await assertHealthy(c, db);
});
