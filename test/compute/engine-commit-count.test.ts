/**
 * `Engine.commitsAcknowledged()` (the writer's `/metrics` "commits"): every acknowledged commit counts
 * once — each statement of a group commit, an explicit transaction's COMMIT — and reads, failed
 * statements and rolled-back transactions do not.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { run, startRig, text } from "./helpers.js";

describe("engine: commits acknowledged", () => {
  it("counts every client commit, group commits included, and nothing else", async () => {
    const { volume, engine } = await startRig({ durability: { delayMs: 2 } }, { readers: 1 });
    try {
      const setup = engine.openSession();
      await run(setup, "CREATE TABLE c (id INTEGER PRIMARY KEY, who TEXT UNIQUE)");
      assert.equal(engine.commitsAcknowledged(), 1);

      const mtrsBefore = volume.stats().mtrs;
      const sessions = Array.from({ length: 16 }, () => engine.openSession());
      await Promise.all(sessions.map(async (s, i) => {
        for (let r = 0; r < 5; r++) await run(s, "INSERT INTO c (who) VALUES (?)", text(`s${i}-r${r}`));
      }));
      assert.equal(engine.commitsAcknowledged(), 1 + 16 * 5, "each statement of a group commit counts");
      assert.ok(volume.stats().mtrs - mtrsBefore < 16 * 5, "some of them were committed together");

      await run(setup, "SELECT count(*) FROM c");
      await assert.rejects(run(setup, "INSERT INTO c (who) VALUES ('s0-r0')"), /UNIQUE/);
      await run(setup, "BEGIN IMMEDIATE");
      await run(setup, "INSERT INTO c (who) VALUES ('rolled back')");
      await run(setup, "ROLLBACK");
      assert.equal(engine.commitsAcknowledged(), 1 + 16 * 5, "reads, failures and rollbacks are not commits");

      await run(setup, "BEGIN IMMEDIATE");
      await run(setup, "INSERT INTO c (who) VALUES ('tx 1')");
      await run(setup, "INSERT INTO c (who) VALUES ('tx 2')");
      await run(setup, "COMMIT");
      assert.equal(engine.commitsAcknowledged(), 2 + 16 * 5, "a transaction is one commit");
      await Promise.all([setup, ...sessions].map((s) => s.close()));
    } finally {
      await engine.close();
    }
  });
});
