/**
 * The engine under buffer pool pressure and slow or failing storage: a pool far smaller than the
 * database, page reads that take time (every miss crosses the page bridge), readers scanning while
 * the writer rewrites the pages they scan, and a storage read failure surfacing as SQLITE_IOERR.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { SqliteError } from "../../src/compute/sql-engine.js";
import { Engine } from "../../src/compute/engine/engine.js";
import { MemoryVolume } from "../../src/compute/memory-volume.js";
import { PG_PAGES, int, run, scalar, startRig } from "./helpers.js";

describe("engine: buffer pool pressure", () => {
  it("stays consistent with a pool much smaller than the database and slow page reads", async () => {
    // 1 MiB pool = 256 pages; the table below is ~1,000 pages.
    const { volume, engine } = await startRig({ readDelayMs: 1 }, { cacheMb: 1, lal: 64, readers: 2, readerCacheMb: 1, writerCacheMb: 2 });
    try {
      const s = engine.openSession();
      await run(s, "CREATE TABLE big (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, pad BLOB)");
      for (let batch = 0; batch < 60; batch++) {
        await s.executeScript(`BEGIN; WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 50)
          INSERT INTO big (n, pad) SELECT 1, randomblob(1200) FROM r; COMMIT;`);
      }
      const rows = 3000n;
      assert.equal(await scalar(s, "SELECT sum(n) FROM big"), rows);

      let stop = false;
      let scans = 0;
      const scanner = async (): Promise<void> => {
        const r = engine.openSession();
        while (!stop) {
          await run(r, "BEGIN TRANSACTION READONLY");
          const a = await scalar(r, "SELECT sum(n) FROM big") as bigint;
          const b = await scalar(r, "SELECT count(*) FROM big WHERE n = 2") as bigint;
          await run(r, "COMMIT");
          // Each update moves 1 from the row's n=1 to n=2 (n += 1): sum - rows = count of n = 2.
          assert.equal(a - rows, b, "one snapshot across two full scans");
          scans++;
        }
        await r.close();
      };
      const scanners = [scanner(), scanner()];
      for (let i = 0; i < 150; i++) await run(s, "UPDATE big SET n = 2 WHERE id = ?", int(1 + ((i * 7919) % 3000)));
      stop = true;
      await Promise.all(scanners);
      assert.ok(scans >= 2, `scans completed: ${scans}`);
      assert.equal(await scalar(s, "SELECT count(*) FROM big WHERE n = 2"), 150n);
      assert.equal(await scalar(s, "PRAGMA integrity_check"), "ok");
      const stats = await engine.stats();
      const readerFetches = stats.readers.reduce((sum, r) => sum + r.vfs.bridgeReads, 0);
      assert.ok(readerFetches > 256, `readers went to storage for evicted pages (${readerFetches})`);
      assert.ok(stats.writer.pool.evictions > 0, "the pool evicted durable versions");
      assert.equal(stats.writer.pool.insertFailures, 0);
      assert.ok(volume.stats().pageReads > 0);
      await s.close();
    } finally {
      await engine.close();
    }
  });

  it("reports a failed storage read as SQLITE_IOERR and recovers when storage does", async () => {
    const built = await startRig({}, { readers: 1 });
    const s = built.engine.openSession();
    await run(s, "CREATE TABLE t (x INTEGER)");
    await run(s, "INSERT INTO t VALUES (1)");
    await built.engine.close();
    const volume: MemoryVolume = built.volume;
    // A cold engine: every page comes from storage.
    const engine = await Engine.start({ volume, lsnState: volume.lsnState(), pgPages: PG_PAGES, readers: 1, cacheMb: 4, bridgeTimeoutMs: 5000 });
    try {
      const r = engine.openSession();
      volume.failReads();
      await assert.rejects(run(r, "SELECT x FROM t"), (e: unknown) => e instanceof SqliteError && e.code === "SQLITE_IOERR");
      volume.failReads(null);
      assert.equal(await scalar(r, "SELECT x FROM t"), 1n);
      await r.close();
    } finally {
      await engine.close();
    }
  });
});
