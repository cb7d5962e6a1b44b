/**
 * Asynchronous commit (invariant 5): a commit resolves only after `whenDurable(commitLsn)`, in LSN
 * order, without holding the write lock while it waits; failures of durability become
 * COMMIT_OUTCOME_UNKNOWN and stop commits; LAL back-pressure (invariant 6); recovery annuls commits
 * that never became durable and a new writer resumes the LSN and backlink chains.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { isBorealisError } from "../../src/core/errors.js";
import { Engine } from "../../src/compute/engine/engine.js";
import { PG_PAGES, int, run, scalar, startRig } from "./helpers.js";

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail("condition not reached in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

const tick = (ms = 30): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("engine: durability", () => {
  it("resolves a commit only once it is durable, and acknowledges commits in LSN order", async () => {
    // One MTR per statement here (no group commit), so the test can make some of them durable.
    const { volume, engine } = await startRig({ durability: "manual" }, { groupCommit: false });
    try {
      const setup = engine.openSession();
      const create = run(setup, "CREATE TABLE d (id INTEGER PRIMARY KEY, who INTEGER)");
      await waitFor(() => volume.mtrs().length === 1);
      volume.advanceVdl();
      await create;

      const sessions = Array.from({ length: 5 }, () => engine.openSession());
      const acked: number[] = [];
      const commits = sessions.map((s, i) => run(s, "INSERT INTO d (who) VALUES (?)", int(i)).then(() => acked.push(i)));
      // Every commit reaches the volume although none is durable: the write lock is not held while
      // waiting (asynchronous commit).
      await waitFor(() => volume.mtrs().length === 6);
      await tick();
      assert.deepEqual(acked, [], "nothing acknowledged before VDL covers it");

      const mtrs = volume.mtrs().slice(1);
      // Make the first three durable: exactly their sessions resolve.
      volume.advanceVdl(mtrs[2]!.commitLsn);
      await waitFor(() => acked.length === 3);
      await tick();
      assert.equal(acked.length, 3);
      volume.advanceVdl();
      await Promise.all(commits);
      // Acknowledgement order = commit (LSN) order: find each session's row LSN order via rowids.
      const r = engine.openSession();
      const rows = (await run(r, "SELECT who FROM d ORDER BY id")).rows.map((row) => Number((row[0] as { value: bigint }).value));
      assert.deepEqual(acked, rows, "acknowledged in the order the commits were made");
      await Promise.all([...sessions, setup, r].map((s) => s.close()));
    } finally {
      await engine.close();
    }
  });

  it("fails a commit whose durability cannot be established, then refuses writes; reads go on", async () => {
    const { volume, engine } = await startRig({ durability: "manual" });
    try {
      const s = engine.openSession();
      const create = run(s, "CREATE TABLE f (x INTEGER)");
      await waitFor(() => volume.mtrs().length === 1);
      volume.advanceVdl();
      await create;
      const doomed = run(s, "INSERT INTO f VALUES (1)");
      await waitFor(() => volume.mtrs().length === 2);
      volume.failDurability();
      await assert.rejects(doomed, (e: unknown) => isBorealisError(e, "COMMIT_OUTCOME_UNKNOWN"));
      await assert.rejects(run(s, "INSERT INTO f VALUES (2)"), (e: unknown) => isBorealisError(e, "WRITER_FENCED"));
      assert.equal(await scalar(engine.openSession(), "SELECT count(*) FROM f"), 0n, "reads at VDL still work");
    } finally {
      await engine.close();
    }
  });

  it("fails commits when the volume refuses the MTR", async () => {
    const { volume, engine } = await startRig();
    try {
      const s = engine.openSession();
      await run(s, "CREATE TABLE g (x INTEGER)");
      volume.failSubmits();
      await assert.rejects(run(s, "INSERT INTO g VALUES (1)"), (e: unknown) => isBorealisError(e, "COMMIT_OUTCOME_UNKNOWN"));
      await assert.rejects(run(s, "INSERT INTO g VALUES (2)"), (e: unknown) => isBorealisError(e, "WRITER_FENCED"));
    } finally {
      await engine.close();
    }
  });

  it("applies LAL back-pressure: commits wait for VDL, then are refused with BACKPRESSURE (invariant 6)", async () => {
    const { volume, engine } = await startRig({ durability: "manual" }, { lal: 16, lalWaitMs: 150, readers: 1, groupCommit: false });
    try {
      const s = engine.openSession();
      const create = run(s, "CREATE TABLE lal (x INTEGER)");
      await waitFor(() => volume.mtrs().length === 1);
      volume.advanceVdl();
      await create;
      const vdl = volume.vdl();
      // Each single-row insert is 2 records (page 1 + the leaf): the 9th would pass VDL + 16.
      const sessions = Array.from({ length: 9 }, () => engine.openSession());
      const results = sessions.map((x, i) => run(x, "INSERT INTO lal VALUES (?)", int(i)).then(() => "ok", (e: unknown) => e));
      await waitFor(() => volume.mtrs().length === 9);
      const settled = await Promise.race([Promise.all(results), tick(1000).then(() => null)]);
      assert.equal(settled, null, "the first eight wait for durability");
      const last = await results[8];
      assert.ok(isBorealisError(last, "BACKPRESSURE"), `ninth commit refused: ${String(last)}`);
      for (const m of volume.mtrs()) assert.ok(m.commitLsn <= vdl + 16, `invariant 6: LSN ${m.commitLsn} ≤ VDL ${vdl} + LAL 16`);
      volume.advanceVdl();
      const outcomes = await Promise.all(results.slice(0, 8));
      assert.deepEqual(outcomes, Array(8).fill("ok"));
      // With VDL caught up, the refused write goes through on retry.
      const retry = run(sessions[8]!, "INSERT INTO lal VALUES (8)");
      await waitFor(() => volume.mtrs().length === 10);
      volume.advanceVdl();
      await retry;
      assert.equal(await scalar(s, "SELECT count(*) FROM lal"), 9n);
    } finally {
      await engine.close();
    }
  });

  it("refuses a commit larger than LAL with SQLITE_FULL", async () => {
    const { engine } = await startRig({}, { lal: 16, readers: 1 });
    try {
      const s = engine.openSession();
      await run(s, "CREATE TABLE huge (x BLOB)");
      await assert.rejects(run(s, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40) INSERT INTO huge SELECT randomblob(3000) FROM n"), (e: unknown) =>
        e instanceof Error && (e as { code?: string }).code === "SQLITE_FULL");
      assert.equal(await scalar(s, "SELECT count(*) FROM huge"), 0n);
    } finally {
      await engine.close();
    }
  });

  it("recovers: commits above VDL are annulled, a new writer resumes the chains", async () => {
    const first = await startRig({ durability: "manual" }, { readers: 1 });
    const { volume } = first;
    const s = first.engine.openSession();
    const setup = s.executeScript("CREATE TABLE r (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO r VALUES (1, 'durable');");
    await waitFor(() => volume.mtrs().length === 2);
    volume.advanceVdl();
    await setup;
    const lost = run(s, "INSERT INTO r VALUES (2, 'lost')").then(() => "acked", (e: unknown) => e);
    await waitFor(() => volume.mtrs().length === 3);
    // The writer crashes before VDL covers the second commit; recovery annuls it.
    await first.engine.close();
    const state = volume.recover();
    const outcome = await lost;
    assert.ok(outcome !== "acked", "an annulled commit is never acknowledged");
    assert.equal(state.epoch, 2);

    const engine = await Engine.start({ volume, lsnState: state, pgPages: PG_PAGES, readers: 1, cacheMb: 16, shipPageImages: true });
    try {
      const t = engine.openSession();
      assert.equal(await scalar(t, "SELECT group_concat(v) FROM r"), "durable");
      volume.setDurability("immediate");
      await run(t, "INSERT INTO r VALUES (3, 'after recovery')"); // MemoryVolume checks every backlink
      assert.equal(await scalar(t, "SELECT count(*) FROM r"), 2n);
      assert.equal(await scalar(t, "PRAGMA integrity_check"), "ok");
      const after = volume.mtrs()[volume.mtrs().length - 1]!;
      assert.equal(after.epoch, 2);
      assert.equal(after.records[0]!.record.prevLsnInVolume, state.vdl, "the volume chain resumes at the recovered VDL");
    } finally {
      await engine.close();
    }
  });
});
