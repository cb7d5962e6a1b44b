/**
 * The engine as SQL: CRUD, every value type, constraint errors with their codes, transactions,
 * savepoints and rollbacks, scripts, describe, refused pragmas, and a transaction too large for the
 * writer's page cache (the journaled commit path, captured at FCNTL_SYNC). Real SQLite in workers
 * over a MemoryVolume that checks every shipped record against the writer's page images.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { SqliteError } from "../../src/compute/sql-engine.js";
import { NULL, blob, float, int, plain, run, scalar, startRig, text, type Rig } from "./helpers.js";

function isSqlite(code: string, extended?: string) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof SqliteError, `expected SqliteError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (extended !== undefined) assert.equal(e.extendedCode, extended, e.message);
    return true;
  };
}

describe("engine: SQL", () => {
  let rig: Rig;
  before(async () => {
    rig = await startRig();
  });
  after(async () => {
    await rig.engine.close();
  });

  it("creates, reads, updates and deletes", async () => {
    const s = rig.engine.openSession();
    await run(s, "CREATE TABLE crud (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL)");
    const ins = await run(s, "INSERT INTO crud (name, score) VALUES (?, ?), (?, ?), (?, ?)", text("a"), float(1.5), text("b"), float(2.5), text("c"), NULL);
    assert.equal(ins.affectedRowCount, 3);
    assert.equal(ins.lastInsertRowid, 3n);
    const sel = await run(s, "SELECT id, name, score FROM crud ORDER BY id");
    assert.deepEqual(sel.columns, [{ name: "id", decltype: "INTEGER" }, { name: "name", decltype: "TEXT" }, { name: "score", decltype: "REAL" }]);
    assert.deepEqual(plain(sel), [[1n, "a", 1.5], [2n, "b", 2.5], [3n, "c", null]]);
    const upd = await run(s, "UPDATE crud SET score = score * 2 WHERE score IS NOT NULL");
    assert.equal(upd.affectedRowCount, 2);
    assert.equal(await scalar(s, "SELECT sum(score) FROM crud"), 8);
    const del = await run(s, "DELETE FROM crud WHERE id = ?", int(2));
    assert.equal(del.affectedRowCount, 1);
    assert.deepEqual(plain(await run(s, "SELECT name FROM crud ORDER BY id")), [["a"], ["c"]]);
    assert.equal(await scalar(s, "PRAGMA integrity_check"), "ok");
    await s.close();
  });

  it("round-trips null, 64-bit integers beyond 2^53, floats, text and blobs", async () => {
    const s = rig.engine.openSession();
    await run(s, "CREATE TABLE vals (k INTEGER PRIMARY KEY, i INTEGER, f REAL, t TEXT, b BLOB, n)");
    const big = 2n ** 53n + 1n;
    const cases: [bigint, bigint, number, string, Uint8Array][] = [
      [1n, big, 0.1, "héllo ✓ 𝄞", new Uint8Array([0, 1, 2, 255])],
      [2n, -(2n ** 63n), -0.25, "", new Uint8Array(0)],
      [3n, 2n ** 63n - 1n, 1e308, "a\u0000b", new Uint8Array(10_000).map((_, i) => i & 0xff)],
      [big, -big, Number.MIN_VALUE, "x".repeat(100_000), new Uint8Array([7])],
    ];
    for (const [k, i, f, t, b] of cases) await run(s, "INSERT INTO vals VALUES (?, ?, ?, ?, ?, ?)", int(k), int(i), float(f), text(t), blob(b), NULL);
    const rows = plain(await run(s, "SELECT k, i, f, t, b, n, typeof(f), typeof(i) FROM vals ORDER BY k"));
    assert.equal(rows.length, cases.length);
    for (let r = 0; r < cases.length; r++) {
      const [k, i, f, t, b] = cases[r]!;
      const row = rows[r]!;
      assert.equal(row[0], k);
      assert.equal(row[1], i);
      assert.equal(row[2], f);
      assert.equal(row[3], t);
      assert.deepEqual(row[4], b);
      assert.equal(row[5], null);
      assert.equal(row[6], "real");
      assert.equal(row[7], "integer");
    }
    const inf = plain(await run(s, "SELECT 1e308 * 10, -1e308 * 10, ?", float(3)))[0]!;
    assert.deepEqual(inf, [Infinity, -Infinity, 3]);
    // An integral float stays a float when bound as one (the endpoint decides what the client meant).
    assert.equal(await scalar(s, "SELECT typeof(?)", float(5)), "real");
    assert.equal(await scalar(s, "SELECT typeof(?)", int(5)), "integer");
    await assert.rejects(run(s, "SELECT ?", int(2n ** 63n)), isSqlite("SQLITE_RANGE"));
    await s.close();
  });

  it("binds named parameters with every prefix, and bare names", async () => {
    const s = rig.engine.openSession();
    const r = await s.execute({
      sql: "SELECT :a, @b, $c, :d",
      namedArgs: [{ name: ":a", value: int(1) }, { name: "@b", value: text("bee") }, { name: "c", value: blob(new Uint8Array([9])) }, { name: "d", value: NULL }],
    });
    assert.deepEqual(plain(r), [[1n, "bee", new Uint8Array([9]), null]]);
    await assert.rejects(s.execute({ sql: "SELECT :a", namedArgs: [{ name: ":zz", value: int(1) }] }), isSqlite("ARGS_INVALID"));
    await assert.rejects(run(s, "SELECT ?", int(1), int(2)), isSqlite("ARGS_INVALID"));
    await s.close();
  });

  it("reports constraint errors with primary and extended codes", async () => {
    const s = rig.engine.openSession();
    await run(s, "CREATE TABLE cons (id INTEGER PRIMARY KEY, email TEXT UNIQUE, n INTEGER NOT NULL CHECK (n >= 0))");
    await run(s, "INSERT INTO cons VALUES (1, 'a@x', 1)");
    await assert.rejects(run(s, "INSERT INTO cons VALUES (1, 'b@x', 1)"), isSqlite("SQLITE_CONSTRAINT", "SQLITE_CONSTRAINT_PRIMARYKEY"));
    await assert.rejects(run(s, "INSERT INTO cons VALUES (2, 'a@x', 1)"), isSqlite("SQLITE_CONSTRAINT", "SQLITE_CONSTRAINT_UNIQUE"));
    await assert.rejects(run(s, "INSERT INTO cons VALUES (3, 'c@x', NULL)"), isSqlite("SQLITE_CONSTRAINT", "SQLITE_CONSTRAINT_NOTNULL"));
    await assert.rejects(run(s, "INSERT INTO cons VALUES (4, 'd@x', -1)"), isSqlite("SQLITE_CONSTRAINT", "SQLITE_CONSTRAINT_CHECK"));
    await assert.rejects(run(s, "SELEC 1"), isSqlite("SQLITE_ERROR"));
    await assert.rejects(run(s, "SELECT * FROM no_such_table"), isSqlite("SQLITE_ERROR"));
    await assert.rejects(run(s, "SELECT 1; SELECT 2"), isSqlite("SQL_MANY_STATEMENTS"));
    await assert.rejects(run(s, "  -- nothing\n"), isSqlite("SQL_NO_STATEMENT"));
    assert.equal(await scalar(s, "SELECT count(*) FROM cons"), 1n);
    await s.close();
  });

  it("enforces foreign keys on every connection when asked to", async () => {
    const fk = await startRig({}, { foreignKeys: true, readers: 1 });
    try {
      const s = fk.engine.openSession();
      await s.executeScript("CREATE TABLE parent (id INTEGER PRIMARY KEY); CREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent(id));");
      await run(s, "INSERT INTO parent VALUES (1)");
      await run(s, "INSERT INTO child VALUES (1, 1)");
      await assert.rejects(run(s, "INSERT INTO child VALUES (2, 99)"), isSqlite("SQLITE_CONSTRAINT", "SQLITE_CONSTRAINT_FOREIGNKEY"));
      await run(s, "BEGIN");
      await assert.rejects(run(s, "DELETE FROM parent WHERE id = 1"), isSqlite("SQLITE_CONSTRAINT", "SQLITE_CONSTRAINT_FOREIGNKEY"));
      await run(s, "ROLLBACK");
      await s.close();
    } finally {
      await fk.engine.close();
    }
  });

  it("commits and rolls back transactions and savepoints", async () => {
    const s = rig.engine.openSession();
    await run(s, "CREATE TABLE tx (id INTEGER PRIMARY KEY, v TEXT)");
    await run(s, "BEGIN");
    assert.equal(s.isAutocommit(), false);
    await run(s, "INSERT INTO tx VALUES (1, 'one')");
    await run(s, "ROLLBACK");
    assert.equal(s.isAutocommit(), true);
    assert.equal(await scalar(s, "SELECT count(*) FROM tx"), 0n);

    await run(s, "BEGIN IMMEDIATE");
    await run(s, "INSERT INTO tx VALUES (1, 'one')");
    await run(s, "SAVEPOINT sp");
    await run(s, "INSERT INTO tx VALUES (2, 'two')");
    await run(s, "ROLLBACK TO sp");
    await run(s, "INSERT INTO tx VALUES (3, 'three')");
    await run(s, "RELEASE sp");
    await run(s, "COMMIT");
    assert.deepEqual(plain(await run(s, "SELECT id FROM tx ORDER BY id")), [[1n], [3n]]);

    // A savepoint outside a transaction opens one.
    await run(s, "SAVEPOINT outer_sp");
    assert.equal(s.isAutocommit(), false);
    await run(s, "DELETE FROM tx");
    await run(s, "ROLLBACK TO outer_sp");
    await run(s, "RELEASE outer_sp");
    assert.equal(s.isAutocommit(), true);
    assert.equal(await scalar(s, "SELECT count(*) FROM tx"), 2n);

    // A failing statement inside a transaction leaves it open; COMMIT keeps what succeeded.
    await run(s, "BEGIN");
    await run(s, "INSERT INTO tx VALUES (4, 'four')");
    await assert.rejects(run(s, "INSERT INTO tx VALUES (4, 'again')"), isSqlite("SQLITE_CONSTRAINT"));
    assert.equal(s.isAutocommit(), false);
    await run(s, "COMMIT");
    assert.equal(await scalar(s, "SELECT count(*) FROM tx"), 3n);

    await assert.rejects(run(s, "COMMIT"), isSqlite("SQLITE_ERROR"));
    await s.close();
  });

  it("rolls back an open transaction when the session closes", async () => {
    const a = rig.engine.openSession();
    await run(a, "CREATE TABLE closing (id INTEGER PRIMARY KEY)");
    await run(a, "BEGIN");
    await run(a, "INSERT INTO closing VALUES (1)");
    await a.close();
    await assert.rejects(run(a, "SELECT 1"), isSqlite("SQLITE_MISUSE"));
    const b = rig.engine.openSession();
    assert.equal(await scalar(b, "SELECT count(*) FROM closing"), 0n);
    // The write lock was released: another write transaction gets it at once.
    await run(b, "BEGIN IMMEDIATE");
    await run(b, "INSERT INTO closing VALUES (2)");
    await run(b, "COMMIT");
    await b.close();
  });

  it("runs scripts, including one that leaves a transaction open", async () => {
    const s = rig.engine.openSession();
    await s.executeScript("CREATE TABLE scr (id INTEGER PRIMARY KEY, v); INSERT INTO scr VALUES (1, 'a'); INSERT INTO scr VALUES (2, 'b');");
    assert.equal(s.isAutocommit(), true);
    assert.equal(await scalar(s, "SELECT count(*) FROM scr"), 2n);
    await s.executeScript("BEGIN; INSERT INTO scr VALUES (3, 'c');");
    assert.equal(s.isAutocommit(), false);
    await run(s, "ROLLBACK");
    assert.equal(await scalar(s, "SELECT count(*) FROM scr"), 2n);
    await assert.rejects(s.executeScript("INSERT INTO scr VALUES (9, 'z'); INSERT INTO scr VALUES (1, 'dup');"), isSqlite("SQLITE_CONSTRAINT"));
    assert.equal(await scalar(s, "SELECT count(*) FROM scr"), 3n, "statements before the failing one committed");
    await s.close();
  });

  it("follows schema changes in column names and declared types", async () => {
    const s = rig.engine.openSession();
    await run(s, "CREATE TABLE evolve (a INTEGER, b TEXT)");
    await run(s, "INSERT INTO evolve VALUES (1, 'x')");
    const cols = async (): Promise<unknown> => (await run(s, "SELECT * FROM evolve")).columns;
    assert.deepEqual(await cols(), [{ name: "a", decltype: "INTEGER" }, { name: "b", decltype: "TEXT" }]);
    await run(s, "ALTER TABLE evolve RENAME COLUMN b TO bee");
    assert.deepEqual(await cols(), [{ name: "a", decltype: "INTEGER" }, { name: "bee", decltype: "TEXT" }]);
    await run(s, "ALTER TABLE evolve ADD COLUMN c REAL");
    assert.deepEqual(await cols(), [{ name: "a", decltype: "INTEGER" }, { name: "bee", decltype: "TEXT" }, { name: "c", decltype: "REAL" }]);
    await s.close();
  });

  it("describes statements without running them", async () => {
    const s = rig.engine.openSession();
    await run(s, "CREATE TABLE descr (id INTEGER PRIMARY KEY, name TEXT)");
    const d = await s.describe("SELECT id, name AS n FROM descr WHERE id = :id AND name = ?2");
    assert.deepEqual(d.params, [{ name: ":id" }, { name: "?2" }]);
    assert.deepEqual(d.columns.map((c) => c.name), ["id", "n"]);
    assert.equal(d.isReadonly, true);
    assert.equal(d.isExplain, false);
    const w = await s.describe("INSERT INTO descr (name) VALUES (?)");
    assert.equal(w.isReadonly, false);
    assert.deepEqual(w.columns, []);
    assert.equal((await s.describe("EXPLAIN SELECT 1")).isExplain, true);
    assert.equal(await scalar(s, "SELECT count(*) FROM descr"), 0n);
    await s.close();
  });

  it("refuses pragmas that would break the volume, with a clear error", async () => {
    const s = rig.engine.openSession();
    await assert.rejects(run(s, "PRAGMA locking_mode=EXCLUSIVE"), (e: unknown) => e instanceof SqliteError && /locking_mode=EXCLUSIVE is refused/.test(e.message));
    await assert.rejects(run(s, "PRAGMA journal_mode=WAL"), (e: unknown) => e instanceof SqliteError && /journal_mode=WAL is refused/.test(e.message));
    await assert.rejects(run(s, "PRAGMA journal_mode = off"), (e: unknown) => e instanceof SqliteError && /journal_mode=OFF is refused/.test(e.message));
    await assert.rejects(run(s, "PRAGMA synchronous=OFF"), (e: unknown) => e instanceof SqliteError && /synchronous=OFF is refused/.test(e.message));
    await assert.rejects(run(s, "PRAGMA page_size=8192"), (e: unknown) => e instanceof SqliteError && /page_size=8192 is refused/.test(e.message));
    assert.equal(await scalar(s, "PRAGMA locking_mode"), "normal");
    assert.equal(await scalar(s, "PRAGMA page_size"), 4096n);
    await s.close();
  });

  it("commits a transaction larger than the writer's page cache through the journal", async () => {
    const small = await startRig({}, { writerCacheMb: 1, readers: 1 });
    try {
      const s = small.engine.openSession();
      await run(s, "CREATE TABLE big (id INTEGER PRIMARY KEY, v BLOB)");
      const before = (await small.engine.stats()).writer.vfs.syncCommits;
      await run(s, "BEGIN");
      for (let i = 0; i < 600; i++) await run(s, "INSERT INTO big VALUES (?, randomblob(4000))", int(i));
      await run(s, "COMMIT");
      const stats = await small.engine.stats();
      assert.ok(stats.writer.vfs.syncCommits > before, "the spilled transaction committed at FCNTL_SYNC");
      assert.equal(await scalar(s, "SELECT count(*) FROM big"), 600n);
      // A spilled transaction that rolls back leaves nothing behind.
      await run(s, "BEGIN");
      for (let i = 600; i < 1200; i++) await run(s, "INSERT INTO big VALUES (?, randomblob(4000))", int(i));
      await run(s, "ROLLBACK");
      assert.equal(await scalar(s, "SELECT count(*) FROM big"), 600n);
      assert.equal(await scalar(s, "PRAGMA integrity_check"), "ok");
      await s.close();
    } finally {
      await small.engine.close();
    }
  });
});
