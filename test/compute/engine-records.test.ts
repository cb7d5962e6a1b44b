/**
 * The redo the writer ships: every commit is one MTR with consecutive LSNs, sorted per PG, CPL last,
 * backlinks right per PG, page and volume (checked here independently of MemoryVolume's own checks);
 * a volume rebuilt from nothing but the shipped records (applyRedo from zeros) holds exactly the
 * database's pages, and a fresh engine on it sees the same data with integrity_check = ok. Also
 * measures redo bytes per single-row commit (target ≤ 200 B).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Engine } from "../../src/compute/engine/engine.js";
import { MemoryVolume } from "../../src/compute/memory-volume.js";
import type { SqlSession } from "../../src/compute/sql-engine.js";
import { pgOfPage, type MiniTransaction } from "../../src/compute/volume-io.js";
import { isCpl } from "../../src/wire/record.js";
import { PG_PAGES, int, plain, run, scalar, startRig, text } from "./helpers.js";

/** An independent check of the MTR stream: LSNs, order, CPL, and all three backlinks. */
function checkStream(mtrs: readonly MiniTransaction[], pgPages: number): { records: number; pgs: Set<number> } {
  let lastLsn = 0;
  const lastByPg = new Map<number, number>();
  const lastByPage = new Map<number, number>();
  const pgs = new Set<number>();
  let records = 0;
  for (const mtr of mtrs) {
    const n = mtr.records.length;
    assert.ok(n >= 1);
    assert.equal(mtr.firstLsn, lastLsn + 1, "MTRs follow each other without a gap");
    for (let i = 0; i < n; i++) {
      const { pgId, record } = mtr.records[i]!;
      assert.equal(record.lsn, mtr.firstLsn + i, "consecutive LSNs");
      assert.equal(isCpl(record), i === n - 1, "CPL last and only last");
      assert.equal(pgId, pgOfPage(record.pageNo, pgPages));
      if (i > 0) {
        const prev = mtr.records[i - 1]!;
        assert.ok(prev.pgId < pgId || (prev.pgId === pgId && prev.record.pageNo < record.pageNo), "sorted per PG, then page");
      }
      assert.equal(record.prevLsnInVolume, lastLsn, "volume backlink");
      assert.equal(record.prevLsnInSegment, lastByPg.get(pgId) ?? 0, "segment backlink");
      assert.equal(record.prevLsnOfPage, lastByPage.get(record.pageNo) ?? 0, "page backlink");
      lastLsn = record.lsn;
      lastByPg.set(pgId, record.lsn);
      lastByPage.set(record.pageNo, record.lsn);
      pgs.add(pgId);
      records++;
    }
    assert.equal(mtr.commitLsn, lastLsn);
  }
  return { records, pgs };
}

async function dump(s: SqlSession): Promise<string> {
  const tables = plain(await run(s, "SELECT name, sql FROM sqlite_schema ORDER BY name"));
  let out = JSON.stringify(tables);
  for (const [name] of tables) {
    const isTable = plain(await run(s, "SELECT type FROM sqlite_schema WHERE name = ?", text(String(name))))[0]![0] === "table";
    if (!isTable) continue;
    const rows = plain(await run(s, `SELECT * FROM "${String(name)}" ORDER BY 1`));
    out += JSON.stringify(rows, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v));
  }
  return out;
}

async function workload(s: SqlSession): Promise<void> {
  await run(s, "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER, bio BLOB)");
  await run(s, "CREATE INDEX people_age ON people (age)");
  await run(s, "CREATE TABLE log (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID");
  for (let i = 0; i < 300; i++) {
    await run(s, "INSERT INTO people (name, age, bio) VALUES (?, ?, randomblob(?))", text(`person ${i}`), int(i % 90), int(i % 7 === 0 ? 6000 : 100));
  }
  await run(s, "BEGIN");
  for (let i = 0; i < 200; i++) await run(s, "INSERT INTO log VALUES (?, ?)", text(`key-${(i * 7919) % 1000}`), text("x".repeat(i)));
  await run(s, "COMMIT");
  await run(s, "UPDATE people SET age = age + 1 WHERE id % 3 = 0");
  await run(s, "DELETE FROM people WHERE id % 2 = 0"); // frees pages (overflow chains) onto the freelist
  await run(s, "UPDATE log SET v = upper(v) WHERE k < 'key-5'");
}

