/**
 * Issue 2's second required cluster test: every storage node restarts — first all six killed with
 * SIGKILL mid-stream, then, after a writer recovery and more commits, all six stopped with SIGTERM
 * mid-stream — and every acknowledged record is still there.
 *
 * What it proves (DESIGN.md invariants 2, 3, 8, 9, 12):
 *   - right after the restart, before any writer touches the volume, every record of every
 *     acknowledged commit is held, byte for byte, by at least a write quorum (4 of 6) of its PG's
 *     segments, and at least four segments per PG are complete (SCL) through the PG's last
 *     acknowledged record: an acknowledgement meant an fsync on four disks (invariant 2), and a
 *     restarted node rebuilds its chain from its hot log and page store (invariant 3);
 *   - nothing a segment holds differs from what the writer sent (no corrupt or foreign record);
 *   - a writer recovering afterwards finds a VDL covering every acknowledged commit, and every page
 *     reads as the model has it at several read points, through the writer and segment by segment;
 *   - the recovered writer can write again, and survives the next restart of all nodes the same way.
 *
 * Seeds are printed; replay a run with BOREALIS_SEED=<seed>.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Lsn, type Epochs } from "../../src/core/types.js";
import type { ProcessCluster } from "../../src/testing/process-cluster.js";
import { Prng, SyntheticVolume, seedFromEnv } from "../../src/testing/synthetic-volume.js";
import type { Volume } from "../../src/control-plane/api.js";
import type { Env } from "../../src/env/env.js";
import {
  CommitStream, startCluster, PG_COUNT, PG_PAGES, checkPagesThroughWriter, checkSegmentsDirectly, createVolume, describe, directClient,
  openWriter, pickReadPoints, readAllRecords, sameRecord, sleep, waitFor, type TestWriter,
} from "./helpers.js";

const PHASE_MS = 45_000;

test("restart every storage node (kill -9, then SIGTERM): every acknowledged record is still there", { timeout: 180_000 }, async (t) => {
  const seed = seedFromEnv();
  t.diagnostic(`seed ${seed} (replay with BOREALIS_SEED=${seed})`);
  console.log(`[restart-all] seed ${seed}`);
  const rng = new Prng(seed ^ 0x85ebca6b);
  const started = performance.now();
  const cluster = await startCluster(t);
  const volumeId = "restart-all";
  await createVolume(cluster, volumeId);
  const writers: TestWriter[] = [];
  t.after(() => { for (const w of writers) w.close(); });

  let w = await openWriter(cluster, volumeId, "writer-1");
  writers.push(w);
  const model = new SyntheticVolume({ seed, pgPages: PG_PAGES, pgCount: PG_COUNT, pageSize: w.vw.pageSize }, w.recovered.lsnState);

  for (const [round, how] of [[1, "SIGKILL"], [2, "SIGTERM"]] as const) {
    // This round's records are the ones above where this writer's LSNs start. Older rounds' history
    // falls below the segments' retention point once this writer's VDL moves (retention trails the
    // known VDL by a number of LSNs, and recovery skips LAL = 10^7 of them), so reads and record
    // checks stay within the round.
    const roundFloor = Lsn(w.recovered.lsnState.nextLsn - 1);
    const readPoints: Lsn[] = [];
    // Stream until enough is acknowledged, then take every node down while commits are in flight.
    const stream = new CommitStream(w.vw, model, 16);
    stream.start();
    const target = stream.acked + 200 + rng.int(150);
    await waitFor(() => stream.acked >= target, PHASE_MS, () => `${target} commits acknowledged (${stream.acked}; ${describe(w.vw)})`);
    readPoints.push(stream.maxAcked);
    t.diagnostic(`round ${round}: ${how} all six nodes with ${stream.outstanding} commits outstanding (${describe(w.vw)})`);
    await Promise.all(cluster.nodes.map((n) => (how === "SIGKILL" ? cluster.kill(n) : cluster.stop(n))));
    await stream.stop();
    // The writer goes too (commits still waiting get COMMIT_OUTCOME_UNKNOWN): nothing may touch the
    // segments before the check below.
    w.close();
    await sleep(10); // let the closed writer's answers (COMMIT_OUTCOME_UNKNOWN) reach the stream
    assert.deepEqual(stream.failures, []);
    const acked = stream.maxAcked;
    const epochs1 = w.recovered.epoch;
    t.diagnostic(`round ${round}: ${stream.acked} acknowledged through LSN ${acked}, ${stream.unknown} outcome unknown, ${stream.submitted} submitted`);

    await Promise.all(cluster.nodes.map((n) => cluster.startNode(n.name)));
    const held = await checkAcknowledgedHeld(w.env, cluster, w.recovered.volume, epochs1, model, roundFloor, acked);
    t.diagnostic(`round ${round}: after the restart, ${held.records} acknowledged records each on ≥ 4 segments (min copies ${held.minCopies}), ${held.extra} unacknowledged records held, all as sent`);

    // A writer restart on top: recovery must find every acknowledged commit.
    w = await openWriter(cluster, volumeId, `writer-${round + 1}`);
    writers.push(w);
    const rec = w.recovered.report;
    t.diagnostic(`round ${round}: recovery epoch ${rec.epoch} VDL ${rec.vdl} (acknowledged ${acked}, last submitted ${model.lastCommitLsn}), ${rec.recordsExamined} records examined, ${rec.segmentsCaughtUp} segments caught up, ${rec.ms} ms`);
    assert.ok(rec.vdl >= acked, `recovered VDL ${rec.vdl} covers every acknowledged commit (${acked})`);
    const dropped = model.resume(w.recovered.lsnState);
    t.diagnostic(`round ${round}: ${dropped} unacknowledged commits annulled by recovery`);

    const points = pickReadPoints(model, readPoints, roundFloor, acked, 4, () => rng.float());
    const reads = await checkPagesThroughWriter(w.vw, model, points);
    const writer = w;
    await waitFor(() => writer.vw.status().pgs.every((pg) => pg.segments.every((s) => s.state === "ready")), PHASE_MS,
      () => `the new writer's segments to be ready (${describe(writer.vw)})`);
    const direct = await checkSegmentsDirectly(w.env, cluster, w.recovered.volume, w.recovered.epoch, model, points);
    for (const pg of w.recovered.volume.pgs) {
      for (const rp of points) {
        const n = direct.complete.get(`${pg.pgId}@${rp}`) ?? 0;
        assert.ok(n >= 4, `PG ${pg.pgId}: ${n} segments complete at read point ${rp}, at least a write quorum expected`);
      }
    }
    t.diagnostic(`round ${round}: read points ${points.join(", ")}: ${reads} page reads through the writer, ${direct.pageReads} direct, all as the model`);
  }
  t.diagnostic(`${((performance.now() - started) / 1000).toFixed(1)} s`);
});

/**
 * Before any writer: every record of every PG in (floor, acked] — all of them belong to acknowledged
 * commits, since VDL ≥ acked means every record ≤ acked was durable — is held by at least four
 * segments, identical to what was sent, and at least four segments per PG are complete through the
 * PG's last acknowledged record. Records above `acked` that a segment holds must be as sent too.
 */
