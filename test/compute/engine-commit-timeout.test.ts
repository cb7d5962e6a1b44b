/**
 * A durability wait that times out (the VolumeWriter's --commit-timeout-ms while storage has no write
 * quorum) is not a failure of the volume: the commit is answered COMMIT_OUTCOME_UNKNOWN, and commits go
 * on. Regression: the engine used to stop committing for good on any rejected wait, so after three
 * storage nodes were down for longer than the commit timeout the writer answered every later write
 * WRITER_FENCED, even once storage was back, while its /health said ok (test/e2e/three-down.test.ts).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { isBorealisError } from "../../src/core/errors.js";
import type { Lsn } from "../../src/core/types.js";
import { MemoryVolume } from "../../src/compute/memory-volume.js";
import { durabilityWaitTimedOut, isDurabilityWaitTimeout } from "../../src/compute/volume-io.js";
import { PG_PAGES, int, run, scalar, startRig } from "./helpers.js";

/** A MemoryVolume whose durability waits give up after `timeoutMs`, like the VolumeWriter's. */
class TimingOutVolume extends MemoryVolume {
  timeoutMs = 100;

  override whenDurable(lsn: Lsn): Promise<void> {
    const wait = super.whenDurable(lsn);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(durabilityWaitTimedOut(lsn, "test: no write quorum")), this.timeoutMs);
      wait.then(
        () => { clearTimeout(timer); resolve(); },
        (e: unknown) => { clearTimeout(timer); reject(e); },
      );
    });
  }
}

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail("condition not reached in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("engine: a durability wait that timed out", () => {
  it("is answered COMMIT_OUTCOME_UNKNOWN, stops nothing, and the commit becomes durable with the next", async () => {
    const volume = new TimingOutVolume({ pgPages: PG_PAGES, durability: "manual" });
    const { engine } = await startRig({}, {}, volume);
    try {
      const s = engine.openSession();
      const create = run(s, "CREATE TABLE w (x INTEGER)");
      await waitFor(() => volume.mtrs().length === 1);
      volume.advanceVdl();
      await create;

      // No write quorum: the wait times out.
      await assert.rejects(run(s, "INSERT INTO w VALUES (1)"), (e: unknown) => isBorealisError(e, "COMMIT_OUTCOME_UNKNOWN"));
      assert.equal(engine.commitsStoppedBy(), null, "a timed-out wait does not stop commits");
      assert.equal(await scalar(engine.openSession(), "SELECT count(*) FROM w"), 0n, "readers stay at VDL: the unknown commit is not visible");

      // Storage is back: the next commit is accepted, and with it the earlier one becomes durable.
      volume.timeoutMs = 5000;
      const next = run(s, "INSERT INTO w VALUES (?)", int(2));
      await waitFor(() => volume.mtrs().length === 3);
      volume.advanceVdl();
      await next;
      assert.equal(await scalar(engine.openSession(), "SELECT group_concat(x) FROM (SELECT x FROM w ORDER BY x)"), "1,2");
      await s.close();
    } finally {
      await engine.close();
    }
  });

  it("is told apart from the other rejections, which still stop commits", () => {
    assert.equal(isDurabilityWaitTimeout(durabilityWaitTimedOut(7 as Lsn, "x")), true);
    assert.equal(isDurabilityWaitTimeout(new Error("x")), false);
    assert.equal(isDurabilityWaitTimeout(Object.assign(durabilityWaitTimedOut(7 as Lsn, "x"), { code: "NO_QUORUM" })), false);
  });
});
