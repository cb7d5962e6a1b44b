/**
 * Group commit: autocommit writes of many sessions that reach the writer together commit as one
 * transaction and one MTR, and behave as if each had run alone — a failing statement affects only
 * itself, a statement that rolls back the transaction does not take the others with it, and every
 * acknowledgement still waits for durability.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { SqliteError } from "../../src/compute/sql-engine.js";
import { int, run, scalar, startRig, text } from "./helpers.js";

describe("engine: group commit", () => {
  it("commits concurrent autocommit writes together, each with its own result", async () => {
    const { volume, engine } = await startRig({ durability: { delayMs: 2 } }, { readers: 1 });
    try {
      const setup = engine.openSession();
      await run(setup, "CREATE TABLE g (id INTEGER PRIMARY KEY, who TEXT UNIQUE)");
      const mtrsBefore = volume.stats().mtrs;
      const sessions = Array.from({ length: 32 }, () => engine.openSession());
      const rounds = 10;
      const results = await Promise.all(sessions.map(async (s, i) => {
        const out: { changes: number; rowid: bigint | null }[] = [];
        for (let r = 0; r < rounds; r++) {
          const res = await run(s, "INSERT INTO g (who) VALUES (?)", text(`s${i}-r${r}`));
          out.push({ changes: res.affectedRowCount, rowid: res.lastInsertRowid });
        }
        return out;
      }));
      const all = results.flat();
      assert.ok(all.every((r) => r.changes === 1));
      const rowids = new Set(all.map((r) => r.rowid));
      assert.equal(rowids.size, 32 * rounds, "every statement got its own rowid");
      assert.equal(await scalar(setup, "SELECT count(*) FROM g"), BigInt(32 * rounds));
      const mtrs = volume.stats().mtrs - mtrsBefore;
      const stats = (await engine.stats()).writer;
      assert.ok(mtrs < 32 * rounds, `fewer MTRs (${mtrs}) than statements (${32 * rounds})`);
      assert.ok(stats.groups > 0 && stats.grouped > stats.groups);
      assert.equal(await scalar(setup, "PRAGMA integrity_check"), "ok");
      await Promise.all([setup, ...sessions].map((s) => s.close()));
    } finally {
      await engine.close();
    }
  });

  it("isolates a failing statement and survives one that rolls the transaction back", async () => {
    const { engine } = await startRig({ durability: { delayMs: 1 } }, { readers: 1 });
    try {
      const setup = engine.openSession();
      await setup.executeScript(`
        CREATE TABLE u (id INTEGER PRIMARY KEY, v TEXT UNIQUE);
        INSERT INTO u VALUES (1, 'taken');
        CREATE TABLE audit (x INTEGER);
        CREATE TRIGGER no_13 BEFORE INSERT ON audit WHEN NEW.x = 13 BEGIN SELECT RAISE(ROLLBACK, 'thirteen'); END;`);
      for (let round = 0; round < 5; round++) {
        const sessions = Array.from({ length: 24 }, () => engine.openSession());
        const outcomes = await Promise.all(sessions.map(async (s, i) => {
          try {
            if (i === 5) await run(s, "INSERT INTO u VALUES (?, 'taken')", int(1000 + round)); // UNIQUE: ABORT
            else if (i === 11) await run(s, "INSERT INTO audit VALUES (13)"); // rolls the transaction back
            else if (i === 17) await run(s, "INSERT OR ROLLBACK INTO u VALUES (1, 'dup')");
            else await run(s, "INSERT INTO audit VALUES (?)", int(1000 + round * 100 + i));
            return "ok";
          } catch (e) {
            assert.ok(e instanceof SqliteError, String(e));
            return e.code;
          } finally {
            await s.close();
          }
        }));
        assert.equal(outcomes[5], "SQLITE_CONSTRAINT");
        assert.equal(outcomes[11], "SQLITE_CONSTRAINT");
        assert.equal(outcomes[17], "SQLITE_CONSTRAINT");
        assert.equal(outcomes.filter((o) => o === "ok").length, 21);
      }
      assert.equal(await scalar(setup, "SELECT count(*) FROM audit"), 21n * 5n, "every successful statement committed once");
      assert.equal(await scalar(setup, "SELECT count(*) FROM u"), 1n);
      const stats = (await engine.stats()).writer;
      assert.ok(stats.groups > 0, "statements were grouped");
      assert.ok(stats.fallbacks > 0, "a rolled-back group was run again statement by statement");
      assert.equal(await scalar(setup, "PRAGMA integrity_check"), "ok");
      await setup.close();
    } finally {
      await engine.close();
    }
  });
});