async function checkAcknowledgedHeld(env: Env, cluster: ProcessCluster, volume: Volume, epoch: Epochs["volumeEpoch"], model: SyntheticVolume, floor: Lsn, acked: Lsn) {
  let records = 0;
  let extra = 0;
  let minCopies = 6;
  for (const pg of volume.pgs) {
    const key = { volumeId: volume.volumeId, pgId: pg.pgId };
    const epochs: Epochs = { volumeEpoch: epoch, membershipEpoch: pg.membershipEpoch };
    const copies = new Map<number, number>();
    const lastAcked = model.lastLsnInPgAt(pg.pgId, acked);
    let complete = 0;
    for (const seg of pg.segments) {
      const client = directClient(env, cluster.node(seg.nodeId));
      try {
        // Records below the retention point may be coalesced into page images (by design); this
        // round's records must all be above it.
        const state = await client.getSegmentState({ key, epochs });
        assert.ok(state.retentionLsn <= floor, `node ${seg.nodeId} PG ${pg.pgId}: retention ${state.retentionLsn} is at or below this round's first LSN ${floor + 1}`);
        const { scl, records: held } = await readAllRecords(client, key, epochs, floor, Lsn(Number.MAX_SAFE_INTEGER));
        if (scl >= lastAcked) complete++;
        for (const r of held) {
          const sent = model.record(r.lsn);
          assert.ok(sent !== undefined && sent.pgId === pg.pgId, `node ${seg.nodeId} PG ${pg.pgId} holds record ${r.lsn}, which was never sent to this PG`);
          assert.ok(sameRecord(r, sent.record), `node ${seg.nodeId} PG ${pg.pgId}: record ${r.lsn} differs from what was sent`);
          if (r.lsn <= acked) copies.set(r.lsn, (copies.get(r.lsn) ?? 0) + 1);
          else extra++;
        }
      } finally {
        client.close();
      }
    }
    assert.ok(complete >= 4, `PG ${pg.pgId}: ${complete} segments complete through its last acknowledged record ${lastAcked}, at least 4 expected`);
    for (const { record } of model.recordsOfPg(pg.pgId, floor, acked)) {
      const n = copies.get(record.lsn) ?? 0;
      assert.ok(n >= 4, `PG ${pg.pgId}: acknowledged record ${record.lsn} is on ${n} segments, at least 4 expected`);
      minCopies = Math.min(minCopies, n);
      records++;
    }
  }
  return { records, extra, minCopies };
}