describe("engine: redo records", () => {
  it("ships one well-formed MTR per commit; the records alone rebuild every page", async () => {
    const { volume, engine } = await startRig({ retainVersions: 100_000 });
    let s = engine.openSession();
    await workload(s);
    await s.close();
    await engine.close();

    // Restart on the same volume: no cache, no page directory; freelist pages get reused without
    // SQLite reading them, so the writer must learn their previous version from storage.
    const second = await Engine.start({ volume, lsnState: volume.lsnState(), pgPages: PG_PAGES, readers: 1, cacheMb: 16, shipPageImages: true });
    s = second.openSession();
    for (let i = 0; i < 100; i++) await run(s, "INSERT INTO people (name, age, bio) VALUES (?, ?, randomblob(3000))", text(`again ${i}`), int(i));
    await run(s, "VACUUM"); // rewrites and truncates the file
    await run(s, "INSERT INTO log VALUES ('after-vacuum', 'v')");
    const stats = await second.stats();
    const expected = await dump(s);
    assert.equal(await scalar(s, "PRAGMA integrity_check"), "ok");
    const pageCount = Number(await scalar(s, "PRAGMA page_count"));
    await s.close();
    await second.close();

    const mtrs = volume.mtrs();
    const { records, pgs } = checkStream(mtrs, PG_PAGES);
    assert.equal(records, volume.stats().records);
    assert.ok(pgs.size >= 2, `the database spans several PGs (${[...pgs].join(", ")})`);
    assert.ok(stats.writer.commit!.pageLookups > 0, "reused pages were looked up in storage");

    // Rebuild from the records only and compare every page with the original volume.
    const rebuilt = MemoryVolume.fromMtrs(mtrs, { pgPages: PG_PAGES });
    for (let p = 1; p <= pageCount + 8; p++) {
      assert.deepEqual(rebuilt.pageAt(p), volume.pageAt(p), `page ${p} rebuilt from redo`);
    }
    const fresh = await Engine.start({ volume: rebuilt, lsnState: rebuilt.lsnState(), pgPages: PG_PAGES, readers: 1, cacheMb: 16 });
    try {
      const f = fresh.openSession();
      assert.equal(await dump(f), expected);
      assert.equal(await scalar(f, "PRAGMA integrity_check"), "ok");
      await run(f, "INSERT INTO log VALUES ('on the rebuilt volume', 'ok')");
      assert.equal(await scalar(f, "SELECT v FROM log WHERE k = 'on the rebuilt volume'"), "ok");
    } finally {
      await fresh.close();
    }
  });

  it("ships small redo for single-row commits", async (t) => {
    const { volume, engine } = await startRig({ keepMtrs: true }, { readers: 1, shipPageImages: false });
    try {
      const s = engine.openSession();
      await run(s, "CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER, v TEXT)");
      await run(s, "CREATE TABLE ti (id INTEGER PRIMARY KEY, k INTEGER, v TEXT)");
      await run(s, "CREATE INDEX ti_k ON ti (k)");
      await s.executeScript(`
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
        INSERT INTO t SELECT i, i, printf('%052d', i) FROM n;
        INSERT INTO ti SELECT * FROM t;`);

      const measure = async (label: string, sql: (i: number) => string, n = 200): Promise<number> => {
        const before = volume.stats();
        for (let i = 0; i < n; i++) await run(s, sql(i));
        const after = volume.stats();
        assert.equal(after.mtrs - before.mtrs, n, `${label}: one MTR per commit`);
        const perCommit = (after.redoBytes - before.redoBytes) / n;
        const recordsPer = (after.records - before.records) / n;
        t.diagnostic(`${label}: ${perCommit.toFixed(1)} B of redo per commit, ${recordsPer.toFixed(2)} records, ${after.fullImages - before.fullImages} full images`);
        return perCommit;
      };
      const update = await measure("UPDATE int column", (i) => `UPDATE t SET k = k + 1 WHERE id = ${1 + ((i * 7919) % 10000)}`);
      const updateText = await measure("UPDATE same-length text", (i) => `UPDATE t SET v = printf('%052d', ${i}) WHERE id = ${1 + ((i * 104729) % 10000)}`);
      const updateIndexed = await measure("UPDATE indexed column", (i) => `UPDATE ti SET k = k + 1 WHERE id = ${1 + ((i * 7919) % 10000)}`);
      const insert = await measure("INSERT at the end", (i) => `INSERT INTO t (k, v) VALUES (${i}, printf('%052d', ${i}))`);
      const insertIndexed = await measure("INSERT at the end, indexed", (i) => `INSERT INTO ti (k, v) VALUES (${i}, printf('%052d', ${i}))`);
      assert.ok(update <= 200, `single-row UPDATE: ${update} B ≤ 200 B`);
      assert.ok(updateText <= 200, `single-row text UPDATE: ${updateText} B ≤ 200 B`);
      assert.ok(updateIndexed <= 200, `single-row indexed UPDATE: ${updateIndexed} B ≤ 200 B`);
      assert.ok(insert <= 400, `single-row INSERT: ${insert} B`);
      assert.ok(insertIndexed <= 2000, `single-row indexed INSERT: ${insertIndexed} B`);
      await s.close();
    } finally {
      await engine.close();
    }
  });
});
