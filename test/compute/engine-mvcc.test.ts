/**
 * MVCC under SQLite: interactive transactions across sessions, the write lock queue, a write on a
 * stale snapshot (SQLITE_BUSY, WAL semantics), read transactions that see one snapshot throughout and
 * never anything above VDL (invariant 7), and concurrent transfers whose total every snapshot checks.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { SqliteError } from "../../src/compute/sql-engine.js";
import { int, plain, run, scalar, startRig, type Rig } from "./helpers.js";

const isBusy = (e: unknown): boolean => e instanceof SqliteError && e.code === "SQLITE_BUSY";

describe("engine: MVCC", () => {
  let rig: Rig;
  before(async () => {
    rig = await startRig({}, { busyTimeoutMs: 3000 });
    const s = rig.engine.openSession();
    await run(s, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)");
    await s.executeScript("INSERT INTO kv VALUES (1, 100); INSERT INTO kv VALUES (2, 200);");
    await s.close();
  });
  after(async () => {
    await rig.engine.close();
  });

  it("keeps an open transaction's writes to itself until it commits", async () => {
    const a = rig.engine.openSession();
    const b = rig.engine.openSession();
    await run(a, "BEGIN");
    await run(a, "UPDATE kv SET v = v + 1 WHERE k = 1");
    assert.equal(await scalar(a, "SELECT v FROM kv WHERE k = 1"), 101n);
    assert.equal(await scalar(b, "SELECT v FROM kv WHERE k = 1"), 100n, "an autocommit reader sees the committed value");
    await run(a, "COMMIT");
    assert.equal(await scalar(b, "SELECT v FROM kv WHERE k = 1"), 101n, "and the new one once the commit is acknowledged");
    await Promise.all([a.close(), b.close()]);
  });

  it("makes a second write transaction wait for the first instead of failing", async () => {
    const a = rig.engine.openSession();
    const b = rig.engine.openSession();
    await run(a, "BEGIN IMMEDIATE");
    await run(a, "UPDATE kv SET v = v + 10 WHERE k = 2");
    let bStarted = false;
    const bTx = (async () => {
      await run(b, "BEGIN IMMEDIATE");
      bStarted = true;
      await run(b, "UPDATE kv SET v = v * 2 WHERE k = 2");
      await run(b, "COMMIT");
    })();
    // Autocommit writes queue behind the waiting transaction too.
    const auto = run(rig.engine.openSession(), "UPDATE kv SET v = v + 1000 WHERE k = 2");
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(bStarted, false, "B waits while A holds the write lock");
    await run(a, "COMMIT");
    await bTx;
    await auto;
    const c = rig.engine.openSession();
    assert.equal(await scalar(c, "SELECT v FROM kv WHERE k = 2"), (200n + 10n) * 2n + 1000n, "A, then B, then the autocommit write");
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it("times out a write lock wait with SQLITE_BUSY", async () => {
    const impatient = await startRig({}, { busyTimeoutMs: 100, readers: 1 });
    try {
      const a = impatient.engine.openSession();
      const b = impatient.engine.openSession();
      await run(a, "CREATE TABLE t (x)");
      await run(a, "BEGIN IMMEDIATE");
      await assert.rejects(run(b, "INSERT INTO t VALUES (1)"), (e: unknown) => isBusy(e) && (e as SqliteError).extendedCode === "SQLITE_BUSY_TIMEOUT");
      await assert.rejects(run(b, "BEGIN IMMEDIATE"), isBusy);
      assert.equal(b.isAutocommit(), true, "a refused BEGIN leaves no transaction behind");
      await run(a, "ROLLBACK");
      await run(b, "INSERT INTO t VALUES (1)");
      await Promise.all([a.close(), b.close()]);
    } finally {
      await impatient.engine.close();
    }
  });

  it("refuses a write on a stale snapshot with SQLITE_BUSY (WAL semantics)", async () => {
    const a = rig.engine.openSession();
    const b = rig.engine.openSession();
    await run(a, "BEGIN");
    const seen = await scalar(a, "SELECT v FROM kv WHERE k = 1"); // snapshot taken
    await run(b, "UPDATE kv SET v = v + 5 WHERE k = 1"); // commits after A's snapshot
    assert.equal(await scalar(a, "SELECT v FROM kv WHERE k = 1"), seen, "A still reads its snapshot");
    await assert.rejects(run(a, "UPDATE kv SET v = 0 WHERE k = 1"), (e: unknown) =>
      isBusy(e) && (e as SqliteError).extendedCode === "SQLITE_BUSY_SNAPSHOT" && /snapshot/.test((e as SqliteError).message));
    assert.equal(a.isAutocommit(), false, "the transaction stays open, as in WAL mode");
    // The lock was given back while A cannot write: B is not blocked.
    await run(b, "UPDATE kv SET v = v + 1 WHERE k = 1");
    await run(a, "ROLLBACK");
    await run(a, "BEGIN");
    await run(a, "UPDATE kv SET v = v - 6 WHERE k = 1");
    await run(a, "COMMIT");
    assert.equal(await scalar(b, "SELECT v FROM kv WHERE k = 1"), seen);
    await Promise.all([a.close(), b.close()]);
  });

  it("runs BEGIN TRANSACTION READONLY on a reader: one snapshot throughout, writes refused", async () => {
    const r = rig.engine.openSession();
    const w = rig.engine.openSession();
    await run(r, "BEGIN TRANSACTION READONLY");
    const before = plain(await run(r, "SELECT k, v FROM kv ORDER BY k"));
    const readPoint = await scalar(r, "PRAGMA borealis_read_point");
    assert.equal(await scalar(r, "PRAGMA borealis_role"), "reader");
    for (let i = 0; i < 20; i++) await run(w, "UPDATE kv SET v = v + 1 WHERE k = ?", int(1 + (i % 2)));
    assert.deepEqual(plain(await run(r, "SELECT k, v FROM kv ORDER BY k")), before, "same rows after 20 commits");
    assert.equal(await scalar(r, "PRAGMA borealis_read_point"), readPoint, "same read point");
    await assert.rejects(run(r, "UPDATE kv SET v = 0"), (e: unknown) => e instanceof SqliteError && e.code === "SQLITE_READONLY");
    await run(r, "COMMIT");
    assert.equal(r.isAutocommit(), true);
    assert.notDeepEqual(plain(await run(r, "SELECT k, v FROM kv ORDER BY k")), before);
    await Promise.all([r.close(), w.close()]);
  });

  it("never lets a reader see a commit above VDL (invariant 7)", async () => {
    const manual = await startRig({ durability: "manual" }, { readers: 1 });
    try {
      const w = manual.engine.openSession();
      const r = manual.engine.openSession();
      const setup = run(w, "CREATE TABLE v7 (x INTEGER)");
      await waitFor(() => manual.volume.mtrs().length === 1);
      manual.volume.advanceVdl();
      await setup;
      const pending = run(w, "INSERT INTO v7 VALUES (42)");
      await waitFor(() => manual.volume.mtrs().length === 2);
      // The commit is in the volume but not durable: readers must not see it.
      assert.equal(await scalar(r, "SELECT count(*) FROM v7"), 0n);
      await run(r, "BEGIN TRANSACTION READONLY");
      assert.equal(await scalar(r, "SELECT count(*) FROM v7"), 0n);
      const rp = Number(await scalar(r, "PRAGMA borealis_read_point"));
      assert.ok(rp <= manual.volume.vdl(), `read point ${rp} ≤ VDL ${manual.volume.vdl()}`);
      manual.volume.advanceVdl();
      await pending;
      assert.equal(await scalar(r, "SELECT count(*) FROM v7"), 0n, "still the transaction's snapshot");
      await run(r, "COMMIT");
      assert.equal(await scalar(r, "SELECT count(*) FROM v7"), 1n, "visible once VDL covers it");
      await Promise.all([w.close(), r.close()]);
    } finally {
      await manual.engine.close();
    }
  });

  it("keeps the total constant in every snapshot while sessions transfer concurrently", async (t) => {
    const bank = rig.engine.openSession();
    const accounts = 20;
    const total = 1000n * BigInt(accounts);
    await run(bank, "CREATE TABLE acct (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)");
    await bank.executeScript(Array.from({ length: accounts }, (_, i) => `INSERT INTO acct VALUES (${i}, 1000);`).join(""));
    let stop = false;
    let transfers = 0;
    let retries = 0;
    let snapshots = 0;

    const transferer = async (seed: number, deferred: boolean): Promise<void> => {
      const s = rig.engine.openSession();
      let x = seed;
      const rand = (n: number): number => (x = (x * 1103515245 + 12345) % 2147483648) % n;
      for (let i = 0; i < 40; i++) {
        const from = rand(accounts);
        const to = (from + 1 + rand(accounts - 1)) % accounts;
        const amount = BigInt(1 + rand(50));
        for (;;) {
          try {
            await run(s, deferred ? "BEGIN" : "BEGIN IMMEDIATE");
            const bal = await scalar(s, "SELECT balance FROM acct WHERE id = ?", int(from)) as bigint;
            const moved = bal >= amount ? amount : bal;
            await run(s, "UPDATE acct SET balance = balance - ? WHERE id = ?", int(moved), int(from));
            await run(s, "UPDATE acct SET balance = balance + ? WHERE id = ?", int(moved), int(to));
            await run(s, "COMMIT");
            transfers++;
            break;
          } catch (e) {
            if (!isBusy(e)) throw e;
            retries++;
            if (!s.isAutocommit()) await run(s, "ROLLBACK");
          }
        }
      }
      await s.close();
    };

    const checker = async (inTransaction: boolean): Promise<void> => {
      const s = rig.engine.openSession();
      while (!stop) {
        if (inTransaction) {
          await run(s, "BEGIN TRANSACTION READONLY");
          const a = await scalar(s, "SELECT sum(balance) FROM acct WHERE id < 10") as bigint;
          await new Promise((r) => setImmediate(r));
          const b = await scalar(s, "SELECT sum(balance) FROM acct WHERE id >= 10") as bigint;
          await run(s, "COMMIT");
          assert.equal(a + b, total, "two queries of one read transaction see one snapshot");
        } else {
          assert.equal(await scalar(s, "SELECT sum(balance) FROM acct"), total);
        }
        snapshots++;
      }
      await s.close();
    };

    const checkers = [checker(false), checker(true), checker(true)];
    await Promise.all([transferer(1, false), transferer(2, false), transferer(3, true), transferer(4, true), transferer(5, true)]);
    stop = true;
    await Promise.all(checkers);
    assert.equal(transfers, 200);
    assert.ok(snapshots > 10, `checkers ran (${snapshots} snapshots)`);
    assert.equal(await scalar(bank, "SELECT sum(balance) FROM acct"), total);
    assert.equal(await scalar(bank, "PRAGMA integrity_check"), "ok");
    await bank.close();
    t.diagnostic(`transfers ${transfers}, busy retries ${retries}, snapshots checked ${snapshots}`);
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail("condition not reached in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

